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
    Ok(Inspection { kind, wit_version, stamp, size: bytes.len(), digest: hex::encode(Sha256::digest(bytes)) })
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
            if let Some(component) = Self::trusted(engine, &file) {
                return Ok(component);
            }
            tracing::warn!(path = %path.display(), "discarding a damaged compiled artifact");
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
        Self::trusted(engine, &file).ok_or_else(|| LoadError::Compile("cannot load the compiled artifact".into()))
    }

    fn trusted(engine: &Engine, file: &[u8]) -> Option<Component> {
        let (sum, artifact) = file.split_at_checked(32)?;
        if Sha256::digest(artifact).as_slice() != sum {
            return None;
        }
        // SAFETY: the artifact was produced by `Engine::precompile_component`
        // of an engine with the same compatibility hash (it is in the file
        // name), written by this host to its own cache directory, and its
        // checksum matches, so it is the bytes this host wrote.
        #[expect(unsafe_code, reason = "deserializing our own compiled artifact")]
        let component = unsafe { Component::deserialize(engine, artifact) };
        component.ok()
    }
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
