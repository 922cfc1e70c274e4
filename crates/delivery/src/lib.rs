//! The transports behind the outbox: email over SMTP ([`smtp`]), text
//! messages (and calls) through an HTTP provider ([`sms`]), and
//! [`Channels`], the one [`Transport`] the engine is given, which hands each
//! channel to its own transport. Plugins never see any of it: they queue
//! messages, and the host delivers them with credentials only it holds.

pub mod sms;
pub mod smtp;

pub use stepwise_domain::Secret;
pub use stepwise_domain::transport::{EmailPayload, Handover, SmsPayload};

use stepwise_domain::engagement::{OutboxChannel, OutboxMessage};
use stepwise_domain::transport::{Delivery, Transport, TransportError};

/// Email and SMS, each through its own transport when one is configured. A
/// channel without one is not handled: its messages stay queued, visible
/// at `GET /v1/outbox`, until a transport is configured.
#[derive(Debug, Default)]
pub struct Channels {
    email: Option<smtp::SmtpTransport>,
    sms: Option<sms::SmsProvider>,
}

impl Channels {
    /// The transports given; `None` leaves a channel's messages queued.
    pub fn new(email: Option<smtp::SmtpTransport>, sms: Option<sms::SmsProvider>) -> Self {
        Self { email, sms }
    }

    /// The SMS provider's client, for steps that place calls.
    pub fn sms(&self) -> Option<&sms::SmsProvider> {
        self.sms.as_ref()
    }

    /// The channels that have a transport, for the start-up message.
    pub fn describe(&self) -> String {
        let email = self.email.as_ref().map(|t| {
            let c = t.config();
            format!("email through {}:{} ({:?})", c.host, c.port, c.security).to_lowercase()
        });
        let sms = self.sms.as_ref().map(|p| format!("sms and calls through {}", p.config().url));
        match (email, sms) {
            (None, None) => "no email or sms transport: messages stay queued (GET /v1/outbox)".to_owned(),
            (Some(email), None) => format!("{email}; no sms transport: text messages stay queued"),
            (None, Some(sms)) => format!("{sms}; no email transport: emails stay queued"),
            (Some(email), Some(sms)) => format!("{email}; {sms}"),
        }
    }
}

#[async_trait::async_trait]
impl Transport for Channels {
    async fn deliver(&self, message: &OutboxMessage) -> Result<Delivery, TransportError> {
        let unconfigured = || TransportError::Temporary(format!("no {} transport is configured", message.channel));
        match message.channel {
            OutboxChannel::Email => self.email.as_ref().ok_or_else(unconfigured)?.deliver(message).await,
            OutboxChannel::Sms => self.sms.as_ref().ok_or_else(unconfigured)?.deliver(message).await,
        }
    }

    async fn deliver_with(&self, message: &OutboxMessage, handover: &dyn Handover) -> Result<Delivery, TransportError> {
        let unconfigured = || TransportError::Temporary(format!("no {} transport is configured", message.channel));
        match message.channel {
            OutboxChannel::Email => self.email.as_ref().ok_or_else(unconfigured)?.deliver_with(message, handover).await,
            OutboxChannel::Sms => self.sms.as_ref().ok_or_else(unconfigured)?.deliver_with(message, handover).await,
        }
    }

    fn configured(&self) -> bool {
        self.email.is_some() || self.sms.is_some()
    }

    fn handles(&self, channel: OutboxChannel) -> bool {
        match channel {
            OutboxChannel::Email => self.email.is_some(),
            OutboxChannel::Sms => self.sms.is_some(),
        }
    }

    fn retry_safe(&self, channel: OutboxChannel) -> bool {
        match channel {
            OutboxChannel::Email => self.email.as_ref().is_some_and(|t| t.retry_safe(channel)),
            OutboxChannel::Sms => self.sms.as_ref().is_some_and(|t| t.retry_safe(channel)),
        }
    }
}

#[async_trait::async_trait]
impl stepwise_domain::transport::Voice for sms::SmsProvider {
    async fn place_call(
        &self,
        call: &stepwise_domain::transport::VoiceCall,
    ) -> Result<stepwise_domain::transport::PlacedCall, TransportError> {
        let call = sms::Call {
            to: call.to.clone(),
            script: sms::CallScript::Twiml(call.twiml.clone()),
            idempotency_key: call.idempotency_key.clone(),
        };
        let placed = sms::SmsProvider::place_call(self, &call).await?;
        Ok(stepwise_domain::transport::PlacedCall { id: placed.sid, status: placed.status })
    }
}
