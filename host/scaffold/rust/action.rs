//! @TITLE@: a Stepwise step. It renders a message with the contact's tokens
//! and logs it; make `execute` do your step's work.

use stepwise_plugin_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// What to say, with tokens such as `{{contact.first_name}}`.
    message: String,
}

struct Step;

impl Action for Step {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("@ID@", "@TITLE@")
            .description("renders a message about the contact and logs it")
            .automatic()
            .result(ResultSpec::continues("done", "Done"))
            .capability(Capability::RenderTemplate)
            .capability(Capability::Log)
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        let too_long = too_long(&config.message).map(|why| ConfigProblem::new("/message", why));
        templates::problem("/message", &config.message).into_iter().chain(too_long).collect()
    }

    fn execute(_: &StepContext, config: Config, _: &Subject) -> Outcome {
        match templates::render(&config.message) {
            Ok(message) => {
                log::info(&message);
                Outcome::done_with("done", &serde_json::json!({ "message": message }))
            }
            Err(e) => Outcome::failed(e.message),
        }
    }
}

/// A message is at most 500 characters.
fn too_long(message: &str) -> Option<String> {
    let length = message.chars().count();
    (length > 500).then(|| format!("at most 500 characters, not {length}"))
}

stepwise_plugin_sdk::export_action!(Step);

#[cfg(test)]
mod tests {
    use super::too_long;

    #[test]
    fn a_message_of_500_characters_is_kept_and_a_longer_one_refused() {
        assert_eq!(too_long(&"é".repeat(500)), None);
        assert_eq!(too_long(&"x".repeat(501)).as_deref(), Some("at most 500 characters, not 501"));
    }
}
