//! Where the engine's time comes from: the system clock in production, a
//! hand-driven clock in tests so that weeks of sequence time pass in
//! milliseconds.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// The engine's source of time. Nothing in the engine or the store reads the
/// system clock directly.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, truncated to milliseconds (what the store keeps), so a
/// time read back from the store equals the time written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate(Utc::now())
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { now: Mutex::new(truncate(start)) }
    }

    /// Moves the clock to `to`; a time before the current one is ignored, so
    /// time never runs backwards.
    pub fn set(&self, to: DateTime<Utc>) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = (*now).max(truncate(to));
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = truncate(*now + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_manual_clock_moves_only_forward() {
        let t0 = Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        clock.advance(chrono::Duration::minutes(5));
        assert_eq!(clock.now(), t0 + chrono::Duration::minutes(5));
        clock.set(t0);
        assert_eq!(clock.now(), t0 + chrono::Duration::minutes(5), "never backwards");
    }
}
