//! An account's message templates, and the webhook monitor's entries.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sync::{Collection, SyncPage, bind_page};

use super::{ReadTx, Result, Tx, fetch_of_account, found, ms, new_id, on_tx, time};

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
        let select = format!("SELECT {TEMPLATE_COLUMNS} FROM templates");
        let rows: Vec<TemplateRow> = fetch_of_account!(self, select, "account_id" = account_id, "id" in ids);
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
}
