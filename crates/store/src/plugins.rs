//! Plugins known to the host and their per-account enablement and grants.

use chrono::{DateTime, Utc};

use super::{ReadTx, Result, Tx, found, ms, on_tx};
use stepwise_domain::engagement::{PluginAccount, PluginRecord};

#[derive(sqlx::FromRow)]
struct PluginRow {
    id: String,
    version: String,
    kind: String,
    manifest: String,
    wasm_digest: String,
    wasm: Option<Vec<u8>>,
    builtin: bool,
    uploaded_by: Option<String>,
}

impl PluginRow {
    fn into_domain(self) -> Result<PluginRecord> {
        Ok(PluginRecord {
            id: self.id,
            version: self.version,
            kind: self.kind.parse()?,
            manifest: self.manifest,
            wasm_digest: self.wasm_digest,
            wasm: self.wasm,
            builtin: self.builtin,
            uploaded_by: self.uploaded_by,
        })
    }
}

#[derive(sqlx::FromRow)]
struct PluginAccountRow {
    account_id: String,
    plugin_id: String,
    enabled: bool,
    grants: String,
    approved_capabilities: String,
}

impl PluginAccountRow {
    fn into_domain(self) -> Result<PluginAccount> {
        Ok(PluginAccount {
            account_id: self.account_id,
            plugin_id: self.plugin_id,
            enabled: self.enabled,
            grants: serde_json::from_str(&self.grants)?,
            approved_capabilities: serde_json::from_str(&self.approved_capabilities)?,
        })
    }
}

const SELECT_PLUGIN: &str = "SELECT id, version, kind, manifest, wasm_digest, wasm, builtin, uploaded_by FROM plugins";

impl ReadTx {
    /// The plugin `id` at `version`, with its bytes when it is an add-on.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn plugin(&mut self, id: &str, version: &str) -> Result<PluginRecord> {
        let sql = format!("{SELECT_PLUGIN} WHERE id = $1 AND version = $2");
        let row: Option<PluginRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(id).bind(version).fetch_optional(&mut *c).await?);
        found(row, "plugin", &format!("{id}@{version}"))?.into_domain()
    }

    /// The `(id, version)` of every add-on an account uploaded, without
    /// their bytes.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn add_ons_of(&mut self, account_id: &str) -> Result<Vec<(String, String)>> {
        Ok(on_tx!(self, |c| sqlx::query_as(
            "SELECT id, version FROM plugins WHERE uploaded_by = $1 ORDER BY id, version"
        )
        .bind(account_id)
        .fetch_all(&mut *c)
        .await?))
    }

    /// The `(id, version, account)` of every add-on, without their bytes.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn add_on_versions(&mut self) -> Result<Vec<(String, String, String)>> {
        Ok(on_tx!(self, |c| sqlx::query_as(
            "SELECT id, version, uploaded_by FROM plugins WHERE NOT builtin AND uploaded_by IS NOT NULL
             ORDER BY id, version"
        )
        .fetch_all(&mut *c)
        .await?))
    }

    /// Every plugin version, by id and version text.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn plugins(&mut self) -> Result<Vec<PluginRecord>> {
        let sql = format!("{SELECT_PLUGIN} ORDER BY id, version");
        let rows: Vec<PluginRow> = on_tx!(self, |c| sqlx::query_as(&sql).fetch_all(&mut *c).await?);
        rows.into_iter().map(PluginRow::into_domain).collect()
    }

    /// Every plugin's enablement and grants for an account.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn plugin_accounts(&mut self, account_id: &str) -> Result<Vec<PluginAccount>> {
        let rows: Vec<PluginAccountRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT account_id, plugin_id, enabled, grants, approved_capabilities
             FROM plugin_accounts WHERE account_id = $1"
        )
        .bind(account_id)
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter().map(PluginAccountRow::into_domain).collect()
    }

    /// A plugin's enablement and grants for an account; `None` means never
    /// enabled (deny by default).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn plugin_account(&mut self, account_id: &str, plugin_id: &str) -> Result<Option<PluginAccount>> {
        let row: Option<PluginAccountRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT account_id, plugin_id, enabled, grants, approved_capabilities
             FROM plugin_accounts WHERE account_id = $1 AND plugin_id = $2"
        )
        .bind(account_id)
        .bind(plugin_id)
        .fetch_optional(&mut *c)
        .await?);
        row.map(PluginAccountRow::into_domain).transpose()
    }
}

impl Tx {
    /// Records a plugin version. Recording the same id, version and digest
    /// again is a no-op (every host registers its built-ins at start).
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the id and
    /// version exist with another digest (a released version never changes),
    /// or when the id belongs to a built-in or another account's add-on.
    pub async fn save_plugin(&mut self, plugin: &PluginRecord, now: DateTime<Utc>) -> Result<()> {
        self.claim_plugin_id(plugin).await?;
        if let Some(existing) = self.plugin(&plugin.id, &plugin.version).await.ok()
            && existing.wasm_digest == plugin.wasm_digest
        {
            if existing.uploaded_by != plugin.uploaded_by {
                return Err(super::StoreError::Conflict {
                    constraint: "plugins_pkey".into(),
                    what: format!(
                        "plugin {} {} is already installed; publish it under your own id",
                        plugin.id, plugin.version
                    ),
                });
            }
            return Ok(());
        }
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO plugins (id, version, kind, manifest, wasm_digest, wasm, builtin, created_at, uploaded_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )
        .bind(&plugin.id)
        .bind(&plugin.version)
        .bind(plugin.kind.as_str())
        .bind(&plugin.manifest)
        .bind(&plugin.wasm_digest)
        .bind(&plugin.wasm)
        .bind(plugin.builtin)
        .bind(ms(now))
        .bind(&plugin.uploaded_by)
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Makes `plugin`'s id its owner's, or fails when it is another's: the
    /// first add-on uploaded under an id gives it to its account for good;
    /// built-ins take their ids whoever had them.
    async fn claim_plugin_id(&mut self, plugin: &PluginRecord) -> Result<()> {
        // Built-ins are saved without an owner, and take their id back.
        let claim = if plugin.builtin {
            "INSERT INTO plugin_ids (id, owner) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET owner = NULL"
        } else {
            "INSERT INTO plugin_ids (id, owner) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"
        };
        let owner: Option<String> = on_tx!(self, |c| {
            sqlx::query(claim).bind(&plugin.id).bind(&plugin.uploaded_by).execute(&mut *c).await?;
            sqlx::query_scalar("SELECT owner FROM plugin_ids WHERE id = $1").bind(&plugin.id).fetch_one(&mut *c).await?
        });
        if owner == plugin.uploaded_by {
            return Ok(());
        }
        let what = match owner {
            None => format!("plugin id `{}` belongs to a built-in plugin", plugin.id),
            Some(_) => format!(
                "plugin id `{}` is taken by another account's add-on; publish yours under another id",
                plugin.id
            ),
        };
        Err(super::StoreError::Conflict { constraint: "plugin_ids_pkey".into(), what })
    }

    /// Sets a plugin's enablement and grants for an account.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when the account
    /// does not exist.
    pub async fn set_plugin_account(&mut self, settings: &PluginAccount, now: DateTime<Utc>) -> Result<()> {
        let grants = serde_json::to_string(&settings.grants)?;
        let approved = serde_json::to_string(&settings.approved_capabilities)?;
        // `ON CONFLICT … DO UPDATE` is the same text on both backends.
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO plugin_accounts (account_id, plugin_id, enabled, grants, approved_capabilities, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account_id, plugin_id) DO UPDATE SET enabled = excluded.enabled, grants = excluded.grants,
                 approved_capabilities = excluded.approved_capabilities, updated_at = excluded.updated_at"
        )
        .bind(&settings.account_id)
        .bind(&settings.plugin_id)
        .bind(settings.enabled)
        .bind(&grants)
        .bind(&approved)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }
}
