//! The outbox dispatcher: messages that completing actions queued are handed
//! to a transport, each under its idempotency key, and their delivery is
//! recorded. The real transports are in `stepwise-delivery`.
//!
//! # At most once
//!
//! A lease keeps two dispatchers from handing one message over at the same
//! time, but a lease alone would hand a message over again after a host
//! stopped between sending it and recording that it did. So before a
//! message goes to its transport, the dispatcher commits a handover mark
//! ([`OutboxMessage::handover_started_at`]); recording the outcome clears
//! it. A message found with the mark once its lease has expired may have
//! been sent: on a channel whose transport deduplicates retries (the SMS
//! provider's idempotency header) it is handed over again, otherwise (SMTP)
//! it becomes `failed`, saying so, and is never sent twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::process::{EventExt, enrollment_event};
use super::{Engine, EngineError, Result};
use stepwise_domain::engagement::{
    ClaimedMessage, Enrollment, EnrollmentStatus, EventKind, Level, OutboxChannel, OutboxMessage, Sequence,
};
use stepwise_domain::transport::TransportError;
use stepwise_store::{DeliveryOutcome, ReadTx, StoreError, Tx};

/// The `last_error` of a message whose handover a stopped host never
/// recorded.
pub const INTERRUPTED: &str = "the host stopped while handing it over; it may have been sent, so it is not sent again";

/// What a message's delivery came to, for the log and the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    Sent,
    Retrying,
    Failed,
}

impl Engine {
    /// Delivers one batch of queued messages. Returns how many were
    /// delivered; a message that failed for now waits for the next round.
    ///
    /// # Errors
    ///
    /// A store error; a transport's failure is recorded on the message.
    pub async fn dispatch_outbox(&self) -> Result<usize> {
        self.dispatch_batch(None).await
    }

    /// [`Engine::dispatch_outbox`], stopping between two messages once
    /// `stop` says so; the messages of the batch not handed over yet are
    /// released at once.
    pub(super) async fn dispatch_batch(&self, stop: Option<&tokio::sync::watch::Receiver<bool>>) -> Result<usize> {
        let transport = &self.inner.transport;
        let channels: Vec<OutboxChannel> =
            OutboxChannel::ALL.iter().copied().filter(|c| transport.handles(*c)).collect();
        if channels.is_empty() {
            return Ok(0);
        }
        let config = self.config();
        let claimed = self.store().claim_messages_of(&channels, self.now(), config.outbox_batch, config.lease).await?;
        let mut delivered = 0;
        for ClaimedMessage { message, lease_token } in claimed {
            if stop.is_some_and(|stop| *stop.borrow()) {
                self.store().release_messages(&lease_token).await?;
                break;
            }
            let id = message.id.clone();
            match self.hand_over(message, &lease_token).await {
                Ok(Handled::Sent) => delivered += 1,
                Ok(_) => {}
                Err(EngineError::Store(StoreError::LeaseLost(_))) => {
                    tracing::warn!(message = %id, "the message's lease expired before it was handed over; another dispatcher has it");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(delivered)
    }

    /// Hands one claimed message to the transport and records the outcome.
    async fn hand_over(&self, mut message: OutboxMessage, lease: &str) -> Result<Handled> {
        let transport = self.inner.transport.clone();
        let retry_safe = transport.retry_safe(message.channel);
        if let Some(started) = message.handover_started_at
            && !retry_safe
        {
            let error = format!("{INTERRUPTED} (handover began {})", started.to_rfc3339());
            self.record(&message, lease, DeliveryOutcome::Failed { error: &error }, None).await?;
            tracing::warn!(message = %message.id, "a stopped host left the message mid-handover; it is not sent again");
            return Ok(Handled::Failed);
        }
        self.add_unsubscribe_link(&mut message).await?;

        // The mark, durable before anything leaves the host. The lease is
        // extended past the transport's deadline below, so that no other
        // host takes the message over while this one may still be sending.
        let now = self.now();
        let deadline = self.config().outbox_handover_timeout;
        let held = deadline.max(self.config().lease) + HANDOVER_MARGIN;
        let mut tx = self.store().begin().await?;
        tx.begin_handover(&message.id, lease, now, now + chrono::Duration::from_std(held).unwrap_or_default()).await?;
        tx.commit().await?;

        let outcome = match tokio::time::timeout(deadline, transport.deliver(&message)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(TransportError::Uncertain(format!("the transport did not finish within {deadline:?}"))),
        };
        let outcome = match outcome {
            Err(TransportError::Uncertain(error)) if retry_safe => Err(TransportError::Temporary(error)),
            other => other,
        };
        let error = outcome.as_ref().err().map(ToString::to_string);
        let attempts = message.attempts + 1;
        let (record, handled) = match (&outcome, error.as_deref()) {
            (Ok(delivery), _) => {
                (DeliveryOutcome::Sent { provider_id: delivery.provider_id.as_deref() }, Handled::Sent)
            }
            (Err(TransportError::Temporary(_)), Some(error))
                if attempts < i64::from(self.config().outbox_max_attempts) =>
            {
                let retry_at = self.now() + chrono::Duration::from_std(backoff(attempts)).unwrap_or_default();
                (DeliveryOutcome::Retry { error, retry_at }, Handled::Retrying)
            }
            (Err(_), error) => (DeliveryOutcome::Failed { error: error.unwrap_or_default() }, Handled::Failed),
        };
        let bounce = match &outcome {
            Err(TransportError::Permanent(reply)) if message.channel == OutboxChannel::Email => Some(reply.as_str()),
            _ => None,
        };
        self.record(&message, lease, record, bounce).await?;
        match (handled, &error) {
            (Handled::Retrying, Some(error)) => {
                tracing::info!(message = %message.id, %error, "delivery failed for now; tried again later")
            }
            (Handled::Failed, Some(error)) => tracing::warn!(message = %message.id, %error, "delivery failed"),
            _ => {}
        }
        Ok(handled)
    }

    /// Records an outcome in one transaction with what it causes: a
    /// message given up leaves an event on its enrollment's timeline, and
    /// a bounced email ends the enrollment `bounced`.
    async fn record(
        &self,
        message: &OutboxMessage,
        lease: &str,
        outcome: DeliveryOutcome<'_>,
        bounce: Option<&str>,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx.finish_delivery(&message.id, lease, outcome, now).await?;
        let mut ended = false;
        if let DeliveryOutcome::Failed { error } = outcome
            && let Some((mut enrollment, sequence)) = origin(&mut tx, message).await?
        {
            let company = tx.contact(&enrollment.account_id, &enrollment.contact_id).await?.company_id;
            let event =
                enrollment_event(&enrollment, company, message.action_id.as_deref(), EventKind::MessageFailed, ACTOR)
                    .reason(format!("the {} was not delivered: {error}", message.channel))
                    .change(json!({ "message": message.id, "state": message.state }), json!({ "state": "failed" }))
                    .level(Level::Warning);
            tx.record_event(&event, now).await?;
            if let Some(reply) = bounce {
                ended = self.bounce(&mut tx, &mut enrollment, &sequence, reply, now).await?;
            }
        }
        tx.commit().await?;
        if ended {
            self.wake();
        }
        Ok(())
    }

    /// Ends the enrollment that sent a bounced email, as a `bounce` signal
    /// would (SPEC §6). Returns whether it ended (an ended one is final).
    async fn bounce(
        &self,
        tx: &mut Tx,
        enrollment: &mut Enrollment,
        sequence: &Sequence,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        if !enrollment.status.is_open() {
            return Ok(false);
        }
        let why = format!("an email to the contact bounced: {reply}");
        self.end_enrollment(tx, enrollment, sequence, EnrollmentStatus::Bounced, None, ACTOR, &why, now).await?;
        Ok(true)
    }

    /// Puts the contact's unsubscribe link in an email whose sequence asks
    /// for one, when the host knows the public URL it is reached at.
    async fn add_unsubscribe_link(&self, message: &mut OutboxMessage) -> Result<()> {
        let Some(base) = &self.config().public_url else { return Ok(()) };
        let has_one = message.payload.get("unsubscribe_url").is_some_and(|url| !url.is_null());
        if message.channel != OutboxChannel::Email || has_one {
            return Ok(());
        }
        let mut tx = self.store().begin_read().await?;
        let Some((enrollment, sequence)) = origin(&mut tx, message).await? else { return Ok(()) };
        drop(tx);
        if !sequence.settings.unsubscribe_link {
            return Ok(());
        }
        let token = self.unsubscribe_token(&message.account_id, &enrollment.contact_id).await?;
        if let Some(payload) = message.payload.as_object_mut() {
            payload.insert("unsubscribe_url".into(), json!(format!("{}/u/{token}", base.trim_end_matches('/'))));
        }
        Ok(())
    }
}

/// The enrollment and sequence whose step queued `message`, when a step
/// queued it.
async fn origin(tx: &mut ReadTx, message: &OutboxMessage) -> Result<Option<(Enrollment, Sequence)>> {
    let Some(action_id) = &message.action_id else { return Ok(None) };
    let action = tx.action(action_id).await?;
    let enrollment = tx.enrollment(&action.enrollment_id).await?;
    let sequence = tx.sequence(&enrollment.account_id, &enrollment.sequence_id).await?;
    Ok(Some((enrollment, sequence)))
}

/// How much longer than the handover's deadline its lease lasts: time to
/// record the outcome.
const HANDOVER_MARGIN: Duration = Duration::from_secs(30);

/// The actor of what the dispatcher records.
const ACTOR: &str = "outbox";

/// The wait before attempt `attempts + 1`: 30 s, 1 min, 2 min, … at most an
/// hour.
fn backoff(attempts: i64) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 7) - 1).unwrap_or(0);
    Duration::from_secs((30u64 << exponent).min(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_an_hour() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 1920, 1920]);
    }
}
