//! The records plugins see: contacts, users and companies as SPEC §1 names
//! them. The store persists them; the plugin runtime converts them to the
//! WIT types of each contract version.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Lead or contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    /// A prospect not yet qualified.
    #[default]
    Lead,
    /// A qualified contact.
    Contact,
}

/// The channels a contact has opted out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OptOuts {
    /// No email.
    pub email: bool,
    /// No text messages.
    pub sms: bool,
    /// No phone calls.
    pub phone: bool,
}

/// A flat attribute value: text, number or flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A yes/no flag.
    Boolean(bool),
    /// A number.
    Number(f64),
    /// Text.
    Text(String),
}

impl std::fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttributeValue::Boolean(b) => write!(f, "{b}"),
            AttributeValue::Number(n) => write!(f, "{n}"),
            AttributeValue::Text(t) => f.write_str(t),
        }
    }
}

/// A contact (lead, participant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Contact {
    /// Identifier.
    pub id: String,
    /// Lead or contact.
    pub kind: ContactKind,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Owning user.
    pub owner_id: Option<String>,
    /// Company.
    pub company_id: Option<String>,
    /// Contact type, such as `Clients`; empty or left out, the account's
    /// default type (`Other` at first, whatever it is renamed to).
    pub contact_type: String,
    /// Lead source.
    pub lead_source: Option<String>,
    /// Sales cycle.
    pub sales_cycle: Option<String>,
    /// IANA timezone.
    pub timezone: Option<String>,
    /// Opted-out channels.
    pub opt_outs: OptOuts,
    /// Free-form flat attributes.
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Last click or reply.
    pub last_engaged: Option<DateTime<Utc>>,
    /// Last email sent or call made.
    pub last_contacted: Option<DateTime<Utc>>,
    /// When it was made; set by the server (ignored when sent).
    #[schemars(extend("readOnly" = true))]
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed; set by the server (ignored when sent).
    #[schemars(extend("readOnly" = true))]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users, plugins and sequences.
    Admin,
    /// Works a to-do list.
    #[default]
    Agent,
    /// Reads.
    Viewer,
}

/// A user of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct User {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Whether the user can still work.
    pub active: bool,
    /// A delegate may not own actions.
    pub delegate: bool,
    /// IANA timezone.
    pub timezone: String,
    /// Email signature.
    pub signature: String,
    /// Their sending identity is verified (a confirmation link followed,
    /// or an admin's approval): an account that sends from reps' own
    /// addresses sends their automatic email only then.
    pub sender_connected: bool,
    /// The address their emails come from when the account sends from
    /// reps' own addresses; their `email` when unset. Changing it takes a
    /// new confirmation.
    pub sender_email: Option<String>,
    /// The name their emails come from; their `name` when unset.
    pub sender_name: Option<String>,
    /// When it was made; set by the server (ignored when sent).
    #[schemars(extend("readOnly" = true))]
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed; set by the server (ignored when sent).
    #[schemars(extend("readOnly" = true))]
    pub updated_at: Option<DateTime<Utc>>,
}

impl Default for User {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            email: String::new(),
            role: Role::Agent,
            active: true,
            delegate: false,
            timezone: "UTC".into(),
            signature: String::new(),
            sender_connected: false,
            sender_email: None,
            sender_name: None,
            created_at: None,
            updated_at: None,
        }
    }
}

impl User {
    /// The address their emails come from: their sending identity's, else
    /// their email.
    pub fn sending_address(&self) -> &str {
        self.sender_email.as_deref().filter(|a| !a.trim().is_empty()).unwrap_or(&self.email)
    }

    /// The name their emails come from.
    pub fn sending_name(&self) -> &str {
        self.sender_name.as_deref().filter(|n| !n.trim().is_empty()).unwrap_or(&self.name)
    }
}

/// A company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Company {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Owning user.
    pub owner_id: Option<String>,
    /// Parent company.
    pub parent_id: Option<String>,
    /// When it was made; set by the server (ignored when sent).
    #[schemars(extend("readOnly" = true))]
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed; set by the server (ignored when sent).
    #[schemars(extend("readOnly" = true))]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Who a step concerns: the contact, the action's owner and the company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Subject {
    /// The enrolled contact.
    pub contact: Contact,
    /// The action's owner.
    pub owner: Option<User>,
    /// The contact's company.
    pub company: Option<Company>,
}

impl Subject {
    /// Roughly how many bytes the records take when passed to a plugin; the
    /// runtime checks it against the input limit without serializing.
    pub fn approx_size(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let c = &self.contact;
        let attributes: usize =
            c.attributes.iter().map(|(k, v)| k.len() + if let AttributeValue::Text(t) = v { t.len() } else { 8 }).sum();
        let contact = c.id.len()
            + c.first_name.len()
            + c.last_name.len()
            + opt(&c.email)
            + opt(&c.phone)
            + opt(&c.owner_id)
            + opt(&c.company_id)
            + c.contact_type.len()
            + opt(&c.lead_source)
            + opt(&c.sales_cycle)
            + opt(&c.timezone)
            + attributes;
        let owner = self
            .owner
            .as_ref()
            .map_or(0, |u| u.id.len() + u.name.len() + u.email.len() + u.timezone.len() + u.signature.len());
        let company =
            self.company.as_ref().map_or(0, |co| co.id.len() + co.name.len() + opt(&co.owner_id) + opt(&co.parent_id));
        contact + owner + company + 64
    }
}

/// Whether `text` looks like an email address (someone@host.domain).
pub fn is_email(text: &str) -> bool {
    text.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
}
