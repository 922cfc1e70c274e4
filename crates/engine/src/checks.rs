//! The requirement and opt-out checks of SPEC §4 (steps 2 and 3) as pure
//! functions of what the engine loaded, shared by processing and explain.

use stepwise_domain::crm::{Contact, User};
use stepwise_domain::engagement::{Activation, DeferralReason, SenderMode};
use stepwise_plugin_host::types::Channel;

/// What the requirement checks look at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The channel the step's plugin uses.
    pub channel: Option<Channel>,
    /// Manual or automatic.
    pub activation: Activation,
    /// The owner the step's owner rule chose, if any.
    pub owner: Option<&'a User>,
    /// The contact.
    pub contact: &'a Contact,
    /// `Err` with the reason when the plugin may not run for the account.
    pub plugin: Result<(), &'a str>,
    /// The step's config uses legacy merge syntax.
    pub legacy_merge: bool,
    /// Where the account's emails come from.
    pub sender_mode: SenderMode,
}

/// One requirement and whether it is met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The reason the action is deferred when unmet.
    pub reason: DeferralReason,
    /// Whether the requirement applies to this step at all.
    pub applies: bool,
    /// Whether it is met.
    pub met: bool,
    /// The answer in words.
    pub detail: String,
}

/// Every requirement of SPEC §4 step 2, in the order they are checked.
pub fn requirements(f: &Facts<'_>) -> Vec<Requirement> {
    let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    let needs_owner = f.activation == Activation::Manual;
    let email_channel = f.channel == Some(Channel::Email);
    let phone_channel = matches!(f.channel, Some(Channel::Sms | Channel::Phone));
    let owner_name = f.owner.map_or_else(|| "nobody".to_owned(), |o| format!("{} <{}>", o.name, o.email));
    vec![
        Requirement {
            reason: DeferralReason::OwnerInactive,
            applies: needs_owner || f.owner.is_some(),
            met: f.owner.map_or(!needs_owner, |o| o.active),
            detail: match f.owner {
                Some(o) if o.active => format!("the owner {owner_name} is active"),
                Some(_) => format!("the owner {owner_name} is inactive"),
                None if needs_owner => "the step's owner rule finds no owner".to_owned(),
                None => "the automatic step needs no owner".to_owned(),
            },
        },
        Requirement {
            reason: DeferralReason::DelegatedOwner,
            applies: f.owner.is_some(),
            met: f.owner.is_none_or(|o| !o.delegate),
            detail: match f.owner {
                Some(o) if o.delegate => format!("the owner {owner_name} is a delegate"),
                _ => "the owner is not a delegate".to_owned(),
            },
        },
        Requirement {
            reason: DeferralReason::MissingEmail,
            applies: email_channel,
            met: !email_channel || has(&f.contact.email),
            detail: if has(&f.contact.email) {
                "the contact has an email address".to_owned()
            } else {
                "the contact has no email address".to_owned()
            },
        },
        Requirement {
            reason: DeferralReason::MissingPhone,
            applies: phone_channel,
            met: !phone_channel || has(&f.contact.phone),
            detail: if has(&f.contact.phone) {
                "the contact has a phone number".to_owned()
            } else {
                "the contact has no phone number".to_owned()
            },
        },
        Requirement {
            reason: DeferralReason::SenderNotConnected,
            applies: email_channel && f.activation == Activation::Automatic,
            // Through the relay any owner's email goes (replies reach them
            // by Reply-To); from their own address, only once it is verified.
            met: !(email_channel && f.activation == Activation::Automatic)
                || f.owner.is_some_and(|o| f.sender_mode == SenderMode::Relay || o.sender_connected),
            detail: match f.owner {
                Some(o) if f.sender_mode == SenderMode::Relay => {
                    format!("the shared relay sends for {owner_name}, replies going to {}", o.sending_address())
                }
                Some(o) if o.sender_connected => {
                    format!("the sending address {} of {owner_name} is verified", o.sending_address())
                }
                Some(o) => format!(
                    "the sending address {} of {owner_name} is not verified: they follow the confirmation link \
                     sent to it (`POST /v1/me/sender/confirmation`), or an admin approves it",
                    o.sending_address()
                ),
                None => "there is no owner whose address could send".to_owned(),
            },
        },
        Requirement {
            reason: DeferralReason::PluginDisabled,
            applies: true,
            met: f.plugin.is_ok(),
            detail: match f.plugin {
                Ok(()) => "the step's plugin is enabled for the account".to_owned(),
                Err(why) => why.to_owned(),
            },
        },
        Requirement {
            reason: DeferralReason::LegacyMergeSyntax,
            applies: true,
            met: !f.legacy_merge,
            detail: if f.legacy_merge {
                "the step's config uses legacy merge syntax; use {{contact.first_name}} tokens".to_owned()
            } else {
                "the step's config uses no legacy merge syntax".to_owned()
            },
        },
    ]
}

/// The first unmet requirement, which defers the action.
pub fn first_unmet(f: &Facts<'_>) -> Option<Requirement> {
    requirements(f).into_iter().find(|r| !r.met)
}

/// Whether the contact opted out of the channel (SPEC §4 step 3).
pub fn opted_out(channel: Option<Channel>, contact: &Contact) -> bool {
    match channel {
        Some(Channel::Email) => contact.opt_outs.email,
        Some(Channel::Sms) => contact.opt_outs.sms,
        Some(Channel::Phone) => contact.opt_outs.phone,
        None => false,
    }
}

/// Whether any string in a step's config uses legacy merge syntax.
pub fn uses_legacy_merge(config: &serde_json::Value) -> bool {
    match config {
        serde_json::Value::String(s) => stepwise_domain::templates::has_legacy_merge_syntax(s),
        serde_json::Value::Array(items) => items.iter().any(uses_legacy_merge),
        serde_json::Value::Object(map) => map.values().any(uses_legacy_merge),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> User {
        User { name: "Grace".into(), email: "grace@example.com".into(), sender_connected: true, ..User::default() }
    }

    fn contact() -> Contact {
        Contact { email: Some("ada@example.com".into()), phone: Some("+15550100".into()), ..Contact::default() }
    }

    fn unmet(
        channel: Option<Channel>,
        activation: Activation,
        owner: Option<&User>,
        contact: &Contact,
    ) -> Option<DeferralReason> {
        let sender_mode = SenderMode::OwnAddress;
        let facts = Facts { channel, activation, owner, contact, plugin: Ok(()), legacy_merge: false, sender_mode };
        first_unmet(&facts).map(|r| r.reason)
    }

    #[test]
    fn each_requirement_defers_with_its_own_reason() {
        let ok = owner();
        let c = contact();
        assert_eq!(unmet(Some(Channel::Email), Activation::Automatic, Some(&ok), &c), None);
        assert_eq!(unmet(None, Activation::Manual, None, &c), Some(DeferralReason::OwnerInactive));
        assert_eq!(unmet(None, Activation::Automatic, None, &c), None, "automatic steps need no owner");
        let inactive = User { active: false, ..owner() };
        assert_eq!(unmet(None, Activation::Manual, Some(&inactive), &c), Some(DeferralReason::OwnerInactive));
        let delegate = User { delegate: true, ..owner() };
        assert_eq!(unmet(None, Activation::Manual, Some(&delegate), &c), Some(DeferralReason::DelegatedOwner));
        let no_email = Contact { email: None, ..contact() };
        assert_eq!(
            unmet(Some(Channel::Email), Activation::Manual, Some(&ok), &no_email),
            Some(DeferralReason::MissingEmail)
        );
        let no_phone = Contact { phone: Some("  ".into()), ..contact() };
        assert_eq!(
            unmet(Some(Channel::Sms), Activation::Manual, Some(&ok), &no_phone),
            Some(DeferralReason::MissingPhone)
        );
        assert_eq!(
            unmet(Some(Channel::Phone), Activation::Manual, Some(&ok), &no_phone),
            Some(DeferralReason::MissingPhone)
        );
        let offline = User { sender_connected: false, ..owner() };
        assert_eq!(
            unmet(Some(Channel::Email), Activation::Automatic, Some(&offline), &c),
            Some(DeferralReason::SenderNotConnected)
        );
        assert_eq!(
            unmet(Some(Channel::Email), Activation::Manual, Some(&offline), &c),
            None,
            "manual email needs no mailbox"
        );
        let relayed = Facts {
            channel: Some(Channel::Email),
            activation: Activation::Automatic,
            owner: Some(&offline),
            contact: &c,
            plugin: Ok(()),
            legacy_merge: false,
            sender_mode: SenderMode::Relay,
        };
        assert_eq!(first_unmet(&relayed).map(|r| r.reason), None, "the relay sends for an unverified owner");
        let nobody = Facts { owner: None, ..relayed };
        assert_eq!(first_unmet(&nobody).map(|r| r.reason), Some(DeferralReason::SenderNotConnected));

        let facts = Facts {
            channel: None,
            activation: Activation::Manual,
            owner: Some(&ok),
            contact: &c,
            plugin: Err("disabled by an admin"),
            legacy_merge: false,
            sender_mode: SenderMode::Relay,
        };
        let r = first_unmet(&facts).unwrap();
        assert_eq!((r.reason, r.detail.as_str()), (DeferralReason::PluginDisabled, "disabled by an admin"));
        let facts = Facts { plugin: Ok(()), legacy_merge: true, ..facts };
        assert_eq!(first_unmet(&facts).unwrap().reason, DeferralReason::LegacyMergeSyntax);
    }

    #[test]
    fn opt_outs_follow_the_channel() {
        let mut c = contact();
        c.opt_outs.sms = true;
        assert!(opted_out(Some(Channel::Sms), &c));
        assert!(!opted_out(Some(Channel::Email), &c));
        assert!(!opted_out(None, &c));
    }

    #[test]
    fn legacy_merge_syntax_is_found_anywhere_in_the_config() {
        assert!(uses_legacy_merge(&serde_json::json!({"body": ["Hi {!Contact.FirstName}"]})));
        assert!(!uses_legacy_merge(&serde_json::json!({"body": "Hi {{contact.first_name}}"})));
    }
}
