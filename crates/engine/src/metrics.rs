//! Plugin call latency, per plugin, as a Prometheus histogram. Kept in
//! memory by each host (Prometheus scrapes each host); the database's
//! figures are read by `/metrics` directly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

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
