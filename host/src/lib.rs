//! Stepwise: sales-engagement sequences whose every step type and criteria
//! predicate is a sandboxed WebAssembly component.
//!
//! The binary's library: [`config`] (one `Settings` for `serve`,
//! `scheduler` and `admin`), [`runner`] (one plugin run against fixtures),
//! [`supervise`] (the tasks of `serve`), and the host's crates re-exported
//! for the tests: [`plugins`] the plugin
//! platform, [`store`] the SQL, [`engine`] every state change, [`api`] the
//! HTTP API, [`delivery`] SMTP and SMS, [`crm`] (contacts, companies,
//! users: what plugins see) and [`engagement`] (sequences, enrollments,
//! actions, events: what the engine keeps) the records.

pub mod config;
pub mod runner;
pub mod scaffold;
pub mod supervise;

pub use stepwise_api as api;
pub use stepwise_delivery as delivery;
pub use stepwise_domain::{crm, engagement, templates};
pub use stepwise_engine as engine;
pub use stepwise_plugin_host as plugins;
pub use stepwise_store as store;
