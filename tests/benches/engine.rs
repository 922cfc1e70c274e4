//! Benchmark of the sequence engine: throughput of automatic actions and the
//! real-time latency from due to executed, on SQLite and (when
//! `STEPWISE_TEST_POSTGRES_URL` is set) PostgreSQL.
//!
//! Throughput: N contacts are enrolled in a five-step automatic sequence of
//! the trivial plugin, all due at once, and the scheduler runs them to
//! completion; each action is claimed under a lease, runs the WASM plugin,
//! and commits its completion, the next step's due date and its event.
//!
//! Latency: with the scheduler running on the system clock and otherwise
//! idle, enrollments whose one step falls due at spread-out times; the
//! difference between each action's due time and its completion is
//! reported (p50, p99).
//!
//! Run with `cargo bench -p stepwise-tests --bench engine` (options after
//! `--`: `--contacts N`, `--batch N` (the scheduler's batch size),
//! `--latency-actions N` (0: no latency run), `--backend sqlite|postgres`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use stepwise::engine::{Clock, Engine, EngineConfig, EnrollRequest, ManualClock, RecordingTransport, SystemClock};
use stepwise::plugins::{Limits, NetPolicy, Registry, Runtime, RuntimeConfig};
use stepwise::store::Store;
use stepwise_tests::bench::{backends, contacts, open, trivial_sequence};

struct Options {
    contacts: usize,
    /// The scheduler's batch size in the throughput run.
    batch: u32,
    latency_actions: usize,
    backends: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        contacts: 4_000,
        batch: EngineConfig::default().batch_size,
        latency_actions: 400,
        backends: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--contacts" => o.contacts = args.next().and_then(|v| v.parse().ok()).expect("--contacts N"),
            "--batch" => o.batch = args.next().and_then(|v| v.parse().ok()).expect("--batch N"),
            "--latency-actions" => {
                o.latency_actions = args.next().and_then(|v| v.parse().ok()).expect("--latency-actions N")
            }
            "--backend" => o.backends.push(args.next().expect("--backend sqlite|postgres")),
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    o.backends = backends(std::mem::take(&mut o.backends));
    o
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::new(RuntimeConfig {
            limits: Limits { concurrent_calls: 256, ..Limits::default() },
            net: NetPolicy::default(),
            cache_dir: Some(std::env::temp_dir().join("stepwise-test-artifacts")),
            threads: None,
        })
        .expect("runtime");
        let registry = Registry::with_builtins(runtime).await.expect("built-ins");
        registry.add(stepwise_tests::guests::TRIVIAL).await.expect("trivial loads");
        let registry = Arc::new(registry);
        for backend in &o.backends {
            let dir = tempfile::tempdir().expect("temporary directory");
            let (store, _, cleanup) = open(backend, &dir).await;
            throughput(&store, &registry, backend, o.contacts, o.batch).await;
            store.close().await;
            cleanup.await;
            if o.latency_actions == 0 {
                continue;
            }
            let (store, _, cleanup) = open(backend, &dir).await;
            latency(&store, &registry, backend, o.latency_actions).await;
            store.close().await;
            cleanup.await;
        }
    });
}

async fn throughput(store: &Store, registry: &Arc<Registry>, backend: &str, n: usize, batch: u32) {
    const STEPS: usize = 5;
    let start = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let engine = Engine::new(
        store.clone(),
        registry.clone(),
        clock.clone(),
        Arc::new(RecordingTransport::new()),
        EngineConfig { batch_size: batch, ..EngineConfig::default() },
    );
    let (account, user, sequence) = trivial_sequence(store, "Bench", STEPS, 0, clock.now()).await;
    let contacts = contacts(&engine, &account, &user, n).await;
    let enrolling = Instant::now();
    for contact in &contacts {
        let request = EnrollRequest {
            contact_id: contact.clone(),
            sequence_id: sequence.clone(),
            initiated_by: Some(user.clone()),
            event_date: None,
        };
        engine.enroll(&account, &request).await.unwrap();
    }
    let enrolled = enrolling.elapsed();
    let running = Instant::now();
    let handled = engine.run_until_idle().await.unwrap();
    let ran = running.elapsed();
    assert_eq!(handled, n * STEPS, "every action ran");
    println!("{backend}: throughput, {n} enrollments x {STEPS} automatic steps (trivial plugin)");
    println!(
        "  enroll          {:>10.0} enrollments/s ({:.2} s)",
        n as f64 / enrolled.as_secs_f64(),
        enrolled.as_secs_f64()
    );
    println!(
        "  run to the end  {:>10.0} actions/s ({} actions in {:.2} s)",
        handled as f64 / ran.as_secs_f64(),
        handled,
        ran.as_secs_f64()
    );
    stages(&engine);
}

/// Where the scheduler's time went, per batch (the stages of consecutive
/// batches overlap, so they add up to more than a batch's share).
fn stages(engine: &Engine) {
    let totals = engine.stage_metrics().totals();
    let batches = totals.batches.max(1) as f64;
    let per_batch: Vec<String> = totals
        .stages
        .iter()
        .map(|(stage, took)| format!("{stage:?} {:.1} ms", took.as_secs_f64() * 1000.0 / batches).to_lowercase())
        .collect();
    println!(
        "  per batch of {:.0} actions ({} batches): {}",
        totals.actions as f64 / batches,
        totals.batches,
        per_batch.join(", ")
    );
}

async fn latency(store: &Store, registry: &Arc<Registry>, backend: &str, n: usize) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = Engine::new(
        store.clone(),
        registry.clone(),
        clock.clone(),
        Arc::new(RecordingTransport::new()),
        EngineConfig::default(),
    );
    let spread = Duration::from_millis(10);
    let (account, user, sequence) = trivial_sequence(store, "Bench", 1, 200, clock.now()).await;
    let contacts = contacts(&engine, &account, &user, n).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run(async { stopped.await.unwrap_or(()) }).await })
    };
    // One enrollment every 10 ms, each due 200 ms after it is made, so the
    // scheduler sleeps between due times, as when idle.
    let mut enrollments = Vec::with_capacity(n);
    for contact in &contacts {
        let request = EnrollRequest {
            contact_id: contact.clone(),
            sequence_id: sequence.clone(),
            initiated_by: Some(user.clone()),
            event_date: None,
        };
        let enrollment = engine.enroll(&account, &request).await.unwrap();
        enrollments.push(enrollment.id);
        tokio::time::sleep(spread).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(()).unwrap();
    runner.await.unwrap().unwrap();
    let mut lateness = Vec::with_capacity(n);
    let mut tx = store.begin_read().await.unwrap();
    for id in &enrollments {
        let actions = tx.actions_of_enrollment(id).await.unwrap();
        let a = &actions[0];
        let late = a.completed_at.expect("completed") - a.due_at.expect("due");
        lateness.push(late.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
    }
    lateness.sort_by(f64::total_cmp);
    let pick = |q: f64| lateness[((lateness.len() as f64 * q) as usize).min(lateness.len() - 1)];
    println!("{backend}: due-to-executed latency, {n} actions due 10 ms apart, scheduler otherwise idle");
    println!("  p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms", pick(0.5), pick(0.99), pick(1.0));
}
