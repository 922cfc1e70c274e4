//! What the engine hands the outside world and how it answers: the payloads
//! of queued messages, the [`Transport`] that delivers them and the
//! [`Voice`] provider that places calls, with their errors. The real
//! transports live in `stepwise-delivery`; [`RecordingTransport`] is what
//! tests and benchmarks read.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::engagement::{OutboxChannel, OutboxMessage};

/// The payload of an email in the outbox: what a step queued with
/// `messaging.send-email`, plus what the host adds before sending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailPayload {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML alternative, when the step gave one.
    #[serde(default)]
    pub html: Option<String>,
    /// The contact's signed unsubscribe link (`{public_url}/u/{token}`).
    /// When present the email carries `List-Unsubscribe` and
    /// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 2369, RFC
    /// 8058). The dispatcher fills it in when the sequence asks for
    /// unsubscribe links (`settings.unsubscribe_link`) and the host knows
    /// its public URL; a payload that already has one keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe_url: Option<String>,
    /// Where replies go: the address of the rep who owns the step, so that
    /// a prospect's answer reaches them though the email comes from the
    /// shared sending address. Set when the step's message is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The name shown with [`EmailPayload::reply_to`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_name: Option<String>,
    /// The address the email comes from, when the account sends from its
    /// reps' own verified addresses: the step owner's. Without it the
    /// email comes from the relay's configured address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The name shown with [`EmailPayload::from`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    /// The rep whose own address the email comes from: when they gave
    /// their own SMTP server, it goes through that server with their login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
}

/// How a connection to an SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain text throughout: only for a relay on a trusted network.
    None,
    /// Plain text, upgraded with `STARTTLS` before anything else is said;
    /// a server that does not offer it is refused. Port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS). Port 465 by default.
    Tls,
}

impl std::str::FromStr for SmtpSecurity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "starttls" => Ok(Self::Starttls),
            "tls" => Ok(Self::Tls),
            other => Err(format!("`{other}` is not one of none, starttls, tls")),
        }
    }
}

impl SmtpSecurity {
    /// Its name, as settings and the store write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Starttls => "starttls",
            Self::Tls => "tls",
        }
    }

    /// The port a server listens on for it by default.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Tls => 465,
        }
    }
}

/// A rep's own SMTP server and login: their emails from their own address
/// go through it. The password is a [`Secret`]: never shown, logged or
/// given to plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpAccount {
    /// The server's host name.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// The login.
    pub username: String,
    /// The password.
    pub password: crate::Secret,
}

/// The payload of a text message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsPayload {
    /// The recipient's number.
    pub to: String,
    /// The text.
    pub body: String,
}

impl EmailPayload {
    /// The email `message` carries.
    ///
    /// # Errors
    ///
    /// [`TransportError::Invalid`] when it is not an email.
    pub fn of(message: &OutboxMessage) -> Result<Self, TransportError> {
        payload(message, OutboxChannel::Email)
    }
}

impl SmsPayload {
    /// The text message `message` carries.
    ///
    /// # Errors
    ///
    /// [`TransportError::Invalid`] when it is not a text message.
    pub fn of(message: &OutboxMessage) -> Result<Self, TransportError> {
        payload(message, OutboxChannel::Sms)
    }
}

fn payload<T: serde::de::DeserializeOwned>(
    message: &OutboxMessage,
    channel: OutboxChannel,
) -> Result<T, TransportError> {
    if message.channel != channel {
        return Err(TransportError::Invalid(format!("a {} message is not a {channel} message", message.channel)));
    }
    T::deserialize(&message.payload)
        .map_err(|e| TransportError::Invalid(format!("the queued {channel} does not read as one: {e}")))
}

/// A transport's successful delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's id for the message, when it gives one.
    pub provider_id: Option<String>,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Nothing was delivered, and trying again later may work (a timeout
    /// before the content was sent, a 4xx SMTP reply, a provider's 5xx).
    /// Retried with a backoff until the attempts run out.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// The recipient's side refused the message for good (a 5xx SMTP reply
    /// to the recipient or the content, a provider's 4xx). The message
    /// fails; for an email this is a bounce, and the enrollment that sent
    /// it ends `bounced` (SPEC §6).
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The message may have been delivered, and nobody can tell (the
    /// connection dropped after the content was sent). Tried again only on
    /// a channel whose transport deduplicates retries; otherwise it fails.
    #[error("delivery uncertain: {0}")]
    Uncertain(String),
    /// The message cannot be sent as queued (its payload does not read).
    /// It fails; this is not a bounce.
    #[error("cannot be sent: {0}")]
    Invalid(String),
}

/// The dispatcher's say before a message's content may leave: it records
/// that the message may have been sent (the handover mark), so that a host
/// stopping after that never sends it again.
#[async_trait::async_trait]
pub trait Handover: Send + Sync {
    /// Asked once, just before the content may leave. An error (the
    /// message's lease was lost, the mark was not written) means it must
    /// not.
    async fn begin(&self) -> Result<(), String>;
}

/// Hands messages to the outside world. Implementations must pass the
/// message's idempotency key on (a Message-ID, a provider's idempotency
/// header), so that a message handed over twice can be recognized.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Delivers one message.
    ///
    /// # Errors
    ///
    /// A [`TransportError`] saying whether to try again.
    async fn deliver(&self, message: &OutboxMessage) -> Result<Delivery, TransportError>;

    /// Delivers one message, asking `handover` just before its content may
    /// leave. By default that is before anything is done; a transport that
    /// talks to its server first (SMTP: connection, sender, recipient) asks
    /// later, so that a message whose dialogue failed or was cut off before
    /// its content is known not to have left.
    ///
    /// # Errors
    ///
    /// As [`Transport::deliver`]; a refused handover is a
    /// [`TransportError::Temporary`] and nothing left.
    async fn deliver_with(&self, message: &OutboxMessage, handover: &dyn Handover) -> Result<Delivery, TransportError> {
        handover.begin().await.map_err(|why| TransportError::Temporary(format!("not handed over: {why}")))?;
        self.deliver(message).await
    }

    /// Delivers one email through a rep's own SMTP server (`account`)
    /// rather than the relay, asking `handover` as
    /// [`Transport::deliver_with`] does. By default there is none.
    ///
    /// # Errors
    ///
    /// As [`Transport::deliver_with`].
    async fn deliver_through(
        &self,
        message: &OutboxMessage,
        account: &SmtpAccount,
        handover: &dyn Handover,
    ) -> Result<Delivery, TransportError> {
        let _ = (message, handover);
        Err(TransportError::Temporary(format!("this host cannot send through {}", account.host)))
    }

    /// Whether messages can go out at all. An unconfigured transport leaves
    /// them queued in the outbox, visible, never dropped.
    fn configured(&self) -> bool {
        true
    }

    /// Whether messages of `channel` go out through this transport; the
    /// dispatcher leaves the others queued and unleased.
    fn handles(&self, channel: OutboxChannel) -> bool {
        let _ = channel;
        self.configured()
    }

    /// Whether handing a message of `channel` over a second time delivers
    /// it once (the provider deduplicates by the idempotency key). When
    /// not, a message whose handover was interrupted, or whose delivery is
    /// uncertain, is never handed over again.
    fn retry_safe(&self, channel: OutboxChannel) -> bool {
        let _ = channel;
        false
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
/// idempotency key once: what tests read.
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

    fn retry_safe(&self, _: OutboxChannel) -> bool {
        true
    }
}

/// A call to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceCall {
    /// The number to call, E.164.
    pub to: String,
    /// What the call says once answered, as TwiML.
    pub twiml: String,
    /// Stable across attempts of the action, so the provider places it once.
    pub idempotency_key: String,
}

/// A call the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlacedCall {
    /// The provider's id of the call.
    pub id: Option<String>,
    /// Its state as the provider reported it (`queued`, `ringing`, …).
    pub status: Option<String>,
}

/// Places calls through a voice provider.
#[async_trait::async_trait]
pub trait Voice: Send + Sync + std::fmt::Debug {
    /// Places `call`.
    ///
    /// # Errors
    ///
    /// A [`TransportError`] saying whether to try again.
    async fn place_call(&self, call: &VoiceCall) -> Result<PlacedCall, TransportError>;
}
