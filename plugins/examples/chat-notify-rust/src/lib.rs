//! Posts a message about the contact to a chat's incoming webhook (Slack,
//! Mattermost, Google Chat, a Teams workflow). The text is rendered with the
//! contact's tokens; a chat that is busy or failing (429, 5xx, no answer)
//! is tried again, after its `Retry-After` when it gives one, and any other
//! answer (a wrong URL, a revoked webhook) fails the step.

use stepwise_plugin_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The chat's incoming-webhook URL.
    url: String,
    /// The message, with tokens such as `{{contact.first_name}}`.
    text: String,
}

struct ChatNotify;

impl Action for ChatNotify {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::action("chat-notify", "Post to a chat")
            .description("posts a message about the contact to a chat's incoming webhook")
            .automatic()
            .result(ResultSpec::continues("posted", "Posted"))
            .capability(Capability::RenderTemplate)
            .capability(Capability::HttpFetch)
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        let url = (!config.url.starts_with("https://") && !config.url.starts_with("http://"))
            .then(|| ConfigProblem::new("/url", "the webhook URL must start with https:// or http://"));
        templates::problem("/text", &config.text).into_iter().chain(url).collect()
    }

    fn execute(ctx: &StepContext, config: Config, _: &Subject) -> Outcome {
        let posted = templates::render(&config.text).and_then(|text| {
            let body = serde_json::json!({ "text": text });
            http::Request::post(config.url).header("Idempotency-Key", &ctx.idempotency_key).json(&body).send()
        });
        http::outcome(posted, "posted")
    }
}

stepwise_plugin_sdk::export_action!(ChatNotify);
