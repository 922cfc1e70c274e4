//! The plugin platform: the only code of the host that touches wasmtime.
//!
//! Every step type and criteria predicate is a WebAssembly component
//! targeting the WIT contract in `wit/`. [`Runtime`] loads components,
//! checks their world and contract version, and runs each call in a fresh
//! store within limits of time, memory, input, output, log and host-call
//! data. Host calls are allowed only when the manifest declares the
//! capability and the account's [`Grant`] grants it.

pub use stepwise_builtins as builtin;
pub mod capability;
pub mod directory;
pub mod error;
pub mod limits;
pub mod loader;
pub mod net;
pub mod registry;
pub mod report;
pub mod runtime;
pub mod state;
pub use stepwise_domain::plugin as types;
mod wit;

pub use capability::{Grant, GrantError};
pub use directory::{Directory, StaticDirectory, UserRef};
pub use error::{CallError, LoadError, PluginError};
pub use limits::{Limits, MAX_COMPONENT_BYTES};
pub use loader::{Inspection, inspect};
pub use net::NetPolicy;
pub use registry::{Origin, Registered, Registry, RegistryError};
pub use report::CallReport;
pub use runtime::{Call, Plugin, Runtime, RuntimeConfig, StartError};
pub use state::{AccountGrant, EffectGate, Invocation};
pub use wit::SUPPORTED_VERSIONS;
