//! `GET /v1/me`: who the key belongs to.

use axum::Json;
use serde_json::{Value, json};

use super::auth::Caller;

/// The caller, their account and their key.
pub async fn me(caller: Caller) -> Json<Value> {
    Json(json!({ "account_id": caller.account_id, "user": caller.user, "key_id": caller.key_id }))
}
