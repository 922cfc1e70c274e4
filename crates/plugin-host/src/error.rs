//! Why loading a plugin or calling it failed. Each limit has its own
//! variant so that callers, users and tests can tell them apart.

use std::time::Duration;

use super::report::CallReport;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component.
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// The component exports no Stepwise world.
    #[error(
        "the component exports no Stepwise world (expected `stepwise:plugin/action` or \
         `stepwise:plugin/predicate`); it exports: {exports}"
    )]
    UnknownWorld {
        /// What it exports instead.
        exports: String,
    },
    /// The component targets a contract version this host does not serve.
    #[error(
        "the component was built for WIT `stepwise:plugin@{found}`, which this host does not \
         support (supported: {supported})"
    )]
    UnsupportedWitVersion {
        /// The version found.
        found: String,
        /// The versions served.
        supported: String,
    },
    /// The version stamp and the exports disagree.
    #[error("the component is stamped for WIT {stamped} but exports `stepwise:plugin@{exported}`")]
    VersionMismatch {
        /// The stamp.
        stamped: String,
        /// The exported version.
        exported: String,
    },
    /// The component imports an interface the host does not provide.
    #[error("the component imports `{interface}`, which this host does not provide: {advice}")]
    UnprovidedImport {
        /// The import's name, such as `wasi:http/types@0.2.10`.
        interface: String,
        /// What to use or do instead.
        advice: String,
    },
    /// Compilation failed.
    #[error("the component does not compile: {0}")]
    Compile(String),
    /// The component imports something the host does not provide.
    #[error("the component cannot be linked: {0}")]
    Link(String),
    /// Calling `describe` failed. The message includes the cause, which is
    /// therefore not also its `source` (a report of the whole chain would
    /// say it twice).
    #[error("describing the plugin failed: {0}")]
    Describe(PluginError),
    /// The manifest is not acceptable.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
}

/// Why a call failed. The host goes on serving other calls whatever the
/// variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The call ran past its wall-clock deadline.
    #[error("plugin call timed out after {} ms", limit.as_millis())]
    Timeout {
        /// The deadline.
        limit: Duration,
    },
    /// Linear memory would exceed the limit.
    #[error("plugin exceeded its memory limit of {limit} bytes (it asked for {wanted})")]
    MemoryLimit {
        /// Bytes asked for.
        wanted: usize,
        /// The limit.
        limit: usize,
    },
    /// A table would exceed the limit.
    #[error("plugin exceeded its table limit of {limit} elements")]
    TableLimit {
        /// The limit.
        limit: usize,
    },
    /// The input is too large to send.
    #[error("plugin input of {size} bytes exceeds the limit of {limit} bytes")]
    InputTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin returned too much.
    #[error("{}", output_too_large(*size, *limit))]
    OutputTooLarge {
        /// Its size, when the host measured it; `None` when the output was
        /// refused from its length before it was copied into the host.
        size: Option<usize>,
        /// The limit.
        limit: usize,
    },
    /// The plugin logged too much.
    #[error("plugin wrote more than {limit} bytes to its log")]
    LogLimit {
        /// The limit.
        limit: usize,
    },
    /// The plugin made too many host calls.
    #[error("plugin made more than {limit} host calls")]
    HostCallLimit {
        /// The limit.
        limit: usize,
    },
    /// The plugin moved too much data through host calls.
    #[error("plugin passed more than {limit} bytes through host calls")]
    HostDataLimit {
        /// The limit.
        limit: usize,
    },
    /// The plugin trapped: a panic, an `unreachable`, a bad memory access.
    #[error("plugin trapped: {message}")]
    Trap {
        /// The trap and, for a panic, its message.
        message: String,
    },
    /// The plugin cannot answer this kind of call.
    #[error("{0}")]
    WrongKind(String),
    /// Instantiation failed for a reason other than a limit.
    #[error("plugin could not be instantiated: {0}")]
    Instantiate(String),
}

/// A failed call with what it did before failing.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CallError {
    /// Why it failed.
    pub error: PluginError,
    /// Host calls, logs, time and memory up to the failure (boxed: errors
    /// travel by value through every `Result`).
    pub report: Box<CallReport>,
}

fn output_too_large(size: Option<usize>, limit: usize) -> String {
    match size {
        Some(size) => format!("plugin output of {size} bytes exceeds the limit of {limit} bytes"),
        None => {
            format!("plugin output exceeds the limit of {limit} bytes (refused from its length, before it was copied)")
        }
    }
}
