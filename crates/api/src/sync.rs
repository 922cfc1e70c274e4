//! What clients that keep a copy of an account read: every list of records
//! (users, contacts, companies, templates, sequences, enrollments) in
//! creation order with a stable cursor, narrowed with `?created_since=` and
//! `?updated_since=`, and `GET /v1/deletions`, the tombstones of deleted
//! records.
//!
//! A sync: note the time, read every list with `?updated_since=` the time
//! of the previous sync (following `next_after` to the end), then the
//! deletions since then. A record changed while the pages are read is
//! read again next time, never lost.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::json::Query;
use super::page::Page;
use stepwise_store::{Collection, SyncPage};

/// Paging and sync filters of a list of records.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
    /// Only records made at or after this time (RFC 3339).
    pub created_since: Option<DateTime<Utc>>,
    /// Only records changed (or made) at or after this time (RFC 3339).
    pub updated_since: Option<DateTime<Utc>>,
}

impl ListQuery {
    fn page(&self) -> Page {
        Page { after: self.after.clone(), limit: self.limit }
    }

    /// The store's page, or what is wrong with the query.
    pub(super) fn sync_page(&self) -> Result<SyncPage<'_>, ApiError> {
        let page = self.page();
        let limit = page.limit()?;
        let after = self.after.as_deref().map(super::page::cursor).transpose()?;
        Ok(SyncPage { after, created_since: self.created_since, updated_since: self.updated_since, limit })
    }

    /// The cursor of the page after `items`, each made at the time and with
    /// the id `at` reads.
    pub(super) fn next<T>(&self, items: &[T], at: impl Fn(&T) -> (DateTime<Utc>, &str)) -> Option<String> {
        self.page().next_at(items, |item| {
            let (made, id) = at(item);
            (made.timestamp_millis(), id)
        })
    }
}

/// Paging and sync filters of a contact's or a sequence's enrollments,
/// and the status to keep.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentsQuery {
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
    /// Only enrollments made at or after this time (RFC 3339).
    pub created_since: Option<DateTime<Utc>>,
    /// Only enrollments changed (or made) at or after this time (RFC 3339).
    pub updated_since: Option<DateTime<Utc>>,
    /// Only enrollments with this status.
    pub status: Option<stepwise_domain::engagement::EnrollmentStatus>,
}

impl EnrollmentsQuery {
    /// Its paging and sync filters.
    pub(super) fn list(&self) -> ListQuery {
        ListQuery {
            after: self.after.clone(),
            limit: self.limit,
            created_since: self.created_since,
            updated_since: self.updated_since,
        }
    }
}

/// Which tombstones.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletionsQuery {
    /// Only records of this collection.
    pub collection: Option<Collection>,
    /// Only records deleted at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// `GET /v1/deletions`: the account's deleted contacts, enrollments and
/// templates, oldest deletion first.
pub async fn deletions(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DeletionsQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = Page { after: q.after.clone(), limit: q.limit };
    let mut tx = state.engine.read().await?;
    let deletions = tx.deletions(&caller.account_id, q.collection, q.since, page.after_at()?, page.limit()?).await?;
    let next = page.next_at(&deletions, |d| (d.deleted_at.timestamp_millis(), &d.id));
    Ok(Json(json!({ "deletions": deletions, "next_after": next })))
}
