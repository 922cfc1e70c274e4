//! The client behind `http-fetch`: one request and its redirects, each hop
//! through the allowlist and the address rules, bounded in time and size.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use url::{Host, Url};

use super::address::{BlockedByResolver, NetPolicy, ScreeningResolver, blocked_under};
use super::allowlist::Allowlist;
use super::{NetError, USER_AGENT};

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
