//! `GET /v1/audit`: the account's audit trail, the edits of its records
//! made through the API, each with who made it, through which key and
//! request, and the record before and after. The engine records each
//! entry in the transaction of its edit (`engine/records.rs`).

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
use stepwise_domain::engagement::{AuditTarget, Editor};
use stepwise_store::AuditFilter;

impl Caller {
    /// The caller as the editor of what this request changes.
    pub fn editor(&self) -> Editor {
        Editor { user_id: self.user.id.clone(), key_id: Some(self.key_id.clone()), request_id: super::trace::current() }
    }
}

/// Which entries.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only of this kind of record.
    pub target_type: Option<AuditTarget>,
    /// Only about this record.
    pub target_id: Option<String>,
    /// Only by this user.
    pub actor: Option<String>,
    /// Only at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// `GET /v1/audit`: oldest first.
pub async fn trail(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = Page { after: q.after.clone(), limit: q.limit };
    let filter = AuditFilter {
        target_type: q.target_type,
        target_id: q.target_id.as_deref(),
        actor: q.actor.as_deref(),
        since: q.since,
    };
    let mut tx = state.engine.read().await?;
    let entries = tx.audit_trail(&caller.account_id, &filter, page.after_at()?, page.limit()?).await?;
    let next = page.next_at(&entries, |e| (e.at.timestamp_millis(), &e.id));
    Ok(Json(json!({ "entries": entries, "next_after": next })))
}
