//! The network rules, tested against real servers on loopback.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http::{Method, StatusCode};
use url::Url;

use super::address::screen_addrs;
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
        .route("/exact/{n}", any(|axum::extract::Path(n): axum::extract::Path<usize>| async move { vec![b'a'; n] }));
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
fn a_star_in_a_path_is_refused_with_the_entry_that_means_what_was_meant() {
    let entries = vec!["http://127.0.0.1:8080/*".to_owned()];
    let Err(NetError::BadAllowlistEntry { reason, .. }) = Allowlist::parse(&entries) else {
        panic!("a trailing /* can never match and is refused")
    };
    assert!(reason.contains("literal prefix") && reason.contains("\"http://127.0.0.1:8080/\""), "{reason}");
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
        "http://127.0.0.1:8080/*",
        "https://api.example.com/v1/*/items",
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
                headers: vec![("content-type".into(), "application/json".into()), ("x-test".into(), "posted".into())],
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
    let resp = client(true).fetch(&allowlist(&["http://127.0.0.1:*"]), get(server.url("/dir/start"))).await.unwrap();
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
    let none = HttpClient::new(NetPolicy { allow_private: true, max_redirects: 0, ..NetPolicy::default() }).unwrap();
    assert_eq!(none.fetch(&allow, get(server.url("/same-origin"))).await.unwrap_err(), NetError::TooManyRedirects(0));
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
        HttpClient::new(NetPolicy { allow_private: true, max_response_bytes: 1000, ..NetPolicy::default() }).unwrap();
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
    let err = client(false).fetch(&allowlist(&["https://api.example.com"]), get("http://10.0.0.1/")).await.unwrap_err();
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
