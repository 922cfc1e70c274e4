//! `Idempotency-Key` on POST requests: the first answer under a key is kept
//! and a replay gets it again (with `Idempotent-Replayed: true`) instead of
//! acting twice; the same key with a different request is a 422, and with a
//! request still being answered a 409 with `Retry-After`. A request runs to
//! completion even when its client gives up, so a retry after a client's
//! time-out replays the whole answer, never half of one. Keys expire a day
//! after their first use; a 5xx answer releases its key.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use stepwise_store::Idempotent;

/// The longest key accepted.
const MAX_KEY: usize = 255;

/// The middleware of an operation whose bodies are at most `limit` bytes.
/// It runs after authentication and the role check (which leave the
/// [`Caller`] in the request), so a key that authenticates nobody, or a
/// role that may not call the operation, never reads a body, writes a row
/// or gets a stored answer.
pub(super) async fn idempotency(state: AppState, limit: usize, request: Request, next: Next) -> Response {
    let Some(key) = request.headers().get("idempotency-key").cloned() else { return next.run(request).await };
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return ApiError::Internal("idempotency ran before authentication".into()).into_response();
    };
    match keyed(state, &caller, limit, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn keyed(
    state: AppState,
    caller: &Caller,
    limit: usize,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
        .ok_or_else(|| {
            ApiError::BadRequest(format!("Idempotency-Key must be 1 to {MAX_KEY} visible characters")).into_response()
        })?
        .to_owned();
    // Keys are scoped to the API key that sent them.
    let scope = hex::encode(Sha256::digest(caller.key_id.as_bytes()));
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ApiError::TooLarge(format!("the body is over this route's limit of {limit} bytes")).into_response()
    })?;
    let fingerprint = hex::encode(
        Sha256::new()
            .chain_update(parts.method.as_str())
            .chain_update(parts.uri.path())
            .chain_update(parts.uri.query().unwrap_or(""))
            .chain_update(&bytes)
            .finalize(),
    );
    let begun = state
        .engine
        .idempotency_begin(&scope, &key, &fingerprint)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    match begun {
        Idempotent::Replay(status, content_type, body) => {
            let mut response = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
        Idempotent::Mismatch => {
            return Err(ApiError::Validation {
                detail: format!("Idempotency-Key `{key}` was used for a different request"),
                fields: Vec::new(),
            }
            .into_response());
        }
        Idempotent::InProgress => {
            // The first request runs to completion whatever its client did:
            // trying again shortly gets its answer.
            let mut response =
                ApiError::Conflict(format!("a request with Idempotency-Key `{key}` is still being answered; retry"))
                    .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(response);
        }
        Idempotent::New => {}
    }
    // On a task of its own, so a panic is a 500 here and the key is
    // released rather than held.
    let response =
        super::task::detached(state.in_flight.tasks(), None, Request::from_parts(parts, Body::from(bytes)), next, None)
            .await;
    let status = response.status();
    if status.is_server_error() {
        if let Err(error) = state.engine.idempotency_finish(&scope, &key, None).await {
            tracing::warn!(%error, "an idempotency key was not released");
        }
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = String::from_utf8_lossy(&body).into_owned();
    if let Err(error) =
        state.engine.idempotency_finish(&scope, &key, Some((status.as_u16(), &content_type, &text))).await
    {
        tracing::warn!(%error, "the answer to an idempotent request was not kept");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}
