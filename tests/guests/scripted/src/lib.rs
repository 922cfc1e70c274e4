//! An automatic email step whose behaviour its config scripts: the engine's
//! scenario tests drive every outcome, a sent message and a contact change
//! through it.

use std::collections::BTreeMap;

use stepwise_plugin_sdk::contacts::ContactUpdate;
use stepwise_plugin_sdk::messaging::Email;
use stepwise_plugin_sdk::prelude::*;

/// What to do when executed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `done` (default), `skip`, `retry` or `fail`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// The result of `done`: `sent` (default, continues), `won` or `lost` (end).
    #[serde(default)]
    pub result: Option<String>,
    /// Email the contact first.
    #[serde(default)]
    pub send: bool,
    /// Text attributes to set on the contact.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// A contact type to set.
    #[serde(default)]
    pub contact_type: Option<String>,
}

/// The scripted step.
#[derive(Debug)]
pub struct Scripted;

impl Action for Scripted {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("scripted", "Scripted email")
            .channel(Channel::Email)
            .automatic()
            .result(ResultSpec::continues("sent", "Sent"))
            .result(ResultSpec::ends("won", "Won", EnrollmentOutcome::Positive))
            .result(ResultSpec::ends("lost", "Lost", EnrollmentOutcome::Negative))
            .capability(Capability::SendEmail)
            .capability(Capability::UpdateContact(vec![ContactField::Attributes, ContactField::ContactType]))
    }

    fn execute(ctx: &StepContext, config: Config, subject: &Subject) -> Outcome {
        if config.send {
            let email = Email {
                to: subject.contact.email.clone().unwrap_or_default(),
                subject: format!("Step {} for {}", ctx.step_number, subject.contact.first_name),
                text: format!("Hello {}", subject.contact.first_name),
                html: None,
            };
            if let Err(error) = messaging::send_email(&email) {
                return Outcome::failed(format!("send-email: {}", error.message));
            }
        }
        if !config.set.is_empty() || config.contact_type.is_some() {
            let update = ContactUpdate {
                contact_type: config.contact_type.clone(),
                attributes: config
                    .set
                    .iter()
                    .map(|(name, value)| Attribute { name: name.clone(), value: AttributeValue::Text(value.clone()) })
                    .collect(),
                ..ContactUpdate::default()
            };
            if let Err(error) = contacts::update(&update) {
                return Outcome::failed(format!("update-contact: {}", error.message));
            }
        }
        match config.outcome.as_deref().unwrap_or("done") {
            "skip" => Outcome::skipped("scripted skip"),
            "retry" => Outcome::retry(std::time::Duration::from_secs(60), "scripted retry"),
            "fail" => Outcome::failed("scripted failure"),
            _ => Outcome::done(config.result.unwrap_or_else(|| "sent".into())),
        }
    }
}

stepwise_plugin_sdk::export_action!(Scripted);
