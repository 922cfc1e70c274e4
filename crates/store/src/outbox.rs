//! The outbox: messages written in the transaction that completes their
//! action and delivered later by a dispatcher, each at most once per
//! idempotency key.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use sqlx::QueryBuilder;

use super::{MAX_BINDS, ReadTx, Result, Store, Tx, found, ms, new_id, on_pool, on_tx, time, time_opt};
use stepwise_domain::engagement::{ClaimedMessage, OutboxChannel, OutboxMessage, OutboxState};

/// What [`Tx::enqueue_message`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxMessage {
    /// The owning account.
    pub account_id: String,
    /// The action that produced it.
    pub action_id: Option<String>,
    /// Email or SMS.
    pub channel: OutboxChannel,
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
    handover_started_at: Option<i64>,
    provider_id: Option<String>,
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
            handover_started_at: time_opt(self.handover_started_at)?,
            provider_id: self.provider_id,
        })
    }
}

const MESSAGE_COLUMNS: &str = "id, account_id, action_id, channel, payload, idempotency_key, state, attempts,
    last_error, created_at, sent_at, next_attempt_at, handover_started_at, provider_id";

const SELECT_MESSAGE: &str = "
    SELECT id, account_id, action_id, channel, payload, idempotency_key, state, attempts, last_error, created_at,
           sent_at, next_attempt_at, handover_started_at, provider_id
    FROM outbox";

/// What became of a message a dispatcher handed over, for
/// [`Tx::finish_delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome<'a> {
    /// Delivered, with the provider's id when it gave one.
    Sent {
        /// The provider's id of the message.
        provider_id: Option<&'a str>,
    },
    /// Failed for now: queued again, to be tried at `retry_at`.
    Retry {
        /// Why, kept as the message's last error.
        error: &'a str,
        /// When it may be tried again.
        retry_at: DateTime<Utc>,
    },
    /// Given up: the message becomes `failed`.
    Failed {
        /// Why, kept as the message's last error.
        error: &'a str,
    },
}

/// Which messages of an account [`ReadTx::messages_page`] lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only messages in this state.
    pub state: Option<OutboxState>,
    /// Only messages of this channel.
    pub channel: Option<OutboxChannel>,
}

impl ReadTx {
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

    /// A page of the account's messages, oldest first (by creation, then
    /// id), after the position `after` (milliseconds and id of the last
    /// message of the previous page).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn messages_page(
        &mut self,
        account_id: &str,
        filter: MessageFilter,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>> {
        let sql = format!(
            "{SELECT_MESSAGE}
             WHERE account_id = $1 AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR channel = $3)
               AND (created_at > $4 OR (created_at = $4 AND id > $5))
             ORDER BY created_at, id LIMIT $6"
        );
        let (at, last) = after.unwrap_or((i64::MIN, ""));
        let rows: Vec<OutboxRow> = on_tx!(self, |c| sqlx::query_as(&sql)
            .bind(account_id)
            .bind(filter.state.map(OutboxState::as_str))
            .bind(filter.channel.map(OutboxChannel::as_str))
            .bind(at)
            .bind(last)
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(OutboxRow::into_domain).collect()
    }
}

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

    /// Queues a batch of messages, a few thousand rows a statement. A key
    /// already queued (by an earlier attempt of the same action) is left
    /// as it is: the message exists and must not be sent twice. Returns
    /// how many were queued.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when the account
    /// or action does not exist.
    pub async fn enqueue_messages(&mut self, batch: &[NewOutboxMessage], now: DateTime<Utc>) -> Result<u64> {
        const COLUMNS: usize = 8;
        let payloads = batch.iter().map(|m| serde_json::to_string(&m.payload)).collect::<Result<Vec<_>, _>>()?;
        let mut queued = 0;
        for (chunk, payloads) in batch.chunks(MAX_BINDS / COLUMNS).zip(payloads.chunks(MAX_BINDS / COLUMNS)) {
            queued += on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "INSERT INTO outbox (id, account_id, action_id, channel, payload, idempotency_key, state, attempts,
                                         created_at, next_attempt_at) ",
                );
                q.push_values(chunk.iter().zip(payloads), |mut row, (m, payload)| {
                    row.push_bind(new_id("msg"))
                        .push_bind(&m.account_id)
                        .push_bind(&m.action_id)
                        .push_bind(m.channel.as_str())
                        .push_bind(payload)
                        .push_bind(&m.idempotency_key)
                        .push("'queued', 0")
                        .push_bind(ms(now))
                        .push_bind(ms(now));
                });
                q.push(" ON CONFLICT (idempotency_key) DO NOTHING");
                q.build().execute(&mut *c).await?.rows_affected()
            });
        }
        Ok(queued)
    }

    /// Records a delivery attempt of a claimed message: `Ok` marks it sent;
    /// an error is kept and the message is tried again at `retry_at`, or
    /// becomes `failed` when `retry_at` is `None`. The lease is released.
    /// [`Tx::finish_delivery`] says the same with the provider's id.
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
        let outcome = match (outcome, retry_at) {
            (Ok(()), _) => DeliveryOutcome::Sent { provider_id: None },
            (Err(error), Some(retry_at)) => DeliveryOutcome::Retry { error, retry_at },
            (Err(error), None) => DeliveryOutcome::Failed { error },
        };
        self.finish_delivery(id, lease_token, outcome, now).await
    }

    /// Records what became of a claimed message's handover, counts the
    /// attempt, clears the handover mark and releases the lease.
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`](super::StoreError::LeaseLost) when the
    /// lease does not match (another dispatcher took the message over).
    pub async fn finish_delivery(
        &mut self,
        id: &str,
        lease_token: &str,
        outcome: DeliveryOutcome<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (state, error, sent_at, provider_id, retry_at) = match outcome {
            DeliveryOutcome::Sent { provider_id } => (OutboxState::Sent, None, Some(ms(now)), provider_id, None),
            DeliveryOutcome::Retry { error, retry_at } => {
                (OutboxState::Queued, Some(error), None, None, Some(ms(retry_at)))
            }
            DeliveryOutcome::Failed { error } => (OutboxState::Failed, Some(error), None, None, None),
        };
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE outbox SET state = $3, last_error = COALESCE($4, last_error), sent_at = $5,
                               provider_id = COALESCE($6, provider_id), attempts = attempts + 1,
                               next_attempt_at = COALESCE($7, next_attempt_at), handover_started_at = NULL,
                               lease_token = NULL, lease_expires_at = NULL
             WHERE id = $1 AND lease_token = $2"
        )
        .bind(id)
        .bind(lease_token)
        .bind(state.as_str())
        .bind(error)
        .bind(sent_at)
        .bind(provider_id)
        .bind(retry_at)
        .execute(&mut *c)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(super::StoreError::LeaseLost(id.to_owned()));
        }
        Ok(())
    }

    /// Marks a claimed message as being handed to its transport, and
    /// renews its lease until `lease_until`. Committed before the transport
    /// is called: a message found with the mark after its lease expired was
    /// handed over by a host that stopped before recording what happened
    /// ([`OutboxMessage::handover_started_at`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::LeaseLost`](super::StoreError::LeaseLost) when the
    /// lease does not match or has expired by `now`: the message must not
    /// be handed over.
    pub async fn begin_handover(
        &mut self,
        id: &str,
        lease_token: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE outbox SET handover_started_at = $3, lease_expires_at = $4
             WHERE id = $1 AND lease_token = $2 AND lease_expires_at > $3 AND state = 'queued'"
        )
        .bind(id)
        .bind(lease_token)
        .bind(ms(now))
        .bind(ms(lease_until))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(super::StoreError::LeaseLost(id.to_owned()));
        }
        Ok(())
    }
}

impl Tx {
    /// [`Tx::begin_handover`] for several claimed messages at once, each
    /// `(id, lease)`: one statement a chunk. Returns the ids marked; one
    /// missing lost its lease and must not be handed over.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn begin_handovers(
        &mut self,
        batch: &[(&str, &str)],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<HashSet<String>> {
        let mut marked = HashSet::with_capacity(batch.len());
        for chunk in batch.chunks(MAX_BINDS / 2) {
            let ids: Vec<String> = on_tx!(self, |c| {
                let mut q = QueryBuilder::new("UPDATE outbox SET handover_started_at = ");
                q.push_bind(ms(now)).push(", lease_expires_at = ").push_bind(ms(lease_until)).push(" FROM (");
                q.push_values(chunk, |mut row, (id, lease)| {
                    row.push_bind(*id).push_bind(*lease);
                });
                q.push(
                    ") AS v WHERE outbox.id = v.column1 AND outbox.lease_token = v.column2
                       AND outbox.state = 'queued' AND outbox.lease_expires_at > ",
                );
                q.push_bind(ms(now)).push(" RETURNING outbox.id");
                q.build_query_scalar().fetch_all(&mut *c).await?
            });
            marked.extend(ids);
        }
        Ok(marked)
    }

    /// Records several messages sent, each `(id, lease, provider id)`, as
    /// [`Tx::finish_delivery`] does one: one statement a chunk. Returns the
    /// ids recorded; one missing lost its lease.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn finish_sent(
        &mut self,
        batch: &[(&str, &str, Option<&str>)],
        now: DateTime<Utc>,
    ) -> Result<HashSet<String>> {
        let mut recorded = HashSet::with_capacity(batch.len());
        for chunk in batch.chunks(MAX_BINDS / 3) {
            let ids: Vec<String> = on_tx!(self, |c| {
                let mut q = QueryBuilder::new("UPDATE outbox SET state = 'sent', sent_at = ");
                q.push_bind(ms(now)).push(
                    ", provider_id = COALESCE(v.column3, outbox.provider_id), attempts = outbox.attempts + 1,
                       handover_started_at = NULL, lease_token = NULL, lease_expires_at = NULL FROM (",
                );
                q.push_values(chunk, |mut row, (id, lease, provider)| {
                    row.push_bind(*id).push_bind(*lease).push_bind(*provider);
                });
                q.push(") AS v WHERE outbox.id = v.column1 AND outbox.lease_token = v.column2 RETURNING outbox.id");
                q.build_query_scalar().fetch_all(&mut *c).await?
            });
            recorded.extend(ids);
        }
        Ok(recorded)
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
        self.claim_messages_of(OutboxChannel::ALL, now, limit, lease_for).await
    }

    /// [`Store::claim_messages`] of the given channels only: messages of a
    /// channel without a transport stay queued, unleased.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn claim_messages_of(
        &self,
        channels: &[OutboxChannel],
        now: DateTime<Utc>,
        limit: u32,
        lease_for: std::time::Duration,
    ) -> Result<Vec<ClaimedMessage>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let token = new_id("lse");
        let expires = ms(now).saturating_add(i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX / 2));
        // The names are the enum's own constants, never input.
        let channels = channels.iter().map(|c| format!("'{}'", c.as_str())).collect::<Vec<_>>().join(", ");
        let due = format!(
            "state = 'queued' AND next_attempt_at <= $1 AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
             AND channel IN ({channels})"
        );
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
        // On SQLite under the writer lock, as the claim of actions is.
        let mut tx = self.begin().await?;
        let rows: Vec<OutboxRow> = on_tx!(tx, |c| sqlx::query_as(&sql)
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(&token)
            .bind(expires)
            .fetch_all(&mut *c)
            .await?);
        tx.commit().await?;
        let mut claimed = rows
            .into_iter()
            .map(|row| Ok(ClaimedMessage { message: row.into_domain()?, lease_token: token.clone() }))
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by(|a, b| {
            (a.message.next_attempt_at, &a.message.id).cmp(&(b.message.next_attempt_at, &b.message.id))
        });
        Ok(claimed)
    }

    /// Extends the lease of message `id` held under `lease` to `until`.
    /// Returns whether the lease was still the caller's.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn renew_message_lease(&self, id: &str, lease: &str, until: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let renewed = on_tx!(tx, |c| sqlx::query(
            "UPDATE outbox SET lease_expires_at = $3 WHERE id = $1 AND lease_token = $2 AND state = 'queued'"
        )
        .bind(id)
        .bind(lease)
        .bind(ms(until))
        .execute(&mut *c)
        .await?
        .rows_affected());
        tx.commit().await?;
        Ok(renewed == 1)
    }

    /// Gives back the messages of a claim that were not handed over (a
    /// dispatcher stopping between messages), so another can take them at
    /// once. Returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn release_messages(&self, lease_token: &str) -> Result<u64> {
        Ok(on_pool!(self, |p| sqlx::query(
            "UPDATE outbox SET lease_token = NULL, lease_expires_at = NULL
             WHERE lease_token = $1 AND handover_started_at IS NULL"
        )
        .bind(lease_token)
        .execute(p)
        .await?
        .rows_affected()))
    }
}
