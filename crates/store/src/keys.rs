//! API keys: made for a user, shown once, kept as a hash, revocable.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{ReadTx, Result, Store, Tx, found, ms, new_id, on_pool, on_tx, time, time_opt};
use stepwise_domain::crm::User;

/// What distinguishes a Stepwise key from other secrets in a config file.
const KEY_PREFIX: &str = "sw_";

/// How often a key's last use is written.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    /// Identifier (`key_…`).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The user it acts as.
    pub user_id: String,
    /// A name the user gave it.
    pub name: String,
    /// The secret's first characters, to tell keys apart.
    pub prefix: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked key authenticates nobody.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who a key authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    /// The key.
    pub key_id: String,
    /// Its account.
    pub account_id: String,
    /// Its user.
    pub user: User,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    account_id: String,
    user_id: String,
    name: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl KeyRow {
    fn into_domain(self) -> Result<ApiKey> {
        Ok(ApiKey {
            id: self.id,
            account_id: self.account_id,
            user_id: self.user_id,
            name: self.name,
            prefix: self.prefix,
            created_at: time(self.created_at)?,
            last_used_at: time_opt(self.last_used_at)?,
            revoked_at: time_opt(self.revoked_at)?,
        })
    }
}

/// A secret's SHA-256, hex: what is kept of API keys, session cookies and
/// set-password links.
pub(crate) fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random secret: two version-4 UUIDs, 244 bits from the operating
/// system's generator, in hex.
pub(crate) fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl ReadTx {
    /// The keys of a user, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn api_keys(&mut self, account_id: &str, user_id: &str) -> Result<Vec<ApiKey>> {
        let rows: Vec<KeyRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id, account_id, user_id, name, prefix, created_at, last_used_at, revoked_at
             FROM api_keys WHERE account_id = $1 AND user_id = $2 ORDER BY created_at DESC, id"
        )
        .bind(account_id)
        .bind(user_id)
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter().map(KeyRow::into_domain).collect()
    }

    /// The user a key of the account belongs to.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn api_key_owner(&mut self, account_id: &str, id: &str) -> Result<String> {
        let owner: Option<String> =
            on_tx!(self, |c| sqlx::query_scalar("SELECT user_id FROM api_keys WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(id)
                .fetch_optional(&mut *c)
                .await?);
        found(owner, "api key", id)
    }

    /// How many accounts exist (none: a fresh install to bootstrap).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn account_count(&mut self) -> Result<i64> {
        Ok(on_tx!(self, |c| sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&mut *c).await?))
    }
}

impl Tx {
    /// Makes a key for a user of the account. Returns it and its secret,
    /// which is not kept and cannot be shown again.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when the user is
    /// not in the account.
    pub async fn create_api_key(
        &mut self,
        account_id: &str,
        user_id: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, String)> {
        let secret = format!("{KEY_PREFIX}{}", random_secret());
        let prefix: String = secret.chars().take(KEY_PREFIX.len() + 8).collect();
        let id = new_id("key");
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO api_keys (id, account_id, user_id, name, prefix, secret_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(&id)
        .bind(account_id)
        .bind(user_id)
        .bind(name)
        .bind(&prefix)
        .bind(hash(&secret))
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        let key = ApiKey {
            id,
            account_id: account_id.to_owned(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            prefix,
            created_at: time(ms(now))?,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((key, secret))
    }

    /// Revokes a key of the account.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn revoke_api_key(&mut self, account_id: &str, id: &str, now: DateTime<Utc>) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE account_id = $1 AND id = $2"
        )
        .bind(account_id)
        .bind(id)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        found((done > 0).then_some(()), "api key", id)
    }
}

impl Store {
    /// Who a secret authenticates: its key must exist, not be revoked, and
    /// its user be active. Records the key's use at `now`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn authenticate(&self, secret: &str, now: DateTime<Utc>) -> Result<Option<KeyHolder>> {
        if !secret.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let row: Option<(String, String, String, Option<i64>)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT id, account_id, user_id, last_used_at FROM api_keys
             WHERE secret_hash = $1 AND revoked_at IS NULL"
        )
        .bind(hash(secret))
        .fetch_optional(p)
        .await?);
        let Some((key_id, account_id, user_id, last_used)) = row else { return Ok(None) };
        let mut tx = self.begin_read().await?;
        let user = tx.user(&account_id, &user_id).await?;
        tx.rollback().await?;
        // The last use is recorded to the minute, so that reading with a key
        // does not write on every request.
        if last_used.is_none_or(|t| ms(now) - t >= LAST_USED_RESOLUTION_MS) {
            on_pool!(self, |p| sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                .bind(&key_id)
                .bind(ms(now))
                .execute(p)
                .await?
                .rows_affected());
        }
        Ok(user.active.then_some(KeyHolder { key_id, account_id, user }))
    }
}

impl Store {
    /// The shared secret `name`, made (256 random bits, hex) by the first
    /// host that asks. Concurrent first askers agree on one value.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn host_secret(&self, name: &str, now: DateTime<Utc>) -> Result<String> {
        let candidate = random_secret();
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO host_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
        )
        .bind(name)
        .bind(&candidate)
        .bind(ms(now))
        .execute(p)
        .await?
        .rows_affected());
        let value: String = on_pool!(self, |p| sqlx::query_scalar("SELECT value FROM host_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(p)
            .await?);
        Ok(value)
    }
}

/// What a store knows of an `Idempotency-Key` when a request arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent {
    /// First use: the caller answers, then records the answer.
    New,
    /// Answered before: `(status, content type, body)`.
    Replay(u16, String, String),
    /// The key was used for a different request.
    Mismatch,
    /// The first request under the key is still being answered.
    InProgress,
}

/// How long the answer under an `Idempotency-Key` is kept: a key is free
/// again a day after its first use, as Stripe's are.
pub const IDEMPOTENCY_KEPT: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// How long a request under a key may stay unanswered before the key is
/// taken as abandoned (its host died mid-request) and released. Requests
/// run to completion whatever their client does, and end well before it.
pub const IDEMPOTENCY_IN_FLIGHT: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Expired keys removed with each new one, so the table never grows
/// without bound and no sweep is needed.
const IDEMPOTENCY_PURGE_BATCH: i64 = 100;

impl Store {
    /// Reserves `key` in `scope` for a request with `fingerprint`, or says
    /// why not. A key kept past [`IDEMPOTENCY_KEPT`], or reserved and
    /// unanswered past [`IDEMPOTENCY_IN_FLIGHT`], is free again.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Idempotent> {
        let expired = ms(now - IDEMPOTENCY_KEPT);
        let abandoned = ms(now - IDEMPOTENCY_IN_FLIGHT);
        on_pool!(self, |p| {
            sqlx::query(
                "DELETE FROM idempotent_requests
                 WHERE scope = $1 AND key = $2 AND (created_at < $3 OR (status = 0 AND created_at < $4))",
            )
            .bind(scope)
            .bind(key)
            .bind(expired)
            .bind(abandoned)
            .execute(p)
            .await?;
            sqlx::query(
                "DELETE FROM idempotent_requests WHERE (scope, key) IN
                   (SELECT scope, key FROM idempotent_requests WHERE created_at < $1 LIMIT $2)",
            )
            .bind(expired)
            .bind(IDEMPOTENCY_PURGE_BATCH)
            .execute(p)
            .await?
            .rows_affected()
        });
        let inserted = on_pool!(self, |p| sqlx::query(
            "INSERT INTO idempotent_requests (scope, key, fingerprint, status, content_type, body, created_at)
             VALUES ($1, $2, $3, 0, '', '', $4) ON CONFLICT (scope, key) DO NOTHING"
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(ms(now))
        .execute(p)
        .await?
        .rows_affected());
        if inserted == 1 {
            return Ok(Idempotent::New);
        }
        let (stored, status, content_type, body): (String, i64, String, String) = on_pool!(self, |p| sqlx::query_as(
            "SELECT fingerprint, status, content_type, body FROM idempotent_requests WHERE scope = $1 AND key = $2"
        )
        .bind(scope)
        .bind(key)
        .fetch_one(p)
        .await?);
        Ok(if stored != fingerprint {
            Idempotent::Mismatch
        } else if status == 0 {
            Idempotent::InProgress
        } else {
            Idempotent::Replay(u16::try_from(status).unwrap_or(500), content_type, body)
        })
    }

    /// How many `Idempotency-Key`s are kept, answered or reserved.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn idempotency_keys_kept(&self) -> Result<i64> {
        Ok(on_pool!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM idempotent_requests").fetch_one(p).await?))
    }

    /// Records the answer to a reserved key; `None` forgets the reservation
    /// (the request failed on the host's side and may be tried again).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn idempotency_finish(&self, scope: &str, key: &str, answer: Option<(u16, &str, &str)>) -> Result<()> {
        match answer {
            Some((status, content_type, body)) => {
                on_pool!(self, |p| {
                    sqlx::query(
                "UPDATE idempotent_requests SET status = $3, content_type = $4, body = $5 WHERE scope = $1 AND key = $2"
            )
            .bind(scope)
            .bind(key)
            .bind(i64::from(status))
            .bind(content_type)
            .bind(body)
            .execute(p)
            .await?
            .rows_affected()
                })
            }
            None => on_pool!(self, |p| sqlx::query("DELETE FROM idempotent_requests WHERE scope = $1 AND key = $2")
                .bind(scope)
                .bind(key)
                .execute(p)
                .await?
                .rows_affected()),
        };
        Ok(())
    }
}
