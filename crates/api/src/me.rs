//! `GET /v1/me`: who the key belongs to; `GET /v1/notifications`: what
//! the caller was told (steps with notify on, failures to look at, sends
//! held for a person), addressed to them or to their role.

use axum::Json;
use serde_json::{Value, json};

use super::auth::Caller;
use stepwise_domain::engagement::EventKind;

/// The caller, their account and their key.
pub async fn me(caller: Caller) -> Json<Value> {
    Json(json!({ "account_id": caller.account_id, "user": caller.user, "key_id": caller.key_id }))
}

/// `GET /v1/notifications`: the caller's newest notifications.
pub async fn notifications(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    caller: Caller,
) -> Result<Json<Value>, super::error::ApiError> {
    let mut tx = state.engine.read().await?;
    let events = tx.events_of_kind(&caller.account_id, EventKind::Notification, 1_000).await?;
    let role = json!(caller.role());
    let mine: Vec<_> = events
        .into_iter()
        .filter(|e| {
            let Some(to) = e.after.as_ref() else { return false };
            to.get("user_id").and_then(Value::as_str) == Some(caller.user.id.as_str())
                || to.get("roles").and_then(Value::as_array).is_some_and(|roles| roles.contains(&role))
        })
        .take(100)
        .collect();
    Ok(Json(json!({ "notifications": mine })))
}
