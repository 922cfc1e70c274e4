//! The outbox dispatcher: messages that completing actions queued are handed
//! to a transport, each under its idempotency key, and their delivery is
//! recorded. The real transports are in `stepwise-delivery`.
//!
//! # At most once
//!
//! A lease keeps two dispatchers from handing one message over at the same
//! time, but a lease alone would hand a message over again after a host
//! stopped between sending it and recording that it did. So before a
//! message's content leaves, the dispatcher commits a handover mark
//! ([`OutboxMessage::handover_started_at`]), when its transport asks for it
//! ([`Handover`]: SMTP once the server has taken the sender, the recipients
//! and `DATA`); recording the outcome clears it. A message whose dialogue
//! failed or was cut off before that is known not to have left, and is
//! simply tried again. A message found with the mark once its lease has
//! expired may have been sent: on a channel whose transport deduplicates
//! retries (the SMS provider's idempotency header) it is handed over again,
//! otherwise (SMTP) it becomes `failed`, saying so, and is never sent
//! twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::group::{Written, answers};
use super::process::{EventExt, enrollment_event};
use super::{Engine, EngineError, Result};
use stepwise_domain::engagement::{
    ClaimedMessage, Enrollment, EnrollmentStatus, EventKind, Level, OutboxChannel, OutboxMessage, Sequence,
};
use stepwise_domain::transport::{Handover, SmtpAccount, TransportError};
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

    /// [`Engine::dispatch_outbox`], handing over up to `outbox_concurrency`
    /// messages at once and starting no more once `stop` says so; the
    /// messages of the batch not begun are released at once.
    pub(super) async fn dispatch_batch(&self, stop: Option<&tokio::sync::watch::Receiver<bool>>) -> Result<usize> {
        let transport = &self.inner.transport;
        let channels: Vec<OutboxChannel> =
            OutboxChannel::ALL.iter().copied().filter(|c| transport.handles(*c)).collect();
        if channels.is_empty() {
            return Ok(0);
        }
        let config = self.config();
        let claimed = self.store().claim_messages_of(&channels, self.now(), config.outbox_batch, config.lease).await?;
        let concurrency = config.outbox_concurrency.max(1);
        let mut waiting = claimed.into_iter();
        let mut running = tokio::task::JoinSet::new();
        let (mut delivered, mut failure) = (0, None);
        loop {
            while running.len() < concurrency && failure.is_none() {
                if stop.is_some_and(|stop| *stop.borrow()) {
                    break;
                }
                let Some(ClaimedMessage { message, lease_token }) = waiting.next() else { break };
                let engine = self.clone();
                running.spawn(async move {
                    let id = message.id.clone();
                    (id, engine.hand_over(message, &lease_token).await)
                });
            }
            let Some(joined) = running.join_next().await else { break };
            match joined {
                Ok((_, Ok(Handled::Sent))) => delivered += 1,
                Ok((_, Ok(_))) => {}
                Ok((id, Err(EngineError::Store(StoreError::LeaseLost(_))))) => {
                    tracing::warn!(message = %id, "the message's lease expired before it was handed over; another dispatcher has it");
                }
                Ok((_, Err(error))) => failure = Some(error),
                Err(error) => tracing::error!(%error, "a message's handover panicked"),
            }
        }
        // What was not begun goes back at once (a message mid-handover
        // keeps its mark and lease).
        if let Some(first) = waiting.next() {
            self.store().release_messages(&first.lease_token).await?;
        }
        failure.map_or(Ok(delivered), Err)
    }

    /// The rep's own SMTP server an email from their address goes
    /// through, when they gave one.
    async fn own_server(&self, message: &OutboxMessage) -> Result<Option<SmtpAccount>> {
        if message.channel != OutboxChannel::Email {
            return Ok(None);
        }
        let Some(user) = message.payload.get("from_user_id").and_then(serde_json::Value::as_str) else {
            return Ok(None);
        };
        let mut tx = self.store().begin_read().await?;
        Ok(tx.sender_smtp(&message.account_id, user).await?)
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
        let own_server = self.own_server(&message).await?;

        // The mark, durable before the content leaves the host: the
        // transport asks for it once its server is ready for the content
        // (for SMTP, after the sender, the recipient and `DATA`). Its lease
        // is extended past the transport's deadline then, so that no other
        // host takes the message over while this one may still be sending.
        let deadline = self.config().outbox_handover_timeout;
        let handover = MarkOnHandover { engine: self, id: &message.id, lease, began: AtomicBool::new(false) };
        let delivery = tokio::time::timeout(deadline, async {
            match &own_server {
                Some(account) => transport.deliver_through(&message, account, &handover).await,
                None => transport.deliver_with(&message, &handover).await,
            }
        });
        tokio::pin!(delivery);
        // Once marked, the message is this host's while it says so: its
        // lease is renewed every third of the handover lease until the
        // transport answers.
        let renew_every = (self.config().outbox_handover_lease / 3).max(Duration::from_millis(10));
        let delivered = loop {
            tokio::select! {
                delivered = &mut delivery => break delivered,
                () = tokio::time::sleep(renew_every) => {
                    if handover.began.load(Ordering::Acquire) {
                        self.renew_handover(&message.id, lease).await;
                    }
                }
            }
        };
        let outcome = match delivered {
            Ok(outcome) => outcome,
            Err(_) if !handover.began.load(Ordering::Acquire) => {
                Err(TransportError::Temporary(format!("the transport did not get to the content within {deadline:?}")))
            }
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
        match record {
            DeliveryOutcome::Sent { provider_id } => self.record_sent(&message.id, lease, provider_id).await?,
            record => self.record(&message, lease, record, bounce).await?,
        }
        match (handled, &error) {
            (Handled::Retrying, Some(error)) => {
                tracing::info!(message = %message.id, %error, "delivery failed for now; tried again later")
            }
            (Handled::Failed, Some(error)) => tracing::warn!(message = %message.id, %error, "delivery failed"),
            _ => {}
        }
        Ok(handled)
    }

    /// Commits the handover mark of a claimed message, with the marks of
    /// the messages handed over at the same time, and renews its lease for
    /// the handover lease (renewed again while the transport works, by
    /// [`Engine::renew_handover`]), so that no other host takes the message
    /// over while this one may still be sending.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`] when the lease was lost: the message must
    /// not be handed over. A store error when the mark was not written.
    async fn mark_handover(&self, id: &str, lease: &str) -> Result<()> {
        let engine = self.clone();
        let item = (id.to_owned(), lease.to_owned());
        let marked = self.inner.handovers.submit(item, move |group| async move {
            let now = engine.now();
            let until = now + chrono::Duration::from_std(engine.config().outbox_handover_lease).unwrap_or_default();
            let written = async {
                let marks: Vec<(&str, &str)> = group.iter().map(|(i, l)| (i.as_str(), l.as_str())).collect();
                let mut tx = engine.store().begin().await?;
                let marked = tx.begin_handovers(&marks, now, until).await?;
                tx.commit().await?;
                Ok::<_, EngineError>(marked)
            };
            answers(&group, written.await, |(id, _)| id)
        });
        settled(id, marked.await)
    }

    /// Renews the lease of a message this host is handing over for another
    /// handover lease. A failure is logged: the lease may then end while the
    /// transport works, and the next host to claim the message finds its
    /// mark and does not send it again.
    async fn renew_handover(&self, id: &str, lease: &str) {
        let until = self.now() + chrono::Duration::from_std(self.config().outbox_handover_lease).unwrap_or_default();
        match self.store().renew_message_lease(id, lease, until).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(message = %id, "the message's handover lease was lost while it was handed over")
            }
            Err(error) => tracing::warn!(message = %id, %error, "could not renew the message's handover lease"),
        }
    }

    /// Records a message sent, with the others sent at the same time.
    ///
    /// # Errors
    ///
    /// As [`Engine::mark_handover`].
    async fn record_sent(&self, id: &str, lease: &str, provider_id: Option<&str>) -> Result<()> {
        let engine = self.clone();
        let item = (id.to_owned(), lease.to_owned(), provider_id.map(str::to_owned));
        let recorded = self.inner.sent.submit(item, move |group| async move {
            let now = engine.now();
            let written = async {
                let sent: Vec<(&str, &str, Option<&str>)> =
                    group.iter().map(|(i, l, p)| (i.as_str(), l.as_str(), p.as_deref())).collect();
                let mut tx = engine.store().begin().await?;
                let recorded = tx.finish_sent(&sent, now).await?;
                tx.commit().await?;
                Ok::<_, EngineError>(recorded)
            };
            answers(&group, written.await, |(id, _, _)| id)
        });
        settled(id, recorded.await)
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
    let sequence = tx.sequence_for(&enrollment.account_id, &enrollment.sequence_id).await?;
    Ok(Some((enrollment, sequence)))
}

/// The handover mark of one message, committed when its transport is
/// about to let the content go.
struct MarkOnHandover<'a> {
    engine: &'a Engine,
    id: &'a str,
    lease: &'a str,
    /// The mark was committed: the content may have left.
    began: AtomicBool,
}

#[async_trait::async_trait]
impl Handover for MarkOnHandover<'_> {
    async fn begin(&self) -> std::result::Result<(), String> {
        self.engine.mark_handover(self.id, self.lease).await.map_err(|e| e.to_string())?;
        self.began.store(true, Ordering::Release);
        Ok(())
    }
}

/// One message's answer of a group write, as the engine's result.
fn settled(id: &str, answer: Option<Written>) -> Result<()> {
    match answer {
        Some(Ok(true)) => Ok(()),
        Some(Ok(false)) => Err(EngineError::Store(StoreError::LeaseLost(id.to_owned()))),
        Some(Err(error)) => Err(EngineError::InvalidState(format!("message {id}: {error}"))),
        None => Err(EngineError::InvalidState(format!("message {id}: the write was lost"))),
    }
}

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
