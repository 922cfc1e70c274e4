//! The outbox dispatcher: messages that completing actions queued are handed
//! to a transport, each under its idempotency key, and their delivery is
//! recorded. Real SMTP and SMS transports plug in behind [`Transport`].

use std::sync::Mutex;

use super::{Engine, Result};
use crate::domain::{ClaimedMessage, OutboxMessage};

/// A transport's successful delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's id for the message, when it gives one.
    pub provider_id: Option<String>,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Worth trying again later (a timeout, a 4xx SMTP reply).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Never going to work (a 5xx SMTP reply, an invalid recipient).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Hands messages to the outside world. Implementations must pass the
/// message's idempotency key on (a Message-ID, a provider's idempotency
/// header), so that a message handed over twice is delivered once.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Delivers one message.
    ///
    /// # Errors
    ///
    /// A [`TransportError`] saying whether to try again.
    async fn deliver(&self, message: &OutboxMessage) -> Result<Delivery, TransportError>;

    /// Whether messages can go out at all. An unconfigured transport leaves
    /// them queued in the outbox, visible, never dropped.
    fn configured(&self) -> bool {
        true
    }
}

/// The transport of a fresh install with no email or SMS provider set up:
/// the dispatcher leaves every message queued in the outbox.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unconfigured;

#[async_trait::async_trait]
impl Transport for Unconfigured {
    async fn deliver(&self, _: &OutboxMessage) -> Result<Delivery, TransportError> {
        Err(TransportError::Temporary("no email or SMS transport is configured".into()))
    }

    fn configured(&self) -> bool {
        false
    }
}

/// A transport that records what it is handed and delivers each
/// idempotency key once: the default until a real transport is configured,
/// and what tests read.
#[derive(Debug, Default)]
pub struct RecordingTransport {
    delivered: Mutex<Vec<OutboxMessage>>,
}

impl RecordingTransport {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message delivered, in order, once per idempotency key.
    pub fn delivered(&self) -> Vec<OutboxMessage> {
        self.delivered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[async_trait::async_trait]
impl Transport for RecordingTransport {
    async fn deliver(&self, message: &OutboxMessage) -> Result<Delivery, TransportError> {
        let mut delivered = self.delivered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !delivered.iter().any(|m| m.idempotency_key == message.idempotency_key) {
            delivered.push(message.clone());
        }
        Ok(Delivery { provider_id: Some(message.idempotency_key.clone()) })
    }
}

impl Engine {
    /// Delivers one batch of queued messages. Returns how many were
    /// delivered; a message that failed for now waits for the next round.
    ///
    /// # Errors
    ///
    /// A store error; a transport's failure is recorded on the message.
    pub async fn dispatch_outbox(&self) -> Result<usize> {
        if !self.inner.transport.configured() {
            return Ok(0);
        }
        let now = self.now();
        let claimed = self.store().claim_messages(now, self.config().outbox_batch, self.config().lease).await?;
        let mut delivered = 0;
        for ClaimedMessage { message, lease_token } in claimed {
            let outcome = self.inner.transport.deliver(&message).await;
            let now = self.now();
            let attempts = message.attempts + 1;
            let retry_at = match &outcome {
                Err(TransportError::Temporary(_)) if attempts < i64::from(self.config().outbox_max_attempts) => {
                    // Exponential backoff: 30 s, 1 min, 2 min, … capped at an hour.
                    let delay = 30_i64.saturating_mul(1 << attempts.clamp(1, 7).saturating_sub(1)).min(3600);
                    Some(now + chrono::Duration::seconds(delay))
                }
                Ok(_) => Some(now),
                Err(_) => None,
            };
            let error = outcome.as_ref().err().map(ToString::to_string);
            let mut tx = self.store().begin().await?;
            tx.record_delivery(&message.id, &lease_token, error.as_deref().map_or(Ok(()), Err), retry_at, now).await?;
            tx.commit().await?;
            match error {
                Some(error) => {
                    tracing::warn!(message = %message.id, %error, gave_up = retry_at.is_none(), "delivery failed")
                }
                None => delivered += 1,
            }
        }
        Ok(delivered)
    }
}
