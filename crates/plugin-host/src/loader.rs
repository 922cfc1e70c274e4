//! Reading a component before compiling it (which world, which contract
//! version) and the on-disk cache of compiled artifacts.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::LoadError;
use super::types::PluginKind;
use super::wit::SUPPORTED_VERSIONS;

/// The custom section in which the SDK stamps the contract version.
pub(crate) const VERSION_SECTION: &str = "stepwise:wit-version";

/// What a component is, read without compiling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Step or predicate, from the exported interface.
    pub kind: PluginKind,
    /// The contract version, one of [`SUPPORTED_VERSIONS`].
    pub wit_version: &'static str,
    /// The version stamp, if the component carries one.
    pub stamp: Option<String>,
    /// Size in bytes.
    pub size: usize,
    /// SHA-256 of the bytes, hex.
    pub digest: String,
}

/// Reads the exports and the version stamp of a component.
///
/// # Errors
///
/// [`LoadError::NotAComponent`] for anything but a valid component,
/// [`LoadError::UnknownWorld`] when it exports no Stepwise world,
/// [`LoadError::UnsupportedWitVersion`] and [`LoadError::VersionMismatch`]
/// for a contract version this host does not serve.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, LoadError> {
    if !wasmparser::Parser::is_component(bytes) {
        let what = if wasmparser::Parser::is_core_wasm(bytes) {
            "it is a core WebAssembly module; build for wasm32-wasip2 to get a component"
        } else {
            "the bytes do not start with the WebAssembly component header"
        };
        return Err(LoadError::NotAComponent(what.to_owned()));
    }
    let mut stamp = None;
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::NotAComponent(e.to_string()))?;
        match payload {
            wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. } => {
                depth += 1;
            }
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::CustomSection(section) if section.name() == VERSION_SECTION => {
                stamp = Some(String::from_utf8_lossy(section.data()).trim().to_owned());
            }
            wasmparser::Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    let import = import.map_err(|e| LoadError::NotAComponent(e.to_string()))?;
                    imports.push(import.name.name.to_owned());
                }
            }
            wasmparser::Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(|e| LoadError::NotAComponent(e.to_string()))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    let found = exports.iter().find_map(|name| {
        let (interface, version) = name.strip_prefix("stepwise:plugin/")?.split_once('@')?;
        let kind = match interface {
            "action" => PluginKind::Action,
            "predicate" => PluginKind::Predicate,
            _ => return None,
        };
        Some((kind, version.to_owned()))
    });
    let Some((kind, exported)) = found else {
        let exports = if exports.is_empty() { "nothing".to_owned() } else { exports.join(", ") };
        return Err(LoadError::UnknownWorld { exports });
    };
    let supported = || SUPPORTED_VERSIONS.join(", ");
    if let Some(stamped) = &stamp {
        if !SUPPORTED_VERSIONS.contains(&stamped.as_str()) {
            return Err(LoadError::UnsupportedWitVersion { found: stamped.clone(), supported: supported() });
        }
        if *stamped != exported {
            return Err(LoadError::VersionMismatch { stamped: stamped.clone(), exported });
        }
    }
    let Some(wit_version) = SUPPORTED_VERSIONS.iter().copied().find(|v| *v == exported) else {
        return Err(LoadError::UnsupportedWitVersion { found: exported, supported: supported() });
    };
    if let Some(refused) = imports.iter().find_map(|name| unprovided(name, wit_version)) {
        return Err(refused);
    }
    Ok(Inspection { kind, wit_version, stamp, size: bytes.len(), digest: hex::encode(Sha256::digest(bytes)) })
}

/// The WASI 0.2 packages the host links (with no files, environment,
/// arguments or sockets granted to any call).
const PROVIDED_WASI: &[&str] =
    &["wasi:io", "wasi:clocks", "wasi:random", "wasi:cli", "wasi:filesystem", "wasi:sockets"];

/// Why an import named `name` of a component built for contract `version`
/// cannot be linked, if it cannot: the host provides WASI 0.2's
/// [`PROVIDED_WASI`] and the contract's own interfaces, nothing else.
fn unprovided(name: &str, version: &str) -> Option<LoadError> {
    let (package, rest) = name.split_once('/').unwrap_or((name, ""));
    let at = rest.split_once('@').map(|(_, v)| v).or_else(|| name.split_once('@').map(|(_, v)| v));
    if package == "stepwise:plugin" && at == Some(version) {
        return None;
    }
    if PROVIDED_WASI.contains(&package) && at.is_some_and(|v| v.starts_with("0.2.")) {
        return None;
    }
    let advice = if package.starts_with("wasi:http") {
        "a plugin reaches the network only through the contract's `stepwise:plugin/http` import (the \
         `http-fetch` capability, whose grant lists the destinations an admin allows). Build without \
         `wasi:http`: with componentize-js, disable its `http` and `fetch-event` features \
         (`--disable http fetch-event`, or `disableFeatures: [\"http\", \"fetch-event\"]` through its \
         API); Rust and componentize-py import it only when the code uses it"
            .to_owned()
    } else if package == "stepwise:plugin" {
        format!(
            "a component takes the contract's interfaces from the version it exports \
             (`stepwise:plugin@{version}`); build it against one version of the WIT only"
        )
    } else {
        format!(
            "the host links WASI 0.2's {} (no files, environment or sockets are granted) and the \
             interfaces of `stepwise:plugin@{version}`; build the component without this import",
            PROVIDED_WASI.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
        )
    };
    Some(LoadError::UnprovidedImport { interface: name.to_owned(), advice })
}

/// Compiled artifacts on disk, keyed by the component's digest and the
/// engine's compatibility hash. Only artifacts this host wrote are read: a
/// file is trusted only when its embedded checksum matches, and uploaded
/// bytes are always compiled, never deserialized.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..12]);
        Ok(Self { dir: dir.to_owned(), engine_key })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The component compiled from `bytes`: from the cache when present and
    /// intact, else compiled now and stored.
    pub(crate) fn load_or_compile(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        let path = self.path(digest);
        if let Ok(file) = std::fs::read(&path) {
            match Self::trusted(engine, &file) {
                Ok(component) => return Ok(component),
                Err(Untrusted::Damaged) => {
                    tracing::warn!(path = %path.display(), "discarding a damaged compiled artifact");
                }
                // Intact but not loadable under this runtime's limits (a
                // memory limit below what the component needs): compiling
                // it again says why.
                Err(Untrusted::Refused(_)) => {}
            }
        }
        let artifact = engine.precompile_component(bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let mut file = Sha256::digest(&artifact).to_vec();
        file.extend_from_slice(&artifact);
        // Written beside and renamed, so that a reader never sees half a file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{unique}", std::process::id()));
        if let Err(error) = std::fs::write(&tmp, &file).and_then(|()| std::fs::rename(&tmp, &path)) {
            tracing::warn!(%error, path = %path.display(), "cannot cache a compiled artifact");
        }
        Self::trusted(engine, &file).map_err(|why| match why {
            Untrusted::Damaged => LoadError::Compile("the compiled artifact was damaged in memory".into()),
            Untrusted::Refused(why) => LoadError::Compile(why),
        })
    }

    fn trusted(engine: &Engine, file: &[u8]) -> Result<Component, Untrusted> {
        let (sum, artifact) = file.split_at_checked(32).ok_or(Untrusted::Damaged)?;
        if Sha256::digest(artifact).as_slice() != sum {
            return Err(Untrusted::Damaged);
        }
        // SAFETY: the artifact was produced by `Engine::precompile_component`
        // of an engine with the same compatibility hash (it is in the file
        // name), written by this host to its own cache directory, and its
        // checksum matches, so it is the bytes this host wrote.
        #[expect(unsafe_code, reason = "deserializing our own compiled artifact")]
        let component = unsafe { Component::deserialize(engine, artifact) };
        component.map_err(|e| Untrusted::Refused(format!("{e:#}")))
    }
}

/// Why a cached artifact was not used.
enum Untrusted {
    /// Its checksum does not match: not the bytes this host wrote.
    Damaged,
    /// The engine refused it, saying why.
    Refused(String),
}

/// Feeds `Hash` output into SHA-256, for a hash that is stable across runs.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::{LoadError, unprovided};

    fn refused(name: &str) -> Option<String> {
        unprovided(name, "0.1.0").map(|e| match e {
            LoadError::UnprovidedImport { interface, advice } => {
                assert_eq!(interface, name);
                advice
            }
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn wasi_0_2_and_the_contract_are_provided() {
        for name in [
            "wasi:io/streams@0.2.0",
            "wasi:cli/environment@0.2.3",
            "wasi:clocks/monotonic-clock@0.2.10",
            "wasi:random/random@0.2.6",
            "wasi:filesystem/preopens@0.2.0",
            "wasi:sockets/tcp@0.2.0",
            "stepwise:plugin/http@0.1.0",
            "stepwise:plugin/types@0.1.0",
        ] {
            assert_eq!(refused(name), None, "{name}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_what_to_do() {
        let http = refused("wasi:http/types@0.2.10").unwrap();
        assert!(http.contains("`http-fetch` capability") && http.contains("disableFeatures"), "{http}");
        let newer = refused("wasi:cli/environment@0.3.0").unwrap();
        assert!(newer.contains("WASI 0.2") && newer.contains("`wasi:cli`"), "{newer}");
        let mixed = refused("stepwise:plugin/log@0.2.0").unwrap();
        assert!(mixed.contains("stepwise:plugin@0.1.0"), "{mixed}");
        assert!(refused("acme:kv/store@1.0.0").unwrap().contains("without this import"));
        assert!(refused("wasi:keyvalue/store@0.2.0").is_some(), "not every wasi package is linked");
    }
}
