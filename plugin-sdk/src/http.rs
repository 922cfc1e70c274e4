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
