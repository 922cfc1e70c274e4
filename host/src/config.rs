//! The settings of `stepwise serve`, read in one place: defaults, then an
//! optional TOML file, then `STEPWISE_*` environment variables. Secrets (the
//! database URL's password, the SMTP password, the SMS auth token) are never
//! printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::delivery::sms::{SmsConfig, SmsProvider};
use crate::delivery::smtp::{CaCertificates, Security, SmtpConfig, SmtpTransport};
use crate::engine::{EngineConfig, WebhookConfig};

/// Everything `stepwise serve` can be told.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// The database: `sqlite://PATH?mode=rwc` or `postgres://…`.
    pub database_url: String,
    /// Where compiled plugins are cached between starts; unset, the user's
    /// cache directory ([`Settings::plugin_cache`]); `off`, nowhere.
    pub cache_dir: Option<PathBuf>,
    /// How the scheduler works.
    pub scheduler: SchedulerSettings,
    /// Requests per second each API key may make.
    pub rate_limit_per_second: u32,
    /// How many requests a key may make at once above that rate.
    pub rate_limit_burst: u32,
    /// How the HTTP server treats slow clients and crowds.
    pub http: HttpSettings,
    /// Let plugins' `http-fetch` reach private, loopback and link-local
    /// addresses (off: only public addresses, whatever the grant says).
    pub allow_private_network: bool,
    /// The URL people reach this host at, for the unsubscribe links of
    /// emails (none: emails carry no link).
    pub public_url: Option<String>,
    /// The first admin's email address, used once: when `serve` or
    /// `admin bootstrap` finds a database with no account.
    pub admin_email: String,
    /// Email delivery (none: emails stay queued).
    pub smtp: SmtpSettings,
    /// Text-message delivery (none: text messages stay queued).
    pub sms: SmsSettings,
}

/// How the HTTP server treats slow clients and crowds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Seconds a client may take to send a request's head.
    pub header_timeout_seconds: u64,
    /// Seconds a client may take to send a request's body.
    pub body_timeout_seconds: u64,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Requests answered at once at most; more wait their turn.
    pub max_in_flight: usize,
    /// Seconds from a request's arrival to its answer at most.
    pub request_timeout_seconds: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        let http = crate::api::server::HttpConfig::default();
        Self {
            header_timeout_seconds: http.header_timeout.as_secs(),
            body_timeout_seconds: http.body_timeout.as_secs(),
            max_connections: http.max_connections,
            max_in_flight: http.max_in_flight,
            request_timeout_seconds: http.request_timeout.as_secs(),
        }
    }
}

pub use stepwise_domain::Secret;

/// How email goes out: an SMTP server. Unset `host`: emails stay queued.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// The server.
    pub host: Option<String>,
    /// Its port (by `security`: 25, 587 or 465).
    pub port: Option<u16>,
    /// `none`, `starttls` (the default) or `tls`.
    pub security: Security,
    /// A PEM file of a CA (or several) to trust for the server's
    /// certificate besides the built-in roots: a private CA's. Read at
    /// start-up.
    pub ca_file: Option<PathBuf>,
    /// The user to authenticate as (with `password`).
    pub username: Option<String>,
    /// The password; never printed.
    pub password: Option<Secret>,
    /// The From address of every email.
    pub from: Option<String>,
    /// The From display name.
    pub from_name: Option<String>,
    /// The envelope sender (`MAIL FROM`, where bounces go); `from` when unset.
    pub envelope_from: Option<String>,
    /// How long each step of the SMTP dialogue may take.
    pub timeout_seconds: u64,
    /// Connections to the server open at once at most, each reused
    /// across messages.
    pub connections: usize,
}

/// How text messages (and calls) go out: a Twilio-style HTTP API. Unset
/// `account_sid`: text messages stay queued.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsSettings {
    /// The API's base URL.
    pub url: String,
    /// The account sid (the basic-auth user).
    pub account_sid: Option<String>,
    /// The auth token (the basic-auth password); never printed.
    pub auth_token: Option<Secret>,
    /// The number messages come from.
    pub from: Option<String>,
    /// How long one request may take.
    pub timeout_seconds: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: None,
            security: Security::default(),
            ca_file: None,
            username: None,
            password: None,
            from: None,
            from_name: None,
            envelope_from: None,
            timeout_seconds: 30,
            connections: 8,
        }
    }
}

impl Default for SmsSettings {
    fn default() -> Self {
        Self {
            url: "https://api.twilio.com/2010-04-01".into(),
            account_sid: None,
            auth_token: None,
            from: None,
            timeout_seconds: 30,
        }
    }
}

/// The scheduler's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Due actions claimed per batch.
    pub batch_size: u32,
    /// Actions processed at once.
    pub concurrency: usize,
    /// Seconds a claim holds an action.
    pub lease_seconds: u64,
    /// Longest sleep, in milliseconds, before looking for work written by
    /// other hosts.
    pub max_idle_ms: u64,
    /// Outbox messages handed to their transports at once.
    pub outbox_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://stepwise.db?mode=rwc".into(),
            cache_dir: None,
            scheduler: SchedulerSettings::default(),
            rate_limit_per_second: crate::api::DEFAULT_RATE.0,
            rate_limit_burst: crate::api::DEFAULT_RATE.1,
            http: HttpSettings::default(),
            allow_private_network: false,
            public_url: None,
            admin_email: crate::engine::DEFAULT_ADMIN_EMAIL.to_owned(),
            smtp: SmtpSettings::default(),
            sms: SmsSettings::default(),
        }
    }
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Self {
            batch_size: engine.batch_size,
            concurrency: engine.concurrency,
            lease_seconds: engine.lease.as_secs(),
            max_idle_ms: u64::try_from(engine.max_idle.as_millis()).unwrap_or(u64::MAX),
            outbox_concurrency: engine.outbox_concurrency,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redact(&self.database_url))
            .field("cache_dir", &self.cache_dir)
            .field("scheduler", &self.scheduler)
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("http", &self.http)
            .field("allow_private_network", &self.allow_private_network)
            .field("public_url", &self.public_url)
            .field("admin_email", &self.admin_email)
            .field("smtp", &self.smtp)
            .field("sms", &self.sms)
            .finish()
    }
}

impl Settings {
    /// Where compiled plugins are cached: `cache_dir`, or when it is unset
    /// `$XDG_CACHE_HOME/stepwise/plugins` (`~/.cache/stepwise/plugins`);
    /// nowhere when it is `off` or no home is known. A cached plugin loads
    /// in milliseconds instead of being compiled again at every start.
    pub fn plugin_cache(&self) -> Option<PathBuf> {
        match &self.cache_dir {
            Some(dir) if dir.as_os_str() == "off" => None,
            Some(dir) => Some(dir.clone()),
            None => default_cache_dir(|name| std::env::var_os(name)),
        }
    }
}

/// The user's cache directory for compiled plugins, by the XDG convention.
fn default_cache_dir(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let base = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(PathBuf::from).filter(|p| p.is_absolute()).map(|home| home.join(".cache")))?;
    Some(base.join("stepwise").join("plugins"))
}

/// A database URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(unparsable url)".to_owned(),
    }
}

/// The environment variables read, with what each sets.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("STEPWISE_CONFIG", "a TOML file of settings, read before the variables below"),
    ("STEPWISE_LISTEN", "address the HTTP API listens on (127.0.0.1:8080)"),
    ("STEPWISE_DATABASE_URL", "sqlite://PATH?mode=rwc (sqlite://stepwise.db?mode=rwc) or postgres://USER@HOST/DB"),
    ("STEPWISE_CACHE_DIR", "where compiled plugins are cached, or `off` ($XDG_CACHE_HOME/stepwise/plugins)"),
    ("STEPWISE_SCHEDULER_BATCH_SIZE", "due actions claimed per batch (1024)"),
    ("STEPWISE_SCHEDULER_CONCURRENCY", "actions processed at once (64)"),
    ("STEPWISE_SCHEDULER_LEASE_SECONDS", "seconds a claim holds an action (60)"),
    ("STEPWISE_SCHEDULER_MAX_IDLE_MS", "longest sleep before looking for other hosts' work (5000)"),
    ("STEPWISE_SCHEDULER_OUTBOX_CONCURRENCY", "outbox messages handed to their transports at once (32)"),
    ("STEPWISE_RATE_LIMIT_PER_SECOND", "requests per second each API key may make (100)"),
    ("STEPWISE_RATE_LIMIT_BURST", "requests a key may make at once above that rate (200)"),
    ("STEPWISE_HTTP_HEADER_TIMEOUT_SECONDS", "seconds a client may take to send a request's head (10)"),
    ("STEPWISE_HTTP_BODY_TIMEOUT_SECONDS", "seconds a client may take to send a request's body (30)"),
    ("STEPWISE_HTTP_MAX_CONNECTIONS", "open connections at most; more are closed at once (1024)"),
    ("STEPWISE_HTTP_MAX_IN_FLIGHT", "requests answered at once; more wait their turn (64)"),
    ("STEPWISE_HTTP_REQUEST_TIMEOUT_SECONDS", "seconds from a request's arrival to its answer (60)"),
    ("STEPWISE_ALLOW_PRIVATE_NETWORK", "let plugins reach private and loopback addresses: true or false (false)"),
    ("STEPWISE_PUBLIC_URL", "the URL people reach this host at, for emails' unsubscribe links (none: no links)"),
    (
        "STEPWISE_ADMIN_EMAIL",
        "the first admin's email, when a database with no account is set up (admin@stepwise.localhost)",
    ),
    ("STEPWISE_SMTP_HOST", "SMTP server that sends email (none: emails stay queued)"),
    ("STEPWISE_SMTP_PORT", "its port (25, 587 or 465 by security)"),
    ("STEPWISE_SMTP_SECURITY", "none, starttls or tls (starttls)"),
    (
        "STEPWISE_SMTP_CA_FILE",
        "PEM file of a private CA to trust for starttls and tls, besides the built-in roots (none)",
    ),
    ("STEPWISE_SMTP_USERNAME", "user to authenticate as (none: no AUTH)"),
    ("STEPWISE_SMTP_PASSWORD", "its password (never printed)"),
    ("STEPWISE_SMTP_FROM", "From address of every email (required with a host)"),
    ("STEPWISE_SMTP_FROM_NAME", "From display name (none)"),
    ("STEPWISE_SMTP_ENVELOPE_FROM", "envelope sender, where bounces go (the From address)"),
    ("STEPWISE_SMTP_TIMEOUT_SECONDS", "limit of each step of the SMTP dialogue (30)"),
    ("STEPWISE_SMTP_CONNECTIONS", "connections to the SMTP server at once at most, each reused (8)"),
    ("STEPWISE_SMS_URL", "base URL of the Twilio-style SMS API (https://api.twilio.com/2010-04-01)"),
    ("STEPWISE_SMS_ACCOUNT_SID", "SMS account sid (none: text messages stay queued)"),
    ("STEPWISE_SMS_AUTH_TOKEN", "SMS auth token (never printed)"),
    ("STEPWISE_SMS_FROM", "number text messages come from (required with an account sid)"),
    ("STEPWISE_SMS_TIMEOUT_SECONDS", "limit of one request to the SMS API (30)"),
];

/// A setting that could not be read, naming where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct SettingsError {
    /// The file or variable.
    pub source_name: String,
    /// What is wrong.
    pub message: String,
}

impl Settings {
    /// Defaults, then `file` (or the file `STEPWISE_CONFIG` names), then the
    /// variables of `env` (the process environment in `main`).
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] naming the file or variable that does not parse,
    /// and what is wrong with it (an unknown key, a bad address, …).
    pub fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<Settings, SettingsError> {
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let file = file.map(Path::to_path_buf).or_else(|| var("STEPWISE_CONFIG").map(PathBuf::from));
        let mut settings = match &file {
            Some(path) => {
                let source_name = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| SettingsError { source_name: source_name.clone(), message: e.to_string() })?;
                toml::from_str(&text)
                    .map_err(|e| SettingsError { source_name, message: e.message().to_owned() + &location(&e) })?
            }
            None => Settings::default(),
        };
        fn parsed<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, SettingsError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .parse()
                .map_err(|e: T::Err| SettingsError { source_name: name.to_owned(), message: format!("`{value}`: {e}") })
        }
        for (name, _) in ENVIRONMENT {
            let Some(value) = var(name) else { continue };
            match *name {
                "STEPWISE_LISTEN" => settings.listen = parsed(name, &value)?,
                "STEPWISE_DATABASE_URL" => settings.database_url = value,
                "STEPWISE_CACHE_DIR" => settings.cache_dir = Some(PathBuf::from(value)),
                "STEPWISE_SCHEDULER_BATCH_SIZE" => settings.scheduler.batch_size = parsed(name, &value)?,
                "STEPWISE_SCHEDULER_CONCURRENCY" => settings.scheduler.concurrency = parsed(name, &value)?,
                "STEPWISE_SCHEDULER_LEASE_SECONDS" => settings.scheduler.lease_seconds = parsed(name, &value)?,
                "STEPWISE_SCHEDULER_MAX_IDLE_MS" => settings.scheduler.max_idle_ms = parsed(name, &value)?,
                "STEPWISE_SCHEDULER_OUTBOX_CONCURRENCY" => {
                    settings.scheduler.outbox_concurrency = parsed(name, &value)?;
                }
                "STEPWISE_RATE_LIMIT_PER_SECOND" => settings.rate_limit_per_second = parsed(name, &value)?,
                "STEPWISE_RATE_LIMIT_BURST" => settings.rate_limit_burst = parsed(name, &value)?,
                "STEPWISE_HTTP_HEADER_TIMEOUT_SECONDS" => settings.http.header_timeout_seconds = parsed(name, &value)?,
                "STEPWISE_HTTP_BODY_TIMEOUT_SECONDS" => settings.http.body_timeout_seconds = parsed(name, &value)?,
                "STEPWISE_HTTP_MAX_CONNECTIONS" => settings.http.max_connections = parsed(name, &value)?,
                "STEPWISE_HTTP_MAX_IN_FLIGHT" => settings.http.max_in_flight = parsed(name, &value)?,
                "STEPWISE_HTTP_REQUEST_TIMEOUT_SECONDS" => {
                    settings.http.request_timeout_seconds = parsed(name, &value)?;
                }
                "STEPWISE_ALLOW_PRIVATE_NETWORK" => settings.allow_private_network = parsed(name, &value)?,
                "STEPWISE_PUBLIC_URL" => settings.public_url = Some(value),
                "STEPWISE_ADMIN_EMAIL" => settings.admin_email = value,
                "STEPWISE_SMTP_HOST" => settings.smtp.host = Some(value),
                "STEPWISE_SMTP_PORT" => settings.smtp.port = Some(parsed(name, &value)?),
                "STEPWISE_SMTP_SECURITY" => settings.smtp.security = parsed(name, &value)?,
                "STEPWISE_SMTP_CA_FILE" => settings.smtp.ca_file = Some(PathBuf::from(value)),
                "STEPWISE_SMTP_USERNAME" => settings.smtp.username = Some(value),
                "STEPWISE_SMTP_PASSWORD" => settings.smtp.password = Some(Secret::new(value)),
                "STEPWISE_SMTP_FROM" => settings.smtp.from = Some(value),
                "STEPWISE_SMTP_FROM_NAME" => settings.smtp.from_name = Some(value),
                "STEPWISE_SMTP_ENVELOPE_FROM" => settings.smtp.envelope_from = Some(value),
                "STEPWISE_SMTP_TIMEOUT_SECONDS" => settings.smtp.timeout_seconds = parsed(name, &value)?,
                "STEPWISE_SMTP_CONNECTIONS" => settings.smtp.connections = parsed(name, &value)?,
                "STEPWISE_SMS_URL" => settings.sms.url = value,
                "STEPWISE_SMS_ACCOUNT_SID" => settings.sms.account_sid = Some(value),
                "STEPWISE_SMS_AUTH_TOKEN" => settings.sms.auth_token = Some(Secret::new(value)),
                "STEPWISE_SMS_FROM" => settings.sms.from = Some(value),
                "STEPWISE_SMS_TIMEOUT_SECONDS" => settings.sms.timeout_seconds = parsed(name, &value)?,
                _ => {}
            }
        }
        if settings.rate_limit_per_second == 0 || settings.rate_limit_burst == 0 {
            return Err(SettingsError {
                source_name: "rate_limit".into(),
                message: "rate_limit_per_second and rate_limit_burst must be at least 1".into(),
            });
        }
        let http = &settings.http;
        if http.header_timeout_seconds == 0
            || http.body_timeout_seconds == 0
            || http.max_connections == 0
            || http.max_in_flight == 0
            || http.request_timeout_seconds == 0
        {
            return Err(SettingsError {
                source_name: "http".into(),
                message: "header_timeout_seconds, body_timeout_seconds, max_connections, max_in_flight and \
                          request_timeout_seconds must be at least 1"
                    .into(),
            });
        }
        if settings.scheduler.batch_size == 0
            || settings.scheduler.concurrency == 0
            || settings.scheduler.outbox_concurrency == 0
        {
            return Err(SettingsError {
                source_name: "scheduler".into(),
                message: "batch_size, concurrency and outbox_concurrency must be at least 1".into(),
            });
        }
        if let Some(url) = &settings.public_url {
            http_url(url).map_err(|message| SettingsError { source_name: "public_url".into(), message })?;
        }
        if !crate::crm::is_email(&settings.admin_email) {
            return Err(SettingsError {
                source_name: "admin_email".into(),
                message: format!("`{}` is not an email address", settings.admin_email),
            });
        }
        settings.smtp()?;
        settings.sms()?;
        Ok(settings)
    }

    /// The HTTP server's limits.
    pub fn http(&self) -> crate::api::server::HttpConfig {
        crate::api::server::HttpConfig {
            rate: (self.rate_limit_per_second, self.rate_limit_burst),
            header_timeout: Duration::from_secs(self.http.header_timeout_seconds),
            body_timeout: Duration::from_secs(self.http.body_timeout_seconds),
            max_connections: self.http.max_connections,
            max_in_flight: self.http.max_in_flight,
            request_timeout: Duration::from_secs(self.http.request_timeout_seconds),
        }
    }

    /// The email transport these settings describe; `None` without a host.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] naming what is missing or wrong (a host without a
    /// From address, a username without a password, a CA file that cannot
    /// be read or holds no certificate, …).
    pub fn smtp(&self) -> Result<Option<SmtpConfig>, SettingsError> {
        let smtp = &self.smtp;
        let error = |message: String| SettingsError { source_name: "smtp".into(), message };
        let Some(host) = smtp.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) else {
            let set = smtp.username.is_some()
                || smtp.password.is_some()
                || smtp.from.is_some()
                || smtp.port.is_some()
                || smtp.ca_file.is_some();
            return if set { Err(error("a host is required to send email".into())) } else { Ok(None) };
        };
        let from = smtp.from.as_deref().ok_or_else(|| error("a From address (from) is required".into()))?;
        let from = from.trim().parse().map_err(|e| error(format!("from `{from}` is not an email address: {e}")))?;
        let credentials = match (&smtp.username, &smtp.password) {
            (Some(username), Some(password)) => Some((username.clone(), password.clone())),
            (None, None) => None,
            _ => return Err(error("username and password go together".into())),
        };
        let envelope_from = match smtp.envelope_from.as_deref() {
            Some(address) => Some(
                address
                    .trim()
                    .parse()
                    .map_err(|e| error(format!("envelope_from `{address}` is not an email address: {e}")))?,
            ),
            None => None,
        };
        if smtp.from_name.as_deref().is_some_and(|n| n.contains(['\r', '\n'])) {
            return Err(error("from_name must be one line".into()));
        }
        if smtp.timeout_seconds == 0 {
            return Err(error("timeout_seconds must be at least 1".into()));
        }
        if smtp.connections == 0 {
            return Err(error("connections must be at least 1".into()));
        }
        let ca = match &smtp.ca_file {
            Some(path) => Some(CaCertificates::read(path).map_err(|e| error(format!("ca_file {e}")))?),
            None => None,
        };
        Ok(Some(SmtpConfig {
            host: host.to_owned(),
            port: smtp.port.unwrap_or_else(|| smtp.security.default_port()),
            security: smtp.security,
            ca,
            credentials,
            from,
            from_name: smtp.from_name.clone(),
            envelope_from,
            timeout: Duration::from_secs(smtp.timeout_seconds),
            connections: smtp.connections,
        }))
    }

    /// The SMS provider these settings describe; `None` without an account
    /// sid.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] naming what is missing or wrong.
    pub fn sms(&self) -> Result<Option<SmsConfig>, SettingsError> {
        let sms = &self.sms;
        let error = |message: String| SettingsError { source_name: "sms".into(), message };
        let Some(sid) = sms.account_sid.as_deref().filter(|s| !s.is_empty()) else {
            let set = sms.auth_token.is_some() || sms.from.is_some();
            return if set { Err(error("an account_sid is required to send text messages".into())) } else { Ok(None) };
        };
        if !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(error(format!("account_sid `{sid}` must be letters and digits")));
        }
        let auth_token = sms.auth_token.clone().ok_or_else(|| error("an auth_token is required".into()))?;
        let from = sms.from.clone().filter(|f| !f.trim().is_empty());
        let from = from.ok_or_else(|| error("a From number (from) is required".into()))?;
        let url = http_url(&sms.url).map_err(|message| error(format!("url: {message}")))?;
        if sms.timeout_seconds == 0 {
            return Err(error("timeout_seconds must be at least 1".into()));
        }
        Ok(Some(SmsConfig {
            url,
            account_sid: sid.to_owned(),
            auth_token,
            from,
            timeout: Duration::from_secs(sms.timeout_seconds),
        }))
    }

    /// The transport of the outbox: each channel through its configured
    /// transport; a channel without one leaves its messages queued.
    ///
    /// # Errors
    ///
    /// As [`Settings::smtp`] and [`Settings::sms`].
    pub fn transport(&self) -> Result<crate::delivery::Channels, SettingsError> {
        let email = self.smtp()?.map(SmtpTransport::new);
        let sms = match self.sms()? {
            Some(config) => {
                let provider = SmsProvider::new(config);
                Some(provider.map_err(|e| SettingsError { source_name: "sms".into(), message: e.to_string() })?)
            }
            None => None,
        };
        Ok(crate::delivery::Channels::new(email, sms))
    }

    /// The engine configuration these settings describe.
    /// Where people open the console: the public URL, or `listening`, the
    /// address `serve` listens on (`localhost` for an unspecified one).
    pub fn console_url(&self, listening: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None if listening.ip().is_unspecified() => format!("http://localhost:{}", listening.port()),
            None => format!("http://{listening}"),
        }
    }

    pub fn engine(&self) -> EngineConfig {
        let lease = Duration::from_secs(self.scheduler.lease_seconds);
        // A webhook delivery is claimed under the scheduler's lease and
        // must be answered well within it, or another host sends it again.
        let defaults = WebhookConfig::default();
        let webhooks = WebhookConfig { lease, timeout: defaults.timeout.min(lease * 3 / 4), ..defaults };
        EngineConfig {
            batch_size: self.scheduler.batch_size,
            concurrency: self.scheduler.concurrency,
            lease,
            webhooks,
            max_idle: Duration::from_millis(self.scheduler.max_idle_ms),
            outbox_concurrency: self.scheduler.outbox_concurrency,
            public_url: self.public_url.clone(),
            ..EngineConfig::default()
        }
    }
}

/// An absolute http(s) URL without credentials.
fn http_url(value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|e| format!("`{value}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{value}` is not an http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{}` must not carry credentials", redact(value)));
    }
    Ok(url)
}

fn location(error: &toml::de::Error) -> String {
    error.span().map_or_else(String::new, |span| format!(" (at byte {})", span.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stepwise.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\n[scheduler]\nbatch_size = 10\n").unwrap();
        let settings = Settings::load(Some(&file), &env(&[("STEPWISE_SCHEDULER_BATCH_SIZE", "20")])).unwrap();
        assert_eq!(settings.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(settings.scheduler.batch_size, 20, "the environment wins over the file");
        assert_eq!(settings.database_url, "sqlite://stepwise.db?mode=rwc");
    }

    #[test]
    fn compiled_plugins_are_cached_in_the_users_cache_unless_told_otherwise() {
        let var = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).into())
        };
        let at = default_cache_dir(var(&[("HOME", "/home/rep")]));
        assert_eq!(at, Some(PathBuf::from("/home/rep/.cache/stepwise/plugins")));
        let at = default_cache_dir(var(&[("HOME", "/home/rep"), ("XDG_CACHE_HOME", "/var/cache/rep")]));
        assert_eq!(at, Some(PathBuf::from("/var/cache/rep/stepwise/plugins")));
        assert_eq!(default_cache_dir(var(&[("HOME", "relative")])), None, "no home, no cache");
        let off = Settings::load(None, &env(&[("STEPWISE_CACHE_DIR", "off")])).unwrap();
        assert_eq!(off.plugin_cache(), None);
        let set = Settings::load(None, &env(&[("STEPWISE_CACHE_DIR", "/srv/cache")])).unwrap();
        assert_eq!(set.plugin_cache(), Some(PathBuf::from("/srv/cache")));
    }

    #[test]
    fn bad_settings_name_where_they_came_from() {
        let error = Settings::load(None, &env(&[("STEPWISE_LISTEN", "nowhere")])).unwrap_err();
        assert!(error.to_string().starts_with("STEPWISE_LISTEN: `nowhere`"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "listn = \"0.0.0.0:9000\"\n").unwrap();
        let error = Settings::load(Some(&file), &[]).unwrap_err();
        assert!(error.to_string().contains("unknown field `listn`"), "{error}");
    }

    #[test]
    fn http_limits_come_from_the_file_and_the_environment_and_none_may_be_zero() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stepwise.toml");
        std::fs::write(&file, "[http]\nrequest_timeout_seconds = 5\nmax_in_flight = 8\n").unwrap();
        let settings =
            Settings::load(Some(&file), &env(&[("STEPWISE_HTTP_REQUEST_TIMEOUT_SECONDS", "7")])).unwrap().http();
        assert_eq!(settings.request_timeout, Duration::from_secs(7), "the environment wins over the file");
        assert_eq!(settings.max_in_flight, 8);
        assert_eq!(Settings::load(None, &[]).unwrap().http().request_timeout, Duration::from_secs(60));
        let error = Settings::load(None, &env(&[("STEPWISE_HTTP_REQUEST_TIMEOUT_SECONDS", "0")])).unwrap_err();
        assert!(error.to_string().contains("request_timeout_seconds must be at least 1"), "{error}");
    }

    #[test]
    fn delivery_settings_come_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stepwise.toml");
        std::fs::write(&file, "[smtp]\nhost = \"smtp.example.com\"\nfrom = \"sales@example.com\"\n").unwrap();
        let env = env(&[
            ("STEPWISE_SMTP_SECURITY", "tls"),
            ("STEPWISE_SMTP_USERNAME", "sales"),
            ("STEPWISE_SMTP_PASSWORD", "hunter2"),
            ("STEPWISE_SMS_ACCOUNT_SID", "AC123"),
            ("STEPWISE_SMS_AUTH_TOKEN", "tok3n"),
            ("STEPWISE_SMS_FROM", "+15550100"),
            ("STEPWISE_PUBLIC_URL", "https://stepwise.example.com"),
        ]);
        let settings = Settings::load(Some(&file), &env).unwrap();
        let smtp = settings.smtp().unwrap().unwrap();
        assert_eq!((smtp.host.as_str(), smtp.port, smtp.security), ("smtp.example.com", 465, Security::Tls));
        assert_eq!(smtp.credentials.as_ref().map(|(u, p)| (u.as_str(), p.expose())), Some(("sales", "hunter2")));
        let sms = settings.sms().unwrap().unwrap();
        assert_eq!(sms.url.as_str(), "https://api.twilio.com/2010-04-01");
        assert_eq!((sms.account_sid.as_str(), sms.from.as_str()), ("AC123", "+15550100"));
        assert_eq!(settings.engine().public_url.as_deref(), Some("https://stepwise.example.com"));
        let nothing = Settings::load(None, &[]).unwrap();
        assert!(nothing.smtp().unwrap().is_none() && nothing.sms().unwrap().is_none(), "nothing configured");
    }

    #[test]
    fn incomplete_delivery_settings_say_what_is_missing() {
        let cases = [
            (vec![("STEPWISE_SMTP_HOST", "smtp.example.com")], "smtp: a From address (from) is required"),
            (vec![("STEPWISE_SMTP_FROM", "sales@example.com")], "smtp: a host is required"),
            (
                vec![("STEPWISE_SMTP_HOST", "h"), ("STEPWISE_SMTP_FROM", "a@b.c"), ("STEPWISE_SMTP_USERNAME", "u")],
                "smtp: username and password go together",
            ),
            (vec![("STEPWISE_SMTP_HOST", "h"), ("STEPWISE_SMTP_FROM", "nobody")], "smtp: from `nobody` is not"),
            (vec![("STEPWISE_SMTP_SECURITY", "ssl")], "STEPWISE_SMTP_SECURITY: `ssl`: `ssl` is not one of"),
            (vec![("STEPWISE_SMS_ACCOUNT_SID", "AC1"), ("STEPWISE_SMS_AUTH_TOKEN", "t")], "sms: a From number"),
            (vec![("STEPWISE_SMS_AUTH_TOKEN", "t")], "sms: an account_sid is required"),
            (
                vec![
                    ("STEPWISE_SMS_ACCOUNT_SID", "AC1"),
                    ("STEPWISE_SMS_AUTH_TOKEN", "t"),
                    ("STEPWISE_SMS_FROM", "1"),
                    ("STEPWISE_SMS_URL", "ftp://x"),
                ],
                "sms: url: `ftp://x` is not an http(s) URL",
            ),
            (vec![("STEPWISE_PUBLIC_URL", "stepwise.example.com")], "public_url: `stepwise.example.com` is not a URL"),
        ];
        for (vars, expected) in cases {
            let error = Settings::load(None, &env(&vars)).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{vars:?}: {error}");
        }
    }

    /// A self-signed CA certificate (P-256), only ever parsed here.
    const CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----
MIIBmDCCAT2gAwIBAgIUcy0dkM3xSqeo+NL+L/Z2Q+XmiYEwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVU3RlcHdpc2UgdW5pdC10ZXN0IENBMCAXDTI2MTIwMjAyMjIx
M1oYDzIxMjYxMTA4MDIyMjEzWjAgMR4wHAYDVQQDDBVTdGVwd2lzZSB1bml0LXRl
c3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT7pgWY5jYTZN6jBuQwbqEJ
gLtlXi+KMlLbZz6Z4HM+fsZA38sweDFXUgpOJtY/SYK9oqeRVVZ8XYXcPs/0Y3q2
o1MwUTAdBgNVHQ4EFgQULCYPOR22QI5+LlKznHUpxah/zGgwHwYDVR0jBBgwFoAU
LCYPOR22QI5+LlKznHUpxah/zGgwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNJADBGAiEApR59frucLecqdk97TXK7ZTI27cyd1DlaS7NHsE9ttKkCIQCovRdQ
t7mJbqyp8J0xmaTUWsFjYxvZAXBRW+p0suSheQ==
-----END CERTIFICATE-----
";

    #[test]
    fn an_smtp_ca_file_is_read_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), format!("a comment before\n{CA_PEM}")).unwrap();
        std::fs::write(path("bundle.pem"), format!("{CA_PEM}{CA_PEM}")).unwrap();
        std::fs::write(path("key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        std::fs::write(path("text.pem"), "not a certificate\n").unwrap();
        std::fs::write(path("garbled.pem"), "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
        std::fs::write(path("unfinished.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        std::fs::write(path("not-x509.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let load = |file: &str| {
            let ca_file = path(file).display().to_string();
            let vars = [
                ("STEPWISE_SMTP_HOST", "smtp.example.com"),
                ("STEPWISE_SMTP_FROM", "sales@example.com"),
                ("STEPWISE_SMTP_CA_FILE", ca_file.as_str()),
            ];
            Settings::load(None, &env(&vars)).and_then(|s| s.smtp()).map(|c| c.unwrap().ca.unwrap())
        };
        assert_eq!(load("ca.pem").unwrap().len(), 1);
        assert_eq!(load("bundle.pem").unwrap().len(), 2, "every certificate of a bundle");
        let named = |file: &str| format!("smtp: ca_file `{}`", path(file).display());
        let cases = [
            ("missing.pem", " cannot be read: "),
            ("key.pem", " holds no certificate"),
            ("text.pem", " holds no certificate"),
            ("garbled.pem", " is not a PEM file of certificates: a block is not base64"),
            (
                "unfinished.pem",
                " is not a PEM file of certificates: a `-----BEGIN CERTIFICATE-----` block has no `-----END",
            ),
            ("not-x509.pem", ": certificate 1 is not an X.509 certificate this host can trust (BadEncoding)"),
        ];
        for (file, what) in cases {
            let error = load(file).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{}{what}", named(file))), "{file}: {error}");
        }
        // From the file too; the path is shown, the certificates are not.
        let file = path("stepwise.toml");
        let toml =
            format!("[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nca_file = {:?}\n", path("ca.pem").display().to_string());
        std::fs::write(&file, toml).unwrap();
        let config = Settings::load(Some(&file), &[]).unwrap().smtp().unwrap().unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("ca.pem") && !shown.contains("MIIB"), "{shown}");
        // A CA file alone is not a configured transport.
        let error = Settings::load(None, &env(&[("STEPWISE_SMTP_CA_FILE", "ca.pem")])).unwrap_err().to_string();
        assert!(error.starts_with("smtp: a host is required"), "{error}");
    }

    #[test]
    fn delivery_secrets_are_never_printed() {
        let env = env(&[("STEPWISE_SMTP_PASSWORD", "hunter2"), ("STEPWISE_SMS_AUTH_TOKEN", "tok3n")]);
        let mut settings = Settings::default();
        settings.smtp.password = Some(Secret::new("hunter2"));
        settings.sms.auth_token = Some(Secret::new("tok3n"));
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("tok3n") && shown.contains("***"), "{shown}");
        // Incomplete, so refused: the error does not show them either.
        let error = Settings::load(None, &env).unwrap_err().to_string();
        assert!(!error.contains("hunter2") && !error.contains("tok3n"), "{error}");
    }

    #[test]
    fn the_database_password_is_never_printed() {
        let settings = Settings { database_url: "postgres://app:hunter2@db/stepwise".into(), ..Settings::default() };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2") && shown.contains("app:***@db"), "{shown}");
    }
}
