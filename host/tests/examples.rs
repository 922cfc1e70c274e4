//! The example plugins under `plugins/examples/`: the same chat step in
//! Rust, JavaScript and Python, each built by its own command with its own
//! tests run, uploaded to a real `stepwise serve`, and run side by side in
//! one sequence against a chat that is busy at first. The Rust example's
//! 1.0.0, built for contract 0.1.0 before 0.2.0 existed and kept as built,
//! runs in the same sequence next to its 1.1.0, built for 0.2.0.
//!
//! Building needs what an author of each language has: cargo with the
//! `wasm32-wasip2` target, Node.js with npm, and Python 3 with pip (its
//! packages come from npm and PyPI).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use support::{Api, Cluster, SmtpSink};

/// One component the test uploads.
struct Example {
    /// The chat room it posts to.
    room: &'static str,
    /// Its plugin id.
    id: &'static str,
    /// Its own version.
    version: &'static str,
    /// The contract version it was built for.
    wit: &'static str,
    /// Its component, once built.
    file: &'static str,
}

/// The components, in the sequence's order.
const EXAMPLES: [Example; 4] = [
    Example {
        room: "rust",
        id: "chat-notify",
        version: "1.1.0",
        wit: "0.2.0",
        file: "target/examples/wasm32-wasip2/release/chat_notify.wasm",
    },
    Example {
        room: "js",
        id: "chat-notify-js",
        version: "1.0.0",
        wit: "0.2.0",
        file: "plugins/examples/chat-notify-js/chat-notify-js.wasm",
    },
    Example {
        room: "python",
        id: "chat-notify-py",
        version: "1.0.0",
        wit: "0.2.0",
        file: "plugins/examples/chat-notify-python/chat-notify-py.wasm",
    },
    Example {
        room: "rust-0.1.0",
        id: "chat-notify",
        version: "1.0.0",
        wit: "0.1.0",
        file: "tests/fixtures/wit-0.1.0/chat-notify-1.0.0.wasm",
    },
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_owned()
}

/// Runs `command` in the example `dir`, which must succeed.
fn run(dir: &str, command: &[&str]) {
    support::run_in(&root().join("plugins/examples").join(dir), command);
}

/// Builds every example with the command its README gives, after its own
/// tests.
fn build() {
    run("chat-notify-rust", &["cargo", "build", "--locked", "--release", "--target", "wasm32-wasip2"]);
    run("chat-notify-js", &["npm", "ci", "--no-audit", "--no-fund"]);
    run("chat-notify-js", &["npm", "test"]);
    run("chat-notify-js", &["npm", "run", "build"]);
    run("chat-notify-python", &["python3", "-m", "unittest"]);
    run("chat-notify-python", &["./build.sh"]);
}

/// A chat's incoming webhook: busy (503, `Retry-After: 1`) the first time
/// it hears of an action, then taking each message; what it took, by
/// path.
#[derive(Clone, Default)]
struct Chat {
    tries: Arc<Mutex<HashMap<String, u32>>>,
    taken: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Chat {
    async fn start(&self) -> String {
        let chat = self.clone();
        let app = axum::Router::new().route(
            "/chat/{room}",
            axum::routing::post(
                move |axum::extract::Path(room): axum::extract::Path<String>,
                      headers: axum::http::HeaderMap,
                      body: axum::body::Bytes| {
                    let chat = chat.clone();
                    async move {
                        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("");
                        let tries = {
                            let mut tries = chat.tries.lock().unwrap();
                            let n = tries.entry(key.to_owned()).or_default();
                            *n += 1;
                            *n
                        };
                        if tries == 1 {
                            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]);
                        }
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        chat.taken.lock().unwrap().push((room, body));
                        (axum::http::StatusCode::NO_CONTENT, [("retry-after", "0")])
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }
}

fn step(position: usize, plugin: &str, version: &str, config: Value) -> Value {
    json!({
        "position": position, "name": format!("Tell the team ({plugin} {version})"),
        "plugin": {"id": plugin, "version": format!("={version}")}, "config": config,
        "timing": {"kind": "delay", "ms": 0}, "activation": "automatic", "owner": {"rule": "contact_owner"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run_side_by_side_on_a_real_server() {
    tokio::task::spawn_blocking(build).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start().await;
    let database_url = format!("sqlite://{}?mode=rwc", dir.path().join("stepwise.db").display());
    let (_serve, key, base) = Cluster { database_url, smtp_port: sink.port }.serve().await;
    let api = Api { client: reqwest::Client::new(), base, key: key.expect("a fresh database prints the admin key") };
    let chat = Chat::default();
    let chat_base = chat.start().await;

    for Example { id, version, file, .. } in EXAMPLES {
        let (status, added) = api.upload(std::fs::read(root().join(file)).unwrap()).await;
        assert_eq!(status, 201, "{id}: {added}");
        assert_eq!(added["id"], id);
        assert_eq!(added["version"], version);
        let grant = json!({"enabled": true, "grant": {
            "capabilities": ["render-template", "http-fetch"], "http_allow": [format!("{chat_base}/chat/")]}});
        api.call(Method::PUT, &format!("/v1/plugins/{id}/account"), Some(grant)).await;

        // Each checks its config as the sequence is saved, at the field.
        let bad = json!({"name": format!("Broken {id}"), "steps": [
            step(0, id, version, json!({"url": "ftp://chat.example.com", "text": "Hi {{contact.nickname}}"}))]});
        let (status, refused) = api.send(Method::POST, "/v1/sequences", Some(bad)).await;
        assert_eq!(status, 422, "{id}: {refused}");
        let fields: Vec<&str> =
            refused["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        assert!(fields.contains(&"/steps/0/config/url") && fields.contains(&"/steps/0/config/text"), "{id}: {refused}");
    }
    // Both versions of the Rust example are served, each on its contract.
    let listed = api.call(Method::GET, "/v1/plugins", None).await;
    for Example { id, version, wit, .. } in EXAMPLES {
        let found = listed["plugins"].as_array().unwrap().iter().find(|p| p["id"] == id && p["version"] == version);
        assert_eq!(found.map(|p| p["wit_version"].clone()), Some(json!(wit)), "{id} {version}: {listed}");
    }

    let me = api.call(Method::GET, "/v1/me", None).await["user"]["id"].as_str().unwrap().to_owned();
    let steps: Vec<Value> = EXAMPLES
        .iter()
        .enumerate()
        .map(|(i, Example { room, id, version, .. })| {
            let config = json!({"url": format!("{chat_base}/chat/{room}"), "text": "New lead: {{contact.first_name}}"});
            step(i, id, version, config)
        })
        .collect();
    let seq = api.call(Method::POST, "/v1/sequences", Some(json!({"name": "Tell the team", "steps": steps}))).await;
    let seq = seq["sequence"]["id"].as_str().unwrap().to_owned();
    api.call(Method::POST, &format!("/v1/sequences/{seq}/state"), Some(json!({"state": "active"}))).await;
    let contact = json!({"first_name": "Ada", "email": "ada@example.com", "owner_id": me, "contact_type": "Clients"});
    let contact = api.call(Method::POST, "/v1/contacts", Some(contact)).await;
    let contact = contact["contact"]["id"].as_str().unwrap().to_owned();
    let enrolled =
        api.call(Method::POST, "/v1/enrollments", Some(json!({"sequence_id": seq, "contact_id": contact}))).await;
    let enrollment = enrolled["enrollment"]["id"].as_str().unwrap().to_owned();

    // Each step meets a busy chat, is tried again after a second, and posts.
    let done = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let read = api.call(Method::GET, &format!("/v1/enrollments/{enrollment}"), None).await;
            let status = read["enrollment"]["status"].as_str().unwrap_or("").to_owned();
            if status != "running" && status != "pending" {
                return (status, read);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the enrollment ends within 90 s");
    assert_eq!(done.0, "completed", "{}", done.1);
    let taken = chat.taken.lock().unwrap().clone();
    let rooms: Vec<&str> = taken.iter().map(|(room, _)| room.as_str()).collect();
    assert_eq!(rooms, EXAMPLES.map(|e| e.room), "in the sequence's order: {taken:?}");
    for (room, body) in &taken {
        assert_eq!(body["text"], "New lead: Ada", "{room}: rendered with the contact's tokens");
    }
    let tries = chat.tries.lock().unwrap().clone();
    assert_eq!(tries.len(), EXAMPLES.len(), "one idempotency key per action: {tries:?}");
    assert!(tries.values().all(|n| *n == 2), "each tried again once: {tries:?}");

    let actions = done.1["actions"].as_array().cloned().unwrap_or_default();
    assert_eq!(actions.len(), EXAMPLES.len(), "{actions:?}");
    for (action, Example { id, version, .. }) in actions.iter().zip(EXAMPLES) {
        assert_eq!(action["plugin_id"], id);
        assert_eq!(action["status"], "completed", "{action}");
        assert_eq!(action["result"], "posted");
        assert_eq!(action["attempts"], 2, "{action}");
        let read = api.call(Method::GET, &format!("/v1/actions/{}", action["id"].as_str().unwrap()), None).await;
        assert_eq!(read["plugin_version"], version, "{read}");
    }
}
