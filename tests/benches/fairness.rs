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

use stepwise::engine::{Clock, SystemClock};
use stepwise::plugins::Registry;
use stepwise_tests::bench::{
    Bulk, Running, arguments, contacts, enroll, first_step_lateness, open, real_time_engine, registry_with_trivial,
    trivial_sequence, value,
};

struct Options {
    burst: usize,
    probes: usize,
    every: Duration,
    backends: Vec<String>,
}

fn options() -> Options {
    let mut o = Options { burst: 100_000, probes: 100, every: Duration::from_millis(100), backends: Vec::new() };
    o.backends = arguments(|flag, args| match flag {
        "--burst" => o.burst = value(args, flag),
        "--probes" => o.probes = value(args, flag),
        "--every" => o.every = Duration::from_millis(value(args, flag)),
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
    let engine = real_time_engine(store, registry);
    let clock = SystemClock;
    let (busy, _, busy_sequence) = trivial_sequence(store, "Burst", 1, 0, clock.now()).await;
    let now = clock.now();
    bulk.users(&busy, "a", 10, now).await;
    bulk.contacts(&busy, "a", o.burst, ("a", 10), now).await;
    bulk.due_burst(&busy, "a", (&busy_sequence, "trivial"), o.burst, now).await;
    bulk.analyze().await;
    let (other, user, sequence) = trivial_sequence(store, "Other", 1, 0, clock.now()).await;
    let probes = contacts(&engine, &other, &user, o.probes).await;

    let started = Instant::now();
    let running = Running::start(&engine);
    let mut enrollments = Vec::with_capacity(o.probes);
    let mut during_backlog = 0;
    for contact in &probes {
        enrollments.push(enroll(&engine, &other, &user, &sequence, contact).await);
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
    running.stop().await;

    let [p50, p99, max] = first_step_lateness(store, &enrollments).await;
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
        "  B's actions, due to executed: p50 {p50:>8.1} ms   p99 {p99:>8.1} ms   max {max:>8.1} ms ({during_backlog} of {} made while A had a backlog)",
        enrollments.len()
    );
}
