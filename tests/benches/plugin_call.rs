//! Benchmark of one plugin call: a fresh store, instantiation from the
//! cached pre-instance, and `execute` of the trivial guest. Prints the
//! median and p99 per call and the calls per second: sequential from
//! another runtime (as the API calls, hopping onto the plugin executor),
//! with one task per core, and sequential on the executor itself (as the
//! scheduler calls).
//!
//! Run with `cargo bench -p stepwise-tests --bench plugin_call`.

use std::time::{Duration, Instant};

use stepwise::plugins::{Limits, NetPolicy, Runtime, RuntimeConfig};
use stepwise_tests::{ada, guests, invocation};

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::new(RuntimeConfig {
            limits: Limits { concurrent_calls: 64, ..Limits::default() },
            net: NetPolicy::default(),
            cache_dir: None,
            threads: None,
        })
        .expect("runtime");
        let plugin = runtime.load(guests::TRIVIAL).await.expect("trivial loads");
        let inv = invocation(ada(), &[]);

        for _ in 0..WARMUP {
            runtime.execute(&plugin, inv.clone(), "{}").await.expect("call");
        }
        let mut samples = Vec::with_capacity(SAMPLES);
        let started = Instant::now();
        for _ in 0..SAMPLES {
            let t = Instant::now();
            runtime.execute(&plugin, inv.clone(), "{}").await.expect("call");
            samples.push(t.elapsed());
        }
        report("sequential, from another runtime", samples, started.elapsed());

        let tasks = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per_task = SAMPLES / tasks;
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let runtime = runtime.clone();
                let plugin = plugin.clone();
                let inv = inv.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        runtime.execute(&plugin, inv.clone(), "{}").await.expect("call");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
        let total = started.elapsed();
        println!("instantiate + execute, trivial guest, {tasks} tasks ({} calls)", per_task * tasks);
        println!("  calls/s {:>10.0}", (per_task * tasks) as f64 / total.as_secs_f64());

        // As the scheduler calls: from a task on the plugin executor, where
        // a call runs in place rather than hopping threads.
        let on_executor = {
            let (runtime, plugin, inv) = (runtime.clone(), plugin.clone(), inv.clone());
            runtime.executor().clone().spawn(async move {
                let mut samples = Vec::with_capacity(SAMPLES);
                let started = Instant::now();
                for _ in 0..SAMPLES {
                    let t = Instant::now();
                    runtime.execute(&plugin, inv.clone(), "{}").await.expect("call");
                    samples.push(t.elapsed());
                }
                (samples, started.elapsed())
            })
        };
        let (samples, total) = on_executor.await.expect("task");
        report("sequential, on the plugin executor", samples, total);
    });
}

/// Prints the median, p99 and rate of `samples`, taken in `total`.
fn report(how: &str, mut samples: Vec<Duration>, total: Duration) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!("instantiate + execute, trivial guest, {how} ({} calls)", samples.len());
    println!("  median {:>8.2} us", micros(pick(0.5)));
    println!("  p99    {:>8.2} us", micros(pick(0.99)));
    println!("  calls/s {:>10.0}", samples.len() as f64 / total.as_secs_f64());
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
