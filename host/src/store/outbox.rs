//! The outbox: messages written in the transaction that completes their
//! action and delivered later by a dispatcher, each at most once per
//! idempotency key.

use chrono::{DateTime, Utc};

use super::{Result, Tx, found, ms, new_id, on_tx, time, time_opt};
use crate::domain::{Channel, OutboxMessage, OutboxState};

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
        })
    }
}

const SELECT_MESSAGE: &str = "
    SELECT id, account_id, action_id, channel, payload, idempotency_key, state, attempts, last_error, created_at,
           sent_at
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
                                 created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7)"
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

    /// Up to `limit` queued messages, oldest first, for the dispatcher.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn queued_messages(&mut self, limit: u32) -> Result<Vec<OutboxMessage>> {
        let sql = format!("{SELECT_MESSAGE} WHERE state = 'queued' ORDER BY created_at, id LIMIT $1");
        let rows: Vec<OutboxRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(i64::from(limit)).fetch_all(&mut *c).await?);
        rows.into_iter().map(OutboxRow::into_domain).collect()
    }

    /// Records a delivery attempt: `Ok` marks it sent; an error is kept and
    /// the message stays queued, or becomes `failed` when `give_up`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn record_delivery(
        &mut self,
        id: &str,
        outcome: std::result::Result<(), &str>,
        give_up: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (state, error, sent_at) = match outcome {
            Ok(()) => (OutboxState::Sent, None, Some(ms(now))),
            Err(e) if give_up => (OutboxState::Failed, Some(e), None),
            Err(e) => (OutboxState::Queued, Some(e), None),
        };
        let done = on_tx!(self, |c| sqlx::query(
            "UPDATE outbox SET state = $2, last_error = COALESCE($3, last_error), sent_at = $4,
                               attempts = attempts + 1
             WHERE id = $1"
        )
        .bind(id)
        .bind(state.as_str())
        .bind(error)
        .bind(sent_at)
        .execute(&mut *c)
        .await?
        .rows_affected());
        found((done > 0).then_some(()), "message", id)
    }
}
