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

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// The `User-Agent` sent with every plugin request, so that operators of the
/// receiving service can tell where the traffic comes from.
pub const USER_AGENT: &str = concat!("stepwise/", env!("CARGO_PKG_VERSION"));

/// Request headers a plugin may not set because the host (or the HTTP stack)
/// owns them: overriding them would let a plugin pick another virtual host on
/// an allowed address, smuggle a second request through a framing mismatch,
/// or talk to a proxy.
const FORBIDDEN_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
];

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

// ---------------------------------------------------------------------------
// Allowlist
// ---------------------------------------------------------------------------

/// The set of origins (and optionally path prefixes) a plugin was granted.
///
/// Entries look like `https://api.example.com`, `https://*.example.com`,
/// `https://hooks.example.com:8443`, `http://127.0.0.1:*`, `https://*` or
/// `https://api.example.com/v1/`:
///
/// * the scheme (`http` or `https`) is required and must match exactly;
/// * the host is exact (case-insensitive; IPv6 in brackets), `*.domain`
///   (any subdomain of `domain`, at any depth, but not `domain` itself) or
///   `*` (any host, IP literals included);
/// * the port is a number or `*`; without one only the scheme's default
///   port matches;
/// * a path, if given, restricts requests to that prefix. A prefix ending in
///   `/` matches paths starting with it; one that does not (`/v1`) matches
///   that path and the paths below it (`/v1/…`), but not `/v1beta`.
///
/// An empty allowlist allows nothing.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    https: bool,
    host: HostPattern,
    port: PortPattern,
    /// Normalised path prefix; `None` when the entry allows every path.
    path: Option<String>,
}

#[derive(Debug, Clone)]
enum HostPattern {
    Any,
    Exact(Host<String>),
    /// Strict subdomains of this lowercase domain.
    SubdomainsOf(String),
}

#[derive(Debug, Clone, Copy)]
enum PortPattern {
    Any,
    Exact(u16),
}

impl Allowlist {
    /// Parses grant entries into an allowlist.
    ///
    /// # Errors
    ///
    /// Returns [`NetError::BadAllowlistEntry`] naming the first entry that is
    /// not of the form described on [`Allowlist`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_host::net::Allowlist;
    /// let allow = Allowlist::parse(&["https://*.example.com".to_owned()])?;
    /// assert!(allow.allows(&"https://api.example.com/x".parse()?));
    /// assert!(!allow.allows(&"https://example.com/x".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(entries: &[String]) -> Result<Allowlist, NetError> {
        let entries = entries
            .iter()
            .map(|entry| {
                parse_entry(entry).map_err(|reason| NetError::BadAllowlistEntry { entry: entry.clone(), reason })
            })
            .collect::<Result<_, _>>()?;
        Ok(Allowlist { entries })
    }

    /// Returns whether `url` matches at least one entry.
    pub fn allows(&self, url: &Url) -> bool {
        self.entries.iter().any(|entry| entry.matches(url))
    }

    /// Returns whether the allowlist has no entries (and so allows nothing).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Entry {
    fn matches(&self, url: &Url) -> bool {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return false,
        };
        if https != self.https {
            return false;
        }
        let Some(host) = url.host() else {
            return false;
        };
        let host_ok = match (&self.host, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Exact(Host::Domain(want)), Host::Domain(got)) => want.eq_ignore_ascii_case(got),
            (HostPattern::Exact(Host::Ipv4(want)), Host::Ipv4(got)) => *want == got,
            (HostPattern::Exact(Host::Ipv6(want)), Host::Ipv6(got)) => *want == got,
            (HostPattern::SubdomainsOf(suffix), Host::Domain(got)) => {
                // `got` must be `<something>.<suffix>`: checking for the dot
                // keeps `evilexample.com` out of `*.example.com`.
                got.len() > suffix.len() + 1
                    && got.as_bytes()[got.len() - suffix.len() - 1] == b'.'
                    && got[got.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            _ => false,
        };
        if !host_ok {
            return false;
        }
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(port) => url.port_or_known_default() == Some(port),
        };
        port_ok && self.path.as_deref().is_none_or(|prefix| path_matches(prefix, url.path()))
    }
}

/// Whether `path` lies under `prefix` (both already normalised by `url`, so
/// `..` segments cannot climb out of the prefix).
fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix)
    } else {
        path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

fn parse_entry(entry: &str) -> Result<Entry, String> {
    if entry.trim() != entry {
        return Err("leading or trailing whitespace".into());
    }
    let (scheme, rest) = entry.split_once("://").ok_or("missing scheme (expected http:// or https://)")?;
    let (https, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "http" => (false, 80),
        "https" => (true, 443),
        other => {
            return Err(format!("unsupported scheme {other:?} (expected http or https)"));
        }
    };
    if rest.contains(['?', '#']) {
        return Err("query and fragment are not allowed".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("credentials are not allowed".into());
    }
    if authority.is_empty() {
        return Err("missing host".into());
    }

    // Split host and port by hand: `url` cannot parse `*` as a port.
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or("unclosed '[' in ipv6 host")?;
        let (host, tail) = authority.split_at(close + 1);
        let port = match tail {
            "" => None,
            tail => Some(tail.strip_prefix(':').ok_or("unexpected text after ipv6 host")?),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err("ipv6 hosts must be written in brackets".into());
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };

    let port = match port {
        None => PortPattern::Exact(default_port),
        Some("*") => PortPattern::Any,
        Some(port) => {
            // `u16::from_str` would accept a leading `+`.
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid port {port:?}"));
            }
            match port.parse::<u16>() {
                Ok(0) | Err(_) => return Err(format!("invalid port {port:?}")),
                Ok(port) => PortPattern::Exact(port),
            }
        }
    };

    // Hosts go through `url`'s own host parser so that they are normalised
    // (lowercase, punycode, canonical IP forms) exactly like the URLs they
    // are compared with.
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.contains('*') {
            return Err("only one leading '*.' wildcard is allowed".into());
        }
        match Host::parse(suffix) {
            Ok(Host::Domain(domain)) if domain.contains('.') => HostPattern::SubdomainsOf(domain),
            // A bare `*.com` is almost certainly a mistake; `https://*`
            // says "any host" explicitly.
            Ok(Host::Domain(_)) => {
                return Err("a wildcard needs a domain of at least two labels after it".into());
            }
            Ok(_) => return Err("a wildcard must be followed by a domain name, not an ip".into()),
            Err(err) => return Err(format!("invalid host: {err}")),
        }
    } else if host.contains('*') {
        return Err("a wildcard must be the whole host or a leading '*.' label".into());
    } else {
        HostPattern::Exact(Host::parse(host).map_err(|err| format!("invalid host: {err}"))?)
    };

    let path = if path.is_empty() {
        None
    } else {
        // Normalise the prefix the way request paths are normalised.
        let normalised =
            Url::parse(&format!("http://prefix.invalid{path}")).map_err(|err| format!("invalid path: {err}"))?;
        match normalised.path() {
            "/" => None,
            prefix => Some(prefix.to_owned()),
        }
    };

    Ok(Entry { https, host, port, path })
}

// ---------------------------------------------------------------------------
// Address rules
// ---------------------------------------------------------------------------

/// Operator settings for plugin network access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPolicy {
    /// Allow loopback and the private ranges, and nothing else of what
    /// [`is_blocked`] refuses (see [`blocked_under`]). Only for deployments
    /// that deliberately let plugins reach internal services, and for tests.
    pub allow_private: bool,
    /// Upper bound for one fetch, redirects and body included.
    pub timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// Most redirects followed for one fetch.
    pub max_redirects: usize,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
}

impl Default for NetPolicy {
    fn default() -> Self {
        NetPolicy {
            allow_private: false,
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            max_redirects: 5,
            max_request_bytes: 1024 * 1024,
        }
    }
}

/// Returns why plugins may not connect to `ip`, or `None` if they may.
///
/// Refused are addresses that reach the host itself, the local network, cloud
/// metadata services, or that are not unicast on the public internet. IPv6
/// forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo)
/// are refused whatever they embed, rather than trusting that every layer
/// below us decodes them the same way.
///
/// [`NetPolicy::allow_private`] opens loopback and the private ranges only,
/// see [`blocked_under`].
pub fn is_blocked(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => blocked_v4(ip),
        IpAddr::V6(ip) => blocked_v6(ip),
    }
}

/// Why plugins may not connect to `ip` under the operator's setting: with
/// `allow_private`, loopback and the private ranges (10/8, 172.16/12,
/// 192.168/16, fc00::/7) are open, and nothing else is: cloud metadata,
/// link-local, CGNAT, multicast and the rest stay refused whatever the
/// setting says.
pub fn blocked_under(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    let reason = is_blocked(ip)?;
    let opened = allow_private && matches!(reason, "loopback" | "private" | "unique-local");
    (!opened).then_some(reason)
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        (169, 254, 169) if ip == Ipv4Addr::new(169, 254, 169, 254) => "cloud metadata",
        (0, _, _) => "this network",
        (10, _, _) => "private",
        (100, 64..=127, _) => "carrier-grade nat",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private",
        (192, 0, 0) => "ietf protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "6to4 relay",
        (192, 168, _) => "private",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (255, 255, 255) if ip.is_broadcast() => "broadcast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    };
    Some(reason)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // AWS publishes its instance metadata service on this unique-local address.
    const AWS_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254);
    if ip == AWS_METADATA {
        return Some("cloud metadata");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    let reason = match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] => "ipv4-mapped",
        [0, 0, 0, 0, 0, 0, _, _] => "ipv4-compatible",
        [0, 0, 0, 0, 0xffff, 0, _, _] => "ipv4-translated",
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => "nat64",
        [0x100, 0, 0, 0, ..] => "discard-only",
        [0x2001, 0xdb8, ..] => "documentation",
        [0x2001, 0x2, 0, ..] => "benchmarking",
        [0x2001, 0, ..] => "teredo",
        [0x2002, ..] => "6to4",
        [a, ..] if a & 0xfe00 == 0xfc00 => "unique-local",
        [a, ..] if a & 0xffc0 == 0xfe80 => "link-local",
        [a, ..] if a & 0xffc0 == 0xfec0 => "site-local",
        [a, ..] if a & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    };
    Some(reason)
}

/// The resolver refused every address of a name. Travels through reqwest's
/// error chain as the resolver's error and is turned back into
/// [`NetError::BlockedAddress`] by [`HttpClient::fetch`].
#[derive(Debug)]
struct BlockedByResolver {
    host: String,
    addr: IpAddr,
    reason: &'static str,
}

impl fmt::Display for BlockedByResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves only to blocked addresses, e.g. {} ({})", self.host, self.addr, self.reason)
    }
}

impl std::error::Error for BlockedByResolver {}

/// Keeps the addresses plugins may connect to.
fn screen_addrs(host: &str, addrs: Vec<SocketAddr>, allow_private: bool) -> Result<Vec<SocketAddr>, BlockedByResolver> {
    let mut first_blocked = None;
    let kept: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|addr| match blocked_under(addr.ip(), allow_private) {
            Some(reason) => {
                tracing::debug!(host, addr = %addr.ip(), reason, "dropping blocked address");
                first_blocked.get_or_insert((addr.ip(), reason));
                false
            }
            None => true,
        })
        .collect();
    match (kept.is_empty(), first_blocked) {
        (true, Some((addr, reason))) => Err(BlockedByResolver { host: host.to_owned(), addr, reason }),
        _ => Ok(kept),
    }
}

/// The only resolver the plugin client uses: the system resolver with
/// [`is_blocked`] applied to its answers. Because reqwest connects to exactly
/// the addresses returned here, a name cannot be re-pointed at an internal
/// address between the check and the connection.
#[derive(Debug)]
struct ScreeningResolver {
    allow_private: bool,
}

impl Resolve for ScreeningResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0 tells reqwest to substitute the URL's port.
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("no addresses found for {host}").into());
            }
            let kept = screen_addrs(&host, addrs, allow_private)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// A request a plugin asked the host to send.
#[derive(Clone, Default)]
pub struct OutboundRequest {
    /// The HTTP method; `CONNECT` is refused.
    pub method: Method,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Header names and values, in order; repeated names are sent repeatedly.
    pub headers: Vec<(String, String)>,
    /// The request body, possibly empty.
    pub body: Vec<u8>,
    /// The plugin's own deadline; the policy's timeout still caps it.
    pub timeout: Option<Duration>,
}

// Header values often hold credentials and bodies may hold personal data, so
// `Debug` (and therefore any log line built from it) shows only their shape.
impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("header_names", &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The response handed back to the plugin, after redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    /// Status code of the last response.
    pub status: u16,
    /// Response headers in order; values that are not UTF-8 are converted lossily.
    pub headers: Vec<(String, String)>,
    /// The complete response body.
    pub body: Vec<u8>,
    /// The URL that produced this response, after redirects.
    pub final_url: String,
}

/// The HTTP client behind the plugins' `http-fetch`.
///
/// Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: NetPolicy,
}

impl HttpClient {
    /// Builds the client for `policy`.
    ///
    /// The underlying reqwest client follows no redirects (we do, checking
    /// each hop), ignores proxy environment variables (a proxy would hide the
    /// real destination from the address rules), keeps no cookies (reqwest is
    /// built without its cookie store, so plugins cannot leak state to each
    /// other), sends no `Referer` and resolves names only through the
    /// screening resolver.
    ///
    /// # Errors
    ///
    /// Returns [`NetError::Transport`] if the TLS backend cannot be set up.
    pub fn new(policy: NetPolicy) -> Result<HttpClient, NetError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .user_agent(USER_AGENT)
            .dns_resolver(Arc::new(ScreeningResolver { allow_private: policy.allow_private }))
            .build()
            .map_err(|err| NetError::Transport(format!("cannot build http client: {err}")))?;
        Ok(HttpClient { client, policy })
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &NetPolicy {
        &self.policy
    }

    /// Sends `req` if `allow` and the address rules permit it, following
    /// redirects that they also permit, and returns the final response.
    ///
    /// Checks happen in this order, before anything is sent: the URL parses,
    /// is `http`/`https` without credentials, matches `allow`, is not a
    /// blocked IP literal; the body fits `max_request_bytes`; headers are
    /// valid. A 301/302/303/307/308 with a `Location` is followed after the
    /// same URL checks; 303 (and 301/302 after `POST`) continue as `GET`
    /// without body, and `Authorization`/`Cookie` are dropped once the origin
    /// changes. Other statuses, 4xx and 5xx included, are returned as responses.
    ///
    /// # Errors
    ///
    /// * [`NetError::InvalidUrl`]: unparsable URL or redirect location, other
    ///   scheme, credentials in the URL;
    /// * [`NetError::NotAllowed`]: the URL or a redirect target is outside `allow`;
    /// * [`NetError::BlockedAddress`]: the host is or resolves only to a
    ///   blocked address;
    /// * [`NetError::InvalidRequest`]: a bad or host-owned header, or `CONNECT`;
    /// * [`NetError::TooLarge`]: request or response body over the policy limit;
    /// * [`NetError::TooManyRedirects`]: more than `max_redirects` redirects;
    /// * [`NetError::Timeout`]: the exchange outlasted
    ///   `min(req.timeout, policy.timeout)`;
    /// * [`NetError::Transport`]: connection, TLS or protocol failure.
    pub async fn fetch(&self, allow: &Allowlist, req: OutboundRequest) -> Result<OutboundResponse, NetError> {
        let url = Url::parse(&req.url).map_err(|err| NetError::InvalidUrl(err.to_string()))?;
        self.vet(allow, &url)?;
        if req.body.len() > self.policy.max_request_bytes {
            return Err(NetError::TooLarge { limit: self.policy.max_request_bytes });
        }
        if req.method == Method::CONNECT {
            return Err(NetError::InvalidRequest("the CONNECT method is not allowed".into()));
        }
        let headers = build_headers(&req.headers)?;

        let timeout = req.timeout.map_or(self.policy.timeout, |t| t.min(self.policy.timeout));
        // One deadline for the whole exchange: every hop and the body read
        // share it, so a slow server cannot stretch a fetch by redirecting.
        let exchange = self.exchange(allow, req.method, url, headers, Bytes::from(req.body), timeout);
        tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(NetError::Timeout(timeout)))
    }

    /// Checks a URL (the requested one or a redirect target) before any
    /// connection is made to it.
    fn vet(&self, allow: &Allowlist, url: &Url) -> Result<(), NetError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(NetError::InvalidUrl(format!(
                "unsupported scheme {:?} (only http and https are allowed)",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(NetError::InvalidUrl("urls with credentials are not allowed".into()));
        }
        let Some(host) = url.host() else {
            return Err(NetError::InvalidUrl("url has no host".into()));
        };
        if !allow.allows(url) {
            tracing::debug!(origin = %origin(url), "plugin request outside allowlist");
            return Err(NetError::NotAllowed { url: origin(url) });
        }
        // reqwest connects to IP-literal hosts without asking the resolver,
        // so they are screened here. `url` has already turned exotic IPv4
        // spellings (`2130706433`, `0x7f.1`) into `Host::Ipv4`.
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            // Defence in depth: hyper parses the host string again, so a
            // domain that looks like an IP to it must be checked as one.
            Host::Domain(domain) => domain.parse::<IpAddr>().ok(),
        };
        let allow_private = self.policy.allow_private;
        let blocked = literal.and_then(|addr| Some((addr, blocked_under(addr, allow_private)?)));
        if let Some((addr, reason)) = blocked {
            tracing::debug!(%addr, reason, "plugin request to blocked address");
            return Err(NetError::BlockedAddress { host: url.host_str().unwrap_or_default().to_owned(), addr, reason });
        }
        Ok(())
    }

    async fn exchange(
        &self,
        allow: &Allowlist,
        mut method: Method,
        mut url: Url,
        mut headers: HeaderMap,
        mut body: Bytes,
        timeout: Duration,
    ) -> Result<OutboundResponse, NetError> {
        let mut redirects = 0;
        loop {
            let mut builder = self.client.request(method.clone(), url.clone()).headers(headers.clone());
            if !body.is_empty() {
                builder = builder.body(body.clone());
            }
            let mut resp = builder.send().await.map_err(|err| map_reqwest_error(err, &url, timeout))?;
            let status = resp.status();

            let location = match resp.headers().get(header::LOCATION) {
                Some(location) if is_followed_redirect(status) => Some(location.clone()),
                _ => None,
            };
            if let Some(location) = location {
                if redirects == self.policy.max_redirects {
                    return Err(NetError::TooManyRedirects(self.policy.max_redirects));
                }
                redirects += 1;
                let next = location.to_str().ok().and_then(|location| url.join(location).ok()).ok_or_else(|| {
                    NetError::InvalidUrl(format!("redirect from {} has an invalid location", origin(&url)))
                })?;
                self.vet(allow, &next)?;

                // What browsers do (and servers expect): 303 turns anything
                // but HEAD into GET, and so do 301/302 answering a POST.
                let to_get = (status == StatusCode::SEE_OTHER && method != Method::HEAD)
                    || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND) && method == Method::POST);
                if to_get {
                    method = Method::GET;
                    body = Bytes::new();
                    for name in [
                        header::CONTENT_TYPE,
                        header::CONTENT_ENCODING,
                        header::CONTENT_LANGUAGE,
                        header::CONTENT_LOCATION,
                    ] {
                        headers.remove(name);
                    }
                }
                // Credentials meant for one origin must not be handed to
                // whatever origin it redirects to.
                if next.origin() != url.origin() {
                    headers.remove(header::AUTHORIZATION);
                    headers.remove(header::COOKIE);
                }
                tracing::debug!(
                    status = status.as_u16(),
                    from = %origin(&url),
                    to = %origin(&next),
                    "following redirect"
                );
                url = next;
                continue;
            }

            let limit = self.policy.max_response_bytes;
            // Refuse early when the server announces an oversized body; the
            // chunk loop below still enforces the limit when it lies or
            // streams without a length.
            let announced = resp.content_length().unwrap_or(0);
            if announced > limit as u64 {
                return Err(NetError::TooLarge { limit });
            }
            let response_headers = resp
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect();
            // `announced <= limit` here, so this allocation is bounded.
            let mut data = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
            while let Some(chunk) = resp.chunk().await.map_err(|err| map_reqwest_error(err, &url, timeout))? {
                if data.len() + chunk.len() > limit {
                    return Err(NetError::TooLarge { limit });
                }
                data.extend_from_slice(&chunk);
            }
            return Ok(OutboundResponse {
                status: status.as_u16(),
                headers: response_headers,
                body: data,
                final_url: url.into(),
            });
        }
    }
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// `scheme://host[:port]`: what error messages and logs name, because paths
/// and queries may carry tokens.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn build_headers(pairs: &[(String, String)]) -> Result<HeaderMap, NetError> {
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| NetError::InvalidRequest(format!("invalid header name {name:?}")))?;
        if FORBIDDEN_REQUEST_HEADERS.contains(&name.as_str()) {
            return Err(NetError::InvalidRequest(format!("header {name} is set by the host and may not be supplied")));
        }
        // The value is deliberately not echoed: it may be a credential.
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| NetError::InvalidRequest(format!("invalid value for header {name}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Turns a reqwest error into a [`NetError`] whose message holds no URL path
/// or query (where API keys tend to live).
fn map_reqwest_error(err: reqwest::Error, url: &Url, timeout: Duration) -> NetError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(current) = source {
        if let Some(blocked) = current.downcast_ref::<BlockedByResolver>() {
            return NetError::BlockedAddress { host: blocked.host.clone(), addr: blocked.addr, reason: blocked.reason };
        }
        source = current.source();
    }
    if err.is_timeout() {
        return NetError::Timeout(timeout);
    }
    let err = err.without_url();
    let mut message = format!("request to {} failed: {err}", origin(url));
    let mut source = std::error::Error::source(&err);
    while let Some(current) = source {
        message.push_str(": ");
        message.push_str(&current.to_string());
        source = current.source();
    }
    // A nested error could still print the full URL; cut it back to the origin.
    NetError::Transport(message.replace(url.as_str(), &origin(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use axum::Router;
    use axum::http::HeaderMap as AxumHeaders;
    use axum::response::{IntoResponse, Response};
    use axum::routing::any;
    use axum::serve::ListenerExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const MIB: usize = 1024 * 1024;

    fn allowlist(entries: &[&str]) -> Allowlist {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        Allowlist::parse(&entries).unwrap()
    }

    fn client(allow_private: bool) -> HttpClient {
        HttpClient::new(NetPolicy { allow_private, ..NetPolicy::default() }).unwrap()
    }

    fn get(url: impl Into<String>) -> OutboundRequest {
        OutboundRequest { url: url.into(), ..OutboundRequest::default() }
    }

    fn header<'a>(resp: &'a OutboundResponse, name: &str) -> Option<&'a str> {
        resp.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A local axum server that counts accepted TCP connections.
    struct TestServer {
        addr: SocketAddr,
        connections: Arc<AtomicUsize>,
    }

    impl TestServer {
        async fn start(router: Router) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&connections);
            let listener = listener.tap_io(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
            TestServer { addr, connections }
        }

        fn port(&self) -> u16 {
            self.addr.port()
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        /// Asserts that nothing connected before now. A probe request is
        /// served first: connections are accepted in order, so once the
        /// probe is answered any earlier connection would have been counted.
        async fn assert_untouched(&self) {
            let probe = client(true).fetch(&allowlist(&["http://127.0.0.1:*"]), get(self.url("/probe"))).await.unwrap();
            assert_eq!(probe.status, 200);
            assert_eq!(self.connections.load(Ordering::SeqCst), 1, "server was contacted");
        }
    }

    /// Echoes the request: body back as body, interesting headers as `x-got-*`.
    async fn echo(method: Method, headers: AxumHeaders, body: Bytes) -> Response {
        let got = |name: &str| headers.get(name).map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
        (
            [
                ("x-got-method", method.to_string()),
                ("x-got-test", got("x-test")),
                ("x-got-user-agent", got("user-agent")),
                ("x-got-authorization", got("authorization")),
                ("x-got-cookie", got("cookie")),
                ("x-got-content-type", got("content-type")),
            ],
            body,
        )
            .into_response()
    }

    fn redirect(status: StatusCode, location: String) -> axum::routing::MethodRouter {
        any(move || {
            let location = location.clone();
            async move { (status, [(header::LOCATION, location)]).into_response() }
        })
    }

    /// Echo server, plus redirects to `other` (another server) when given.
    async fn echo_server(other: Option<&TestServer>) -> TestServer {
        let mut router = Router::new()
            .route("/echo", any(echo))
            .route("/probe", any(|| async { "ok" }))
            .route("/dir/start", redirect(StatusCode::FOUND, "../echo".into()))
            .route("/see-other", redirect(StatusCode::SEE_OTHER, "/echo".into()))
            .route("/moved", redirect(StatusCode::MOVED_PERMANENTLY, "/echo".into()))
            .route("/temporary", redirect(StatusCode::TEMPORARY_REDIRECT, "/echo".into()))
            .route("/same-origin", redirect(StatusCode::FOUND, "/echo".into()))
            .route("/loop", redirect(StatusCode::FOUND, "/loop".into()))
            .route("/no-location", any(|| async { StatusCode::FOUND }))
            .route("/big", any(|| async { vec![b'a'; 2 * MIB] }))
            .route(
                "/exact/{n}",
                any(|axum::extract::Path(n): axum::extract::Path<usize>| async move { vec![b'a'; n] }),
            );
        if let Some(other) = other {
            router = router
                .route("/away", redirect(StatusCode::FOUND, format!("http://127.0.0.1:{}/", other.port())))
                .route("/cross", redirect(StatusCode::FOUND, other.url("/echo")));
        }
        TestServer::start(router).await
    }

    #[test]
    fn allowlist_matching_table() {
        // entry, url, whether the entry allows the url.
        let table = "
            # Exact host, default ports.
            https://api.example.com            https://api.example.com/                   yes
            https://api.example.com            https://api.example.com:443/x?y=1          yes
            https://api.example.com            https://api.example.com:8443/              no
            https://api.example.com            http://api.example.com/                    no
            https://api.example.com            https://example.com/                       no
            https://api.example.com            https://api.example.com.evil.net/          no
            http://api.example.com             http://api.example.com:80/                 yes
            http://api.example.com             http://api.example.com:8080/               no
            # Case-insensitive scheme and host, on either side.
            https://API.Example.COM            https://api.example.com/                   yes
            https://api.example.com            https://API.EXAMPLE.com/                   yes
            HTTPS://api.example.com            https://api.example.com/                   yes
            # Subdomain wildcard: any depth, never the domain itself.
            https://*.example.com              https://a.example.com/                     yes
            https://*.example.com              https://a.b.example.com/                   yes
            https://*.example.com              https://A.EXAMPLE.COM/                     yes
            https://*.example.com              https://example.com/                       no
            https://*.example.com              https://evilexample.com/                   no
            https://*.example.com              https://a.example.com.evil.net/            no
            https://*.example.com              https://a.example.com:444/                 no
            https://*.example.com              http://a.example.com/                      no
            # Explicit ports.
            https://hooks.example.com:8443     https://hooks.example.com:8443/x           yes
            https://hooks.example.com:8443     https://hooks.example.com/x                no
            https://hooks.example.com:443      https://hooks.example.com/x                yes
            http://127.0.0.1:*                 http://127.0.0.1:1234/                     yes
            http://127.0.0.1:*                 http://127.0.0.1/                          yes
            http://127.0.0.1:*                 http://127.0.0.2:1234/                     no
            http://127.0.0.1:*                 https://127.0.0.1:1234/                    no
            # `url` normalises other IPv4 spellings before matching.
            http://127.0.0.1:*                 http://2130706433:1234/                    yes
            # Any host, IP literals included.
            https://*                          https://anything.example.org/              yes
            https://*                          https://203.0.113.7/                       yes
            https://*                          https://[2606:4700::1]/                    yes
            https://*                          https://anything.example.org:8443/         no
            https://*                          http://anything.example.org/               no
            http://*:*                         http://anything.example.org:9999/          yes
            # IPv6 literals.
            http://[::1]:8080                  http://[::1]:8080/                         yes
            http://[::1]:8080                  http://[0:0::1]:8080/                      yes
            http://[::1]:8080                  http://[::2]:8080/                         no
            http://[::1]:8080                  http://[::1]:8081/                         no
            https://[2606:4700::1]             https://[2606:4700:0::1]/x                 yes
            https://[2606:4700::1]             https://[2606:4700::2]/x                   no
            https://[2606:4700::1]             https://[2606:4700::1]:8443/x              no
            https://[2606:4700::1]             https://[::ffff:2606:4700]/x               no
            # Path prefixes; `..` and `%2e%2e` are resolved before matching.
            https://api.example.com/v1/        https://api.example.com/v1/users           yes
            https://api.example.com/v1/        https://api.example.com/v1/                yes
            https://api.example.com/v1/        https://api.example.com/v1                 no
            https://api.example.com/v1/        https://api.example.com/v2/users           no
            https://api.example.com/v1/        https://api.example.com/v1/../admin        no
            https://api.example.com/v1/        https://api.example.com/v1/%2e%2e/admin    no
            https://api.example.com/v1/        https://api.example.com/V1/users           no
            https://api.example.com/v1         https://api.example.com/v1                 yes
            https://api.example.com/v1         https://api.example.com/v1/users           yes
            https://api.example.com/v1         https://api.example.com/v1beta             no
            https://api.example.com/           https://api.example.com/anything           yes
            https://api.example.com/v1/../v2/  https://api.example.com/v2/x               yes
            # Other schemes never match.
            https://*                          ftp://example.com/                         no
        ";
        let mut checked = 0;
        for line in table.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let [entry, url, expected] = line.split_whitespace().collect::<Vec<_>>()[..] else {
                panic!("bad table line {line:?}");
            };
            let allow = allowlist(&[entry]);
            let url = Url::parse(url).unwrap();
            assert_eq!(allow.allows(&url), expected == "yes", "entry {entry} vs url {url}");
            checked += 1;
        }
        assert!(checked > 50);
    }

    #[test]
    fn allowlist_with_several_entries_allows_the_union() {
        let allow = allowlist(&["https://a.example.com", "https://*.example.org:8443"]);
        assert!(allow.allows(&Url::parse("https://a.example.com/").unwrap()));
        assert!(allow.allows(&Url::parse("https://x.example.org:8443/").unwrap()));
        assert!(!allow.allows(&Url::parse("https://x.example.org/").unwrap()));
        assert!(!allow.is_empty());
    }

    #[test]
    fn empty_allowlist_allows_nothing() {
        let allow = Allowlist::parse(&[]).unwrap();
        assert!(allow.is_empty());
        for url in ["https://example.com/", "http://127.0.0.1/", "https://[::1]/"] {
            assert!(!allow.allows(&Url::parse(url).unwrap()), "{url}");
        }
    }

    #[test]
    fn bad_allowlist_entries_are_named() {
        let bad = [
            "api.example.com",
            "ftp://example.com",
            "https://",
            "https://user:pw@example.com",
            "https://example.com:",
            "https://example.com:0",
            "https://example.com:65536",
            "https://example.com:+80",
            "https://example.com:8x",
            "https://a*.example.com",
            "https://api.*.com",
            "https://*.*.example.com",
            "https://*.com",
            "https://*.127.0.0.1",
            "https://::1",
            "https://[::1",
            "https://[::1]x",
            "https://[::g]",
            "https://exa mple.com",
            " https://example.com",
            "https://example.com/?q=1",
            "https://example.com/#frag",
        ];
        for entry in bad {
            let entries = vec!["https://fine.example.com".to_owned(), entry.to_owned()];
            match Allowlist::parse(&entries) {
                Err(NetError::BadAllowlistEntry { entry: named, reason }) => {
                    assert_eq!(named, entry);
                    assert!(!reason.is_empty());
                    let message = NetError::BadAllowlistEntry { entry: named, reason }.to_string();
                    assert!(message.starts_with("bad allowlist entry"), "{message}");
                }
                other => panic!("{entry:?} should be rejected, got {other:?}"),
            }
        }
    }

    #[test]
    fn is_blocked_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.254", Some("loopback")),
            ("10.0.0.1", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("cloud metadata")),
            ("169.254.1.1", Some("link-local")),
            ("100.64.0.1", Some("carrier-grade nat")),
            ("100.127.255.255", Some("carrier-grade nat")),
            ("0.0.0.0", Some("this network")),
            ("0.1.2.3", Some("this network")),
            ("255.255.255.255", Some("broadcast")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("240.0.0.1", Some("reserved")),
            ("198.18.0.1", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
            ("192.0.2.1", Some("documentation")),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("::ffff:127.0.0.1", Some("ipv4-mapped")),
            ("::ffff:8.8.8.8", Some("ipv4-mapped")),
            ("::127.0.0.1", Some("ipv4-compatible")),
            ("64:ff9b::7f00:1", Some("nat64")),
            ("2001:db8::1", Some("documentation")),
            ("fc00::1", Some("unique-local")),
            ("fd12:3456::1", Some("unique-local")),
            ("fd00:ec2::254", Some("cloud metadata")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("ff02::1", Some("multicast")),
            ("2002:7f00:1::", Some("6to4")),
            ("2001:0:4136:e378::1", Some("teredo")),
            // Public addresses, including the neighbours of blocked ranges.
            ("172.32.0.1", None),
            ("172.15.255.255", None),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("169.253.255.255", None),
            ("198.20.0.1", None),
            ("223.255.255.255", None),
            ("11.0.0.1", None),
            ("2606:4700::1", None),
            ("2001:4860:4860::8888", None),
            ("2a00:1450::1", None),
        ];
        for (ip, expected) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(is_blocked(ip), *expected, "{ip}");
        }
    }

    #[test]
    fn allowing_private_networks_opens_loopback_and_private_ranges_only() {
        for ip in ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "fd12:3456::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_blocked(ip).is_some() && blocked_under(ip, true).is_none(), "{ip}");
        }
        for ip in ["169.254.169.254", "fd00:ec2::254", "169.254.1.1", "fe80::1", "100.64.0.1", "0.0.0.0", "224.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(blocked_under(ip, true), is_blocked(ip), "{ip} stays refused");
            assert!(blocked_under(ip, true).is_some(), "{ip}");
        }
    }

    #[test]
    fn screening_keeps_public_addresses_and_names_a_blocked_one() {
        let public: SocketAddr = "93.184.216.34:0".parse().unwrap();
        let private: SocketAddr = "10.1.2.3:0".parse().unwrap();
        let loopback: SocketAddr = "[::1]:0".parse().unwrap();

        let kept = screen_addrs("mixed.example", vec![private, public, loopback], false).unwrap();
        assert_eq!(kept, vec![public]);

        let err = screen_addrs("internal.example", vec![private, loopback], false).unwrap_err();
        assert_eq!(err.host, "internal.example");
        assert_eq!(err.addr, private.ip());
        assert_eq!(err.reason, "private");
        assert!(err.to_string().contains("internal.example"));

        let all = screen_addrs("internal.example", vec![private, loopback], true).unwrap();
        assert_eq!(all, vec![private, loopback]);
    }

    #[test]
    fn error_kinds() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let cases = [
            (NetError::NotAllowed { url: "https://x".into() }, NetErrorKind::Denied),
            (NetError::BlockedAddress { host: "x".into(), addr: ip, reason: "loopback" }, NetErrorKind::Blocked),
            (NetError::TooManyRedirects(5), NetErrorKind::Blocked),
            (NetError::InvalidUrl("x".into()), NetErrorKind::Invalid),
            (NetError::InvalidRequest("x".into()), NetErrorKind::Invalid),
            (NetError::BadAllowlistEntry { entry: "x".into(), reason: "y".into() }, NetErrorKind::Invalid),
            (NetError::Timeout(Duration::from_secs(1)), NetErrorKind::Timeout),
            (NetError::Transport("x".into()), NetErrorKind::Transport),
            (NetError::TooLarge { limit: 1 }, NetErrorKind::TooLarge),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind(), kind, "{err}");
            let message = err.to_string();
            assert!(!message.ends_with('.'), "{message}");
            assert!(message.starts_with(|c: char| !c.is_uppercase()), "{message}");
        }
    }

    #[test]
    fn policy_defaults() {
        let policy = NetPolicy::default();
        assert!(!policy.allow_private);
        assert_eq!(policy.timeout, Duration::from_secs(10));
        assert_eq!(policy.max_response_bytes, MIB);
        assert_eq!(policy.max_redirects, 5);
        assert_eq!(policy.max_request_bytes, MIB);
    }

    #[test]
    fn request_debug_hides_header_values_and_body() {
        let req = OutboundRequest {
            headers: vec![("authorization".into(), "Bearer s3cret".into())],
            body: b"password=hunter2".to_vec(),
            ..get("https://api.example.com/")
        };
        let debug = format!("{req:?}");
        assert!(debug.contains("authorization"));
        assert!(!debug.contains("s3cret") && !debug.contains("hunter2"), "{debug}");
    }

    #[tokio::test]
    async fn private_addresses_are_refused_without_connecting() {
        let server = echo_server(None).await;
        let port = server.port();
        let allow = allowlist(&["http://*:*"]);
        let client = client(false);
        let cases = [
            (format!("http://127.0.0.1:{port}/echo"), "127.0.0.1", "loopback"),
            (format!("http://[::1]:{port}/echo"), "::1", "loopback"),
            (format!("http://[::ffff:127.0.0.1]:{port}/echo"), "::ffff:127.0.0.1", "ipv4-mapped"),
            // Other IPv4 spellings of loopback, normalised by `url`.
            (format!("http://2130706433:{port}/echo"), "127.0.0.1", "loopback"),
            (format!("http://0x7f.1:{port}/echo"), "127.0.0.1", "loopback"),
            ("http://10.0.0.1/".to_owned(), "10.0.0.1", "private"),
            ("http://169.254.169.254/latest/meta-data".to_owned(), "169.254.169.254", "cloud metadata"),
            ("http://[fd00:ec2::254]/latest/meta-data".to_owned(), "fd00:ec2::254", "cloud metadata"),
        ];
        for (url, addr, reason) in cases {
            let err = client.fetch(&allow, get(url.clone())).await.unwrap_err();
            match &err {
                NetError::BlockedAddress { addr: got, reason: why, .. } => {
                    assert_eq!(*got, addr.parse::<IpAddr>().unwrap(), "{url}");
                    assert_eq!(*why, reason, "{url}");
                }
                other => panic!("{url}: expected BlockedAddress, got {other:?}"),
            }
            assert_eq!(err.kind(), NetErrorKind::Blocked);
        }
        server.assert_untouched().await;
    }

    #[tokio::test]
    async fn localhost_is_refused_by_the_resolver() {
        let server = echo_server(None).await;
        let url = format!("http://localhost:{}/echo", server.port());
        let err = client(false).fetch(&allowlist(&["http://*:*"]), get(url)).await.unwrap_err();
        match &err {
            NetError::BlockedAddress { host, addr, reason } => {
                assert_eq!(host, "localhost");
                assert!(addr.is_loopback(), "{addr}");
                assert_eq!(*reason, "loopback");
            }
            other => panic!("expected BlockedAddress, got {other:?}"),
        }
        assert!(err.to_string().contains("localhost"), "{err}");
        server.assert_untouched().await;
    }

    #[tokio::test]
    async fn redirect_outside_the_allowlist_is_refused_on_the_hop() {
        let second = echo_server(None).await;
        let first = echo_server(Some(&second)).await;
        let allow = allowlist(&[&format!("http://127.0.0.1:{}", first.port())]);
        let err = client(true).fetch(&allow, get(first.url("/away"))).await.unwrap_err();
        assert_eq!(err, NetError::NotAllowed { url: format!("http://127.0.0.1:{}", second.port()) });
        second.assert_untouched().await;
    }

    #[tokio::test]
    async fn get_sends_headers_and_returns_the_response() {
        let server = echo_server(None).await;
        let allow = allowlist(&["http://127.0.0.1:*"]);
        let resp = client(true)
            .fetch(
                &allow,
                OutboundRequest { headers: vec![("X-Test".into(), "hello".into())], ..get(server.url("/echo?q=1")) },
            )
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(header(&resp, "x-got-method"), Some("GET"));
        assert_eq!(header(&resp, "x-got-test"), Some("hello"));
        assert_eq!(header(&resp, "x-got-user-agent"), Some(USER_AGENT));
        assert!(resp.body.is_empty());
        assert_eq!(resp.final_url, server.url("/echo?q=1"));
    }

    #[tokio::test]
    async fn post_sends_the_body() {
        let server = echo_server(None).await;
        let resp = client(true)
            .fetch(
                &allowlist(&["http://127.0.0.1:*"]),
                OutboundRequest {
                    method: Method::POST,
                    headers: vec![
                        ("content-type".into(), "application/json".into()),
                        ("x-test".into(), "posted".into()),
                    ],
                    body: br#"{"lead":42}"#.to_vec(),
                    ..get(server.url("/echo"))
                },
            )
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(header(&resp, "x-got-method"), Some("POST"));
        assert_eq!(header(&resp, "x-got-content-type"), Some("application/json"));
        assert_eq!(header(&resp, "x-got-test"), Some("posted"));
        assert_eq!(resp.body, br#"{"lead":42}"#);
    }

    #[tokio::test]
    async fn non_2xx_statuses_are_responses() {
        let server = echo_server(None).await;
        let allow = allowlist(&["http://127.0.0.1:*"]);
        let resp = client(true).fetch(&allow, get(server.url("/missing"))).await.unwrap();
        assert_eq!(resp.status, 404);
        // A redirect status without a location is not followed.
        let resp = client(true).fetch(&allow, get(server.url("/no-location"))).await.unwrap();
        assert_eq!(resp.status, 302);
    }

    #[tokio::test]
    async fn relative_redirect_is_followed() {
        let server = echo_server(None).await;
        let resp =
            client(true).fetch(&allowlist(&["http://127.0.0.1:*"]), get(server.url("/dir/start"))).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(header(&resp, "x-got-method"), Some("GET"));
        assert_eq!(resp.final_url, server.url("/echo"));
    }

    #[tokio::test]
    async fn redirects_rewrite_the_method_like_browsers() {
        let server = echo_server(None).await;
        let allow = allowlist(&["http://127.0.0.1:*"]);
        let client = client(true);
        let post = |path: &str| OutboundRequest {
            method: Method::POST,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"payload".to_vec(),
            ..get(server.url(path))
        };
        for path in ["/see-other", "/moved", "/same-origin"] {
            let resp = client.fetch(&allow, post(path)).await.unwrap();
            assert_eq!(header(&resp, "x-got-method"), Some("GET"), "{path}");
            assert_eq!(header(&resp, "x-got-content-type"), Some("none"), "{path}");
            assert!(resp.body.is_empty(), "{path}");
        }
        let resp = client.fetch(&allow, post("/temporary")).await.unwrap();
        assert_eq!(header(&resp, "x-got-method"), Some("POST"));
        assert_eq!(header(&resp, "x-got-content-type"), Some("text/plain"));
        assert_eq!(resp.body, b"payload");
        // 303 keeps other methods only as GET; PUT becomes GET too.
        let put = OutboundRequest { method: Method::PUT, ..post("/see-other") };
        let resp = client.fetch(&allow, put).await.unwrap();
        assert_eq!(header(&resp, "x-got-method"), Some("GET"));
    }

    #[tokio::test]
    async fn credentials_are_dropped_when_the_origin_changes() {
        let second = echo_server(None).await;
        let first = echo_server(Some(&second)).await;
        let allow = allowlist(&["http://127.0.0.1:*"]);
        let client = client(true);
        let with_credentials = |url: String| OutboundRequest {
            headers: vec![
                ("authorization".into(), "Bearer s3cret".into()),
                ("cookie".into(), "session=abc".into()),
                ("x-test".into(), "kept".into()),
            ],
            ..get(url)
        };

        let resp = client.fetch(&allow, with_credentials(first.url("/cross"))).await.unwrap();
        assert_eq!(resp.final_url, second.url("/echo"));
        assert_eq!(header(&resp, "x-got-authorization"), Some("none"));
        assert_eq!(header(&resp, "x-got-cookie"), Some("none"));
        assert_eq!(header(&resp, "x-got-test"), Some("kept"));

        let resp = client.fetch(&allow, with_credentials(first.url("/same-origin"))).await.unwrap();
        assert_eq!(header(&resp, "x-got-authorization"), Some("Bearer s3cret"));
        assert_eq!(header(&resp, "x-got-cookie"), Some("session=abc"));
    }

    #[tokio::test]
    async fn redirect_loop_is_too_many_redirects() {
        let server = echo_server(None).await;
        let err = client(true).fetch(&allowlist(&["http://127.0.0.1:*"]), get(server.url("/loop"))).await.unwrap_err();
        assert_eq!(err, NetError::TooManyRedirects(5));
        assert_eq!(err.kind(), NetErrorKind::Blocked);
    }

    #[tokio::test]
    async fn max_redirects_counts_followed_hops() {
        let server = echo_server(None).await;
        let allow = allowlist(&["http://127.0.0.1:*"]);
        let one = HttpClient::new(NetPolicy { allow_private: true, max_redirects: 1, ..NetPolicy::default() }).unwrap();
        assert_eq!(one.fetch(&allow, get(server.url("/same-origin"))).await.unwrap().status, 200);
        let none =
            HttpClient::new(NetPolicy { allow_private: true, max_redirects: 0, ..NetPolicy::default() }).unwrap();
        assert_eq!(
            none.fetch(&allow, get(server.url("/same-origin"))).await.unwrap_err(),
            NetError::TooManyRedirects(0)
        );
    }

    #[tokio::test]
    async fn oversized_body_with_content_length_is_too_large() {
        let server = echo_server(None).await;
        let err = client(true).fetch(&allowlist(&["http://127.0.0.1:*"]), get(server.url("/big"))).await.unwrap_err();
        assert_eq!(err, NetError::TooLarge { limit: MIB });
    }

    #[tokio::test]
    async fn body_at_the_limit_is_accepted_and_one_more_byte_is_not() {
        let server = echo_server(None).await;
        let allow = allowlist(&["http://127.0.0.1:*"]);
        let client =
            HttpClient::new(NetPolicy { allow_private: true, max_response_bytes: 1000, ..NetPolicy::default() })
                .unwrap();
        let resp = client.fetch(&allow, get(server.url("/exact/1000"))).await.unwrap();
        assert_eq!(resp.body.len(), 1000);
        let err = client.fetch(&allow, get(server.url("/exact/1001"))).await.unwrap_err();
        assert_eq!(err, NetError::TooLarge { limit: 1000 });
    }

    /// Serves one connection with a chunked 2 MiB body (no Content-Length).
    async fn chunked_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                assert_ne!(n, 0, "client closed before sending a request");
                request.extend_from_slice(&buf[..n]);
            }
            let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return;
            }
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..32 {
                let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                // The client hangs up once it has seen enough.
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        });
        addr
    }

    #[tokio::test]
    async fn oversized_chunked_body_is_too_large() {
        let addr = chunked_server().await;
        let err =
            client(true).fetch(&allowlist(&["http://127.0.0.1:*"]), get(format!("http://{addr}/"))).await.unwrap_err();
        assert_eq!(err, NetError::TooLarge { limit: MIB });
    }

    #[tokio::test]
    async fn server_that_never_answers_times_out() {
        // Connections complete in the kernel's backlog, but nothing is ever
        // accepted or answered.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let allow = allowlist(&["http://127.0.0.1:*"]);
        let timeout = Duration::from_millis(200);

        let started = Instant::now();
        let err = client(true)
            .fetch(&allow, OutboundRequest { timeout: Some(timeout), ..get(format!("http://{addr}/")) })
            .await
            .unwrap_err();
        assert_eq!(err, NetError::Timeout(timeout));
        assert_eq!(err.kind(), NetErrorKind::Timeout);
        assert!(started.elapsed() >= timeout);
        assert!(started.elapsed() < Duration::from_secs(5));

        // The policy caps a longer timeout asked for by the plugin.
        let capped = HttpClient::new(NetPolicy { allow_private: true, timeout, ..NetPolicy::default() }).unwrap();
        let err = capped
            .fetch(&allow, OutboundRequest { timeout: Some(Duration::from_secs(60)), ..get(format!("http://{addr}/")) })
            .await
            .unwrap_err();
        assert_eq!(err, NetError::Timeout(timeout));
        drop(listener);
    }

    #[tokio::test]
    async fn connection_refused_is_transport_without_the_query() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = client(true)
            .fetch(&allowlist(&["http://127.0.0.1:*"]), get(format!("http://{addr}/hook/path-token?api_key=s3cret")))
            .await
            .unwrap_err();
        let NetError::Transport(message) = &err else {
            panic!("expected Transport, got {err:?}");
        };
        assert!(message.contains(&format!("http://{addr}")), "{message}");
        assert!(!message.contains("s3cret") && !message.contains("path-token"), "{message}");
    }

    #[tokio::test]
    async fn urls_with_credentials_or_other_schemes_are_refused() {
        let server = echo_server(None).await;
        let allow = allowlist(&["http://*:*", "https://*:*"]);
        let client = client(true);
        for url in [
            format!("http://user:pw@127.0.0.1:{}/echo", server.port()),
            format!("http://user@127.0.0.1:{}/echo", server.port()),
            "ftp://127.0.0.1/file".to_owned(),
            "file:///etc/passwd".to_owned(),
            "not a url".to_owned(),
            "/relative/only".to_owned(),
        ] {
            let err = client.fetch(&allow, get(url.clone())).await.unwrap_err();
            assert!(matches!(err, NetError::InvalidUrl(_)), "{url}: {err:?}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
        server.assert_untouched().await;
    }

    #[tokio::test]
    async fn empty_allowlist_refuses_and_names_only_the_origin() {
        let server = echo_server(None).await;
        let err = client(true).fetch(&Allowlist::default(), get(server.url("/echo?token=s3cret"))).await.unwrap_err();
        assert_eq!(err, NetError::NotAllowed { url: format!("http://{}", server.addr) });
        assert_eq!(err.kind(), NetErrorKind::Denied);
        assert!(!err.to_string().contains("s3cret"));
        server.assert_untouched().await;
    }

    #[tokio::test]
    async fn allowlist_is_checked_before_address_rules() {
        // A private address outside the allowlist is reported as denied: the
        // plugin learns nothing about which addresses are blocked.
        let err =
            client(false).fetch(&allowlist(&["https://api.example.com"]), get("http://10.0.0.1/")).await.unwrap_err();
        assert_eq!(err, NetError::NotAllowed { url: "http://10.0.0.1".into() });
    }

    #[tokio::test]
    async fn bad_requests_are_refused_before_sending() {
        let server = echo_server(None).await;
        let allow = allowlist(&["http://127.0.0.1:*"]);
        let client = client(true);
        let with_header = |name: &str, value: &str| OutboundRequest {
            headers: vec![(name.into(), value.into())],
            ..get(server.url("/echo"))
        };
        for req in [
            with_header("bad header", "x"),
            with_header("", "x"),
            with_header("x-test", "line\r\nx-injected: 1"),
            with_header("x-test", "nul\0"),
            with_header("Host", "internal.example"),
            with_header("content-length", "5"),
            with_header("transfer-encoding", "chunked"),
            OutboundRequest { method: Method::CONNECT, ..get(server.url("/echo")) },
        ] {
            let err = client.fetch(&allow, req.clone()).await.unwrap_err();
            assert!(matches!(err, NetError::InvalidRequest(_)), "{req:?}: {err:?}");
            assert!(!err.to_string().contains("x-injected"), "{err}");
        }
        let too_big = OutboundRequest { method: Method::POST, body: vec![0; MIB + 1], ..get(server.url("/echo")) };
        assert_eq!(client.fetch(&allow, too_big).await.unwrap_err(), NetError::TooLarge { limit: MIB });
        server.assert_untouched().await;
    }
}
