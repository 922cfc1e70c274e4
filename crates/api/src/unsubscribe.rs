//! `GET /u/{token}` and `POST /u/{token}`: the signed unsubscribe link that
//! emails carry (SPEC §6), for people rather than API clients: no key, an
//! HTML answer. `POST` serves mail clients' one-click unsubscribe
//! (RFC 8058).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;

use super::AppState;
use super::json::Path;
use stepwise_engine::EngineError;

const PAGE: &str = "<!doctype html><meta charset=utf-8><title>Unsubscribe</title><p>";

/// Unsubscribes the contact the token names.
pub async fn unsubscribe(State(state): State<AppState>, Path(token): Path<String>) -> (StatusCode, Html<String>) {
    match state.engine.unsubscribe(&token).await {
        Ok(()) => {
            (StatusCode::OK, Html(format!("{PAGE}You are unsubscribed: you will get no more email from this sender.")))
        }
        Err(EngineError::Invalid(_) | EngineError::NotFound { .. }) => {
            (StatusCode::NOT_FOUND, Html(format!("{PAGE}This unsubscribe link is not valid.")))
        }
        Err(error) => {
            tracing::error!(%error, "unsubscribe failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(format!("{PAGE}Something went wrong; please try the link again later.")),
            )
        }
    }
}
