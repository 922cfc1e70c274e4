//! `GET /v1/webhook-failures`: the webhook monitor, the steps whose HTTP
//! request failed for good, newest first.

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
use stepwise_store::WebhookFailureFilter;

/// Filters of the webhook monitor.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureQuery {
    /// Only failures of this sequence's steps.
    pub sequence: Option<String>,
    /// Only failures for this contact.
    pub contact: Option<String>,
    /// Only failures at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only failures before this time.
    pub until: Option<DateTime<Utc>>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// `GET /v1/webhook-failures`: the monitor, newest first.
pub async fn failures(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<FailureQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = Page { after: q.after, limit: q.limit };
    let filter = WebhookFailureFilter {
        sequence_id: q.sequence.as_deref(),
        contact_id: q.contact.as_deref(),
        since: q.since,
        until: q.until,
    };
    let mut tx = state.engine.read().await?;
    let failures = tx.webhook_failures(&caller.account_id, &filter, page.after_at()?, page.limit()?).await?;
    let next = page.next_at(&failures, |f| (f.failed_at.timestamp_millis(), &f.id));
    Ok(Json(json!({ "failures": failures, "next_after": next })))
}
