//! Plugin call latency, per plugin, as a Prometheus histogram, and where
//! the scheduler's time goes, stage by stage. Kept in memory by each host
//! (Prometheus scrapes each host); the database's figures are read by
//! `/metrics` directly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A stage of the scheduler's work on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Claiming due actions under a lease.
    Claim,
    /// Reading what processing them looks at.
    Read,
    /// Running their checks and plugins, up to their answers.
    Process,
    /// Writing the answers.
    Write,
}

impl Stage {
    const ALL: [Stage; 4] = [Stage::Claim, Stage::Read, Stage::Process, Stage::Write];

    fn name(self) -> &'static str {
        match self {
            Stage::Claim => "claim",
            Stage::Read => "read",
            Stage::Process => "process",
            Stage::Write => "write",
        }
    }
}

/// The scheduler's time per stage, summed over the batches of this host.
/// The stages of consecutive batches overlap, so the sums may add up to
/// more than the time that passed.
#[derive(Debug, Default)]
pub struct StageMetrics {
    nanos: [AtomicU64; 4],
    batches: AtomicU64,
    actions: AtomicU64,
}

/// What [`StageMetrics`] summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageTotals {
    /// Time spent per stage, in the order of [`Stage`].
    pub stages: [(Stage, Duration); 4],
    /// Batches claimed (empty claims are not counted).
    pub batches: u64,
    /// Actions claimed.
    pub actions: u64,
}

impl StageMetrics {
    /// Adds `took` to `stage`.
    pub fn record(&self, stage: Stage, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanos[stage as usize].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts a claimed batch of `actions`.
    pub fn batch(&self, actions: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.actions.fetch_add(u64::try_from(actions).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The sums so far.
    pub fn totals(&self) -> StageTotals {
        StageTotals {
            stages: Stage::ALL.map(|s| (s, Duration::from_nanos(self.nanos[s as usize].load(Ordering::Relaxed)))),
            batches: self.batches.load(Ordering::Relaxed),
            actions: self.actions.load(Ordering::Relaxed),
        }
    }

    /// The sums in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let totals = self.totals();
        let _ = writeln!(
            out,
            "# HELP stepwise_scheduler_stage_seconds_total Time the scheduler spent per stage of its batches."
        );
        let _ = writeln!(out, "# TYPE stepwise_scheduler_stage_seconds_total counter");
        for (stage, took) in totals.stages {
            let _ = writeln!(
                out,
                "stepwise_scheduler_stage_seconds_total{{stage=\"{}\"}} {}",
                stage.name(),
                took.as_secs_f64()
            );
        }
        let _ = writeln!(out, "# HELP stepwise_scheduler_batches_total Batches of due actions claimed.");
        let _ = writeln!(out, "# TYPE stepwise_scheduler_batches_total counter");
        let _ = writeln!(out, "stepwise_scheduler_batches_total {}", totals.batches);
        let _ = writeln!(out, "# HELP stepwise_scheduler_actions_total Due actions claimed.");
        let _ = writeln!(out, "# TYPE stepwise_scheduler_actions_total counter");
        let _ = writeln!(out, "stepwise_scheduler_actions_total {}", totals.actions);
    }
}

/// Upper bounds of the buckets, in seconds.
const BUCKETS: [f64; 10] = [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1, 1.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Plugin call latencies.
#[derive(Debug, Default)]
pub struct CallMetrics {
    by_plugin: Mutex<BTreeMap<(String, &'static str), Histogram>>,
}

impl CallMetrics {
    /// Records one call of `plugin` (`execute` or `evaluate`) that took `wall`.
    pub fn record(&self, plugin: &str, call: &'static str, wall: Duration) {
        let seconds = wall.as_secs_f64();
        let mut map = self.by_plugin.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = map.entry((plugin.to_owned(), call)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The histogram in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP stepwise_plugin_call_seconds Wall time of plugin calls, by plugin and call.");
        let _ = writeln!(out, "# TYPE stepwise_plugin_call_seconds histogram");
        let map = self.by_plugin.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((plugin, call), h) in map.iter() {
            let labels = format!("plugin=\"{}\",call=\"{call}\"", plugin.replace('\\', "\\\\").replace('"', "\\\""));
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(out, "stepwise_plugin_call_seconds_bucket{{{labels},le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "stepwise_plugin_call_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "stepwise_plugin_call_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "stepwise_plugin_call_seconds_count{{{labels}}} {}", h.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_times_add_up_per_stage() {
        let m = StageMetrics::default();
        m.record(Stage::Read, Duration::from_millis(3));
        m.record(Stage::Read, Duration::from_millis(4));
        m.record(Stage::Write, Duration::from_millis(2));
        m.batch(256);
        let totals = m.totals();
        assert_eq!(totals.stages[1], (Stage::Read, Duration::from_millis(7)));
        assert_eq!(totals.stages[0], (Stage::Claim, Duration::ZERO));
        assert_eq!((totals.batches, totals.actions), (1, 256));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("stepwise_scheduler_stage_seconds_total{stage=\"write\"} 0.002\n"), "{out}");
        assert!(out.contains("stepwise_scheduler_actions_total 256\n"), "{out}");
    }

    #[test]
    fn buckets_are_cumulative() {
        let m = CallMetrics::default();
        m.record("task", "execute", Duration::from_micros(30));
        m.record("task", "execute", Duration::from_millis(3));
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("stepwise_plugin_call_seconds_bucket{plugin=\"task\",call=\"execute\",le=\"0.00005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("stepwise_plugin_call_seconds_bucket{plugin=\"task\",call=\"execute\",le=\"0.005\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("stepwise_plugin_call_seconds_count{plugin=\"task\",call=\"execute\"} 2\n"), "{out}");
    }
}
