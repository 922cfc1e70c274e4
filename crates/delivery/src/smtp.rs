//! Email over SMTP (lettre on tokio with rustls): one message per SMTP
//! transaction, each step of the dialogue classified, so the dispatcher
//! knows whether a failed message may be tried again.
//!
//! - A 4xx reply, a connection, TLS or authentication failure, a refused
//!   sender, or a timeout before the message's content is complete: nothing
//!   was accepted, [`TransportError::Temporary`]. This includes a server
//!   whose certificate is not trusted and a server that does not offer the
//!   `STARTTLS` the settings require: problems of configuration, on this
//!   host's side or the server's, that say nothing about the recipient, so
//!   the message is neither a bounce nor given up at once; it is tried again
//!   after a backoff (a fix in time lets it go out) and, when the attempts
//!   run out, fails with the TLS error kept in its `last_error`.
//! - A 5xx reply to the recipient or to the content:
//!   [`TransportError::Permanent`], the server's reply kept (a bounce).
//! - The content was written but no reply came (the connection dropped, a
//!   timeout): the server may have accepted it, [`TransportError::Uncertain`];
//!   SMTP has no way to deduplicate, so the message is never sent again.
//!
//! The Message-ID is derived from the message's idempotency key, so every
//! attempt of one message carries the same id. Up to `connections`
//! connections send at once; each is kept open between messages and
//! checked with `NOOP` before it is used again.
//!
//! Over `starttls` and `tls` the server's certificate must chain to a root
//! of webpki-roots (Mozilla's) or to one of the extra roots of
//! [`CaCertificates`] (a private CA, the `ca_file` setting), and name the
//! configured host.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::{EmailPayload, Secret};
use stepwise_domain::engagement::OutboxMessage;
use stepwise_domain::transport::{Delivery, Handover, TransportError};

/// How the connection to the SMTP server is secured: the domain's, shared
/// with the reps' own servers.
pub use stepwise_domain::transport::SmtpSecurity as Security;

/// Root certificates trusted for the SMTP server besides the built-in ones
/// (webpki-roots): a private CA's, read from a PEM file at start-up.
#[derive(Clone)]
pub struct CaCertificates {
    /// Where they were read from.
    source: String,
    certificates: Vec<Certificate>,
}

impl CaCertificates {
    /// Reads the PEM file at `path`: one certificate or several (a bundle),
    /// other sections ignored.
    ///
    /// # Errors
    ///
    /// [`CaError`], naming the file: it cannot be read, it is not PEM, it
    /// holds no certificate, or a certificate does not parse.
    pub fn read(path: &Path) -> Result<Self, CaError> {
        let source = format!("`{}`", path.display());
        let pem =
            std::fs::read(path).map_err(|e| CaError::Unreadable { source_name: source.clone(), why: e.to_string() })?;
        Self::from_pem(source, &pem)
    }

    /// The certificates of `pem`; `source` names where it came from in
    /// errors and in `Debug`.
    ///
    /// # Errors
    ///
    /// As [`CaCertificates::read`], except reading.
    pub fn from_pem(source: impl Into<String>, pem: &[u8]) -> Result<Self, CaError> {
        let source = source.into();
        let mut certificates = Vec::new();
        // The check rustls makes of each root when a connection is set up,
        // made here once so that a bad file stops the start.
        let mut roots = rustls::RootCertStore::empty();
        for (index, der) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let n = index + 1;
            let der = der.map_err(|e| CaError::NotPem { source_name: source.clone(), why: pem_error(&e) })?;
            roots.add(der.clone()).map_err(|e| {
                let why = match e {
                    rustls::Error::InvalidCertificate(why) => why.to_string(),
                    other => other.to_string(),
                };
                CaError::Untrusted { source_name: source.clone(), n, why }
            })?;
            let certificate = Certificate::from_der(der.to_vec()).map_err(|e| CaError::Unparsable {
                source_name: source.clone(),
                n,
                why: e.to_string(),
            })?;
            certificates.push(certificate);
        }
        if certificates.is_empty() {
            return Err(CaError::Empty { source_name: source });
        }
        Ok(Self { source, certificates })
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    /// `false`: a value holds at least one certificate.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }
}

/// A PEM error without the bytes the library shows as numbers.
/// A CA file the SMTP transport cannot trust; each names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    /// It cannot be read.
    #[error("{source_name} cannot be read: {why}")]
    Unreadable {
        /// The file.
        source_name: String,
        /// The system's reason.
        why: String,
    },
    /// It is not PEM.
    #[error("{source_name} is not a PEM file of certificates: {why}")]
    NotPem {
        /// The file.
        source_name: String,
        /// What is wrong with the PEM.
        why: String,
    },
    /// A certificate rustls will not take as a root.
    #[error("{source_name}: certificate {n} is not an X.509 certificate this host can trust ({why})")]
    Untrusted {
        /// The file.
        source_name: String,
        /// Which certificate, from 1.
        n: usize,
        /// Why.
        why: String,
    },
    /// A certificate lettre cannot read.
    #[error("{source_name}: certificate {n} does not parse: {why}")]
    Unparsable {
        /// The file.
        source_name: String,
        /// Which certificate, from 1.
        n: usize,
        /// Why.
        why: String,
    },
    /// No certificate in it.
    #[error("{source_name} holds no certificate (no `-----BEGIN CERTIFICATE-----` block)")]
    Empty {
        /// The file.
        source_name: String,
    },
}

fn pem_error(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { end_marker } => {
            let label = String::from_utf8_lossy(end_marker);
            format!("a `-----BEGIN {label}-----` block has no `-----END {label}-----` line")
        }
        Error::IllegalSectionStart { line } => {
            format!("`{}` does not start a block", String::from_utf8_lossy(line).trim_end())
        }
        Error::Base64Decode(e) => format!("a block is not base64 ({e})"),
        other => other.to_string(),
    }
}

impl std::fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaCertificates")
            .field("source", &self.source)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

/// Where and as whom email is sent.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The server's name (also the name its certificate must carry).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is secured.
    pub security: Security,
    /// Roots trusted besides the built-in ones, for `starttls` and `tls`.
    pub ca: Option<CaCertificates>,
    /// `(username, password)` when the server wants `AUTH`.
    pub credentials: Option<(String, Secret)>,
    /// The From address of every email.
    pub from: Address,
    /// The From display name.
    pub from_name: Option<String>,
    /// The envelope sender (`MAIL FROM`, where bounces go); `from` when
    /// `None`. Emails that come from a rep's own address keep it too, so
    /// bounces reach the host's mailbox and the relay's domain vouches.
    pub envelope_from: Option<Address>,
    /// How long each step of the dialogue (connecting, a command, the
    /// content) may take.
    pub timeout: Duration,
    /// Connections open at once at most, each kept for the next message.
    pub connections: usize,
}

/// How long an idle connection is kept for the next message.
const IDLE_REUSE: Duration = Duration::from_secs(30);

/// The SMTP transport of the email channel: a pool of at most
/// `connections` connections, each sending one message at a time and kept
/// open for the next.
pub struct SmtpTransport {
    config: SmtpConfig,
    hello: ClientId,
    /// The connections open and not in use, with when each was last used.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// A permit per connection that may be open.
    slots: tokio::sync::Semaphore,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Where a dialogue failed, which decides what its failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connect,
    Sender,
    Recipient,
    Data,
    /// The content and the final dot are being written, or their reply read.
    Content,
}

impl Step {
    /// The step as an activity, for timeouts.
    fn doing(self) -> &'static str {
        match self {
            Step::Connect => "connecting to the server",
            Step::Sender => "MAIL FROM",
            Step::Recipient => "RCPT TO",
            Step::Data => "DATA",
            Step::Content => "sending the content",
        }
    }

    /// The step's refusal, for negative replies.
    fn what(self) -> &'static str {
        match self {
            Step::Connect => "connecting to the server",
            Step::Sender => "the server refused the sender (MAIL FROM)",
            Step::Recipient => "the server refused the recipient (RCPT TO)",
            Step::Data => "the server refused to take the content (DATA)",
            Step::Content => "the server refused the message",
        }
    }
}

impl SmtpTransport {
    /// A transport sending as `config` says. Nothing is connected until the
    /// first message.
    pub fn new(config: SmtpConfig) -> Self {
        let slots = tokio::sync::Semaphore::new(config.connections.max(1));
        Self { config, hello: ClientId::default(), idle: Mutex::new(Vec::new()), slots }
    }

    /// The settings it sends with.
    pub fn config(&self) -> &SmtpConfig {
        &self.config
    }

    /// The Message-ID of the message with this idempotency key: the same
    /// for every attempt, under the From address's domain.
    pub fn message_id(&self, idempotency_key: &str) -> String {
        message_id(idempotency_key, self.config.from.domain())
    }

    /// Builds the email a queued message describes.
    ///
    /// # Errors
    ///
    /// [`TransportError::Invalid`] for a payload that is not an email or
    /// whose unsubscribe link is not an http(s) URL;
    /// [`TransportError::Permanent`] for a recipient that is not an address.
    pub fn build(&self, message: &OutboxMessage) -> Result<Message, TransportError> {
        let email = EmailPayload::of(message)?;
        let to: Address =
            email.to.trim().parse().map_err(|e| {
                TransportError::Permanent(format!("recipient `{}` is not an email address: {e}", email.to))
            })?;
        // From the rep's own address when the account sends so (the engine
        // names it only once it is verified), else the relay's.
        let from = match email.from.as_deref().and_then(|a| a.trim().parse::<Address>().ok()) {
            Some(address) => Mailbox::new(email.from_name.clone().filter(|n| !n.trim().is_empty()), address),
            None => Mailbox::new(self.config.from_name.clone(), self.config.from.clone()),
        };
        let sender = self.config.envelope_from.clone().unwrap_or_else(|| self.config.from.clone());
        let envelope = Envelope::new(Some(sender), vec![to.clone()])
            .map_err(|e| TransportError::Invalid(format!("the envelope cannot be built: {e}")))?;
        let mut builder = Message::builder()
            .from(from)
            .to(Mailbox::new(None, to))
            .envelope(envelope)
            .subject(email.subject)
            .date(SystemTime::now())
            .message_id(Some(self.message_id(&message.idempotency_key)));
        // A reply goes to the rep; a Reply-To that is no address is left
        // out rather than holding the email.
        if let Some(reply_to) = email.reply_to.as_deref().and_then(|a| a.trim().parse::<Address>().ok()) {
            let name = email.reply_to_name.clone().filter(|n| !n.trim().is_empty());
            builder = builder.reply_to(Mailbox::new(name, reply_to));
        }
        if let Some(url) = email.unsubscribe_url {
            let parsed =
                url::Url::parse(&url).ok().filter(|u| matches!(u.scheme(), "https" | "http")).ok_or_else(|| {
                    TransportError::Invalid(format!("the unsubscribe link `{url}` is not an http(s) URL"))
                })?;
            // RFC 2369 and RFC 8058: one-click unsubscribe by POST to the link.
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{}>", parsed.as_str()),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        let built = match email.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(email.text, html)),
            None => builder.singlepart(SinglePart::plain(email.text)),
        };
        built.map_err(|e| TransportError::Invalid(format!("the email cannot be built: {e}")))
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, TransportError> {
        let config = &self.config;
        let tls = || {
            let mut builder = TlsParameters::builder(config.host.clone());
            for certificate in config.ca.iter().flat_map(|ca| &ca.certificates) {
                builder = builder.add_root_certificate(certificate.clone());
            }
            builder
                .build()
                .map_err(|e| TransportError::Temporary(format!("TLS for {} cannot be set up: {e}", config.host)))
        };
        let wrapper = match config.security {
            Security::Tls => Some(tls()?),
            Security::None | Security::Starttls => None,
        };
        let connecting = AsyncSmtpConnection::connect_tokio1(
            (config.host.as_str(), config.port),
            Some(config.timeout),
            &self.hello,
            wrapper,
            None,
        );
        let mut connection = self.timed(Step::Connect, connecting).await?;
        if config.security == Security::Starttls {
            if !connection.can_starttls() {
                self.discard(connection).await;
                return Err(TransportError::Temporary(format!(
                    "{}:{} does not offer STARTTLS, which the settings require",
                    config.host, config.port
                )));
            }
            let upgrading = connection.starttls(tls()?, &self.hello);
            if let Err(error) = self.timed(Step::Connect, upgrading).await {
                // Dropped without a `QUIT`: a refused `STARTTLS` was already
                // aborted, and a failed or cut-off handshake took the socket
                // with it (lettre leaves no stream to write to).
                drop(connection);
                return Err(error);
            }
        }
        if let Some((username, password)) = &config.credentials {
            let credentials = Credentials::new(username.clone(), password.expose().to_owned());
            let authenticating = connection.auth(DEFAULT_MECHANISMS, &credentials);
            if let Err(error) = self.timed(Step::Connect, authenticating).await {
                self.discard(connection).await;
                return Err(TransportError::Temporary(format!("authentication as {username} failed: {error}")));
            }
        }
        Ok(connection)
    }

    /// The most recently used idle connection that still answers, or a
    /// new one. Stale ones (idle too long, broken, silent) are closed on
    /// the way.
    async fn connection(&self) -> Result<AsyncSmtpConnection, TransportError> {
        loop {
            let idle = self.idle.lock().await.pop();
            let Some((mut connection, used)) = idle else { break };
            if used.elapsed() < IDLE_REUSE
                && !connection.has_broken()
                && tokio::time::timeout(self.config.timeout, connection.test_connected()).await.unwrap_or(false)
            {
                return Ok(connection);
            }
            self.discard(connection).await;
        }
        self.connect().await
    }

    /// Says `QUIT` and closes, giving up on a server that does not answer
    /// in time (the socket closes when the connection is dropped).
    async fn discard(&self, mut connection: AsyncSmtpConnection) {
        let _ = tokio::time::timeout(self.config.timeout, connection.abort()).await;
    }

    /// Runs one step of the dialogue under the timeout, classifying its
    /// failure.
    async fn timed<T>(
        &self,
        step: Step,
        future: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, TransportError> {
        match tokio::time::timeout(self.config.timeout, future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(classify(step, &error)),
            Err(_) => {
                let error = format!("{} timed out after {:?}", step.doing(), self.config.timeout);
                Err(if step == Step::Content {
                    TransportError::Uncertain(error)
                } else {
                    TransportError::Temporary(error)
                })
            }
        }
    }

    /// One SMTP transaction on `connection`; `handover` is asked once the
    /// server has taken the sender, the recipients and `DATA`, just before
    /// the content is written.
    async fn transaction(
        &self,
        connection: &mut AsyncSmtpConnection,
        email: &Message,
        handover: Option<&dyn Handover>,
    ) -> Result<(), Refusal> {
        let envelope = email.envelope();
        let content = email.formatted();
        let mut parameters = Vec::new();
        let international = envelope.to().iter().chain(envelope.from()).any(|a: &Address| {
            let address: &str = a.as_ref();
            !address.is_ascii()
        });
        if international {
            if !connection.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(Refusal::Failed(TransportError::Permanent(
                    "the recipient's address is internationalized and the server does not accept SMTPUTF8".into(),
                )));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !content.is_ascii() && connection.server_info().supports_feature(Extension::EightBitMime) {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        self.timed(Step::Sender, connection.command(Mail::new(envelope.from().cloned(), parameters))).await?;
        for to in envelope.to() {
            self.timed(Step::Recipient, connection.command(Rcpt::new(to.clone(), vec![]))).await?;
        }
        self.timed(Step::Data, connection.command(Data)).await?;
        if let Some(handover) = handover
            && let Err(why) = handover.begin().await
        {
            // The content never leaves: the connection is dropped in the
            // middle of DATA, so the server discards the transaction.
            return Err(Refusal::NotHandedOver(TransportError::Temporary(format!("not handed over: {why}"))));
        }
        // The content and its final dot in one write: written apart, the
        // dot waits for the server to acknowledge the content, which a
        // server holds back (delayed ACK) until it has something to say,
        // 40 ms a message on every connection.
        let accepted = match std::str::from_utf8(&content) {
            Ok(text) => self.timed(Step::Content, connection.command(Content(text))).await?,
            Err(_) => self.timed(Step::Content, connection.message(&content)).await?,
        };
        tracing::debug!(reply = %accepted.message().collect::<Vec<_>>().join(" "), "the SMTP server accepted an email");
        Ok(())
    }
}

/// A message's content as the DATA command carries it: lines that begin
/// with a dot get another (RFC 5321 §4.5.2), and the final `.` line ends it.
struct Content<'a>(&'a str);

impl std::fmt::Display for Content<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, line) in self.0.split("\r\n").enumerate() {
            if i > 0 {
                f.write_str("\r\n")?;
            }
            if line.starts_with('.') {
                f.write_str(".")?;
            }
            f.write_str(line)?;
        }
        f.write_str("\r\n.\r\n")
    }
}

/// What a failed step means for the message.
fn classify(step: Step, error: &lettre::transport::smtp::Error) -> TransportError {
    if let Some(refused) = refused_certificate(error) {
        return TransportError::Temporary(refused);
    }
    let what = step.what();
    let reply = reply(error);
    if error.is_permanent() && matches!(step, Step::Recipient | Step::Data | Step::Content) {
        return TransportError::Permanent(format!("{what}: {reply}"));
    }
    if error.is_transient() || error.is_permanent() {
        // A 4xx anywhere, or a 5xx to the connection or the sender, which
        // says nothing about the recipient: tried again later.
        return TransportError::Temporary(format!("{what}: {reply}"));
    }
    if step == Step::Content {
        // Written but not answered: the server may have taken it.
        return TransportError::Uncertain(format!("no reply after the content was sent: {reply}"));
    }
    let what = if step == Step::Connect { what } else { "the connection failed" };
    TransportError::Temporary(format!("{what}: {reply}"))
}

/// The server's certificate, refused by this host's TLS (an unknown issuer,
/// another name, expired, …), said plainly, with what to set when the
/// server's CA is a private one.
fn refused_certificate(error: &lettre::transport::smtp::Error) -> Option<String> {
    // lettre keeps the handshake's `io::Error` (under a connection error or
    // two), which holds rustls's error; the `io::Error`'s own `source` skips
    // it, so it is opened by hand.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    let refusal = loop {
        let current = cause?;
        let inner = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|e| e as &(dyn std::error::Error + 'static)),
            None => Some(current),
        };
        if let Some(rustls::Error::InvalidCertificate(refusal)) = inner.and_then(|e| e.downcast_ref()) {
            break refusal;
        }
        cause = current.source();
    };
    let hint = match refusal {
        rustls::CertificateError::UnknownIssuer => {
            "; a server whose certificate a private CA issued needs that CA in ca_file (STEPWISE_SMTP_CA_FILE)"
        }
        rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. } => {
            "; the host setting must be a name the certificate carries"
        }
        _ => "",
    };
    Some(format!("the server's TLS certificate is not trusted ({refusal}){hint}"))
}

/// An error as `550 the server's text`, or its description when it is not a
/// reply.
fn reply(error: &lettre::transport::smtp::Error) -> String {
    let text = std::error::Error::source(error).map(ToString::to_string);
    match (error.status(), text) {
        (Some(code), Some(text)) => format!("{code} {text}"),
        (Some(code), None) => code.to_string(),
        (None, _) => error.to_string(),
    }
}

/// `<key@domain>`: the key itself when it is a valid dot-atom (the engine's
/// keys are), else its SHA-256, so that any key gives a well-formed id.
fn message_id(key: &str, domain: &str) -> String {
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom =
        !key.is_empty() && key.len() <= 200 && key.split('.').all(|part| !part.is_empty() && part.chars().all(atext));
    let left = if dot_atom { key.to_owned() } else { hex::encode(Sha256::digest(key.as_bytes())) };
    format!("<{left}@{domain}>")
}

#[async_trait::async_trait]
impl stepwise_domain::transport::Transport for SmtpTransport {
    async fn deliver(&self, message: &OutboxMessage) -> Result<Delivery, TransportError> {
        self.send(message, None).await
    }

    async fn deliver_with(&self, message: &OutboxMessage, handover: &dyn Handover) -> Result<Delivery, TransportError> {
        self.send(message, Some(handover)).await
    }

    fn handles(&self, channel: stepwise_domain::engagement::OutboxChannel) -> bool {
        channel == stepwise_domain::engagement::OutboxChannel::Email
    }
}

impl SmtpTransport {
    /// Sends one message over a pooled connection.
    async fn send(&self, message: &OutboxMessage, handover: Option<&dyn Handover>) -> Result<Delivery, TransportError> {
        let email = self.build(message)?;
        // Closed only when the transport is dropped.
        let _slot =
            self.slots.acquire().await.map_err(|_| TransportError::Temporary("the transport is closed".into()))?;
        let mut connection = self.connection().await?;
        match self.transaction(&mut connection, &email, handover).await {
            Ok(()) => {
                self.idle.lock().await.push((connection, Instant::now()));
                Ok(Delivery { provider_id: Some(self.message_id(&message.idempotency_key)) })
            }
            Err(Refusal::NotHandedOver(error)) => {
                // In the middle of DATA: anything written now would be
                // content. Closed without the final dot, the server
                // discards the transaction.
                drop(connection);
                Err(error)
            }
            Err(Refusal::Failed(error)) => {
                self.discard(connection).await;
                Err(error)
            }
        }
    }
}

/// How a transaction ended without the message.
enum Refusal {
    /// A step failed.
    Failed(TransportError),
    /// The dispatcher refused the handover after `DATA`.
    NotHandedOver(TransportError),
}

impl From<TransportError> for Refusal {
    fn from(error: TransportError) -> Self {
        Refusal::Failed(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_dot_stuffed_and_ends_with_the_final_dot() {
        let text = ".first\r\nmiddle.dot\r\n..two\r\nbare\n.no\r\n.";
        assert_eq!(Content(text).to_string(), "..first\r\nmiddle.dot\r\n...two\r\nbare\n.no\r\n..\r\n.\r\n");
    }

    #[test]
    fn message_ids_are_stable_and_well_formed() {
        assert_eq!(message_id("msg_act_1_1", "example.com"), "<msg_act_1_1@example.com>");
        let odd = message_id("a key with <spaces>", "example.com");
        assert_eq!(odd, message_id("a key with <spaces>", "example.com"));
        assert!(odd.starts_with('<') && odd.ends_with("@example.com>") && !odd.contains(' '), "{odd}");
        assert_ne!(message_id("a..b", "example.com"), "<a..b@example.com>");
    }

    #[test]
    fn security_modes_parse_with_their_ports() {
        assert_eq!("starttls".parse::<Security>().unwrap().default_port(), 587);
        assert_eq!("tls".parse::<Security>().unwrap().default_port(), 465);
        assert_eq!("none".parse::<Security>().unwrap().default_port(), 25);
        assert!("ssl".parse::<Security>().unwrap_err().contains("none, starttls, tls"));
    }
}
