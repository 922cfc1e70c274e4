//! `GET /v1/outbox`: the account's queued, sent and failed messages, for
//! admins to see what went out, what waits for a transport, and why a
//! message failed.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::json::Query;
use super::page::Page;
use stepwise_domain::engagement::{OutboxChannel, OutboxState};
use stepwise_store::MessageFilter;

/// Filters and paging of the outbox, oldest message first.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// Only messages in this state.
    pub state: Option<OutboxState>,
    /// Only messages of this channel.
    pub channel: Option<OutboxChannel>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// `GET /v1/outbox`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<OutboxQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = Page { after: query.after, limit: query.limit };
    let filter = MessageFilter { state: query.state, channel: query.channel };
    let mut tx = state.engine.read().await?;
    let messages = tx.messages_page(&caller.account_id, filter, page.after_at()?, page.limit()?).await?;
    let next = page.next_at(&messages, |m| (m.created_at.timestamp_millis(), &m.id));
    Ok(Json(json!({ "messages": messages, "next_after": next })))
}
