//! The plugin registry: every loaded plugin by id and version, built-ins
//! from the binary and add-ons from bytes given at run time.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::builtin::BUILTIN;
use super::error::LoadError;
use super::runtime::{Plugin, Runtime};

/// Where a plugin came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into the binary.
    Builtin,
    /// Added at run time.
    AddOn,
}

/// Why a plugin could not be registered or found.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The component does not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Another component already has this id and version.
    #[error("plugin {id} {version} is already registered with different bytes; publish a new version")]
    VersionTaken {
        /// Plugin id.
        id: String,
        /// Version.
        version: String,
    },
    /// Add-ons may not take a built-in plugin's id.
    #[error("plugin id `{0}` belongs to a built-in plugin")]
    BuiltinId(String),
    /// A version requirement that does not parse.
    #[error("version requirement `{requirement}` is not valid: {reason}")]
    BadRequirement {
        /// The requirement.
        requirement: String,
        /// Why.
        reason: String,
    },
}

/// A registered plugin.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The loaded plugin.
    pub plugin: Arc<Plugin>,
    /// Where it came from.
    pub origin: Origin,
}

/// Every plugin the host can run. Cheap to share; lookups take a read lock.
#[derive(Debug)]
pub struct Registry {
    runtime: Runtime,
    plugins: RwLock<BTreeMap<String, BTreeMap<semver::Version, Registered>>>,
}

impl Registry {
    /// An empty registry over `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        Self { runtime, plugins: RwLock::new(BTreeMap::new()) }
    }

    /// A registry holding every built-in plugin.
    ///
    /// # Errors
    ///
    /// When a built-in plugin does not load: a broken build.
    pub async fn with_builtins(runtime: Runtime) -> Result<Self, RegistryError> {
        let registry = Self::new(runtime);
        for (_, bytes) in BUILTIN {
            registry.insert(bytes, Origin::Builtin).await?;
        }
        Ok(registry)
    }

    /// The runtime plugins run on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Loads an add-on from its bytes and registers it. Registering the
    /// same bytes again is a no-op.
    ///
    /// # Errors
    ///
    /// A [`RegistryError`]: the component does not load, its id is a
    /// built-in's, or its id and version are taken by other bytes.
    pub async fn add(&self, bytes: &[u8]) -> Result<Arc<Plugin>, RegistryError> {
        self.insert(bytes, Origin::AddOn).await
    }

    async fn insert(&self, bytes: &[u8], origin: Origin) -> Result<Arc<Plugin>, RegistryError> {
        let plugin = self.runtime.load(bytes).await?;
        let manifest = plugin.manifest();
        // The runtime checked the version is MAJOR.MINOR.PATCH.
        let version = semver::Version::parse(&manifest.version).map_err(|e| {
            RegistryError::Load(LoadError::InvalidManifest(format!("version `{}`: {e}", manifest.version)))
        })?;
        let mut plugins = self.plugins.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let versions = plugins.entry(manifest.id.clone()).or_default();
        if origin == Origin::AddOn && versions.values().any(|r| r.origin == Origin::Builtin) {
            return Err(RegistryError::BuiltinId(manifest.id.clone()));
        }
        if let Some(existing) = versions.get(&version) {
            if existing.plugin.digest() == plugin.digest() {
                return Ok(existing.plugin.clone());
            }
            return Err(RegistryError::VersionTaken { id: manifest.id.clone(), version: manifest.version.clone() });
        }
        versions.insert(version, Registered { plugin: plugin.clone(), origin });
        Ok(plugin)
    }

    /// The newest version of `id` that satisfies `requirement` (semver
    /// syntax: `1`, `^1.2`, `=1.0.3`, `*`).
    ///
    /// # Errors
    ///
    /// [`RegistryError::BadRequirement`] when the requirement does not parse.
    pub fn get(&self, id: &str, requirement: &str) -> Result<Option<Arc<Plugin>>, RegistryError> {
        Ok(self.find(id, requirement)?.map(|r| r.plugin))
    }

    /// Like [`Registry::get`], with where the plugin came from.
    ///
    /// # Errors
    ///
    /// [`RegistryError::BadRequirement`] when the requirement does not parse.
    pub fn find(&self, id: &str, requirement: &str) -> Result<Option<Registered>, RegistryError> {
        let requirement = semver::VersionReq::parse(requirement).map_err(|e| RegistryError::BadRequirement {
            requirement: requirement.to_owned(),
            reason: e.to_string(),
        })?;
        let plugins = self.plugins.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(plugins
            .get(id)
            .and_then(|versions| versions.iter().rev().find(|(v, _)| requirement.matches(v)))
            .map(|(_, r)| r.clone()))
    }

    /// Every registered plugin, by id then version.
    pub fn list(&self) -> Vec<Registered> {
        let plugins = self.plugins.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        plugins.values().flat_map(|versions| versions.values().cloned()).collect()
    }
}
