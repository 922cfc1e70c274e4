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
//! `--latency-actions N` (0: no latency run), `--backend sqlite|postgres`,
//! `--events`: the account subscribes a local receiver to every
//! enrollment's start and end and every action's completion, so each
//! action also writes its event out and the run delivers them all).

use std::sync::Arc;
use std::time::{Duration, Instant};

use stepwise::engine::{Clock, Engine, EngineConfig, EnrollRequest, ManualClock, RecordingTransport, SystemClock};
use stepwise::plugins::Registry;
use stepwise::store::Store;
use stepwise_tests::bench::{
    Running, arguments, contacts, enroll, first_step_lateness, open, real_time_engine, registry_with_trivial,
    trivial_sequence, value,
};

struct Options {
    contacts: usize,
    /// The scheduler's batch size in the throughput run.
    batch: u32,
    latency_actions: usize,
    /// Subscribe a receiver to the run's events.
    events: bool,
    backends: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        contacts: 4_000,
        batch: EngineConfig::default().batch_size,
        latency_actions: 400,
        events: false,
        backends: Vec::new(),
    };
    o.backends = arguments(|flag, args| match flag {
        "--contacts" => o.contacts = value(args, flag),
        "--batch" => o.batch = value(args, flag),
        "--latency-actions" => o.latency_actions = value(args, flag),
        "--events" => o.events = true,
        _ => {}
    });
    o
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let registry = registry_with_trivial().await;
        for backend in &o.backends {
            let dir = tempfile::tempdir().expect("temporary directory");
            let (store, _, cleanup) = open(backend, &dir).await;
            throughput(&store, &registry, backend, &o).await;
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

async fn throughput(store: &Store, registry: &Arc<Registry>, backend: &str, o: &Options) {
    const STEPS: usize = 5;
    let (n, batch) = (o.contacts, o.batch);
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
    let receiver = if o.events { Some(subscribe(&engine, &account, &user).await) } else { None };
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
    if let Some(receiver) = receiver {
        let events = n * (STEPS + 2);
        let delivered = receiver.received().len();
        println!("  events out      {delivered} of {events} written with their changes delivered within the run");
    }
    stages(&engine);
}

/// A local receiver subscribed to every enrollment's start and end and
/// every action's completion of `account`.
async fn subscribe(engine: &Engine, account: &str, user: &str) -> stepwise_tests::Recorder {
    use stepwise::engagement::{Editor, WebhookEventType as T};
    let receiver = stepwise_tests::Recorder::start(204, "").await;
    let request = stepwise::engine::SubscriptionRequest {
        url: format!("{}/events", receiver.base),
        description: None,
        event_types: vec![T::EnrollmentStarted, T::ActionCompleted, T::EnrollmentCompleted],
    };
    engine.create_webhook_subscription(account, &request, &Editor::user(user)).await.unwrap();
    receiver
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
    let engine = real_time_engine(store, registry);
    let clock = SystemClock;
    let spread = Duration::from_millis(10);
    let (account, user, sequence) = trivial_sequence(store, "Bench", 1, 200, clock.now()).await;
    let contacts = contacts(&engine, &account, &user, n).await;
    let running = Running::start(&engine);
    // One enrollment every 10 ms, each due 200 ms after it is made, so the
    // scheduler sleeps between due times, as when idle.
    let mut enrollments = Vec::with_capacity(n);
    for contact in &contacts {
        enrollments.push(enroll(&engine, &account, &user, &sequence, contact).await);
        tokio::time::sleep(spread).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await;
    let [p50, p99, max] = first_step_lateness(store, &enrollments).await;
    println!("{backend}: due-to-executed latency, {n} actions due 10 ms apart, scheduler otherwise idle");
    println!("  p50 {p50:>7.1} ms   p99 {p99:>7.1} ms   max {max:>7.1} ms");
}
