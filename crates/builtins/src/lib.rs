//! The built-in plugins, compiled to `wasm32-wasip2` by this crate's build
//! script and embedded as bytes: nothing of them runs at build time of the
//! host, and the host loads them like any component.

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
