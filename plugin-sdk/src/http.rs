//! Outbound HTTP through the host, the only way out of the sandbox. Needs
//! the `http-fetch` capability, granted for the destinations an admin
//! allows.
//!
//! # Retries
//!
//! A host may die after a request left and before the step's answer was
//! written. Before a request that a retry would repeat (any method but
//! `GET` and `HEAD`), the host records that the step's effect may have
//! begun; such a step is then held for a person (`duplicate_attempt`)
//! instead of run again. A request that carries the step's
//! [`StepContext::idempotency_key`](crate::StepContext) in an
//! `Idempotency-Key` header is not: its receiver deduplicates a retry by the
//! key, so the step is simply run again, with the same key.
//!
//! # Examples
//!
//! ```no_run
//! use stepwise_plugin_sdk::StepContext;
//! use stepwise_plugin_sdk::http::Request;
//!
//! # fn post(ctx: &StepContext) -> Result<(), stepwise_plugin_sdk::HostError> {
//! let response = Request::post("https://hooks.example.com/lead")
//!     .header("Idempotency-Key", ctx.idempotency_key.as_str())
//!     .json(&serde_json::json!({"name": "Ada"}))
//!     .send()?;
//! assert!(response.is_success());
//! # Ok(())
//! # }
//! ```

use crate::__private::bindings::action::stepwise::plugin::http as wit;
use crate::HostError;

pub use wit::Method;

/// An outbound request, built with chained calls.
#[derive(Debug, Clone)]
pub struct Request {
    inner: wit::Request,
}

impl Request {
    /// A request with `method` to `url`.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            inner: wit::Request { method, url: url.into(), headers: Vec::new(), body: Vec::new(), timeout_ms: None },
        }
    }

    /// A GET request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A POST request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// A PUT request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    #[must_use]
    pub fn json(self, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.header("content-type", "application/json").body(body)
    }

    /// Gives up after `timeout` (never later than the host's own limit).
    #[must_use]
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.inner.timeout_ms = Some(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
        self
    }

    /// Sends the request and waits for the response, whatever its status.
    ///
    /// # Errors
    ///
    /// A [`HostError`] when the request could not be made: denied, blocked
    /// destination, timeout, network failure or an oversized response.
    pub fn send(self) -> Result<Response, HostError> {
        wit::fetch(&self.inner).map(|inner| Response { inner })
    }
}

/// The outcome of a step whose work is one request: `done` with `result`
/// on a 2xx answer; tried again when the receiver is busy or failing (429,
/// 5xx: after its `Retry-After`, else a minute) or the request could not be
/// made for a reason that may pass (a timeout, a network failure); failed
/// otherwise (any other answer, a denied or blocked request), saying why.
///
/// # Examples
///
/// ```no_run
/// use stepwise_plugin_sdk::prelude::*;
/// # let url = String::new();
/// let sent = http::Request::post(url).json(&serde_json::json!({"text": "hi"})).send();
/// let outcome = http::outcome(sent, "posted");
/// ```
pub fn outcome(sent: Result<Response, HostError>, result: &str) -> crate::Outcome {
    let minute = std::time::Duration::from_secs(60);
    match sent {
        Ok(answer) if answer.is_success() => crate::Outcome::done(result),
        Ok(answer) => {
            let why = format!("the receiver answered HTTP {}", answer.status());
            match answer.is_transient() {
                true => crate::Outcome::retry(answer.retry_after().unwrap_or(minute), why),
                false => crate::Outcome::failed(why),
            }
        }
        Err(error) if error.is_transient() => crate::Outcome::retry(minute, error.message),
        Err(error) => crate::Outcome::failed(error.message),
    }
}

/// A response to a [`Request`].
#[derive(Debug, Clone)]
pub struct Response {
    inner: wit::Response,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.inner.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.inner.status)
    }

    /// Whether the receiver is busy or failing (429 or 5xx), so that the
    /// same request may succeed later.
    pub fn is_transient(&self) -> bool {
        self.inner.status == 429 || self.inner.status >= 500
    }

    /// How long the receiver asks to wait before the next try: its
    /// `Retry-After` in seconds, at most an hour (an HTTP date there is not
    /// read).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let seconds: u64 = self.header("retry-after")?.trim().parse().ok()?;
        Some(std::time::Duration::from_secs(seconds.min(3600)))
    }

    /// The first header named `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self.inner.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.inner.body).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::{Response, outcome, wit};
    use crate::{ErrorCode, HostError, Outcome};
    use std::time::Duration;

    #[test]
    fn a_requests_outcome_follows_its_answer() {
        let retry = |o: Outcome| match o {
            Outcome::Retry(r) => (r.after_ms, r.reason),
            other => panic!("{other:?}"),
        };
        let failed = |o: Outcome| match o {
            Outcome::Failed(f) => f.message,
            other => panic!("{other:?}"),
        };
        assert!(matches!(outcome(Ok(answer(204, &[])), "posted"), Outcome::Done(d) if d.result == "posted"));
        assert_eq!(retry(outcome(Ok(answer(429, &[("Retry-After", "7")])), "posted")).0, 7_000);
        assert_eq!(
            retry(outcome(Ok(answer(503, &[])), "posted")),
            (60_000, "the receiver answered HTTP 503".to_owned())
        );
        assert_eq!(failed(outcome(Ok(answer(404, &[])), "posted")), "the receiver answered HTTP 404");
        let error = |code| Err(HostError { code, message: "why".into() });
        assert_eq!(retry(outcome(error(ErrorCode::Transport), "posted")).0, 60_000);
        assert_eq!(failed(outcome(error(ErrorCode::Denied), "posted")), "why");
    }

    fn answer(status: u16, headers: &[(&str, &str)]) -> Response {
        let headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        Response { inner: wit::Response { status, headers, body: Vec::new() } }
    }

    #[test]
    fn busy_and_failing_receivers_are_transient_and_say_when_to_try_again() {
        assert!(answer(429, &[]).is_transient() && answer(503, &[]).is_transient());
        assert!(!answer(404, &[]).is_transient() && !answer(200, &[]).is_transient());
        assert_eq!(answer(429, &[("Retry-After", " 7 ")]).retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(answer(503, &[("retry-after", "86400")]).retry_after(), Some(Duration::from_secs(3600)));
        assert_eq!(answer(503, &[("Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT")]).retry_after(), None);
        assert_eq!(answer(503, &[]).retry_after(), None);
    }
}
