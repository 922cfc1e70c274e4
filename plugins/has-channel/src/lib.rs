//! The `has-channel` criteria predicate: holds when the contact can be
//! reached on a channel — it has an email address (`email`) or a phone
//! number (`sms`, `phone`), and, when the config asks, has not opted out of
//! that channel.
//!
//! One predicate serves the three channels rather than a `has-email` and a
//! `has-phone`: text messages and calls share the phone number but not the
//! opt-out, so "has a phone" alone could not say which opt-out counts.

use stepwise_plugin_sdk::prelude::*;

/// A has-channel criterion's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The channel: `email` needs an email address, `sms` and `phone` a
    /// phone number.
    pub channel: Reach,
    /// Also require that the contact has not opted out of the channel.
    #[serde(default)]
    pub not_opted_out: bool,
}

/// A channel a contact can be reached on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    /// Email: the contact's email address.
    Email,
    /// Text messages: the contact's phone number.
    Sms,
    /// Calls: the contact's phone number.
    Phone,
}

/// The predicate.
#[derive(Debug)]
pub struct HasChannel;

impl Predicate for HasChannel {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::predicate("has-channel", "Has an email address or phone number").description(
            "holds when the contact has an email address (channel email) or a phone number (sms, phone), and with \
             not_opted_out has not opted out of that channel",
        )
    }

    fn evaluate(_: &StepContext, config: Config, subject: &Subject) -> Result<bool, String> {
        Ok(reachable(&config, &subject.contact))
    }
}

stepwise_plugin_sdk::export_predicate!(HasChannel);

/// Whether `contact` has the address `config` asks for (not blank: an
/// address of only spaces is none) and, with `not_opted_out`, has not
/// opted out of the channel.
pub fn reachable(config: &Config, contact: &Contact) -> bool {
    let (address, opted_out) = match config.channel {
        Reach::Email => (&contact.email, contact.opt_outs.email),
        Reach::Sms => (&contact.phone, contact.opt_outs.sms),
        Reach::Phone => (&contact.phone, contact.opt_outs.phone),
    };
    let present = address.as_deref().is_some_and(|a| !a.trim().is_empty());
    present && !(config.not_opted_out && opted_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stepwise_plugin_sdk::{OptOuts, fixtures, parse_config};

    fn config(channel: Reach, not_opted_out: bool) -> Config {
        Config { channel, not_opted_out }
    }

    #[test]
    fn each_channel_reads_its_address() {
        let mut contact = fixtures::contact();
        for channel in [Reach::Email, Reach::Sms, Reach::Phone] {
            assert!(reachable(&config(channel, false), &contact), "{channel:?}");
        }
        contact.email = None;
        assert!(!reachable(&config(Reach::Email, false), &contact));
        assert!(reachable(&config(Reach::Sms, false), &contact));
        contact.phone = None;
        assert!(!reachable(&config(Reach::Sms, false), &contact));
        assert!(!reachable(&config(Reach::Phone, false), &contact));
    }

    #[test]
    fn blank_addresses_are_none() {
        let mut contact = fixtures::contact();
        contact.email = Some(String::new());
        contact.phone = Some("   ".into());
        for channel in [Reach::Email, Reach::Sms, Reach::Phone] {
            assert!(!reachable(&config(channel, false), &contact), "{channel:?}");
        }
    }

    #[test]
    fn opt_outs_count_only_when_asked_and_only_for_their_channel() {
        let mut contact = fixtures::contact();
        contact.opt_outs.sms = true;
        assert!(reachable(&config(Reach::Sms, false), &contact), "an opt-out alone does not matter by default");
        assert!(!reachable(&config(Reach::Sms, true), &contact));
        assert!(reachable(&config(Reach::Phone, true), &contact), "calls are another channel");
        assert!(reachable(&config(Reach::Email, true), &contact));
        contact.opt_outs.email = true;
        assert!(!reachable(&config(Reach::Email, true), &contact));
        contact.email = None;
        contact.opt_outs = OptOuts { email: false, sms: false, phone: false };
        assert!(!reachable(&config(Reach::Email, true), &contact), "no address, opted out or not");
    }

    #[test]
    fn configs_parse_strictly() {
        let parsed: Config = parse_config(r#"{"channel": "sms"}"#).unwrap();
        assert_eq!((parsed.channel, parsed.not_opted_out), (Reach::Sms, false));
        let parsed: Config = parse_config(r#"{"channel": "email", "not_opted_out": true}"#).unwrap();
        assert_eq!((parsed.channel, parsed.not_opted_out), (Reach::Email, true));
        let problem = parse_config::<Config>(r#"{"channel": "fax"}"#).unwrap_err();
        assert_eq!(problem.field, "/channel");
        assert!(problem.message.contains("unknown variant `fax`, expected one of `email`, `sms`, `phone`"));
        let problem = parse_config::<Config>(r#"{"channel": "email", "opted_in": true}"#).unwrap_err();
        assert_eq!(problem.field, "/opted_in");
        let problem = parse_config::<Config>(r#"{"channel": "email", "not_opted_out": "yes"}"#).unwrap_err();
        assert_eq!(problem.field, "/not_opted_out");
        let problem = parse_config::<Config>("{}").unwrap_err();
        assert!(problem.message.contains("missing field `channel`"), "{}", problem.message);
    }

    #[test]
    fn the_schema_requires_the_channel() {
        assert_eq!(HasChannel::manifest().id(), "has-channel");
        let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        assert_eq!(schema["required"], json!(["channel"]), "{schema}");
        assert_eq!(schema["properties"]["not_opted_out"]["default"], false, "{schema}");
    }
}
