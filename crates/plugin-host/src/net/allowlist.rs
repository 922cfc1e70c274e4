//! The grant's allowlist: which origins (and path prefixes) a plugin's
//! `http-fetch` may reach.

use url::{Host, Url};

use super::NetError;

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

    // A path is a literal prefix: a `*` in it would match only a `*`, so
    // an entry such as `http://host:8080/*` could never allow anything.
    if path.contains('*') {
        let whole = entry.split('*').next().unwrap_or(entry);
        return Err(format!(
            "a path is a literal prefix, never a pattern: `*` in it matches nothing; write {whole:?} (every path \
             under it) or leave the path out (every path)"
        ));
    }
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
