//! Each request runs to completion on a task of its own, whatever its
//! client does. A client that hangs up drops the connection's future; were
//! the handler part of it, a transaction could be dropped half-way through a
//! statement and its pooled connection lost. Here the handler keeps going,
//! commits or rolls back, and gives its connection back; the answer is then
//! thrown away. A handler that panics answers a 500 problem document.
//!
//! Requests are admitted [`MAX_IN_FLIGHT`] at a time, in order of arrival:
//! a request waits for its turn while its client is there, and one whose
//! client gives up while waiting is dropped before anything of it ran. So
//! clients that send and hang up can never queue unbounded work.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::AppState;
use super::error::ApiError;

/// How many requests are being answered at once, at most.
pub const MAX_IN_FLIGHT: usize = 64;

/// The requests being answered: tracked for shutdown, admitted in turn.
#[derive(Debug, Clone)]
pub struct InFlight {
    tasks: TaskTracker,
    admission: Arc<Semaphore>,
}

impl InFlight {
    /// Room for `limit` requests at once.
    pub fn new(limit: usize) -> InFlight {
        InFlight { tasks: TaskTracker::new(), admission: Arc::new(Semaphore::new(limit.max(1))) }
    }

    /// The tasks, which shutdown closes and waits for.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
}

/// Runs `next` on its own task, tracked by `tasks` so that shutdown waits
/// for it, holding `permit` (if any) until it is done; a panic becomes a
/// 500.
pub(super) async fn detached(
    tasks: &TaskTracker,
    permit: Option<OwnedSemaphorePermit>,
    request: Request,
    next: Next,
) -> Response {
    let what = format!("{} {}", request.method(), request.uri().path());
    let id = super::trace::current();
    let run = super::trace::scoped(id, async move {
        let response = next.run(request).await;
        drop(permit);
        response
    });
    match tasks.spawn(run).await {
        Ok(response) => response,
        Err(error) => {
            let cause = if error.is_panic() { "the handler panicked" } else { "the handler was cancelled" };
            ApiError::Internal(format!("{what}: {cause}")).into_response()
        }
    }
}

/// Probes answer at once, whatever the queue: an operator must see a busy
/// server as alive.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The middleware: the outermost layer of every route. Waits for a turn,
/// then runs the request to completion.
pub(super) async fn run_to_completion(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let permit = if PROBES.contains(&request.uri().path()) {
        None
    } else {
        match state.in_flight.admission.clone().acquire_owned().await {
            Ok(permit) => Some(permit),
            Err(_) => return ApiError::Unavailable("the server is stopping".into()).into_response(),
        }
    };
    detached(&state.in_flight.tasks, permit, request, next).await
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    async fn boom() -> &'static str {
        panic!("a handler bug")
    }

    fn router(tasks: TaskTracker) -> Router {
        Router::new().route("/boom", get(boom)).route("/fine", get(|| async { "fine" })).layer(
            axum::middleware::from_fn(move |request: Request<Body>, next: Next| {
                let tasks = tasks.clone();
                async move { detached(&tasks, None, request, next).await }
            }),
        )
    }

    #[tokio::test]
    async fn a_handler_that_panics_answers_a_500_problem_and_the_next_request_is_served() {
        let tasks = TaskTracker::new();
        let answer = router(tasks.clone()).oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
        let body = to_bytes(answer.into_body(), 1 << 16).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "urn:stepwise:problem:internal");
        assert!(!problem["detail"].as_str().unwrap().contains("a handler bug"), "the cause is logged, never shown");
        let answer = router(tasks).oneshot(Request::get("/fine").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_request_whose_client_went_away_still_runs_to_completion() {
        let tasks = TaskTracker::new();
        let (finished, done) = tokio::sync::oneshot::channel::<()>();
        let finished = std::sync::Mutex::new(Some(finished));
        let finished = Arc::new(finished);
        let slow = Router::new()
            .route(
                "/slow",
                get(move || {
                    let finished = finished.clone();
                    async move {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        if let Some(finished) = finished.lock().unwrap().take() {
                            let _ = finished.send(());
                        }
                        "done"
                    }
                }),
            )
            .layer(axum::middleware::from_fn({
                let tasks = tasks.clone();
                move |request: Request<Body>, next: Next| {
                    let tasks = tasks.clone();
                    async move { detached(&tasks, None, request, next).await }
                }
            }));
        // The client gives up after 5 ms: its future is dropped.
        let request = Request::get("/slow").body(Body::empty()).unwrap();
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(5), slow.oneshot(request)).await;
        assert!(gave_up.is_err());
        tokio::time::timeout(std::time::Duration::from_secs(5), done).await.expect("the handler ran on").unwrap();
        tasks.close();
        tasks.wait().await;
    }
}
