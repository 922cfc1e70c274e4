//! Stepwise hosts as real processes on one database, for the crash tests
//! and the many-hosts benchmark: `stepwise serve` and `stepwise scheduler`
//! hosts, a webhook receiver, an SMTP sink, and a sequence of two webhooks
//! and an email run for many contacts.

#![allow(dead_code)]

#[path = "../../../tests/src/smtp_sink.rs"]
mod smtp_sink;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use smtp_sink::SmtpSink;

/// The lease the hosts claim under.
pub const LEASE: Duration = Duration::from_secs(4);

/// An event a subscription delivered: its `webhook-id`, type and enrollment.
#[derive(Debug, Clone)]
struct Delivered {
    id: String,
    kind: String,
    enrollment: String,
}

/// The webhook receiver: the steps' requests by `Idempotency-Key`, and the
/// events of the account's webhook subscription in the order they came.
#[derive(Clone, Default)]
struct Receiver {
    keys: Arc<Mutex<HashMap<String, u32>>>,
    events: Arc<Mutex<Vec<Delivered>>>,
    delay: Duration,
}

impl Receiver {
    async fn start(&self) -> String {
        let (keys, delay) = (self.keys.clone(), self.delay);
        let events = self.events.clone();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(move |headers: axum::http::HeaderMap| {
                    let keys = keys.clone();
                    async move {
                        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        *keys.lock().unwrap().entry(key).or_default() += 1;
                        tokio::time::sleep(delay).await;
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            )
            .route(
                "/events",
                axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let events = events.clone();
                    async move {
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        let kind = body["type"].as_str().unwrap_or("").to_owned();
                        let enrollment = body["data"]["enrollment_id"].as_str().unwrap_or("").to_owned();
                        events.lock().unwrap().push(Delivered { id, kind, enrollment });
                        tokio::time::sleep(delay).await;
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// Distinct keys, and requests that repeated a key.
    fn counts(&self) -> (usize, usize) {
        let keys = self.keys.lock().unwrap();
        (keys.len(), keys.values().map(|n| *n as usize - 1).sum())
    }

    fn seen(&self, key: &str) -> bool {
        self.keys.lock().unwrap().contains_key(key)
    }

    /// Of the events stored for the subscription (`stored` ids): how many
    /// never arrived, how many distinct ids arrived that were never stored,
    /// and how many enrollments' first arrivals broke commit order (an
    /// enrollment's completion before one of its step's completions).
    fn events(&self, stored: &[String]) -> (usize, usize, usize) {
        let events = self.events.lock().unwrap();
        let received: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let stored_set: std::collections::HashSet<&str> = stored.iter().map(String::as_str).collect();
        let missing = stored_set.difference(&received).count();
        let unknown = received.difference(&stored_set).count();
        let mut first = std::collections::HashSet::new();
        let mut ended = std::collections::HashSet::new();
        let mut out_of_order = 0;
        for event in events.iter().filter(|e| first.insert(e.id.clone())) {
            match event.kind.as_str() {
                "enrollment.completed" => drop(ended.insert(event.enrollment.clone())),
                _ if ended.contains(&event.enrollment) => out_of_order += 1,
                _ => {}
            }
        }
        (missing, unknown, out_of_order)
    }
}

/// What every host of a run shares.
pub struct Cluster {
    /// The database every host shares.
    pub database_url: String,
    /// The SMTP server's port.
    pub smtp_port: u16,
}

impl Cluster {
    fn command(&self, what: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
        command
            .arg(what)
            .env("STEPWISE_DATABASE_URL", &self.database_url)
            .env("STEPWISE_LISTEN", "127.0.0.1:0")
            .env("STEPWISE_ALLOW_PRIVATE_NETWORK", "true")
            .env("STEPWISE_SCHEDULER_LEASE_SECONDS", LEASE.as_secs().to_string())
            .env("STEPWISE_SCHEDULER_MAX_IDLE_MS", "1000")
            .env("STEPWISE_SMTP_HOST", "127.0.0.1")
            .env("STEPWISE_SMTP_PORT", self.smtp_port.to_string())
            .env("STEPWISE_SMTP_SECURITY", "none")
            .env("STEPWISE_SMTP_FROM", "sales@stepwise.test")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// `serve`: its admin key (on a fresh database) and the API's base URL.
    pub async fn serve(&self) -> (Child, Option<String>, String) {
        let mut child = self.command("serve").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let (key, base) = tokio::time::timeout(Duration::from_secs(60), async {
            let mut key = None;
            loop {
                tokio::select! {
                    line = out.next_line() => {
                        let Some(line) = line.unwrap() else { continue };
                        if let Some((_, secret)) = line.split_once("admin API key (shown once; keep it safe): ") {
                            key = Some(secret.trim().to_owned());
                        }
                    }
                    line = err.next_line() => {
                        let line = line.unwrap().expect("serve stopped before listening");
                        if let Some(rest) = line.strip_prefix("stepwise listening on ") {
                            return (key, rest.split_whitespace().next().unwrap().to_owned());
                        }
                    }
                }
            }
        })
        .await
        .expect("serve starts within a minute");
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
        (child, key, base)
    }

    fn scheduler(&self) -> Child {
        self.command("scheduler").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }
}

/// The API as the test's admin.
pub struct Api {
    /// The client.
    pub client: reqwest::Client,
    /// The API's base URL.
    pub base: String,
    /// The admin's key.
    pub key: String,
}

impl Api {
    /// Calls `path` with a JSON `body`; its answer, which must be a success.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.send(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    /// Calls `path` with a JSON `body`; its status and answer.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (reqwest::StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        self.answer(request).await
    }

    /// Uploads a component as an add-on; its status and answer.
    pub async fn upload(&self, wasm: Vec<u8>) -> (reqwest::StatusCode, Value) {
        let request = self.client.post(format!("{}/v1/plugins", self.base)).bearer_auth(&self.key);
        self.answer(request.header("content-type", "application/wasm").body(wasm)).await
    }

    async fn answer(&self, request: reqwest::RequestBuilder) -> (reqwest::StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.client.get(format!("{}/metrics", self.base)).send().await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

/// Sets up the account: a connected mailbox, the webhook granted, and an
/// active sequence of two webhooks and an email for `n` new contacts.
async fn setup(api: &Api, hook: &str, n: usize) -> (String, Vec<String>) {
    let me = api.call(reqwest::Method::GET, "/v1/me", None).await["user"].clone();
    let mut user = me.clone();
    user["sender_connected"] = json!(true);
    let id = me["id"].as_str().unwrap().to_owned();
    api.call(reqwest::Method::PUT, &format!("/v1/users/{id}"), Some(user)).await;
    let grant =
        json!({"enabled": true, "grant": {"capabilities": ["render-template", "http-fetch"], "http_allow": [hook]}});
    api.call(reqwest::Method::PUT, "/v1/plugins/webhook/account", Some(grant)).await;
    let events = hook.replace("/hook", "/events");
    let subscription = json!({"url": events, "event_types": ["action.completed", "enrollment.completed"]});
    api.call(reqwest::Method::POST, "/v1/webhook-subscriptions", Some(subscription)).await;
    let step = |position: u32, name: &str, plugin: &str, config: Value| {
        json!({"position": position, "name": name, "plugin": {"id": plugin, "version": "*"}, "config": config,
               "timing": {"kind": "delay", "ms": 0}, "activation": "automatic", "owner": {"rule": "contact_owner"}})
    };
    let webhook = json!({"url": hook, "payload": {"mode": "fields", "fields": [{"key": "name", "value": "{{contact.first_name}}"}]}});
    let email = json!({"subject": "Hello {{contact.first_name}}", "body": "Following up.", "signature": false});
    let steps = json!([
        step(0, "Tell the CRM", "webhook", webhook.clone()),
        step(1, "Tell it again", "webhook", webhook),
        step(2, "Say hello", "email", email)
    ]);
    let created =
        api.call(reqwest::Method::POST, "/v1/sequences", Some(json!({"name": "Crash", "steps": steps}))).await;
    let seq = created["sequence"]["id"].as_str().unwrap().to_owned();
    api.call(reqwest::Method::POST, &format!("/v1/sequences/{seq}/state"), Some(json!({"state": "active"}))).await;
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let rows: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"first_name": format!("C{i}"), "email": format!("c{i}@example.com"), "owner_id": id}))
            .collect();
        let imported = api.call(reqwest::Method::POST, "/v1/contacts/import", Some(json!({"contacts": rows}))).await;
        ids.extend(imported["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
    }
    (seq, ids)
}

/// How a run goes.
#[derive(Clone, Copy)]
pub struct Plan {
    /// Contacts enrolled (three actions each).
    pub contacts: usize,
    /// `stepwise scheduler` hosts besides `serve`.
    pub schedulers: usize,
    /// Times a scheduler host is killed and started again.
    pub kills: usize,
    /// Restarts the database once mid-run.
    pub restart: Option<fn()>,
    /// How long the webhook receiver takes to answer.
    pub receiver_delay: Duration,
}

/// What a run came to.
#[derive(Debug)]
pub struct Outcome {
    pub actions: usize,
    pub completed: i64,
    pub parked: i64,
    pub parked_never_started: usize,
    pub webhook_keys: usize,
    pub webhook_repeats: usize,
    pub emails: usize,
    pub email_duplicates: usize,
    pub emails_interrupted: i64,
    /// Events the webhook subscription was sent, as stored.
    pub events: usize,
    /// Of those, how many never reached the receiver.
    pub events_missing: usize,
    /// Event ids the receiver got that were never stored.
    pub events_unknown: usize,
    /// Events that arrived (first) after their enrollment's completion.
    pub events_out_of_order: usize,
    pub longest_expired_lease: Duration,
    pub took: Duration,
}

/// The run's database, read straight.
#[derive(Clone)]
pub enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    pub async fn connect(url: &str) -> Db {
        if url.starts_with("sqlite:") {
            Db::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else {
            Db::Postgres(sqlx::PgPool::connect(url).await.unwrap())
        }
    }

    pub async fn execute(&self, sql: &str) {
        match self {
            Db::Sqlite(p) => drop(sqlx::query(sql).execute(p).await.unwrap()),
            Db::Postgres(p) => drop(sqlx::query(sql).execute(p).await.unwrap()),
        }
    }

    async fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// Counts, straight from the database.
async fn count(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.unwrap(),
    }
}

/// Runs `plan` on the database at `database_url` (new and empty).
pub async fn run(database_url: String, plan: Plan) -> Outcome {
    let Plan { contacts: n, schedulers, kills, restart, receiver_delay } = plan;
    let sink = SmtpSink::start().await;
    let receiver = Receiver { delay: receiver_delay, ..Receiver::default() };
    let hook = receiver.start().await;
    let cluster = Cluster { database_url: database_url.clone(), smtp_port: sink.port };
    let (_serve, key, base) = cluster.serve().await;
    let api = Api { client: reqwest::Client::new(), base, key: key.expect("a fresh database prints the admin key") };
    let (seq, contacts) = setup(&api, &hook, n).await;
    let mut hosts: Vec<Child> = (0..schedulers).map(|_| cluster.scheduler()).collect();

    // Enrolled in a few requests; the hosts take the work as it comes.
    let started = Instant::now();
    for chunk in contacts.chunks(5_000) {
        let body = json!({"sequence_id": seq, "contact_ids": chunk});
        api.call(reqwest::Method::POST, "/v1/enrollments/bulk", Some(body)).await;
    }

    // How long past its lease's expiry a dead host's work waits to be
    // claimed again, as `/metrics` shows it; not while the database
    // restarts and the hosts reconnect (nobody claims anything then).
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let restarting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let longest = Arc::new(Mutex::new(Duration::ZERO));
    let watcher = {
        let (watching, restarting, longest) = (watching.clone(), restarting.clone(), longest.clone());
        let api = Api { client: api.client.clone(), base: api.base.clone(), key: api.key.clone() };
        tokio::spawn(async move {
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                if restarting.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                if let Some(age) = api.metric("stepwise_expired_lease_age_seconds").await {
                    let mut longest = longest.lock().unwrap();
                    *longest = (*longest).max(Duration::from_secs_f64(age));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let db = Db::connect(&database_url).await;
    let total = 3 * n as i64;
    let done = |db: Db| async move {
        count(&db, "SELECT COUNT(*) FROM actions WHERE status = 'completed' OR deferral_reason = 'duplicate_attempt'")
            .await
    };
    // Kills spread over the run: each when another sixth of the work is done.
    for k in 0..kills {
        let target = total * (k as i64 + 1) / (kills as i64 + 2);
        while done(db.clone()).await < target {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let victim = k % hosts.len();
        hosts[victim].start_kill().unwrap();
        hosts[victim].wait().await.unwrap();
        if k == kills / 2
            && let Some(restart) = restart
        {
            restarting.store(true, std::sync::atomic::Ordering::Relaxed);
            tokio::task::spawn_blocking(restart).await.unwrap();
            let (restarting, db) = (restarting.clone(), db.clone());
            let api = Api { client: api.client.clone(), base: api.base.clone(), key: api.key.clone() };
            tokio::spawn(async move {
                // The watch goes on once the hosts are back: work moves
                // again and nothing is left under an expired lease.
                let before = done(db.clone()).await;
                loop {
                    let now = done(db.clone()).await;
                    let moved = now > before || now >= total;
                    if moved && api.metric("stepwise_expired_leases").await == Some(0.0) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                restarting.store(false, std::sync::atomic::Ordering::Relaxed);
            });
        }
        hosts[victim] = cluster.scheduler();
    }
    let finished = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            // A message a killed host was handing over keeps its mark and
            // stays leased for the handover's deadline: it may have been
            // sent, so it is never sent again.
            let queued =
                count(&db, "SELECT COUNT(*) FROM outbox WHERE state = 'queued' AND handover_started_at IS NULL").await;
            // Every event delivered too, a killed host's in-flight ones
            // again once their lease ends.
            let pending = count(&db, "SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'succeeded'").await;
            if done(db.clone()).await >= total && queued == 0 && pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let took = started.elapsed();
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    watcher.await.unwrap();
    let completed = count(&db, "SELECT COUNT(*) FROM actions WHERE status = 'completed'").await;
    assert!(finished.is_ok(), "the run did not finish: {completed} of {total} actions completed");

    let parked_ids = db.strings("SELECT id FROM actions WHERE deferral_reason = 'duplicate_attempt'").await;
    // A parked webhook whose request never reached the receiver never began.
    let parked_never_started = parked_ids.iter().filter(|id| !receiver.seen(id)).count();
    let (webhook_keys, webhook_repeats) = receiver.counts();
    let (emails, email_duplicates) = sink.message_ids();
    let emails_interrupted = count(
        &db,
        "SELECT COUNT(*) FROM outbox WHERE state = 'failed' OR (state = 'queued' AND handover_started_at IS NOT NULL)",
    )
    .await;
    let stored = db.strings("SELECT event_id FROM webhook_deliveries").await;
    let (events_missing, events_unknown, events_out_of_order) = receiver.events(&stored);
    let outcome = Outcome {
        events: stored.len(),
        events_missing,
        events_unknown,
        events_out_of_order,
        actions: total as usize,
        completed,
        parked: parked_ids.len() as i64,
        parked_never_started,
        webhook_keys,
        webhook_repeats,
        emails,
        email_duplicates,
        emails_interrupted,
        longest_expired_lease: *longest.lock().unwrap(),
        took,
    };
    db.close().await;
    for mut host in hosts {
        let _ = host.start_kill();
        let _ = host.wait().await;
    }
    eprintln!(
        "{} actions in {:.1} s; webhook requests repeating a key: {}; {outcome:#?}",
        outcome.actions,
        outcome.took.as_secs_f64(),
        outcome.webhook_repeats
    );
    outcome
}

/// Runs `command` in `dir` as a plugin author would, which must succeed:
/// `cargo` is the one running the tests, and Rust builds share
/// `target/examples`.
pub fn run_in(dir: &std::path::Path, command: &[&str]) {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace");
    let program = match command[0] {
        "cargo" => std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        other => other.to_owned(),
    };
    let output = std::process::Command::new(&program)
        .args(&command[1..])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", workspace.join("target/examples"))
        .output()
        .unwrap_or_else(|e| panic!("{}: cannot run `{}` ({e}); is it installed?", dir.display(), command.join(" ")));
    assert!(
        output.status.success(),
        "{}: `{}` failed\n{}\n{}",
        dir.display(),
        command.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
