//! Automatic calls. A step on the `phone` channel made automatic is placed
//! by the host through the voice provider (the plugin never holds its
//! credentials): the step's plugin prepares its to-do item as for a rep, and
//! the provider's call says the item's script to the contact. Without a
//! provider the plugin runs as usual, and the built-in `call` step fails
//! with the reason.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::attempts::AttemptGate;
use super::process::Snapshot;
use super::{Engine, Result};
use stepwise_domain::transport::{TransportError, Voice, VoiceCall};
use stepwise_plugin_host::Plugin;
use stepwise_plugin_host::report::CallReport;
use stepwise_plugin_host::types::Outcome;

/// The result of a call the provider accepted.
pub const PLACED: &str = "placed";

/// How long a call the provider could not take now waits before the next
/// attempt.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// TwiML that says `script` once: `<Response><Say>…</Say></Response>`.
pub fn say(script: &str) -> String {
    let mut escaped = String::with_capacity(script.len());
    for c in script.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{escaped}</Say></Response>")
}

impl Engine {
    /// The voice provider, when one is configured.
    pub(crate) fn voice(&self) -> Option<&Arc<dyn Voice>> {
        self.inner.voice.as_ref()
    }

    /// Places the automatic call of `ctx` through `voice`: the plugin's
    /// prepared script, said to the contact's phone.
    pub(crate) async fn place_call(
        &self,
        ctx: &Snapshot,
        plugin: &Plugin,
        voice: &dyn Voice,
        effects: Arc<AttemptGate>,
    ) -> Result<(Outcome, CallReport)> {
        let mut invocation = self.invocation(ctx, ctx.grant.clone(), None);
        invocation.effects = Some(effects);
        let prepared = self.registry().runtime().prepare(plugin, invocation, &ctx.step.config.to_string()).await;
        let (item, report) = match prepared {
            Ok(call) => {
                self.inner.calls.record(&ctx.step.plugin.id, "prepare", call.report.wall);
                (call.value, call.report)
            }
            Err(error) => {
                let message = error.error.to_string();
                return Ok((Outcome::Failed { message, details: json!({ "kind": "plugin_error" }) }, *error.report));
            }
        };
        let failed = |message: String| Outcome::Failed { message, details: json!({ "kind": "voice" }) };
        let script = match item {
            Ok(item) if !item.body.trim().is_empty() => item.body,
            Ok(_) => return Ok((failed("an automatic call needs a script to say".into()), report)),
            Err(why) => return Ok((failed(why), report)),
        };
        let Some(to) = ctx.contact.phone.clone().filter(|p| !p.trim().is_empty()) else {
            return Ok((failed("the contact has no phone number".into()), report));
        };
        // The provider deduplicates by the key, so a call placed by a host
        // that died before writing its answer is not placed twice on retry.
        let call = VoiceCall { to, twiml: say(&script), idempotency_key: ctx.action.id.clone() };
        let outcome = match voice.place_call(&call).await {
            Ok(placed) => Outcome::Done {
                result: PLACED.into(),
                output: json!({ "call_id": placed.id, "status": placed.status, "to": call.to }),
            },
            Err(TransportError::Temporary(why)) => Outcome::Retry {
                after: RETRY_AFTER,
                reason: format!("the voice provider cannot take the call now: {why}"),
            },
            Err(other) => Outcome::Failed {
                message: format!("the voice provider refused the call: {other}"),
                details: json!({ "kind": "voice", "to": call.to }),
            },
        };
        Ok((outcome, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_said_as_escaped_twiml() {
        assert_eq!(
            say("Hi Ada & <team>, it's \"us\""),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Hi Ada &amp; &lt;team&gt;, it&apos;s &quot;us&quot;</Say></Response>"
        );
    }
}
