//! The plugin registry: every loaded plugin by id and version, built-ins
//! from the binary and add-ons from bytes given at run time.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::error::LoadError;
use super::runtime::{Plugin, Runtime};
use stepwise_builtins::BUILTIN;

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
    /// The account whose add-on it is; `None` for a plugin every account
    /// may use (the built-ins, and plugins an embedder adds host-wide).
    pub owner: Option<String>,
}

impl Registered {
    /// Whether `account` may use it: a plugin of the host, or the
    /// account's own add-on.
    pub fn usable_by(&self, account: &str) -> bool {
        self.owner.as_deref().is_none_or(|owner| owner == account)
    }
}

/// Every plugin the host can run. Cheap to share; lookups take a read lock.
///
/// Each account's add-ons are registered apart from every other's: a
/// version is found for an account only among the host's plugins and the
/// account's own, so no upload of one account can ever run in another's
/// steps. (That an id has one owner at all is the store's rule, kept where
/// every host sees it.)
#[derive(Debug)]
pub struct Registry {
    runtime: Runtime,
    /// By id, then version: the registrations of that version, one per owner.
    plugins: RwLock<BTreeMap<String, BTreeMap<semver::Version, Vec<Registered>>>>,
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
            registry.insert(bytes, Origin::Builtin, None).await?;
        }
        Ok(registry)
    }

    /// The runtime plugins run on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Loads a plugin from its bytes and registers it for every account
    /// of the host (as an embedder or a test does; uploads go through
    /// [`Registry::add_for`]). Registering the same bytes again is a no-op.
    ///
    /// # Errors
    ///
    /// A [`RegistryError`]: the component does not load, its id is a
    /// built-in's, or its id and version are taken by other bytes.
    pub async fn add(&self, bytes: &[u8]) -> Result<Arc<Plugin>, RegistryError> {
        self.insert(bytes, Origin::AddOn, None).await
    }

    /// Loads `account`'s add-on from its bytes and registers it: only that
    /// account resolves it, and no other account may register its id.
    /// Registering the same bytes again is a no-op.
    ///
    /// # Errors
    ///
    /// As [`Registry::add`].
    pub async fn add_for(&self, account: &str, bytes: &[u8]) -> Result<Arc<Plugin>, RegistryError> {
        self.insert(bytes, Origin::AddOn, Some(account)).await
    }

    /// Registers `account`'s add-on loaded already (with
    /// [`Runtime::load`]): an upload is loaded to be checked, stored, and
    /// only then registered.
    ///
    /// # Errors
    ///
    /// As [`Registry::add_for`], but for loading.
    pub fn register_for(&self, account: &str, plugin: Arc<Plugin>) -> Result<Arc<Plugin>, RegistryError> {
        self.register(plugin, Origin::AddOn, Some(account))
    }

    async fn insert(&self, bytes: &[u8], origin: Origin, owner: Option<&str>) -> Result<Arc<Plugin>, RegistryError> {
        let plugin = self.runtime.load(bytes).await?;
        self.register(plugin, origin, owner)
    }

    fn register(&self, plugin: Arc<Plugin>, origin: Origin, owner: Option<&str>) -> Result<Arc<Plugin>, RegistryError> {
        let manifest = plugin.manifest();
        // The runtime checked the version is MAJOR.MINOR.PATCH.
        let version = semver::Version::parse(&manifest.version).map_err(|e| {
            RegistryError::Load(LoadError::InvalidManifest(format!("version `{}`: {e}", manifest.version)))
        })?;
        let mut plugins = self.plugins.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let versions = plugins.entry(manifest.id.clone()).or_default();
        if origin == Origin::AddOn && versions.values().flatten().any(|r| r.origin == Origin::Builtin) {
            return Err(RegistryError::BuiltinId(manifest.id.clone()));
        }
        let slot = versions.entry(version).or_default();
        if let Some(existing) = slot.iter().find(|r| r.owner.as_deref() == owner) {
            if existing.plugin.digest() == plugin.digest() {
                return Ok(existing.plugin.clone());
            }
            return Err(RegistryError::VersionTaken { id: manifest.id.clone(), version: manifest.version.clone() });
        }
        slot.push(Registered { plugin: plugin.clone(), origin, owner: owner.map(str::to_owned) });
        Ok(plugin)
    }

    /// The newest version of `id` that `account` may use and that
    /// satisfies `requirement` (semver syntax: `1`, `^1.2`, `=1.0.3`, `*`):
    /// a built-in, a host-wide plugin or the account's own add-on, never
    /// another account's.
    ///
    /// # Errors
    ///
    /// [`RegistryError::BadRequirement`] when the requirement does not parse.
    pub fn get(&self, account: &str, id: &str, requirement: &str) -> Result<Option<Arc<Plugin>>, RegistryError> {
        Ok(self.find(account, id, requirement)?.map(|r| r.plugin))
    }

    /// Like [`Registry::get`], with where the plugin came from.
    ///
    /// # Errors
    ///
    /// [`RegistryError::BadRequirement`] when the requirement does not parse.
    pub fn find(&self, account: &str, id: &str, requirement: &str) -> Result<Option<Registered>, RegistryError> {
        self.newest(id, requirement, |r| r.usable_by(account))
    }

    /// Whether this host has loaded `owner`'s `id` at exactly `version`.
    pub fn has(&self, owner: &str, id: &str, version: &str) -> bool {
        let plugins = self.plugins.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(version) = semver::Version::parse(version) else { return false };
        plugins
            .get(id)
            .and_then(|versions| versions.get(&version))
            .is_some_and(|slot| slot.iter().any(|r| r.owner.as_deref() == Some(owner)))
    }

    fn newest(
        &self,
        id: &str,
        requirement: &str,
        usable: impl Fn(&Registered) -> bool,
    ) -> Result<Option<Registered>, RegistryError> {
        let requirement = semver::VersionReq::parse(requirement).map_err(|e| RegistryError::BadRequirement {
            requirement: requirement.to_owned(),
            reason: e.to_string(),
        })?;
        let plugins = self.plugins.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(plugins.get(id).and_then(|versions| {
            versions
                .iter()
                .rev()
                .filter(|(v, _)| requirement.matches(v))
                .find_map(|(_, slot)| slot.iter().find(|r| usable(r)).cloned())
        }))
    }

    /// Every registered plugin, by id then version.
    pub fn list(&self) -> Vec<Registered> {
        let plugins = self.plugins.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        plugins.values().flat_map(|versions| versions.values().flatten().cloned()).collect()
    }
}
