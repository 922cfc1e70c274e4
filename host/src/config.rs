//! The settings of `stepwise serve`, read in one place: defaults, then an
//! optional TOML file, then `STEPWISE_*` environment variables. Secrets (the
//! database URL's password) are never printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::engine::EngineConfig;

/// Everything `stepwise serve` can be told.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// The database: `sqlite://PATH?mode=rwc` or `postgres://…`.
    pub database_url: String,
    /// Where compiled plugins are cached.
    pub cache_dir: Option<PathBuf>,
    /// How the scheduler works.
    pub scheduler: SchedulerSettings,
    /// Requests per second each API key may make.
    pub rate_limit_per_second: u32,
    /// How many requests a key may make at once above that rate.
    pub rate_limit_burst: u32,
    /// Let plugins' `http-fetch` reach private, loopback and link-local
    /// addresses (off: only public addresses, whatever the grant says).
    pub allow_private_network: bool,
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
            allow_private_network: false,
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
            .field("allow_private_network", &self.allow_private_network)
            .finish()
    }
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
    ("STEPWISE_CACHE_DIR", "where compiled plugins are cached (none)"),
    ("STEPWISE_SCHEDULER_BATCH_SIZE", "due actions claimed per batch (256)"),
    ("STEPWISE_SCHEDULER_CONCURRENCY", "actions processed at once (64)"),
    ("STEPWISE_SCHEDULER_LEASE_SECONDS", "seconds a claim holds an action (60)"),
    ("STEPWISE_SCHEDULER_MAX_IDLE_MS", "longest sleep before looking for other hosts' work (5000)"),
    ("STEPWISE_RATE_LIMIT_PER_SECOND", "requests per second each API key may make (100)"),
    ("STEPWISE_RATE_LIMIT_BURST", "requests a key may make at once above that rate (200)"),
    ("STEPWISE_ALLOW_PRIVATE_NETWORK", "let plugins reach private and loopback addresses: true or false (false)"),
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
                "STEPWISE_RATE_LIMIT_PER_SECOND" => settings.rate_limit_per_second = parsed(name, &value)?,
                "STEPWISE_RATE_LIMIT_BURST" => settings.rate_limit_burst = parsed(name, &value)?,
                "STEPWISE_ALLOW_PRIVATE_NETWORK" => settings.allow_private_network = parsed(name, &value)?,
                _ => {}
            }
        }
        if settings.rate_limit_per_second == 0 || settings.rate_limit_burst == 0 {
            return Err(SettingsError {
                source_name: "rate_limit".into(),
                message: "rate_limit_per_second and rate_limit_burst must be at least 1".into(),
            });
        }
        if settings.scheduler.batch_size == 0 || settings.scheduler.concurrency == 0 {
            return Err(SettingsError {
                source_name: "scheduler".into(),
                message: "batch_size and concurrency must be at least 1".into(),
            });
        }
        Ok(settings)
    }

    /// The engine configuration these settings describe.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            batch_size: self.scheduler.batch_size,
            concurrency: self.scheduler.concurrency,
            lease: Duration::from_secs(self.scheduler.lease_seconds),
            max_idle: Duration::from_millis(self.scheduler.max_idle_ms),
            ..EngineConfig::default()
        }
    }
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
    fn the_database_password_is_never_printed() {
        let settings = Settings { database_url: "postgres://app:hunter2@db/stepwise".into(), ..Settings::default() };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2") && shown.contains("app:***@db"), "{shown}");
    }
}
