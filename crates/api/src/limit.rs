//! Rate limiting, with governor's keyed GCRA buckets:
//!
//! - a bucket per API key (per `Authorization` value), the limit a client
//!   sees: every answer says where it stands, in the IETF RateLimit header
//!   fields `RateLimit-Limit` (the burst), `RateLimit-Remaining` (requests
//!   left now) and `RateLimit-Reset` (seconds until the bucket is full);
//! - a bucket of failed authentications per client address: every key a
//!   client invents gets a fresh bucket of its own, but each costs the
//!   address a failure, and an address whose failures are spent is refused
//!   before its requests reach the database, until one more would pass.
//!   (Behind a reverse proxy every client has the proxy's address; the
//!   budget is generous for that reason.)
//!
//! Over a limit, a 429 problem with `Retry-After`. Buckets are kept in
//! concurrent maps; those full again are forgotten as the maps grow, so
//! memory stays bounded by the clients of the last few seconds. Rates are
//! counted in real time, whatever clock the engine runs on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Gcra};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;

type Buckets<K> = Gcra<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Failed authentications an address may make at once, and per second after.
const FAILURES: (u32, u32) = (200, 10);

/// Addresses refused for failing at once, at most (the rest are limited by
/// their address bucket alone).
const MAX_REFUSED: usize = 100_000;

/// Checks between two sweeps of buckets that are full again.
const SWEEP_EVERY: u64 = 10_000;

/// The buckets of the API.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: u32,
    burst: u32,
    keys: Buckets<[u8; 32]>,
    failures: Buckets<IpAddr>,
    /// Addresses whose failures are spent, and until when.
    refused: Mutex<HashMap<IpAddr, Instant>>,
    checks: AtomicU64,
}

/// Where a caller stands with its key's limit after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    /// Requests a full bucket holds.
    limit: u32,
    /// Requests left now.
    remaining: u32,
    /// Seconds until the bucket is full again.
    reset: u64,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let one = NonZeroU32::MIN;
    Quota::per_second(NonZeroU32::new(per_second).unwrap_or(one)).allow_burst(NonZeroU32::new(burst).unwrap_or(one))
}

fn buckets<K: Clone + Eq + std::hash::Hash>(per_second: u32, burst: u32) -> Buckets<K> {
    Gcra::dashmap(quota(per_second, burst)).with_middleware::<StateInformationMiddleware>()
}

impl RateLimiter {
    /// A limiter allowing each key `per_second` with bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let (per_second, burst) = (per_second.max(1), burst.max(1));
        Self {
            per_second,
            burst,
            keys: buckets(per_second, burst),
            failures: buckets(FAILURES.1, FAILURES.0),
            refused: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }

    /// Forgets, now and then, the buckets that are full again.
    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.keys.retain_recent();
            self.failures.retain_recent();
            let now = Instant::now();
            self.refused().retain(|_, until| *until > now);
        }
    }

    /// Seconds to wait before `not_until` allows a request, at least one.
    fn wait(&self, not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
        not_until.wait_time_from(self.keys.clock().now()).as_secs_f64().ceil().max(1.0) as u64
    }

    /// Takes a token for `who`'s key: where the caller then stands, and
    /// `Err(seconds)` to wait when there was none.
    fn take(&self, who: &[u8]) -> (Standing, Result<(), u64>) {
        self.sweep();
        let key: [u8; 32] = Sha256::digest(who).into();
        match self.keys.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = f64::from(self.burst - remaining.min(self.burst));
                let reset = (missing / f64::from(self.per_second)).ceil() as u64;
                (Standing { limit: self.burst, remaining, reset }, Ok(()))
            }
            Err(not_until) => {
                let wait = self.wait(&not_until);
                let reset = (f64::from(self.burst) / f64::from(self.per_second)).ceil() as u64;
                (Standing { limit: self.burst, remaining: 0, reset: reset.max(wait) }, Err(wait))
            }
        }
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `address` has failed authentication too often lately:
    /// `Err(seconds)` until it may try again.
    fn failing(&self, address: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        match self.refused().get(&address) {
            Some(until) if *until > now => Err(until.duration_since(now).as_secs_f64().ceil().max(1.0) as u64),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `address`; once its failures are
    /// spent it is refused until one more would pass.
    fn failed(&self, address: IpAddr) {
        if let Err(not_until) = self.failures.check_key(&address) {
            let until = Instant::now() + Duration::from_secs(self.wait(&not_until));
            let mut refused = self.refused();
            if refused.len() < MAX_REFUSED {
                refused.insert(address, until);
            }
        }
    }
}

impl Standing {
    fn write(self, response: &mut Response) {
        let fields = [
            ("ratelimit-limit", u64::from(self.limit)),
            ("ratelimit-remaining", u64::from(self.remaining)),
            ("ratelimit-reset", self.reset),
        ];
        for (name, value) in fields {
            response.headers_mut().insert(name, HeaderValue::from(value));
        }
    }
}

fn too_many(wait: u64) -> Response {
    let mut response = ApiError::TooMany(format!("too many requests; try again in {wait} s")).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
    response
}

/// The middleware.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(address) = address
        && let Err(wait) = state.limiter.failing(address)
    {
        return too_many(wait);
    }
    let keyed = request.headers().contains_key(header::AUTHORIZATION);
    let who: Vec<u8> = match request.headers().get(header::AUTHORIZATION) {
        Some(value) => value.as_bytes().to_vec(),
        None => address.map_or_else(|| b"anonymous".to_vec(), |a| a.to_string().into_bytes()),
    };
    let (standing, taken) = state.limiter.take(&who);
    let mut response = match taken {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many(wait),
    };
    // A key that authenticates nobody cost a database lookup: a failure.
    // A request without a key cost nothing, and is not one.
    if keyed
        && response.status() == StatusCode::UNAUTHORIZED
        && let Some(address) = address
    {
        state.limiter.failed(address);
    }
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

    #[test]
    fn an_address_that_keeps_failing_authentication_is_refused_until_it_cools_down() {
        let limiter = RateLimiter::new(100, 200);
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..FAILURES.0 {
            assert_eq!(limiter.failing(address), Ok(()));
            limiter.failed(address);
        }
        assert_eq!(limiter.failing(address), Ok(()), "the budget is spent, not yet overdrawn");
        limiter.failed(address);
        assert!(limiter.failing(address).is_err(), "refused once the failures are spent");
        assert_eq!(limiter.failing("192.0.2.8".parse().unwrap()), Ok(()), "another address is not");
    }
}
