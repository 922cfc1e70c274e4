//! Benchmark of email delivery: how many emails a second one host hands to
//! a local SMTP server through the outbox, and what that server takes by
//! itself, on SQLite and (when `STEPWISE_TEST_POSTGRES_URL` is set)
//! PostgreSQL.
//!
//! The server is `stepwise_tests::smtp_sink`, a minimal SMTP server that
//! accepts and counts. "Server alone" is a bare client on as many
//! connections as the host uses, one transaction after another on each.
//! "Host" is the outbox dispatcher: N queued emails, claimed in batches,
//! each handed over under its handover mark through the pooled SMTP
//! transport and recorded sent; timed from the first claim to the last
//! record.
//!
//! Run with `cargo bench -p stepwise-tests --bench mail` (options after
//! `--`: `--emails N`, `--connections N` (the SMTP pool),
//! `--concurrency N` (messages handed over at once),
//! `--backend sqlite|postgres`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use stepwise::delivery::Channels;
use stepwise::delivery::smtp::{Security, SmtpConfig, SmtpTransport};
use stepwise::engagement::OutboxChannel;
use stepwise::engine::{Engine, EngineConfig, SystemClock};
use stepwise::plugins::{Registry, Runtime, RuntimeConfig};
use stepwise::store::{NewOutboxMessage, Store};
use stepwise_tests::bench::{arguments, open, value};
use stepwise_tests::smtp_sink::{SmtpSink, blast};

struct Options {
    emails: usize,
    connections: usize,
    concurrency: usize,
    backends: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        emails: 20_000,
        connections: 8,
        concurrency: EngineConfig::default().outbox_concurrency,
        backends: Vec::new(),
    };
    o.backends = arguments(|flag, args| match flag {
        "--emails" => o.emails = value(args, flag),
        "--connections" => o.connections = value(args, flag),
        "--concurrency" => o.concurrency = value(args, flag),
        _ => {}
    });
    o
}

/// A body the size of a short sales email.
fn body() -> String {
    let line = "Hello Ada, following up on our conversation about the proposal; are you free this week?\r\n";
    format!("Subject: Following up\r\nFrom: sales@stepwise.test\r\nTo: ada@example.com\r\n\r\n{}", line.repeat(6))
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let sink = SmtpSink::start().await;
        let started = Instant::now();
        blast(sink.port, o.connections, o.emails, &body()).await;
        let alone = rate(sink.accepted(), started.elapsed());
        println!(
            "mail server alone: {} emails over {} connections, {alone:.0} emails/s",
            sink.accepted(),
            o.connections
        );

        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(std::env::temp_dir().join("stepwise-test-artifacts")),
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let registry = Arc::new(Registry::with_builtins(runtime).await.expect("built-ins"));
        for backend in &o.backends {
            let dir = tempfile::tempdir().expect("temporary directory");
            let (store, _, cleanup) = open(backend, &dir).await;
            let sink = SmtpSink::start().await;
            let host = deliver(&store, &registry, &sink, &o).await;
            println!(
                "mail host [{backend}]: {} emails, {} connections, {} at once: {host:.0} emails/s ({:.0}% of the server alone)",
                o.emails,
                o.connections,
                o.concurrency,
                100.0 * host / alone
            );
            store.close().await;
            cleanup.await;
        }
    });
}

/// Queues the emails, then times the dispatcher delivering them all.
async fn deliver(store: &Store, registry: &Arc<Registry>, sink: &SmtpSink, o: &Options) -> f64 {
    let now = chrono::Utc::now();
    let mut tx = store.begin().await.unwrap();
    let account = tx.create_account("Bench", None, now).await.unwrap().id;
    tx.commit().await.unwrap();
    for chunk in (0..o.emails).collect::<Vec<_>>().chunks(1_000) {
        let batch: Vec<NewOutboxMessage> = chunk
            .iter()
            .map(|i| NewOutboxMessage {
                account_id: account.clone(),
                action_id: None,
                channel: OutboxChannel::Email,
                payload: serde_json::json!({
                    "to": format!("contact{i}@example.com"),
                    "subject": "Following up",
                    "text": "Hello Ada, following up on our conversation about the proposal; are you free this week?\n".repeat(6),
                }),
                idempotency_key: format!("bench_{i}"),
            })
            .collect();
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_messages(&batch, now).await.unwrap();
        tx.commit().await.unwrap();
    }
    let smtp = SmtpConfig {
        host: "127.0.0.1".into(),
        port: sink.port,
        security: Security::None,
        ca: None,
        credentials: None,
        from: "sales@stepwise.test".parse().unwrap(),
        from_name: Some("Acme Sales".into()),
        envelope_from: None,
        timeout: Duration::from_secs(30),
        connections: o.connections,
    };
    let transport = Arc::new(Channels::new(Some(SmtpTransport::new(smtp)), None));
    let config = EngineConfig { outbox_concurrency: o.concurrency, ..EngineConfig::default() };
    let engine = Engine::new(store.clone(), registry.clone(), Arc::new(SystemClock), transport, config);
    let started = Instant::now();
    let mut sent = 0;
    while sent < o.emails {
        let delivered = engine.dispatch_outbox().await.expect("the dispatcher runs");
        assert!(delivered > 0, "the dispatcher stalled after {sent} emails");
        sent += delivered;
    }
    let took = started.elapsed();
    assert_eq!(sink.accepted(), o.emails as u64, "each email once");
    let mut tx = store.begin_read().await.unwrap();
    let left = tx.queued_messages(10).await.unwrap();
    assert!(left.is_empty() && sent == o.emails, "all sent: {} queued", left.len());
    rate(sent as u64, took)
}

fn rate(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}
