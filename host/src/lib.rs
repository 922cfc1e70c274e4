//! Stepwise: sales-engagement sequences whose every step type and criteria
//! predicate is a sandboxed WebAssembly component.
//!
//! Code map: [`plugins`] is the plugin platform (the only module touching
//! wasmtime); [`model`] holds the records plugins see; [`templates`]
//! renders tokens; [`runner`] runs one plugin against fixtures; [`store`]
//! is the only module issuing SQL, persisting [`model`] and [`domain`] records.

pub mod config;
pub mod runner;

pub use stepwise_api as api;
pub use stepwise_delivery as delivery;
pub use stepwise_domain::{crm as model, engagement as domain, templates};
pub use stepwise_engine as engine;
pub use stepwise_plugin_host as plugins;
pub use stepwise_store as store;
