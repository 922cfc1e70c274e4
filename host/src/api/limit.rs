//! Rate limiting: a token bucket per API key (or per client address when
//! no key is sent). Every answer says where the caller stands, in the
//! IETF RateLimit header fields: `RateLimit-Limit` (the burst),
//! `RateLimit-Remaining` (requests left now) and `RateLimit-Reset` (seconds
//! until the bucket is full again). Over the limit, a 429 problem with
//! `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;

/// Requests per second each key may make, with bursts up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<[u8; 32], (f64, Instant)>>,
}

/// Buckets kept before full ones are forgotten.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// A limiter allowing `per_second` with bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `who`: where the caller then stands, and
    /// `Err(seconds)` to wait when there was none.
    fn take(&self, who: &[u8]) -> (Standing, Result<(), u64>) {
        let key: [u8; 32] = Sha256::digest(who).into();
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        let taken = if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second).ceil().max(1.0) as u64)
        };
        let standing = Standing {
            limit: self.burst as u64,
            remaining: tokens.floor().max(0.0) as u64,
            reset: ((self.burst - *tokens) / self.per_second).ceil().max(0.0) as u64,
        };
        (standing, taken)
    }
}

/// Where a caller stands with the limit after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    /// Requests a full bucket holds.
    limit: u64,
    /// Requests left now.
    remaining: u64,
    /// Seconds until the bucket is full again.
    reset: u64,
}

impl Standing {
    fn write(self, response: &mut Response) {
        for (name, value) in
            [("ratelimit-limit", self.limit), ("ratelimit-remaining", self.remaining), ("ratelimit-reset", self.reset)]
        {
            response.headers_mut().insert(name, HeaderValue::from(value));
        }
    }
}

/// The middleware.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let who: Vec<u8> = match request.headers().get(header::AUTHORIZATION) {
        Some(value) => value.as_bytes().to_vec(),
        None => request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or_else(|| b"anonymous".to_vec(), |c| c.0.ip().to_string().into_bytes()),
    };
    let (standing, taken) = state.limiter.take(&who);
    let mut response = match taken {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let mut response = ApiError::TooMany(format!("too many requests; try again in {wait} s")).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            response
        }
    };
    standing.write(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate() {
        let limiter = RateLimiter::new(1, 3);
        for left in [2, 1, 0] {
            let (standing, taken) = limiter.take(b"k");
            assert!(taken.is_ok());
            assert_eq!((standing.limit, standing.remaining), (3, left));
        }
        let (standing, taken) = limiter.take(b"k");
        assert_eq!(taken, Err(1));
        assert_eq!((standing.remaining, standing.reset), (0, 3));
        assert!(limiter.take(b"other").1.is_ok(), "each key has its own bucket");
    }
}
