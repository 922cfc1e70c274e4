//! Benchmark of fairness between accounts, on SQLite and (when
//! `STEPWISE_TEST_POSTGRES_URL` is set) PostgreSQL: while one account's
//! burst is being worked off, how late are another account's actions?
//!
//! Account A has `--burst N` (100,000) automatic actions of the trivial
//! plugin all due when the scheduler starts (as a 100k-contact enrollment
//! leaves them; made with SQL so that it takes seconds). The scheduler then
//! runs on the system clock while account B enrolls one contact every
//! `--every MS` (100) milliseconds, `--probes N` (100) times, in a one-step
//! sequence of the same plugin due at once. Reported: how late B's actions
//! ran after their due time (p50, p99, max), how many of them fell due while
//! A still had a backlog, and how fast A's burst was worked off.
//!
//! Run with `cargo bench -p stepwise-tests --bench fairness` (options after
//! `--`, also `--backend sqlite|postgres`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use stepwise::engine::{Clock, Engine, EngineConfig, EnrollRequest, RecordingTransport, SystemClock};
use stepwise::plugins::{Limits, NetPolicy, Registry, Runtime, RuntimeConfig};
use stepwise_tests::bench::{Bulk, backends, contacts, open, trivial_sequence};

struct Options {
    burst: usize,
    probes: usize,
    every: Duration,
    backends: Vec<String>,
}

fn options() -> Options {
    let mut o = Options { burst: 100_000, probes: 100, every: Duration::from_millis(100), backends: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--burst" => o.burst = args.next().and_then(|v| v.parse().ok()).expect("--burst N"),
            "--probes" => o.probes = args.next().and_then(|v| v.parse().ok()).expect("--probes N"),
            "--every" => {
                o.every = Duration::from_millis(args.next().and_then(|v| v.parse().ok()).expect("--every MS"));
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
            let (store, url, cleanup) = open(backend, &dir).await;
            let bulk = Bulk::connect(&url).await;
            run(&store, &bulk, &registry, backend, &o).await;
            bulk.close().await;
            store.close().await;
            cleanup.await;
        }
    });
}

async fn run(store: &stepwise::store::Store, bulk: &Bulk, registry: &Arc<Registry>, backend: &str, o: &Options) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = Engine::new(
        store.clone(),
        registry.clone(),
        clock.clone(),
        Arc::new(RecordingTransport::new()),
        EngineConfig::default(),
    );
    let (busy, _, busy_sequence) = trivial_sequence(store, "Burst", 1, 0, clock.now()).await;
    let now = clock.now();
    bulk.users(&busy, "a", 10, now).await;
    bulk.contacts(&busy, "a", o.burst, ("a", 10), now).await;
    bulk.due_burst(&busy, "a", (&busy_sequence, "trivial"), o.burst, now).await;
    bulk.analyze().await;
    let (other, user, sequence) = trivial_sequence(store, "Other", 1, 0, clock.now()).await;
    let probes = contacts(&engine, &other, &user, o.probes).await;

    let started = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run(async { stopped.await.unwrap_or(()) }).await })
    };
    let mut enrollments = Vec::with_capacity(o.probes);
    let mut during_backlog = 0;
    for contact in &probes {
        let request = EnrollRequest {
            contact_id: contact.clone(),
            sequence_id: sequence.clone(),
            initiated_by: Some(user.clone()),
            event_date: None,
        };
        let enrollment = engine.enroll(&other, &request).await.unwrap();
        enrollments.push(enrollment.id);
        if bulk.due(clock.now()).await > 1 {
            during_backlog += 1;
        }
        tokio::time::sleep(o.every).await;
    }
    while bulk.due(clock.now()).await > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    runner.await.unwrap().unwrap();

    let mut lateness = Vec::with_capacity(enrollments.len());
    let mut tx = store.begin_read().await.unwrap();
    for id in &enrollments {
        let actions = tx.actions_of_enrollment(id).await.unwrap();
        let a = &actions[0];
        let late = a.completed_at.expect("completed") - a.due_at.expect("due");
        lateness.push(late.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
    }
    lateness.sort_by(f64::total_cmp);
    let pick = |q: f64| lateness[((lateness.len() as f64 * q) as usize).min(lateness.len() - 1)];
    println!(
        "{backend}: {} actions of account A due at once; account B enrolls one contact every {} ms",
        o.burst,
        o.every.as_millis()
    );
    println!(
        "  A's burst worked off in {:.2} s ({:.0} actions/s, B's included)",
        drained.as_secs_f64(),
        (o.burst + enrollments.len()) as f64 / drained.as_secs_f64()
    );
    println!(
        "  B's actions, due to executed: p50 {:>8.1} ms   p99 {:>8.1} ms   max {:>8.1} ms ({during_backlog} of {} made while A had a backlog)",
        pick(0.5),
        pick(0.99),
        pick(1.0),
        lateness.len()
    );
}
