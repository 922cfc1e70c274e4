//! Add-ons uploaded through any host. Each host loads the stored add-ons it
//! has not loaded yet: at start, when another host announces an upload,
//! every [`ADD_ON_SYNC`] while its scheduler runs (every
//! [`ADD_ON_SYNC_HEARD`] while it hears announcements), and at once when a
//! step names a plugin it lacks. So an upload through
//! one host is usable on every host sharing the database, without a restart.

use std::time::Duration;

use super::Engine;
use stepwise_store as store;

/// How often a running scheduler looks for add-ons uploaded elsewhere.
pub const ADD_ON_SYNC: Duration = Duration::from_secs(10);

/// How often it looks while it hears other hosts announce their uploads.
pub const ADD_ON_SYNC_HEARD: Duration = Duration::from_secs(60);

impl Engine {
    /// Loads every stored add-on version this host has not loaded; returns
    /// how many it loaded. One that does not load is logged once and skipped
    /// from then on.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn sync_add_ons(&self) -> store::Result<usize> {
        let mut tx = self.store().begin_read().await?;
        let mut missing = Vec::new();
        for (id, version, owner) in tx.add_on_versions().await? {
            if !self.registry().has(&owner, &id, &version)
                && !self.failed_add_ons().contains(&(id.clone(), version.clone()))
            {
                missing.push(tx.plugin(&id, &version).await?);
            }
        }
        tx.rollback().await?;
        let mut loaded = 0;
        for record in missing {
            let (Some(bytes), Some(owner)) = (&record.wasm, &record.uploaded_by) else { continue };
            match self.registry().add_for(owner, bytes).await {
                Ok(_) => loaded += 1,
                Err(error) => {
                    tracing::error!(plugin = %record.id, version = %record.version, %error, "a stored add-on does not load");
                    self.failed_add_ons().insert((record.id.clone(), record.version.clone()));
                }
            }
        }
        Ok(loaded)
    }

    /// Loads the stored add-ons when `id` at `requirement` is not loaded
    /// here for `account`; a store error is logged, since the caller then
    /// reports the plugin missing.
    pub async fn sync_if_missing(&self, account: &str, id: &str, requirement: &str) {
        if matches!(self.registry().find(account, id, requirement), Ok(None))
            && let Err(error) = self.sync_add_ons().await
        {
            tracing::warn!(%error, "could not look for add-ons uploaded through other hosts");
        }
    }

    /// Syncs add-ons every [`ADD_ON_SYNC`], for ever; every
    /// [`ADD_ON_SYNC_HEARD`] while this host hears the others' announcements
    /// (an upload is then loaded when announced, and the poll is only the
    /// fallback). Each pause is jittered, so hosts started together do not
    /// all look at once.
    pub(crate) async fn sync_add_ons_forever(&self) {
        loop {
            let every = if self.hears_other_hosts() { ADD_ON_SYNC_HEARD } else { ADD_ON_SYNC };
            tokio::time::sleep(super::wake::jittered(every)).await;
            if let Err(error) = self.sync_add_ons().await {
                tracing::warn!(%error, "could not look for add-ons uploaded through other hosts");
            }
        }
    }

    fn failed_add_ons(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<(String, String)>> {
        self.inner.failed_add_ons.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
