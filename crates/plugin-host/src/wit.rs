//! The supported versions of the WIT contract, one module each. A version
//! is never edited once released: a new one is added beside it, converting
//! into the same host types, and every supported version is served.
//!
//! Each version's module holds its own bindings (`bindgen!`) and converts
//! what it adds; what it shares with 0.1.0 (the calls into its worlds, the
//! conversions of its records, the host interfaces) is written once, in
//! `shared/`, and compiled as a module of each version against that
//! version's types. The runtime sees only [`Versioned`], [`Request`] and
//! [`Response`], which speak the host's types.

pub(crate) mod v0_1_0;
pub(crate) mod v0_2_0;

use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use crate::state::CallState;
use crate::types as host;

/// The contract versions this host serves, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[v0_1_0::VERSION, v0_2_0::VERSION];

/// Adds the host interfaces of every supported version to `linker`. Their
/// names carry their version, so they sit side by side.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1_0::add_to_linker(linker)?;
    v0_2_0::add_to_linker(linker)
}

/// A call into a plugin, in host types.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request<'a> {
    Describe,
    Validate(&'a str),
    Prepare(&'a str),
    Execute(&'a str),
    Evaluate(&'a str),
}

/// A plugin's answer, in host types.
pub(crate) enum Response {
    Manifest(host::Manifest),
    Problems(Vec<host::ConfigProblem>),
    Item(Result<host::EngageItem, String>),
    Outcome(host::Outcome),
    Verdict(Result<bool, String>),
}

/// A component pre-instantiated for the contract version it was built for.
#[derive(Clone)]
pub(crate) enum Versioned {
    /// Built for 0.1.0.
    V0_1_0(v0_1_0::Pre),
    /// Built for 0.2.0.
    V0_2_0(v0_2_0::Pre),
}

impl Versioned {
    /// Finds the exports of `pre`, a component built for `version` (one of
    /// [`SUPPORTED_VERSIONS`]) and exporting the world of `kind`.
    pub(crate) fn new(version: &str, pre: InstancePre<CallState>, kind: host::PluginKind) -> wasmtime::Result<Self> {
        match version {
            v0_1_0::VERSION => Ok(Self::V0_1_0(v0_1_0::Pre::new(pre, kind)?)),
            v0_2_0::VERSION => Ok(Self::V0_2_0(v0_2_0::Pre::new(pre, kind)?)),
            other => wasmtime::bail!("contract version {other} is not served"),
        }
    }

    /// Instantiates the component in `store` and makes `request`. Returns
    /// the answer and its size in bytes as the guest produced it, for the
    /// output limit.
    pub(crate) async fn call(
        &self,
        store: &mut Store<CallState>,
        request: Request<'_>,
    ) -> wasmtime::Result<(Response, usize)> {
        match self {
            Self::V0_1_0(pre) => v0_1_0::call(pre, store, request).await,
            Self::V0_2_0(pre) => v0_2_0::call(pre, store, request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// Every file of every released contract version, with its SHA-256 when
    /// it was released. A released version is never edited: components are
    /// built against it, and the host must go on serving them. A new
    /// version is added beside it instead, and its files listed here.
    const RELEASED: &[(&str, &str, &str)] = &[
        (
            "0.1.0/host.wit",
            include_str!("../../../wit/stepwise-plugin@0.1.0/host.wit"),
            "b21e774a9b39548a6ff493fea4bc2a71f8ba86598660938c24c1f87b41fed3da",
        ),
        (
            "0.1.0/plugin.wit",
            include_str!("../../../wit/stepwise-plugin@0.1.0/plugin.wit"),
            "5f992e3c8d5b9138d46bf33d8893f9179a5bbfcb785dc2c961851c076cf9b6e5",
        ),
        (
            "0.1.0/types.wit",
            include_str!("../../../wit/stepwise-plugin@0.1.0/types.wit"),
            "34d22616e7e6773a086b82dc9c56b28c0113a2ed44c94dd4cbf613d32ee783b9",
        ),
        (
            "0.2.0/host.wit",
            include_str!("../../../wit/stepwise-plugin@0.2.0/host.wit"),
            "0be9fc111ede1222b1927ce379aa3978d564967b819fa8f52adfcb4396934396",
        ),
        (
            "0.2.0/plugin.wit",
            include_str!("../../../wit/stepwise-plugin@0.2.0/plugin.wit"),
            "9ac9d3289eff59d12f24956be3960c2b7eb2f37034bb2039043f4c1577f7ac12",
        ),
        (
            "0.2.0/types.wit",
            include_str!("../../../wit/stepwise-plugin@0.2.0/types.wit"),
            "6b0ac83c36db59e05866860a36c91fc6b5ec9366714d3a5117065b3189212d0d",
        ),
    ];

    #[test]
    fn released_contracts_are_never_edited() {
        for (file, text, released) in RELEASED {
            let digest = hex::encode(Sha256::digest(text.as_bytes()));
            assert_eq!(&digest, released, "wit/stepwise-plugin@{file} changed since its release: add a new version");
        }
    }

    #[test]
    fn every_supported_version_is_pinned() {
        for version in super::SUPPORTED_VERSIONS {
            assert!(RELEASED.iter().any(|(file, ..)| file.starts_with(&format!("{version}/"))), "{version}");
        }
    }
}
