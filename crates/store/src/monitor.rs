//! The webhook monitor's entries: a step's HTTP request that failed for
//! good, with the request (secrets masked) and the response or error.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ReadTx, Result, Tx, json_opt, ms, on_tx, time};

/// An entry of the webhook monitor: a step whose HTTP request failed for
/// good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookFailure {
    /// Identifier (`whf_…`).
    pub id: String,
    /// The sequence of the step.
    pub sequence_id: String,
    /// The enrollment, while it exists.
    pub enrollment_id: Option<String>,
    /// The action, while it exists.
    pub action_id: Option<String>,
    /// The contact.
    pub contact_id: String,
    /// The step's plugin.
    pub plugin_id: String,
    /// The step's position.
    pub step: i64,
    /// How many attempts were made.
    pub attempts: i64,
    /// What went wrong, in words.
    pub message: String,
    /// The request as sent: method, URL and headers, secrets masked.
    pub request: serde_json::Value,
    /// The response, when one came: status and the start of the body.
    pub response: Option<serde_json::Value>,
    /// The error, when no response came.
    pub error: Option<serde_json::Value>,
    /// When the step failed.
    pub failed_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct WebhookFailureRow {
    id: String,
    sequence_id: String,
    enrollment_id: Option<String>,
    action_id: Option<String>,
    contact_id: String,
    plugin_id: String,
    step: i64,
    attempts: i64,
    message: String,
    request: String,
    response: Option<String>,
    error: Option<String>,
    failed_at: i64,
}

impl WebhookFailureRow {
    fn into_domain(self) -> Result<WebhookFailure> {
        Ok(WebhookFailure {
            id: self.id,
            sequence_id: self.sequence_id,
            enrollment_id: self.enrollment_id,
            action_id: self.action_id,
            contact_id: self.contact_id,
            plugin_id: self.plugin_id,
            step: self.step,
            attempts: self.attempts,
            message: self.message,
            request: serde_json::from_str(&self.request)?,
            response: json_opt(self.response)?,
            error: json_opt(self.error)?,
            failed_at: time(self.failed_at)?,
        })
    }
}

/// Which monitor entries to list, newest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookFailureFilter<'a> {
    /// Only of this sequence.
    pub sequence_id: Option<&'a str>,
    /// Only of this contact.
    pub contact_id: Option<&'a str>,
    /// Only failed at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only failed before this time.
    pub until: Option<DateTime<Utc>>,
}

impl ReadTx {
    /// A page of an account's monitor entries that pass `filter`, newest
    /// first, after the entry at `after` (its time in milliseconds and id).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn webhook_failures(
        &mut self,
        account_id: &str,
        filter: &WebhookFailureFilter<'_>,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<WebhookFailure>> {
        let (at, last) = after.unwrap_or((i64::MAX, ""));
        let rows: Vec<WebhookFailureRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id, sequence_id, enrollment_id, action_id, contact_id, plugin_id, step, attempts, message,
                    request, response, error, failed_at
             FROM webhook_failures
             WHERE account_id = $1
               AND ($2 = '' OR sequence_id = $2)
               AND ($3 = '' OR contact_id = $3)
               AND failed_at >= $4 AND failed_at < $5
               AND ($6 = 0 OR failed_at < $7 OR (failed_at = $7 AND id < $8))
             ORDER BY failed_at DESC, id DESC LIMIT $9"
        )
        .bind(account_id)
        .bind(filter.sequence_id.unwrap_or(""))
        .bind(filter.contact_id.unwrap_or(""))
        .bind(filter.since.map_or(i64::MIN, ms))
        .bind(filter.until.map_or(i64::MAX, ms))
        .bind(i64::from(after.is_some()))
        .bind(at)
        .bind(last)
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter().map(WebhookFailureRow::into_domain).collect()
    }
}

impl Tx {
    /// Records a monitor entry for `account_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when a referenced record is missing.
    pub async fn record_webhook_failure(&mut self, account_id: &str, failure: &WebhookFailure) -> Result<()> {
        let request = serde_json::to_string(&failure.request)?;
        let response = failure.response.as_ref().map(serde_json::to_string).transpose()?;
        let error = failure.error.as_ref().map(serde_json::to_string).transpose()?;
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO webhook_failures (id, account_id, sequence_id, enrollment_id, action_id, contact_id,
                                           plugin_id, step, attempts, message, request, response, error, failed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        )
        .bind(&failure.id)
        .bind(account_id)
        .bind(&failure.sequence_id)
        .bind(&failure.enrollment_id)
        .bind(&failure.action_id)
        .bind(&failure.contact_id)
        .bind(&failure.plugin_id)
        .bind(failure.step)
        .bind(failure.attempts)
        .bind(&failure.message)
        .bind(&request)
        .bind(&response)
        .bind(&error)
        .bind(ms(failure.failed_at))
        .execute(&mut *c)
        .await?
        .rows_affected());
        Ok(())
    }
}
