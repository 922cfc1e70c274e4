//! Text messages and calls through a provider's HTTP API, in the form of
//! Twilio's: `POST {url}/Accounts/{sid}/Messages.json` (and `Calls.json`)
//! with a form body, HTTP basic auth `sid:token`, and the message's
//! idempotency key in an [`IDEMPOTENCY_HEADER`], so that a request sent
//! twice (a retry after a timeout, a host that stopped before recording the
//! answer) is acted on once by the provider.
//!
//! A 2xx is a success, with the provider's `sid` as its id; a 429, a 5xx, a
//! timeout or a connection failure is [`TransportError::Temporary`]; any
//! other answer is [`TransportError::Permanent`], with the provider's error
//! text.

use std::time::Duration;

use serde_json::Value;

use super::{Secret, SmsPayload};
use stepwise_domain::engagement::{OutboxChannel, OutboxMessage};
use stepwise_domain::transport::{Delivery, TransportError};

/// The header carrying a request's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// How much of a provider's error answer is kept.
const MAX_ERROR_TEXT: usize = 500;

/// The provider account messages and calls go out through.
#[derive(Debug, Clone)]
pub struct SmsConfig {
    /// The API's base URL, such as `https://api.twilio.com/2010-04-01`.
    pub url: url::Url,
    /// The account sid: the path segment and the basic-auth user.
    pub account_sid: String,
    /// The account's auth token: the basic-auth password.
    pub auth_token: Secret,
    /// The number (or sender id) messages and calls come from.
    pub from: String,
    /// How long one request may take, connecting included.
    pub timeout: Duration,
}

/// What a call plays once answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallScript {
    /// A URL the provider fetches the call's instructions from (`Url`).
    Url(String),
    /// The instructions themselves, as TwiML (`Twiml`).
    Twiml(String),
}

/// A call to place with [`SmsProvider::place_call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The number to call.
    pub to: String,
    /// What the call plays.
    pub script: CallScript,
    /// Stable across retries of the step that places it, so that the
    /// provider places it once.
    pub idempotency_key: String,
}

/// A call the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCall {
    /// The provider's id of the call.
    pub sid: Option<String>,
    /// Its state as the provider reported it (`queued`, `ringing`, …).
    pub status: Option<String>,
}

/// The provider's HTTP client cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the SMS provider's HTTP client cannot be built: {0}")]
pub struct ClientError(String);

/// The provider's client: text messages for the outbox's SMS channel, and
/// calls for steps that place them.
#[derive(Debug, Clone)]
pub struct SmsProvider {
    config: SmsConfig,
    client: reqwest::Client,
}

impl SmsProvider {
    /// A client of the provider `config` names.
    ///
    /// # Errors
    ///
    /// [`ClientError`] when the HTTP client cannot be built (no TLS roots).
    pub fn new(config: SmsConfig) -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // Credentials go with every request: never to another address.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("stepwise/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        Ok(Self { config, client })
    }

    /// The settings it sends with.
    pub fn config(&self) -> &SmsConfig {
        &self.config
    }

    /// Sends one text message. Returns the provider's id of the message.
    ///
    /// # Errors
    ///
    /// A [`TransportError`] saying whether to try again.
    pub async fn send_sms(&self, to: &str, body: &str, idempotency_key: &str) -> Result<Delivery, TransportError> {
        let form = [("To", to), ("From", self.config.from.as_str()), ("Body", body)];
        let answer = self.post("Messages.json", &form, idempotency_key).await?;
        Ok(Delivery { provider_id: text(&answer, "sid") })
    }

    /// Places a call from the configured number, which plays `call.script`
    /// once answered (`POST {url}/Accounts/{sid}/Calls.json` with `To`,
    /// `From` and `Url` or `Twiml`).
    ///
    /// # Errors
    ///
    /// A [`TransportError`] saying whether to try again.
    pub async fn place_call(&self, call: &Call) -> Result<PlacedCall, TransportError> {
        let script = match &call.script {
            CallScript::Url(url) => ("Url", url.as_str()),
            CallScript::Twiml(twiml) => ("Twiml", twiml.as_str()),
        };
        let form = [("To", call.to.as_str()), ("From", self.config.from.as_str()), script];
        let answer = self.post("Calls.json", &form, &call.idempotency_key).await?;
        Ok(PlacedCall { sid: text(&answer, "sid"), status: text(&answer, "status") })
    }

    fn endpoint(&self, resource: &str) -> String {
        let base = self.config.url.as_str().trim_end_matches('/');
        format!("{base}/Accounts/{}/{resource}", self.config.account_sid)
    }

    /// Posts `form` to `resource` and reads a successful answer's JSON
    /// (`Null` when a 2xx carries none).
    async fn post(
        &self,
        resource: &str,
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<Value, TransportError> {
        let response = self
            .client
            .post(self.endpoint(resource))
            .basic_auth(&self.config.account_sid, Some(self.config.auth_token.expose()))
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|e| self.failed(&e))?;
        let status = response.status();
        if status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Ok(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(|v| format!(" (retry after {v})"))
            .unwrap_or_default();
        let location =
            response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.unwrap_or_default();
        let explained =
            format!("the SMS provider answered HTTP {}: {}{retry_after}", status.as_u16(), error_text(&body));
        Err(if status.as_u16() == 429 || status.is_server_error() {
            TransportError::Temporary(explained)
        } else if status.is_redirection() {
            let to = location.unwrap_or_else(|| "elsewhere".into());
            TransportError::Temporary(format!(
                "the SMS provider redirects to {to}; set the provider URL to the final address ({explained})"
            ))
        } else {
            TransportError::Permanent(explained)
        })
    }

    fn failed(&self, error: &reqwest::Error) -> TransportError {
        if error.is_timeout() {
            TransportError::Temporary(format!("the SMS provider did not answer within {:?}", self.config.timeout))
        } else if error.is_connect() {
            TransportError::Temporary(format!("the SMS provider cannot be reached: {}", without_url(error)))
        } else {
            TransportError::Temporary(format!("the request to the SMS provider failed: {}", without_url(error)))
        }
    }
}

/// An error's description without its URL (which names the account sid).
fn without_url(error: &reqwest::Error) -> String {
    let mut cause = std::error::Error::source(error);
    let mut deepest = None;
    while let Some(inner) = cause {
        deepest = Some(inner.to_string());
        cause = inner.source();
    }
    deepest.unwrap_or_else(|| "no detail".into())
}

/// A string field of an answer.
fn text(answer: &Value, field: &str) -> Option<String> {
    answer.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// A provider's error answer in words: `message (code N)` from its JSON, or
/// the start of its text.
fn error_text(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<Value>(body)
        && let Some(message) = json.get("message").and_then(Value::as_str)
    {
        return match json.get("code").filter(|c| !c.is_null()) {
            Some(code) => format!("{message} (code {code})"),
            None => message.to_owned(),
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "no detail".into();
    }
    stepwise_domain::clip(text, MAX_ERROR_TEXT).to_owned()
}

#[async_trait::async_trait]
impl stepwise_domain::transport::Transport for SmsProvider {
    async fn deliver(&self, message: &OutboxMessage) -> Result<Delivery, TransportError> {
        let sms = SmsPayload::of(message)?;
        self.send_sms(&sms.to, &sms.body, &message.idempotency_key).await
    }

    fn handles(&self, channel: OutboxChannel) -> bool {
        channel == OutboxChannel::Sms
    }

    /// The provider deduplicates by the idempotency header.
    fn retry_safe(&self, channel: OutboxChannel) -> bool {
        channel == OutboxChannel::Sms
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn provider_errors_read_as_words() {
        let twilio = br#"{"code": 21211, "message": "The 'To' number is not valid.", "status": 400}"#;
        assert_eq!(error_text(twilio), "The 'To' number is not valid. (code 21211)");
        assert_eq!(error_text(b"  upstream broke \n"), "upstream broke");
        assert_eq!(error_text(b""), "no detail");
        assert_eq!(error_text("é".repeat(400).as_bytes()).len(), 500);
    }
}
