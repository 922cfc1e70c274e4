//! An automatic SMS step: texts the contact's phone number. The engine's
//! tests use it for the phone requirement and the SMS opt-out.

use stepwise_plugin_sdk::messaging::Sms;
use stepwise_plugin_sdk::prelude::*;

/// No settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {}

/// Texts "Hello" to the contact.
#[derive(Debug)]
pub struct Texter;

impl Action for Texter {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("texter", "Text the contact")
            .channel(Channel::Sms)
            .automatic()
            .result(ResultSpec::continues("sent", "Sent"))
            .capability(Capability::SendSms)
    }

    fn execute(_: &StepContext, _: Config, subject: &Subject) -> Outcome {
        let sms = Sms { to: subject.contact.phone.clone().unwrap_or_default(), body: "Hello".into() };
        match messaging::send_sms(&sms) {
            Ok(_) => Outcome::done("sent"),
            Err(error) => Outcome::failed(format!("send-sms: {}", error.message)),
        }
    }
}

stepwise_plugin_sdk::export_action!(Texter);
