//! The address rules: which addresses a plugin's request may connect to,
//! checked inside the resolver the client connects with, and the operator's
//! [`NetPolicy`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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
pub(super) struct BlockedByResolver {
    pub(super) host: String,
    pub(super) addr: IpAddr,
    pub(super) reason: &'static str,
}

impl fmt::Display for BlockedByResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves only to blocked addresses, e.g. {} ({})", self.host, self.addr, self.reason)
    }
}

impl std::error::Error for BlockedByResolver {}

/// Keeps the addresses plugins may connect to.
pub(super) fn screen_addrs(
    host: &str,
    addrs: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, BlockedByResolver> {
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
pub(super) struct ScreeningResolver {
    pub(super) allow_private: bool,
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
