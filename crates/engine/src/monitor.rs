//! The webhook monitor: when a step that made an HTTP request fails for
//! good, the host keeps an entry with the request (secrets masked, as the
//! plugin reported it) and the response or error, tells the step's owner,
//! and writes a note on the contact's timeline.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::process::{EventExt, SYSTEM, Snapshot};
use super::{Engine, Result};
use stepwise_domain::engagement::{EventKind, WebhookEventType};
use stepwise_store::{Tx, WebhookFailure, new_id};

impl Engine {
    /// Records the monitor entry, notification and note of a failure whose
    /// `details` carry the `request` the step made; other failures are not
    /// the monitor's.
    pub(crate) async fn monitor_failure(
        &self,
        tx: &mut Tx,
        ctx: &Snapshot,
        message: &str,
        details: &Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(request) = details.get("request").filter(|r| r.is_object()) else { return Ok(()) };
        let failure = WebhookFailure {
            id: new_id("whf"),
            sequence_id: ctx.sequence.id.clone(),
            enrollment_id: Some(ctx.enrollment.id.clone()),
            action_id: Some(ctx.action.id.clone()),
            contact_id: ctx.contact.id.clone(),
            plugin_id: ctx.step.plugin.id.clone(),
            step: ctx.action.step,
            attempts: ctx.action.attempts + 1,
            message: message.to_owned(),
            request: request.clone(),
            response: details.get("response").cloned(),
            error: details.get("error").cloned(),
            failed_at: now,
        };
        tx.record_webhook_failure(&ctx.enrollment.account_id, &failure).await?;
        let data =
            json!({ "webhook_failure": failure, "contact_id": ctx.contact.id, "enrollment_id": ctx.enrollment.id });
        let kind = WebhookEventType::WebhookStepFailed;
        tx.publish_event(&ctx.enrollment.account_id, kind, Some(&ctx.enrollment.id), data, now).await?;
        let target = request.get("url").and_then(Value::as_str).unwrap_or("its destination");
        let note = format!(
            "step {} ({}) could not reach {target} after {} attempt(s): {message}",
            ctx.action.step + 1,
            ctx.step.name,
            failure.attempts
        );
        let event = ctx
            .event(EventKind::Note, SYSTEM)
            .reason(note.clone())
            .change(json!(null), json!({ "webhook_failure_id": failure.id }));
        tx.record_event(&event, now).await?;
        if let Some(owner) = &ctx.owner {
            let notice = ctx
                .event(EventKind::Notification, SYSTEM)
                .reason(note)
                .change(json!(null), json!({ "user_id": owner.id, "webhook_failure_id": failure.id }));
            tx.record_event(&notice, now).await?;
        }
        Ok(())
    }
}
