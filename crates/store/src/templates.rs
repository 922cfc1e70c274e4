//! An account's message templates, and the webhook monitor's entries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sync::{Collection, SyncPage, bind_page};
use super::{ReadTx, Result, Tx, fetch_in, found, json_opt, ms, new_id, on_tx, placeholders, time};

/// A message template: a subject and a body with `{{tokens}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Template {
    /// Identifier (`tpl_…`).
    pub id: String,
    /// A name unique in the account, such as `Welcome`.
    pub name: String,
    /// The subject line, with tokens.
    pub subject: String,
    /// The body, with tokens; the sender's signature is added by the step.
    pub body: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TemplateRow {
    id: String,
    name: String,
    subject: String,
    body: String,
    created_at: i64,
    updated_at: i64,
}

impl TemplateRow {
    fn into_domain(self) -> Result<Template> {
        Ok(Template {
            id: self.id,
            name: self.name,
            subject: self.subject,
            body: self.body,
            created_at: time(self.created_at)?,
            updated_at: time(self.updated_at)?,
        })
    }
}

const TEMPLATE_COLUMNS: &str = "id, name, subject, body, created_at, updated_at";

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
    /// The template `id` of `account_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn template(&mut self, account_id: &str, id: &str) -> Result<Template> {
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE account_id = $1 AND id = $2");
        let row: Option<TemplateRow> =
            on_tx!(self, |c| sqlx::query_as(&sql).bind(account_id).bind(id).fetch_optional(&mut *c).await?);
        found(row, "template", id)?.into_domain()
    }

    /// The templates of `account_id` with these ids, in no particular order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn templates_in(&mut self, account_id: &str, ids: &[String]) -> Result<Vec<Template>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE account_id = $1 AND id IN ({})",
            placeholders(2, ids.len())
        );
        let rows: Vec<TemplateRow> = fetch_in!(self, sql, [account_id.to_owned()], ids);
        rows.into_iter().map(TemplateRow::into_domain).collect()
    }

    /// A page of an account's templates, in creation order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn templates(&mut self, account_id: &str, page: &SyncPage<'_>) -> Result<Vec<Template>> {
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE account_id = $1 AND {}", page.clause("", 2));
        let rows: Vec<TemplateRow> =
            on_tx!(self, |c| bind_page!(sqlx::query_as(&sql).bind(account_id), page).fetch_all(&mut *c).await?);
        rows.into_iter().map(TemplateRow::into_domain).collect()
    }

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
    /// Saves a new template; the host gives its id and times.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the name is taken.
    pub async fn create_template(
        &mut self,
        account_id: &str,
        name: &str,
        subject: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Template> {
        let id = new_id("tpl");
        on_tx!(self, |c| sqlx::query(
            "INSERT INTO templates (id, account_id, name, subject, body, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)"
        )
        .bind(&id)
        .bind(account_id)
        .bind(name)
        .bind(subject)
        .bind(body)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected());
        let (name, subject, body) = (name.to_owned(), subject.to_owned(), body.to_owned());
        Ok(Template { id, name, subject, body, created_at: now, updated_at: now })
    }

    /// Replaces a template's name, subject and body.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound), or
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the name is taken.
    pub async fn update_template(&mut self, account_id: &str, template: &Template, now: DateTime<Utc>) -> Result<()> {
        let done = on_tx!(self, |c| {
            sqlx::query(
            "UPDATE templates SET name = $3, subject = $4, body = $5, updated_at = $6 WHERE account_id = $1 AND id = $2"
        )
        .bind(account_id)
        .bind(&template.id)
        .bind(&template.name)
        .bind(&template.subject)
        .bind(&template.body)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected()
        });
        found((done > 0).then_some(()), "template", &template.id)
    }

    /// Makes due now the account's actions held for legacy merge fields,
    /// after a template changed: they are checked again at once. Returns
    /// how many.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn release_legacy_merge_holds(&mut self, account_id: &str, now: DateTime<Utc>) -> Result<u64> {
        Ok(on_tx!(self, |c| sqlx::query(
            "UPDATE actions SET due_at = $2, updated_at = $2
             WHERE is_current AND status = 'future' AND deferral_reason = 'legacy_merge_syntax' AND due_at > $2
               AND enrollment_id IN (SELECT id FROM enrollments WHERE account_id = $1)"
        )
        .bind(account_id)
        .bind(ms(now))
        .execute(&mut *c)
        .await?
        .rows_affected()))
    }

    /// Deletes a template.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`](super::StoreError::NotFound).
    pub async fn delete_template(&mut self, account_id: &str, id: &str, now: DateTime<Utc>) -> Result<()> {
        let done = on_tx!(self, |c| sqlx::query("DELETE FROM templates WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(id)
            .execute(&mut *c)
            .await?
            .rows_affected());
        found((done > 0).then_some(()), "template", id)?;
        self.record_deletions(account_id, Collection::Templates, &[id.to_owned()], now).await
    }

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
