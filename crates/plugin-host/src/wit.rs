//! The supported versions of the WIT contract, one module each. A version
//! is never edited once released: a new one is added beside it, converting
//! into the same host types, and both are served.

pub(crate) mod v0_1_0;

/// The contract versions this host serves, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[v0_1_0::VERSION];
