//! The outbox: messages written in the transaction that completes their
//! action and delivered later by a dispatcher, each at most once per
//! idempotency key.

use chrono::{DateTime, Utc};

use super::{Result, Store, Tx, found, ms, new_id, on_pool, on_tx, time, time_opt};
use crate::domain::{Channel, ClaimedMessage, OutboxMessage, OutboxState};

/// What [`Tx::enqueue_message`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxMessage {
    /// The owning account.
    pub account_id: String,
    /// The action that produced it.
    pub action_id: Option<String>,
    /// Email or SMS.
    pub channel: Channel,
    /// What to send.
    pub payload: serde_json::Value,
    /// Stable across retries of the action (derived from the action id).
    pub idempotency_key: String,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: String,
    account_id: String,
    action_id: Option<String>,
    channel: String,
    payload: String,
    idempotency_key: String,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: i64,
    sent_at: Option<i64>,
    next_attempt_at: i64,
}

impl OutboxRow {
    fn into_domain(self) -> Result<OutboxMessage> {
        Ok(OutboxMessage {
            id: self.id,
            account_id: self.account_id,
            action_id: self.action_id,
            channel: self.channel.parse()?,
            payload: serde_json::from_str(&self.payload)?,
            idempotency_key: self.idempotency_key,
            state: self.state.parse()?,
            attempts: self.attempts,
            last_error: self.last_error,
            created_at: time(self.created_at)?,
            sent_at: time_opt(self.sent_at)?,
            next_attempt_at: time(self.next_attempt_at)?,
        })
    }
}

const MESSAGE_COLUMNS: &str = "id, account_id, action_id, channel, payload, idempotency_key, state, attempts,
    last_error, created_at, sent_at, next_attempt_at";

const SELECT_MESSAGE: &str = "
    SELECT id, account_id, action_id, channel, payload, idempotency_key, state, attempts, last_error, created_at,
           sent_at, next_attempt_at
    FROM outbox";

impl Tx {
    /// Queues a message.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`](super::StoreError::Conflict) with constraint
    /// `outbox_idempotency_key_key` when the key was already queued: the
    /// message exists and must not be sent twice.
    pub async fn enqueue_message(&mut self, message: &NewOutboxMessage, now: DateTime<Utc>) -> Result<OutboxMessage> {
        let id = new_id("msg");
        let payload = serde_json::to_string(&message.payload)?;
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO outbox (id, account_id, action_id, channel, payload, idempotency_key, state, attempts,
                                 created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $7)"
        )
        .bind(&id)
        .bind(&message.account_id)
        .bind(&message.action_id)
        .bind(message.channel.as_str())
        .bind(&payload)
        .bind(&message.idempotency_key)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        self.message(&id).await
    }

    /// The message `id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn message(&mut self, id: &str) -> Result<OutboxMessage> {
        let sql = format!("{SELECT_MESSAGE} WHERE id = $1");
        let row: Option<OutboxRow> = on_tx!(self, |c| sqlx::query_as(&sql).bind(id).fetch_optional(&mut *c).await?);
        found(row, "message", id)?.into_domain()
    }

    /// Up to `limit` queued messages, by when they may be tried, for views
    /// of the outbox (the dispatcher claims with [`Store::claim_messages`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn queued_messages(&mut self, limit: u32) -> Result<Vec<OutboxMessage>> {
        let sql = format!("{SELECT_MESSAGE} WHERE state = 'queued' ORDER BY next_attempt_at, id LIMIT $1");
        let rows: Vec<OutboxRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(i64::from(limit)).fetch_all(&mut *c).await?);
        rows.into_iter().map(OutboxRow::into_domain).collect()
    }

    /// Records a delivery attempt of a claimed message: `Ok` marks it sent;
    /// an error is kept and the message is tried again at `retry_at`, or
    /// becomes `failed` when `retry_at` is `None`. The lease is released.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`](super::StoreError::LeaseLost) when the
    /// lease does not match (another dispatcher took the message over).
    pub async fn record_delivery(
        &mut self,
        id: &str,
        lease_token: &str,
        outcome: std::result::Result<(), &str>,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (state, error, sent_at) = match outcome {
            Ok(()) => (OutboxState::Sent, None, Some(ms(now))),
            Err(e) if retry_at.is_none() => (OutboxState::Failed, Some(e), None),
            Err(e) => (OutboxState::Queued, Some(e), None),
        };
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE outbox SET state = $3, last_error = COALESCE($4, last_error), sent_at = $5,
                               attempts = attempts + 1, next_attempt_at = COALESCE($6, next_attempt_at),
                               lease_token = NULL, lease_expires_at = NULL
             WHERE id = $1 AND lease_token = $2"
        )
        .bind(id)
        .bind(lease_token)
        .bind(state.as_str())
        .bind(error)
        .bind(sent_at)
        .bind(retry_at.map(ms))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(super::StoreError::LeaseLost(id.to_owned()));
        }
        Ok(())
    }
}

impl Store {
    /// Leases up to `limit` queued messages whose time has come to the
    /// caller for `lease_for`, as [`Store::claim_due_actions`] does for
    /// actions: one dispatcher at a time hands a message over, and a
    /// dispatcher that died releases its messages when the lease expires.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_for: std::time::Duration,
    ) -> Result<Vec<ClaimedMessage>> {
        let token = new_id("lse");
        let expires = ms(now).saturating_add(i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX / 2));
        let due = "state = 'queued' AND next_attempt_at <= $1 AND (lease_expires_at IS NULL OR lease_expires_at <= $1)";
        let sql = match self.backend() {
            super::Backend::Postgres => format!(
                "WITH due AS (SELECT id FROM outbox WHERE {due} ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
                 UPDATE outbox SET lease_token = $3, lease_expires_at = $4 WHERE id IN (SELECT id FROM due)
                 RETURNING {MESSAGE_COLUMNS}"
            ),
            super::Backend::Sqlite => format!(
                "UPDATE outbox SET lease_token = $3, lease_expires_at = $4
                 WHERE id IN (SELECT id FROM outbox WHERE {due} ORDER BY next_attempt_at, id LIMIT $2)
                 RETURNING {MESSAGE_COLUMNS}"
            ),
        };
        let rows: Vec<OutboxRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(&token)
            .bind(expires)
            .fetch_all(p)
            .await?);
        let mut claimed = rows
            .into_iter()
            .map(|row| Ok(ClaimedMessage { message: row.into_domain()?, lease_token: token.clone() }))
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by(|a, b| {
            (a.message.next_attempt_at, &a.message.id).cmp(&(b.message.next_attempt_at, &b.message.id))
        });
        Ok(claimed)
    }
}
