//! Add-ons uploaded through any host. Each host loads the stored add-ons it
//! has not loaded yet: at start, every [`ADD_ON_SYNC`] while its scheduler
//! runs, and at once when a step names a plugin it lacks. So an upload through
//! one host is usable on every host sharing the database, without a restart.

use std::time::Duration;

use super::Engine;
use stepwise_store as store;

/// How often a running scheduler looks for add-ons uploaded elsewhere.
pub const ADD_ON_SYNC: Duration = Duration::from_secs(10);

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

    /// Syncs add-ons every [`ADD_ON_SYNC`], for ever.
    pub(crate) async fn sync_add_ons_forever(&self) {
        let mut every = tokio::time::interval(ADD_ON_SYNC);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(error) = self.sync_add_ons().await {
                tracing::warn!(%error, "could not look for add-ons uploaded through other hosts");
            }
        }
    }

    fn failed_add_ons(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<(String, String)>> {
        self.inner.failed_add_ons.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
