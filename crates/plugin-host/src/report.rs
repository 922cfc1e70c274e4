//! What a plugin call did besides returning: host calls (and denials), log
//! lines, queued messages, contact changes, time and memory.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use stepwise_domain::crm::AttributeValue;

/// Everything a call did, for the engine to commit and for the runner to
/// print.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallReport {
    /// Every host call, in order, with its result.
    pub host_calls: Vec<HostCall>,
    /// Log lines, stdout and stderr included.
    pub logs: Vec<LogLine>,
    /// Messages the plugin queued; the engine writes them to the outbox in
    /// the transaction that completes the action.
    pub messages: Vec<QueuedMessage>,
    /// Contact changes the plugin made, in order.
    pub contact_changes: Vec<ContactChange>,
    /// Wall-clock time of the call.
    #[serde(with = "micros")]
    pub wall: Duration,
    /// The largest linear memory the instance reached, in bytes.
    pub peak_memory: usize,
    /// The version of the plugin that was called (its manifest's); `None`
    /// when no plugin was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<String>,
}

impl CallReport {
    /// The host calls that were denied.
    pub fn denials(&self) -> impl Iterator<Item = &HostCall> {
        self.host_calls.iter().filter(|c| matches!(c.result, HostCallResult::Denied { .. }))
    }
}

/// One host call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCall {
    /// `interface.function`, such as `http.fetch`.
    pub function: String,
    /// What was asked, briefly (URL, recipient, ...); never a secret.
    pub detail: String,
    /// How it ended.
    pub result: HostCallResult,
}

/// How a host call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum HostCallResult {
    /// Done.
    Ok,
    /// Refused for lack of a capability.
    Denied {
        /// Why.
        reason: String,
    },
    /// Allowed but failed.
    Error {
        /// Error code, as the plugin saw it.
        code: String,
        /// What went wrong.
        message: String,
    },
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// The `log` interface.
    Plugin,
    /// WASI stdout.
    Stdout,
    /// WASI stderr.
    Stderr,
}

/// A log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Source.
    pub source: LogSource,
    /// Level.
    pub level: LogLevel,
    /// Text.
    pub message: String,
}

/// A message a plugin queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "channel")]
pub enum QueuedMessage {
    /// An email.
    Email {
        /// Message id, stable across retries of the action.
        id: String,
        /// Recipient.
        to: String,
        /// Subject.
        subject: String,
        /// Plain text.
        text: String,
        /// HTML.
        html: Option<String>,
    },
    /// A text message.
    Sms {
        /// Message id, stable across retries of the action.
        id: String,
        /// Recipient.
        to: String,
        /// Text.
        body: String,
    },
}

/// A change a plugin made to the contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactChange {
    /// New owner: `Some(None)` unassigns.
    pub owner: Option<Option<String>>,
    /// New contact type.
    pub contact_type: Option<String>,
    /// New sales cycle.
    pub sales_cycle: Option<String>,
    /// Attributes set.
    pub attributes: BTreeMap<String, AttributeValue>,
}

mod micros {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}
