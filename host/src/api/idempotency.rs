//! `Idempotency-Key` on POST requests: the first answer under a key is kept
//! and a replay gets it again (with `Idempotent-Replayed: true`) instead of
//! acting twice; the same key with a different request is a 422, and with a
//! request still being answered a 409.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::store::Idempotent;

/// The largest body a keyed request may have (an add-on upload).
const MAX_BODY: usize = (32 << 20) + 1024;

/// The longest key accepted.
const MAX_KEY: usize = 255;

/// The middleware.
pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(key) = request.headers().get("idempotency-key").cloned() else { return next.run(request).await };
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    match keyed(state, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn keyed(state: AppState, key: HeaderValue, request: Request, next: Next) -> Result<Response, Response> {
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
        .ok_or_else(|| {
            ApiError::BadRequest(format!("Idempotency-Key must be 1 to {MAX_KEY} visible characters")).into_response()
        })?
        .to_owned();
    // Keys are scoped to the API key that sent them; without one the
    // request is refused by authentication anyway, so it runs unkeyed.
    let Some(auth) = request.headers().get(header::AUTHORIZATION).cloned() else { return Ok(next.run(request).await) };
    let scope = hex::encode(Sha256::digest(auth.as_bytes()));
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge("the body is larger than any request takes".into()).into_response())?;
    let fingerprint = hex::encode(
        Sha256::new()
            .chain_update(parts.method.as_str())
            .chain_update(parts.uri.path())
            .chain_update(&bytes)
            .finalize(),
    );
    let store = state.engine.store();
    let begun = store
        .idempotency_begin(&scope, &key, &fingerprint, state.engine.now())
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
            return Err(ApiError::Conflict(format!("a request with Idempotency-Key `{key}` is still being answered"))
                .into_response());
        }
        Idempotent::New => {}
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = response.status();
    if status.is_server_error() {
        let _ = store.idempotency_finish(&scope, &key, None).await;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = String::from_utf8_lossy(&body).into_owned();
    if let Err(error) = store.idempotency_finish(&scope, &key, Some((status.as_u16(), &content_type, &text))).await {
        tracing::warn!(%error, "the answer to an idempotent request was not kept");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}
