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
//!
//! Every request is answered within its timeout (60 s unless configured),
//! from its arrival, body and turn included. One not started by then is
//! answered a 503 and never runs; one still running is answered a 503 too,
//! and goes on to completion, holding its turn: a write repeated with the
//! same `Idempotency-Key` answers with its result once it is done.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::AppState;
use super::error::ApiError;

/// How many requests are being answered at once, at most.
pub const MAX_IN_FLIGHT: usize = 64;

/// The requests being answered: tracked for shutdown, admitted in turn,
/// answered in time.
#[derive(Debug, Clone)]
pub struct InFlight {
    tasks: TaskTracker,
    admission: Arc<Semaphore>,
    timeout: Duration,
}

impl InFlight {
    /// Room for `limit` requests at once, each answered within `timeout`.
    pub fn new(limit: usize, timeout: Duration) -> InFlight {
        InFlight { tasks: TaskTracker::new(), admission: Arc::new(Semaphore::new(limit.max(1))), timeout }
    }

    /// The tasks, which shutdown closes and waits for.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
}

/// Runs `next` on its own task, tracked by `tasks` so that shutdown waits
/// for it, holding `permit` (if any) until it is done; a panic becomes a
/// 500. Past `deadline` (if any) the answer is a 503 and the task goes on.
pub(super) async fn detached(
    tasks: &TaskTracker,
    permit: Option<OwnedSemaphorePermit>,
    request: Request,
    next: Next,
    deadline: Option<(Instant, Duration)>,
) -> Response {
    let what = format!("{} {}", request.method(), request.uri().path());
    let id = super::trace::current();
    let run = super::trace::scoped(id, async move {
        let response = next.run(request).await;
        drop(permit);
        response
    });
    let task = tasks.spawn(run);
    let done = match deadline {
        None => task.await,
        Some((deadline, timeout)) => match tokio::time::timeout_at(deadline, task).await {
            Ok(done) => done,
            // Dropping the handle leaves the task running.
            Err(_elapsed) => {
                return timed_out(format!(
                    "{what} did not finish within {} s; it goes on to completion (a write repeated with the same \
                     Idempotency-Key answers with its result once it is done)",
                    timeout.as_secs()
                ));
            }
        },
    };
    match done {
        Ok(response) => response,
        Err(error) => {
            let cause = if error.is_panic() { "the handler panicked" } else { "the handler was cancelled" };
            ApiError::Internal(format!("{what}: {cause}")).into_response()
        }
    }
}

/// A 503 saying that the request's time is up, with when to try again.
fn timed_out(detail: String) -> Response {
    let mut response = ApiError::Timeout(detail).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Probes answer at once, whatever the queue: an operator must see a busy
/// server as alive.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The middleware: the outermost layer of every route. Waits for a turn,
/// then runs the request to completion, answering within the timeout.
pub(super) async fn run_to_completion(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let in_flight = &state.in_flight;
    let deadline = Instant::now() + in_flight.timeout;
    let permit = if PROBES.contains(&request.uri().path()) {
        None
    } else {
        match tokio::time::timeout_at(deadline, in_flight.admission.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            Ok(Err(_)) => return ApiError::Unavailable("the server is stopping".into()).into_response(),
            Err(_elapsed) => {
                return timed_out(format!(
                    "the server was too busy to start the request within {} s; nothing of it ran",
                    in_flight.timeout.as_secs()
                ));
            }
        }
    };
    detached(&in_flight.tasks, permit, request, next, Some((deadline, in_flight.timeout))).await
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
                async move { detached(&tasks, None, request, next, None).await }
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

    /// A router whose `/slow` takes `takes` and then says so on the
    /// returned receiver, each request detached with `timeout` (if any).
    fn slow(
        tasks: &TaskTracker,
        takes: Duration,
        timeout: Option<Duration>,
    ) -> (Router, tokio::sync::oneshot::Receiver<()>) {
        let (finished, done) = tokio::sync::oneshot::channel::<()>();
        let finished = Arc::new(std::sync::Mutex::new(Some(finished)));
        let handler = get(move || {
            let finished = finished.clone();
            async move {
                tokio::time::sleep(takes).await;
                if let Some(finished) = finished.lock().unwrap().take() {
                    let _ = finished.send(());
                }
                "done"
            }
        });
        let tasks = tasks.clone();
        let router = Router::new().route("/slow", handler).layer(axum::middleware::from_fn(
            move |request: Request<Body>, next: Next| {
                let tasks = tasks.clone();
                let deadline = timeout.map(|timeout| (Instant::now() + timeout, timeout));
                async move { detached(&tasks, None, request, next, deadline).await }
            },
        ));
        (router, done)
    }

    #[tokio::test]
    async fn a_request_past_its_timeout_is_answered_a_503_and_still_runs_to_completion() {
        let tasks = TaskTracker::new();
        let (router, done) = slow(&tasks, Duration::from_millis(200), Some(Duration::from_millis(20)));
        let started = Instant::now();
        let answer = router.oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(150), "answered after {:?}", started.elapsed());
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers()["retry-after"], "1");
        let body = to_bytes(answer.into_body(), 1 << 16).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "urn:stepwise:problem:timeout");
        assert!(problem["detail"].as_str().unwrap().contains("GET /slow did not finish within"), "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains("Idempotency-Key"), "{problem}");
        tokio::time::timeout(Duration::from_secs(5), done).await.expect("the handler ran on").unwrap();
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn a_request_whose_client_went_away_still_runs_to_completion() {
        let tasks = TaskTracker::new();
        let (router, done) = slow(&tasks, Duration::from_millis(50), None);
        // The client gives up after 5 ms: its future is dropped.
        let request = Request::get("/slow").body(Body::empty()).unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(5), router.oneshot(request)).await;
        assert!(gave_up.is_err());
        tokio::time::timeout(Duration::from_secs(5), done).await.expect("the handler ran on").unwrap();
        tasks.close();
        tasks.wait().await;
    }
}
