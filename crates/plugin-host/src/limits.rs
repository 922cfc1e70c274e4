//! Resource limits of plugin calls and the store limiter that enforces the
//! memory, instance and table limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest component the host takes, by upload or on the command line
/// (where a flag may raise it).
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;

/// Limits applied to every plugin call. Each has a default that suits the
/// built-in plugins with a wide margin; operators may raise or lower them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time a call may take, host calls included.
    #[serde(with = "humantime_ms")]
    pub call_timeout: Duration,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Size of a call's input (configuration and records), in bytes.
    pub input_bytes: usize,
    /// Size of a call's output, in bytes.
    pub output_bytes: usize,
    /// Bytes a call may write to its log.
    pub log_bytes: usize,
    /// Bytes a call may pass through host calls, both ways.
    pub host_data_bytes: usize,
    /// Host calls a call may make, whatever they cost (a denied one too):
    /// bounds the work and the report of a plugin that calls in a loop.
    pub host_calls: usize,
    /// Bytes of stdout and of stderr kept per call; the rest is dropped.
    pub stdio_bytes: usize,
    /// Core instances one component may create.
    pub instances: usize,
    /// Tables one component may create.
    pub tables: usize,
    /// Elements one table may grow to.
    pub table_elements: usize,
    /// Calls that may run at once; further calls wait for a slot.
    pub concurrent_calls: u32,
    /// Calls of one account that may run at once, so that one account's
    /// slow plugins never hold every slot and delay the others'.
    pub concurrent_calls_per_account: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            input_bytes: 1 << 20,
            output_bytes: 1 << 20,
            log_bytes: 64 << 10,
            host_data_bytes: 16 << 20,
            host_calls: 1_000,
            stdio_bytes: 16 << 10,
            instances: 16,
            tables: 16,
            table_elements: 100_000,
            concurrent_calls: 64,
            concurrent_calls_per_account: 32,
        }
    }
}

mod humantime_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A limit a call ran into. Raised inside the store as the trap's error so
/// that the runtime can tell the limits apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// Linear memory would exceed the limit.
    #[error("plugin tried to grow its memory to {wanted} bytes, over the limit of {limit} bytes")]
    Memory {
        /// Bytes asked for.
        wanted: usize,
        /// The limit.
        limit: usize,
    },
    /// A table would exceed the limit.
    #[error("plugin tried to grow a table to {wanted} elements, over the limit of {limit}")]
    TableElements {
        /// Elements asked for.
        wanted: usize,
        /// The limit.
        limit: usize,
    },
    /// The log budget is spent.
    #[error("plugin wrote more than {limit} bytes to its log")]
    Log {
        /// The limit.
        limit: usize,
    },
    /// The host-call count is spent.
    #[error("plugin made more than {limit} host calls")]
    HostCalls {
        /// The limit.
        limit: usize,
    },
    /// The host-call data budget is spent.
    #[error("plugin passed more than {limit} bytes through host calls")]
    HostData {
        /// The limit.
        limit: usize,
    },
}

/// The per-store limiter: caps memory and tables, and remembers the peak
/// memory for reports.
#[derive(Debug)]
pub(crate) struct CallLimiter {
    memory_limit: usize,
    table_limit: usize,
    instances: usize,
    tables: usize,
    pub(crate) peak_memory: usize,
}

impl CallLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            memory_limit: limits.memory_bytes,
            table_limit: limits.table_elements,
            instances: limits.instances,
            tables: limits.tables,
            peak_memory: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(wasmtime::Error::new(LimitExceeded::Memory { wanted: desired, limit: self.memory_limit }));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_limit {
            return Err(wasmtime::Error::new(LimitExceeded::TableElements {
                wanted: desired,
                limit: self.table_limit,
            }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        // Components built from Rust have one memory; two leaves room for
        // other toolchains without allowing a pile of them.
        2
    }
}
