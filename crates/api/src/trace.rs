//! Request ids and the access log. Every answer carries `Request-Id`: the
//! client's `X-Request-Id` when it is well-formed, else a new one. Problem
//! documents repeat it (`request_id`), and the access log line of the
//! request names it with the method, path, status and latency. Nothing of
//! `Authorization`, cookies or the query string is logged.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    /// The id of the request the current task answers.
    static REQUEST_ID: String;
}

/// The longest `X-Request-Id` honoured.
const MAX_ID: usize = 128;

/// A client's id, when it is 1 to 128 characters of letters, digits and
/// `-_.:`.
fn well_formed(value: &HeaderValue) -> Option<String> {
    let id = value.to_str().ok()?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    (!id.is_empty() && id.len() <= MAX_ID && id.chars().all(allowed)).then(|| id.to_owned())
}

/// The id of the request being answered on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `future` as part of the request `id` (a task spawned for a request
/// does not inherit the id otherwise).
pub(super) async fn scoped<F: Future>(id: Option<String>, future: F) -> F::Output {
    match id {
        Some(id) => REQUEST_ID.scope(id, future).await,
        None => future.await,
    }
}

/// The middleware: the outermost layer.
pub(super) async fn traced(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(well_formed)
        .unwrap_or_else(|| format!("req_{}", uuid::Uuid::new_v4().simple()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(request_id = %id, %method, %path, status, latency_ms, "answered");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_client_id_is_honoured() {
        let ok = |s: &str| well_formed(&HeaderValue::from_str(s).unwrap());
        assert_eq!(ok("b7e4-01:retry.2_x"), Some("b7e4-01:retry.2_x".to_owned()));
        assert_eq!(ok(""), None);
        assert_eq!(ok("has space"), None);
        assert_eq!(ok("a\"quote"), None);
        assert_eq!(ok(&"x".repeat(MAX_ID + 1)), None);
        assert!(ok(&"x".repeat(MAX_ID)).is_some());
    }
}
