//! What clients that sync read: pages of a list in creation order (then
//! id) after a position, narrowed to records made or changed since a time,
//! and the tombstones of deleted records.

use chrono::{DateTime, Utc};

use super::{ReadTx, Result, StoreError, Tx, ms, on_tx, time};

/// A page of a list in creation order: the records after `after` (the
/// creation time in milliseconds and the id of the previous page's last),
/// made at or after `created_since` and changed at or after
/// `updated_since`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPage<'a> {
    /// Where the previous page ended.
    pub after: Option<(i64, &'a str)>,
    /// Only records made at or after this.
    pub created_since: Option<DateTime<Utc>>,
    /// Only records changed at or after this.
    pub updated_since: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: u32,
}

impl<'a> SyncPage<'a> {
    /// The first `limit` records, whenever made.
    pub fn first(limit: u32) -> SyncPage<'a> {
        SyncPage { after: None, created_since: None, updated_since: None, limit }
    }

    /// The condition, order and limit of the page over the columns
    /// `created_at`, `updated_at` and `id` of `alias` (`""` or `"c."`), with
    /// the placeholders `$first` to `$first + 4`, which [`SyncPage::binds`]
    /// fills in that order.
    pub(super) fn clause(&self, alias: &str, first: usize) -> String {
        let [at, id, created, updated, limit] = std::array::from_fn::<usize, 5, _>(|i| first + i);
        format!(
            "({alias}created_at > ${at} OR ({alias}created_at = ${at} AND {alias}id > ${id}))
               AND {alias}created_at >= ${created} AND {alias}updated_at >= ${updated}
             ORDER BY {alias}created_at, {alias}id LIMIT ${limit}"
        )
    }

    /// The values of [`SyncPage::clause`]'s placeholders.
    pub(super) fn binds(&self) -> (i64, &'a str, i64, i64, i64) {
        let (at, id) = self.after.unwrap_or((i64::MIN, ""));
        (
            at,
            id,
            self.created_since.map_or(i64::MIN, ms),
            self.updated_since.map_or(i64::MIN, ms),
            i64::from(self.limit),
        )
    }
}

/// Binds the placeholders of a [`SyncPage::clause`] to a query.
macro_rules! bind_page {
    ($query:expr, $page:expr) => {{
        let (at, id, created, updated, limit) = $page.binds();
        $query.bind(at).bind(id).bind(created).bind(updated).bind(limit)
    }};
}
pub(super) use bind_page;

/// The collections whose deleted records leave a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    /// Contacts (`DELETE /v1/contacts/{id}`).
    Contacts,
    /// Enrollments, removed or gone with their contact.
    Enrollments,
    /// Message templates.
    Templates,
}

impl Collection {
    fn as_str(self) -> &'static str {
        match self {
            Collection::Contacts => "contacts",
            Collection::Enrollments => "enrollments",
            Collection::Templates => "templates",
        }
    }
}

impl std::str::FromStr for Collection {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "contacts" => Ok(Collection::Contacts),
            "enrollments" => Ok(Collection::Enrollments),
            "templates" => Ok(Collection::Templates),
            other => Err(StoreError::Corrupt(format!("unknown collection `{other}`"))),
        }
    }
}

/// A deleted record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Deletion {
    /// What it was.
    pub collection: Collection,
    /// Its id.
    pub id: String,
    /// When it was deleted.
    pub deleted_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct DeletionRow {
    collection: String,
    record_id: String,
    deleted_at: i64,
}

impl ReadTx {
    /// The account's tombstones deleted at or after `since` (of one
    /// collection, or all), oldest first, after `after` (the deletion time in
    /// milliseconds and the id of the previous page's last).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] on an unreadable row.
    pub async fn deletions(
        &mut self,
        account_id: &str,
        collection: Option<Collection>,
        since: Option<DateTime<Utc>>,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Deletion>> {
        let (at, last) = after.unwrap_or((i64::MIN, ""));
        let rows: Vec<DeletionRow> = on_tx!(self, |c| sqlx::query_as(
            "SELECT collection, record_id, deleted_at FROM deletions
             WHERE account_id = $1 AND ($2 = '' OR collection = $2) AND deleted_at >= $3
               AND (deleted_at > $4 OR (deleted_at = $4 AND record_id > $5))
             ORDER BY deleted_at, record_id LIMIT $6"
        )
        .bind(account_id)
        .bind(collection.map_or("", Collection::as_str))
        .bind(since.map_or(i64::MIN, ms))
        .bind(at)
        .bind(last)
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter()
            .map(|r| {
                Ok(Deletion { collection: r.collection.parse()?, id: r.record_id, deleted_at: time(r.deleted_at)? })
            })
            .collect()
    }
}

impl Tx {
    /// Leaves a tombstone for each of `ids` in `collection`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub(super) async fn record_deletions(
        &mut self,
        account_id: &str,
        collection: Collection,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<()> {
        for id in ids {
            on_tx!(self, |c| sqlx::query(
                "INSERT INTO deletions (account_id, collection, record_id, deleted_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account_id, collection, record_id) DO UPDATE SET deleted_at = $4"
            )
            .bind(account_id)
            .bind(collection.as_str())
            .bind(id)
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected());
        }
        Ok(())
    }
}
