//! The audit trail: every edit of an account's records, with who made it,
//! through which key and request, and the record before and after. An
//! entry is written in the transaction of the edit it describes, so there
//! is never an edit without its entry, nor an entry without its edit.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use sqlx::QueryBuilder;

use super::{MAX_BINDS, ReadTx, Result, Tx, changes_as_text, json_opt, ms, new_id, on_tx, time};
use stepwise_domain::engagement::{AuditAction, AuditEntry, AuditTarget, Editor};

/// What [`Tx::audit`] records.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit<'a> {
    /// What was done.
    pub action: AuditAction,
    /// The record changed.
    pub target_id: &'a str,
    /// The record before.
    pub before: Option<Value>,
    /// The record after.
    pub after: Option<Value>,
}

/// `record` as JSON. The records audited are plain data that always
/// serialize; should one not, the entry says so instead of failing the edit.
fn snapshot(record: &impl Serialize) -> Value {
    serde_json::to_value(record).unwrap_or_else(|e| Value::String(format!("(not serializable: {e})")))
}

impl<'a> NewAudit<'a> {
    /// A record made.
    pub fn created(action: AuditAction, target_id: &'a str, after: &impl Serialize) -> Self {
        NewAudit { action, target_id, before: None, after: Some(snapshot(after)) }
    }

    /// A record changed from `before` to `after`.
    pub fn changed(action: AuditAction, target_id: &'a str, before: &impl Serialize, after: &impl Serialize) -> Self {
        NewAudit { action, target_id, before: Some(snapshot(before)), after: Some(snapshot(after)) }
    }

    /// A record deleted.
    pub fn deleted(action: AuditAction, target_id: &'a str, before: &impl Serialize) -> Self {
        NewAudit { action, target_id, before: Some(snapshot(before)), after: None }
    }
}

/// Which entries [`ReadTx::audit_trail`] lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditFilter<'a> {
    /// Only of this kind of record.
    pub target_type: Option<AuditTarget>,
    /// Only about this record.
    pub target_id: Option<&'a str>,
    /// Only by this user.
    pub actor: Option<&'a str>,
    /// Only at or after this time.
    pub since: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    action: String,
    target_type: String,
    target_id: String,
    actor: String,
    key_id: Option<String>,
    request_id: Option<String>,
    before: Option<String>,
    after: Option<String>,
    at: i64,
}

impl AuditRow {
    fn into_domain(self) -> Result<AuditEntry> {
        Ok(AuditEntry {
            id: self.id,
            action: self.action.parse()?,
            target_type: self.target_type.parse()?,
            target_id: self.target_id,
            actor: self.actor,
            key_id: self.key_id,
            request_id: self.request_id,
            before: json_opt(self.before)?,
            after: json_opt(self.after)?,
            at: time(self.at)?,
        })
    }
}

impl ReadTx {
    /// The account's audit entries that `filter` lets through, oldest
    /// first, after `after` (the time in milliseconds and the id of the
    /// previous page's last), at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`](super::StoreError::Corrupt) on an unreadable row.
    pub async fn audit_trail(
        &mut self,
        account_id: &str,
        filter: &AuditFilter<'_>,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let (at, last) = after.unwrap_or((i64::MIN, ""));
        let rows: Vec<AuditRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT id, action, target_type, target_id, actor, key_id, request_id, before, after, at FROM audit
             WHERE account_id = $1 AND ($2 = '' OR target_type = $2) AND ($3 = '' OR target_id = $3)
               AND ($4 = '' OR actor = $4) AND at >= $5 AND (at > $6 OR (at = $6 AND id > $7))
             ORDER BY at, id LIMIT $8"
        )
        .bind(account_id)
        .bind(filter.target_type.map_or("", AuditTarget::as_str))
        .bind(filter.target_id.unwrap_or(""))
        .bind(filter.actor.unwrap_or(""))
        .bind(filter.since.map_or(i64::MIN, ms))
        .bind(at)
        .bind(last)
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter().map(AuditRow::into_domain).collect()
    }
}

impl Tx {
    /// Records `entry`, made by `editor` in `account_id` at `at`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`](super::StoreError::Invalid) when the account
    /// does not exist.
    pub async fn audit(
        &mut self,
        account_id: &str,
        editor: &Editor,
        entry: NewAudit<'_>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.audit_all(account_id, editor, std::slice::from_ref(&entry), at).await
    }

    /// [`Tx::audit`] for a batch of entries by one editor, a few thousand
    /// rows a statement.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`](super::StoreError::Database).
    pub async fn audit_all(
        &mut self,
        account_id: &str,
        editor: &Editor,
        entries: &[NewAudit<'_>],
        at: DateTime<Utc>,
    ) -> Result<()> {
        const COLUMNS: usize = 11;
        let changes = changes_as_text(entries.iter().map(|e| (&e.before, &e.after)))?;
        for (entries, changes) in entries.chunks(MAX_BINDS / COLUMNS).zip(changes.chunks(MAX_BINDS / COLUMNS)) {
            on_tx!(self, |c| {
                let mut q = QueryBuilder::new(
                    "INSERT INTO audit (id, account_id, action, target_type, target_id, actor, key_id, request_id,
                                        before, after, at) ",
                );
                q.push_values(entries.iter().zip(changes), |mut row, (entry, (before, after))| {
                    row.push_bind(new_id("aud"))
                        .push_bind(account_id)
                        .push_bind(entry.action.as_str())
                        .push_bind(entry.action.target().as_str())
                        .push_bind(entry.target_id)
                        .push_bind(&editor.user_id)
                        .push_bind(&editor.key_id)
                        .push_bind(&editor.request_id)
                        .push_bind(before)
                        .push_bind(after)
                        .push_bind(ms(at));
                });
                q.build().execute(&mut *c).await?.rows_affected()
            });
        }
        Ok(())
    }
}
