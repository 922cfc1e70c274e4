//! `POST /v1/signals`: reply, bounce, out-of-office, unsubscribe, click and
//! open (SPEC §6).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::json::Body;
use stepwise_engine::Signal;

/// Applies a signal; answers the enrollments it concerned.
pub async fn signal(
    State(state): State<AppState>,
    caller: Caller,
    Body(signal): Body<Signal>,
) -> Result<Json<Value>, ApiError> {
    let enrollments = state.engine.signal(&caller.account_id, &signal).await?;
    Ok(Json(json!({ "enrollments": enrollments })))
}
