//! The transports behind the outbox: email over SMTP ([`smtp`]), text
//! messages (and calls) through an HTTP provider ([`sms`]), and
//! [`Channels`], the one [`Transport`] the engine is given, which hands each
//! channel to its own transport. Plugins never see any of it: they queue
//! messages, and the host delivers them with credentials only it holds.

pub mod sms;
pub mod smtp;

pub use stepwise_domain::Secret;
pub use stepwise_domain::transport::{EmailPayload, Handover, SmsPayload, SmtpAccount};

use std::collections::HashMap;
use std::sync::Arc;

use lettre::Address;
use sha2::{Digest, Sha256};
use stepwise_domain::engagement::{OutboxChannel, OutboxMessage};
use stepwise_domain::transport::{Delivery, Transport, TransportError};

/// Email and SMS, each through its own transport when one is configured. A
/// channel without one is not handled: its messages stay queued, visible
/// at `GET /v1/outbox`, until a transport is configured.
#[derive(Debug, Default)]
pub struct Channels {
    email: Option<smtp::SmtpTransport>,
    sms: Option<sms::SmsProvider>,
    /// A transport per rep's own SMTP server and login, made on its first
    /// email and kept (with its connections) for the next.
    reps: std::sync::Mutex<HashMap<String, Arc<smtp::SmtpTransport>>>,
}

/// The most reps' servers kept connected at once; past it the kept ones
/// are let go and made again as their emails come.
const MAX_REP_TRANSPORTS: usize = 1_000;

impl Channels {
    /// The transports given; `None` leaves a channel's messages queued.
    pub fn new(email: Option<smtp::SmtpTransport>, sms: Option<sms::SmsProvider>) -> Self {
        Self { email, sms, reps: std::sync::Mutex::default() }
    }

    /// The transport of a rep's own server: the relay's settings (timeouts,
    /// trusted CA) with the rep's server, login and address, which is the
    /// envelope sender too (their server sends for them alone).
    fn rep_transport(&self, account: &SmtpAccount, from: Address) -> Result<Arc<smtp::SmtpTransport>, TransportError> {
        let relay =
            self.email.as_ref().ok_or_else(|| TransportError::Temporary("no email transport is configured".into()))?;
        let key = format!(
            "{}:{}:{:?}:{}:{}:{from}",
            account.host,
            account.port,
            account.security,
            account.username,
            hex::encode(Sha256::digest(account.password.expose().as_bytes()))
        );
        let mut reps = self.reps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(transport) = reps.get(&key) {
            return Ok(transport.clone());
        }
        if reps.len() >= MAX_REP_TRANSPORTS {
            reps.clear();
        }
        let base = relay.config();
        let config = smtp::SmtpConfig {
            host: account.host.clone(),
            port: account.port,
            security: account.security,
            ca: base.ca.clone(),
            credentials: Some((account.username.clone(), account.password.clone())),
            from: from.clone(),
            from_name: None,
            envelope_from: Some(from),
            timeout: base.timeout,
            connections: 2,
        };
        let transport = Arc::new(smtp::SmtpTransport::new(config));
        reps.insert(key, transport.clone());
        Ok(transport)
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

    async fn deliver_through(
        &self,
        message: &OutboxMessage,
        account: &SmtpAccount,
        handover: &dyn Handover,
    ) -> Result<Delivery, TransportError> {
        let email = EmailPayload::of(message)?;
        let from = email
            .from
            .as_deref()
            .and_then(|a| a.trim().parse::<Address>().ok())
            .ok_or_else(|| TransportError::Invalid("an email through a rep's server names their address".into()))?;
        self.rep_transport(account, from)?.deliver_with(message, handover).await
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
