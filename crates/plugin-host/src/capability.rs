//! Capability checks: a host call is allowed only when the plugin's manifest
//! declares the capability *and* the account's admin granted it. Deny by
//! default; an empty grant allows nothing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::net::{Allowlist, NetError};
use super::types::{Capability, ContactField};

/// What an admin granted one plugin in one account. The store persists it;
/// the runtime checks it on every host call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Grant {
    /// The granted capabilities.
    pub capabilities: Vec<Capability>,
    /// Destinations `http-fetch` may reach, such as `https://*.example.com`.
    pub http_allow: Vec<String>,
}

impl Grant {
    /// A grant of nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses command-line grants: `log`, `render-template`,
    /// `http-fetch=https://a.example.com,https://*.b.example.com`,
    /// `update-contact=owner,contact_type`, `send-email`, `send-sms`,
    /// `lookup-user`, `read-contact-types`, `list-users`.
    ///
    /// # Errors
    ///
    /// [`GrantError`], naming the entry that is not a known capability or
    /// field, or the allowlist entry that does not parse.
    pub fn parse_cli(entries: &[String]) -> Result<Self, GrantError> {
        let mut grant = Grant::none();
        for entry in entries {
            let (name, value) = match entry.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v)),
                None => (entry.trim(), None),
            };
            let list = || value.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|s| !s.is_empty());
            let capability = match name {
                "log" => Capability::Log,
                "render-template" => Capability::RenderTemplate,
                "send-email" => Capability::SendEmail,
                "send-sms" => Capability::SendSms,
                "lookup-user" => Capability::LookupUser,
                "read-contact-types" => Capability::ReadContactTypes,
                "list-users" => Capability::ListUsers,
                "http-fetch" => {
                    grant.http_allow.extend(list().map(str::to_owned));
                    Capability::HttpFetch
                }
                "update-contact" => {
                    let fields = list().map(parse_field).collect::<Result<BTreeSet<_>, _>>()?;
                    Capability::UpdateContact(fields)
                }
                other => {
                    return Err(GrantError::UnknownCapability { name: other.to_owned(), entry: entry.clone() });
                }
            };
            grant.capabilities.push(capability);
        }
        Allowlist::parse(&grant.http_allow)?;
        Ok(grant)
    }

    /// Every capability granted, for reports.
    pub fn names(&self) -> Vec<String> {
        self.capabilities.iter().map(ToString::to_string).collect()
    }
}

/// A command-line grant that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not a capability of the host.
    #[error("unknown capability `{name}` in grant `{entry}`")]
    UnknownCapability {
        /// The name given.
        name: String,
        /// The whole entry.
        entry: String,
    },
    /// Not a contact field `update-contact` can be granted.
    #[error("unknown contact field `{0}` (expected owner, contact_type, sales_cycle or attributes)")]
    UnknownField(String),
    /// An `http-fetch` allowlist entry that does not parse.
    #[error(transparent)]
    Allowlist(#[from] NetError),
}

fn parse_field(name: &str) -> Result<ContactField, GrantError> {
    match name {
        "owner" => Ok(ContactField::Owner),
        "contact_type" | "contact-type" => Ok(ContactField::ContactType),
        "sales_cycle" | "sales-cycle" => Ok(ContactField::SalesCycle),
        "attributes" => Ok(ContactField::Attributes),
        other => Err(GrantError::UnknownField(other.to_owned())),
    }
}

/// What a host call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A capability without fields.
    Plain(Capability),
    /// `update-contact` with these fields.
    ContactFields(BTreeSet<ContactField>),
}

/// Why a host call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The manifest does not request it.
    #[error("capability `{0}` is not declared in the plugin's manifest")]
    NotDeclared(String),
    /// The admin did not grant it.
    #[error("capability `{0}` is not granted to this plugin in this account")]
    NotGranted(String),
}

/// Checks `need` against the manifest's `declared` capabilities and the
/// account's `grant`. Both must allow it.
///
/// # Errors
///
/// The [`Denial`] naming what is missing: the declaration is checked first,
/// so a plugin author learns to declare before an admin is asked to grant.
pub fn authorize(declared: &[Capability], grant: &Grant, need: &Need) -> Result<(), Denial> {
    match need {
        Need::Plain(capability) => {
            if !declared.contains(capability) {
                return Err(Denial::NotDeclared(capability.to_string()));
            }
            if !grant.capabilities.contains(capability) {
                return Err(Denial::NotGranted(capability.to_string()));
            }
            Ok(())
        }
        Need::ContactFields(fields) => {
            let allowed = |set: &[Capability]| -> BTreeSet<ContactField> {
                set.iter()
                    .filter_map(|c| match c {
                        Capability::UpdateContact(f) => Some(f.iter().copied()),
                        _ => None,
                    })
                    .flatten()
                    .collect()
            };
            let named = |missing: Vec<&ContactField>| {
                let fields = missing.into_iter().copied().collect();
                Capability::UpdateContact(fields).to_string()
            };
            let declared_fields = allowed(declared);
            let missing: Vec<_> = fields.difference(&declared_fields).collect();
            if !missing.is_empty() || fields.is_empty() && declared_fields.is_empty() {
                return Err(Denial::NotDeclared(named(missing)));
            }
            let granted_fields = allowed(&grant.capabilities);
            let missing: Vec<_> = fields.difference(&granted_fields).collect();
            if !missing.is_empty() || fields.is_empty() && granted_fields.is_empty() {
                return Err(Denial::NotGranted(named(missing)));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[ContactField]) -> BTreeSet<ContactField> {
        list.iter().copied().collect()
    }

    #[test]
    fn deny_by_default() {
        let declared = [Capability::Log];
        let err = authorize(&declared, &Grant::none(), &Need::Plain(Capability::Log)).unwrap_err();
        assert_eq!(err, Denial::NotGranted("log".into()));
    }

    #[test]
    fn granted_but_undeclared_is_denied() {
        let grant = Grant { capabilities: vec![Capability::SendEmail], ..Grant::none() };
        let err = authorize(&[], &grant, &Need::Plain(Capability::SendEmail)).unwrap_err();
        assert_eq!(err, Denial::NotDeclared("send-email".into()));
    }

    #[test]
    fn declared_and_granted_is_allowed() {
        let grant = Grant { capabilities: vec![Capability::HttpFetch], ..Grant::none() };
        authorize(&[Capability::HttpFetch], &grant, &Need::Plain(Capability::HttpFetch)).unwrap();
    }

    #[test]
    fn contact_fields_need_both_declaration_and_grant() {
        use ContactField::*;
        let declared = [Capability::UpdateContact(fields(&[Owner, ContactType]))];
        let grant = Grant { capabilities: vec![Capability::UpdateContact(fields(&[ContactType]))], ..Grant::none() };
        authorize(&declared, &grant, &Need::ContactFields(fields(&[ContactType]))).unwrap();
        let err = authorize(&declared, &grant, &Need::ContactFields(fields(&[Owner]))).unwrap_err();
        assert_eq!(err, Denial::NotGranted("update-contact(owner)".into()));
        let err = authorize(&declared, &grant, &Need::ContactFields(fields(&[Attributes]))).unwrap_err();
        assert_eq!(err, Denial::NotDeclared("update-contact(attributes)".into()));
    }

    #[test]
    fn cli_grants_parse() {
        let grant = Grant::parse_cli(&[
            "log".into(),
            "http-fetch=https://*.example.com,http://127.0.0.1:*".into(),
            "update-contact=owner,contact_type".into(),
        ])
        .unwrap();
        assert_eq!(grant.http_allow.len(), 2);
        assert!(grant.capabilities.contains(&Capability::Log));
        assert!(Grant::parse_cli(&["teleport".into()]).unwrap_err().to_string().contains("teleport"));
        let field = Grant::parse_cli(&["update-contact=shoe_size".into()]).unwrap_err();
        assert_eq!(field, GrantError::UnknownField("shoe_size".into()));
    }
}
