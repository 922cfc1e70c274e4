//! Shared pieces of Stepwise's end-to-end tests: the guest components built
//! for them, a runtime with test limits, fixtures and a local HTTP server.

pub mod app;
pub mod bench;
pub mod browser;
pub mod console;
pub mod db;
pub mod delivery;
pub mod scenario;
pub mod smtp_sink;

use std::sync::Arc;
use std::time::Duration;

use stepwise::crm::{Contact, Subject, User};
use stepwise::plugins::types::StepContext;
use stepwise::plugins::{AccountGrant, Grant, Invocation, Limits, NetPolicy, Runtime, RuntimeConfig, StaticDirectory};

/// The test guests, one constant each.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// The add-on examples under `plugins/`, built by this crate's build script
/// apart from the host: the path of each one's component file, to upload
/// as an operator would.
pub mod add_ons {
    include!(concat!(env!("OUT_DIR"), "/add_ons.rs"));
}

/// Limits small enough that the misbehaving guests fail fast.
pub fn test_limits() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(500),
        memory_bytes: 32 << 20,
        output_bytes: 1 << 20,
        log_bytes: 16 << 10,
        concurrent_calls: 8,
        ..Limits::default()
    }
}

/// Components built for contract 0.1.0 by the SDK of the time (before
/// 0.2.0 was added) and kept exactly as built: a host serving 0.2.0 must go
/// on running them unchanged. `tests/fixtures/wit-0.1.0/README.md` says
/// how they were made.
pub mod wit_0_1_0 {
    /// The `host-caller` test guest.
    pub const HOST_CALLER: &[u8] = include_bytes!("../fixtures/wit-0.1.0/host-caller.wasm");
    /// The `predicate-even` test guest.
    pub const PREDICATE_EVEN: &[u8] = include_bytes!("../fixtures/wit-0.1.0/predicate-even.wasm");
    /// The Rust chat example, `chat-notify` 1.0.0.
    pub const CHAT_NOTIFY: &[u8] = include_bytes!("../fixtures/wit-0.1.0/chat-notify-1.0.0.wasm");
}

/// A runtime with test limits; `allow_private` lets `http-fetch` reach
/// the loopback servers tests start.
pub fn runtime(allow_private: bool) -> Runtime {
    let net = NetPolicy { allow_private, timeout: Duration::from_secs(5), ..NetPolicy::default() };
    runtime_with(test_limits(), net)
}

/// A runtime with `limits` and `net`, on two threads.
pub fn runtime_with(limits: Limits, net: NetPolicy) -> Runtime {
    // The artifact cache is shared by every test (it is keyed by component
    // digest and engine), so each guest is compiled once per machine.
    let cache_dir = Some(std::env::temp_dir().join("stepwise-test-artifacts"));
    Runtime::new(RuntimeConfig { limits, net, cache_dir, threads: Some(2) }).expect("runtime starts")
}

/// Ada, a contact with an owner.
pub fn ada() -> Subject {
    let contact = Contact {
        id: "con_ada".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: Some("ada@example.com".into()),
        phone: Some("+15550100".into()),
        owner_id: Some("usr_grace".into()),
        contact_type: "Clients".into(),
        ..Contact::default()
    };
    Subject { contact, owner: Some(grace()), company: None }
}

/// Grace, an active agent.
pub fn grace() -> User {
    User {
        id: "usr_grace".into(),
        name: "Grace Hopper".into(),
        email: "grace@example.com".into(),
        signature: "Grace, Stepwise".into(),
        ..User::default()
    }
}

/// An invocation for `subject` under `grants` (command-line form).
pub fn invocation(subject: Subject, grants: &[&str]) -> Invocation {
    let grants: Vec<String> = grants.iter().map(|g| (*g).to_owned()).collect();
    let grant = Grant::parse_cli(&grants).expect("grants parse");
    Invocation {
        grant: Arc::new(AccountGrant::new(grant).expect("allowlist parses")),
        step: StepContext {
            idempotency_key: "act_test_1".into(),
            action_id: "act_test_1".into(),
            ..StepContext::default()
        },
        subject,
        directory: Arc::new(StaticDirectory::new(vec![grace()])),
        effects: None,
    }
}

/// A request a [`Recorder`] received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Received {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A local HTTP server on 127.0.0.1 that records every request and answers
/// with a fixed status and body.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    received: Arc<std::sync::Mutex<Vec<Received>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
}

impl Recorder {
    /// Starts a server answering `status` with `reply`.
    pub async fn start(status: u16, reply: &'static str) -> Self {
        Self::serve(status, reply, None).await
    }

    /// Starts a server answering every request with a 302 to `location`.
    pub async fn redirecting(location: &str) -> Self {
        Self::serve(302, "", Some(location.to_owned())).await
    }

    async fn serve(status: u16, reply: &'static str, location: Option<String>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = received.clone();
        let answer = Arc::new(std::sync::atomic::AtomicU16::new(status));
        let answers = answer.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let sink = sink.clone();
            let location = location.clone();
            let status = answers.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
                let status = axum::http::StatusCode::from_u16(status).expect("valid status");
                sink.lock().unwrap().push(Received {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body: body.to_vec(),
                });
                let mut headers = axum::http::HeaderMap::new();
                if let Some(location) = location.and_then(|l| l.parse().ok()) {
                    headers.insert(axum::http::header::LOCATION, location);
                }
                (status, headers, reply)
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, received, status: answer }
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.status.store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
