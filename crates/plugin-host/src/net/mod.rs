//! Outbound HTTP for plugins: the grant allowlist, the private-address rules and the client behind `http-fetch`.
//!
//! A plugin reaches the network only through [`HttpClient::fetch`], so every
//! rule that keeps a plugin away from places it was not granted lives here:
//!
//! * the URL must be `http` or `https`, carry no credentials, and match the
//!   plugin's [`Allowlist`];
//! * the address actually connected to must not be loopback, private,
//!   link-local (cloud metadata) or otherwise special, see [`is_blocked`].
//!   Names are screened inside the DNS resolver the client connects with, so
//!   the addresses checked are the addresses used (no window for DNS
//!   rebinding); IP-literal hosts never reach a resolver and are checked
//!   before sending;
//! * redirects are followed by hand so that each hop passes the same checks;
//! * time and size are bounded by a [`NetPolicy`].

use std::net::IpAddr;
use std::time::Duration;

/// The `User-Agent` sent with every plugin request, so that operators of the
/// receiving service can tell where the traffic comes from.
pub const USER_AGENT: &str = concat!("stepwise/", env!("CARGO_PKG_VERSION"));

/// Why a plugin's network request was refused or failed.
///
/// Messages never contain request header values, bodies or URL queries, so
/// they may be shown to the plugin and logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The URL (or a redirect location) could not be parsed, or has a
    /// scheme other than `http`/`https`, or carries credentials.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// The URL's origin matches no entry of the plugin's allowlist.
    #[error("{url} is not in the plugin's network allowlist")]
    NotAllowed {
        /// The refused origin (`scheme://host[:port]`), without path or query.
        url: String,
    },
    /// The host is, or resolves only to, an address plugins may not reach.
    #[error("connection to {host} ({addr}) blocked: {reason} address")]
    BlockedAddress {
        /// The host as written in the URL.
        host: String,
        /// The refused address.
        addr: IpAddr,
        /// Why the address is refused, as returned by [`is_blocked`].
        reason: &'static str,
    },
    /// The request itself is malformed: a bad header or a disallowed method.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The whole exchange, redirects and body included, took longer than this.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// Connecting, TLS or the HTTP exchange failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// The request body or the response body is larger than allowed.
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// The server redirected more often than [`NetPolicy::max_redirects`].
    #[error("too many redirects (limit {0})")]
    TooManyRedirects(usize),
    /// An allowlist entry of a grant could not be parsed.
    #[error("bad allowlist entry {entry:?}: {reason}")]
    BadAllowlistEntry {
        /// The entry as written in the grant.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Coarse classification of a [`NetError`], for metrics and for the error
/// a plugin sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetErrorKind {
    /// The destination is not in the plugin's allowlist.
    Denied,
    /// The destination address is off limits, or a redirect chain was too long.
    Blocked,
    /// The URL, request or allowlist is malformed.
    Invalid,
    /// The exchange took too long.
    Timeout,
    /// The network or the server failed.
    Transport,
    /// A body was larger than allowed.
    TooLarge,
}

impl NetError {
    /// Returns the coarse class of this error.
    pub fn kind(&self) -> NetErrorKind {
        match self {
            NetError::NotAllowed { .. } => NetErrorKind::Denied,
            // A redirect chain that never ends is treated like a refused
            // destination: the plugin cannot fix it by retrying.
            NetError::BlockedAddress { .. } | NetError::TooManyRedirects(_) => NetErrorKind::Blocked,
            NetError::InvalidUrl(_) | NetError::InvalidRequest(_) | NetError::BadAllowlistEntry { .. } => {
                NetErrorKind::Invalid
            }
            NetError::Timeout(_) => NetErrorKind::Timeout,
            NetError::Transport(_) => NetErrorKind::Transport,
            NetError::TooLarge { .. } => NetErrorKind::TooLarge,
        }
    }
}

mod address;
mod allowlist;
mod client;
#[cfg(test)]
mod tests;

pub use address::{NetPolicy, blocked_under, is_blocked};
pub use allowlist::Allowlist;
pub use client::{HttpClient, OutboundRequest, OutboundResponse};
