//! Due dates (SPEC §3) and business hours (SPEC §4.6): pure functions of a
//! sequence's steps and an enrollment's dates, so they are tested without a
//! database.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use stepwise_domain::engagement::{BusinessHours, Relative, Step, StepTiming, TimingMode};

/// A step's distance in milliseconds from what it is timed from: the
/// previous completion, the enrollment's start or the event date (negative
/// when before the event).
fn signed_ms(timing: &StepTiming) -> i64 {
    match *timing {
        StepTiming::Delay { ms } | StepTiming::Offset { ms } => ms,
        StepTiming::Event { ms, relative: Relative::After } => ms,
        StepTiming::Event { ms, relative: Relative::Before } => -ms,
    }
}

/// The longest a step may be timed from what it follows: ten years.
/// Validation refuses more, so due dates stay in a range every backend and
/// client can hold.
pub const MAX_STEP_MS: i64 = 10 * 366 * 24 * 60 * 60 * 1000;

/// `at` moved by `ms`, saturating at the ends of time rather than
/// overflowing (a date read back from the store is not checked again).
pub fn shift(at: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    at.checked_add_signed(Duration::milliseconds(ms)).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Whether a step is timed before the event date.
pub fn is_before_event(step: &Step) -> bool {
    matches!(step.timing, StepTiming::Event { relative: Relative::Before, .. })
}

/// The due date of every step of a new enrollment, projected from its
/// start (and event date): `after_previous` chains each step's delay onto
/// the previous step's projected date; `from_start` adds each offset to the
/// start; `from_event` places each step before or after the event date
/// (`None` without one).
pub fn project(
    mode: TimingMode,
    steps: &[Step],
    started_at: DateTime<Utc>,
    event_date: Option<DateTime<Utc>>,
) -> Vec<Option<DateTime<Utc>>> {
    let mut previous = started_at;
    steps
        .iter()
        .map(|step| {
            let offset = signed_ms(&step.timing);
            match mode {
                TimingMode::AfterPrevious => {
                    previous = shift(previous, offset);
                    Some(previous)
                }
                TimingMode::FromStart => Some(shift(started_at, offset)),
                TimingMode::FromEvent => event_date.map(|event| shift(event, offset)),
            }
        })
        .collect()
}

/// The due dates of the steps from `from` on after the step before them
/// completed at `completed_at`: under `after_previous` they are recomputed,
/// each its delay after the one before (SPEC §3, [G]); under the other modes
/// they do not depend on completions, so `None` is returned.
pub fn recompute_after(
    mode: TimingMode,
    steps: &[Step],
    from: usize,
    completed_at: DateTime<Utc>,
) -> Option<Vec<DateTime<Utc>>> {
    if mode != TimingMode::AfterPrevious {
        return None;
    }
    let mut previous = completed_at;
    Some(
        steps
            .iter()
            .skip(from)
            .map(|step| {
                previous = shift(previous, signed_ms(&step.timing));
                previous
            })
            .collect(),
    )
}

/// Checks business hours before they are saved.
///
/// # Errors
///
/// [`HoursError`]: an unknown timezone, no open weekday, or a start not
/// before the end.
pub fn validate_hours(hours: &BusinessHours) -> Result<chrono_tz::Tz, HoursError> {
    let tz: chrono_tz::Tz = hours.timezone.parse().map_err(|_| HoursError::UnknownTimezone(hours.timezone.clone()))?;
    if hours.weekdays.is_empty() {
        return Err(HoursError::NoWeekday);
    }
    if hours.start >= hours.end {
        return Err(HoursError::StartNotBeforeEnd { start: hours.start, end: hours.end });
    }
    Ok(tz)
}

/// Business hours that cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// The timezone is not an IANA name.
    #[error("unknown timezone `{0}` in business hours")]
    UnknownTimezone(String),
    /// No weekday is open.
    #[error("business hours name no weekday")]
    NoWeekday,
    /// The day closes before it opens.
    #[error("business hours start {start} is not before their end {end}")]
    StartNotBeforeEnd {
        /// Opening time.
        start: chrono::NaiveTime,
        /// Closing time.
        end: chrono::NaiveTime,
    },
    /// No open time in the coming week (every open day's hours fall in a
    /// daylight-saving gap).
    #[error("business hours never open")]
    NeverOpen,
}

/// `None` when `at` falls inside the business hours; otherwise the next
/// time they open, in UTC.
///
/// # Errors
///
/// As [`validate_hours`].
pub fn next_opening(hours: &BusinessHours, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, HoursError> {
    let tz = validate_hours(hours)?;
    let local = at.with_timezone(&tz);
    let today = local.date_naive();
    // Eight days always reach an open weekday, whatever `at` is.
    for days in 0..8 {
        let Some(date) = today.checked_add_days(chrono::Days::new(days)) else { break };
        if !hours.weekdays.contains(&date.weekday()) {
            continue;
        }
        let (Some(open), Some(close)) = (local_time(tz, date, hours.start), local_time(tz, date, hours.end)) else {
            continue;
        };
        if days == 0 && open <= at && at < close {
            return Ok(None);
        }
        if open > at {
            return Ok(Some(open));
        }
    }
    Err(HoursError::NeverOpen)
}

/// A wall-clock time on a date in `tz`, in UTC. In a daylight-saving gap
/// the time does not exist: the first instant after the gap is taken.
fn local_time(tz: chrono_tz::Tz, date: NaiveDate, time: chrono::NaiveTime) -> Option<DateTime<Utc>> {
    let naive = date.and_time(time);
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(naive + Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, Weekday};

    use super::*;
    use stepwise_domain::engagement::{Activation, OwnerRule, PluginRef};

    fn step(timing: StepTiming) -> Step {
        Step {
            position: 0,
            name: "s".into(),
            plugin: PluginRef { id: "task".into(), version: "*".into() },
            config: serde_json::json!({}),
            timing,
            activation: Activation::Manual,
            owner: OwnerRule::ContactOwner,
            criteria: vec![],
            notify: false,
            regarding: None,
        }
    }

    fn t(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, day, hour, minute, 0).unwrap()
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn after_previous_chains_delays_and_recomputes_from_the_completion() {
        let steps = [
            step(StepTiming::Delay { ms: 0 }),
            step(StepTiming::Delay { ms: HOUR }),
            step(StepTiming::Delay { ms: 2 * HOUR }),
        ];
        let due = project(TimingMode::AfterPrevious, &steps, t(6, 9, 0), None);
        assert_eq!(due, vec![Some(t(6, 9, 0)), Some(t(6, 10, 0)), Some(t(6, 12, 0))]);
        // Step 0 completed a day late: the rest move with it.
        let moved = recompute_after(TimingMode::AfterPrevious, &steps, 1, t(7, 9, 30)).unwrap();
        assert_eq!(moved, vec![t(7, 10, 30), t(7, 12, 30)]);
        assert!(recompute_after(TimingMode::FromStart, &steps, 1, t(7, 9, 30)).is_none());
    }

    #[test]
    fn from_start_offsets_count_from_the_start_and_from_event_from_the_event() {
        let steps = [step(StepTiming::Offset { ms: HOUR }), step(StepTiming::Offset { ms: HOUR })];
        let due = project(TimingMode::FromStart, &steps, t(6, 9, 0), None);
        assert_eq!(due, vec![Some(t(6, 10, 0)), Some(t(6, 10, 0))]);

        let steps = [
            step(StepTiming::Event { ms: 24 * HOUR, relative: Relative::Before }),
            step(StepTiming::Event { ms: HOUR, relative: Relative::After }),
        ];
        let due = project(TimingMode::FromEvent, &steps, t(6, 9, 0), Some(t(10, 12, 0)));
        assert_eq!(due, vec![Some(t(9, 12, 0)), Some(t(10, 13, 0))]);
        assert!(is_before_event(&steps[0]) && !is_before_event(&steps[1]));
        assert_eq!(project(TimingMode::FromEvent, &steps, t(6, 9, 0), None), vec![None, None]);
    }

    fn hours(timezone: &str) -> BusinessHours {
        BusinessHours {
            timezone: timezone.into(),
            weekdays: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        }
    }

    #[test]
    fn business_hours_open_on_weekdays_in_their_timezone() {
        // 2025-01-06 is a Monday. New York is UTC-5 in January.
        let ny = hours("America/New_York");
        assert_eq!(next_opening(&ny, t(6, 15, 0)).unwrap(), None, "10:00 in New York");
        assert_eq!(next_opening(&ny, t(6, 13, 0)).unwrap(), Some(t(6, 14, 0)), "08:00 opens at 09:00");
        assert_eq!(next_opening(&ny, t(6, 22, 0)).unwrap(), Some(t(7, 14, 0)), "17:00 waits for Tuesday");
        // Friday 18:00 New York waits for Monday.
        assert_eq!(next_opening(&ny, t(10, 23, 0)).unwrap(), Some(t(13, 14, 0)));
        // Saturday in UTC is still Friday evening in New York, already closed.
        assert_eq!(next_opening(&ny, t(11, 1, 0)).unwrap(), Some(t(13, 14, 0)));
    }

    #[test]
    fn bad_business_hours_are_named() {
        let mut bad = hours("Mars/Olympus");
        assert!(next_opening(&bad, t(6, 9, 0)).unwrap_err().to_string().contains("Mars/Olympus"));
        bad = hours("UTC");
        bad.weekdays.clear();
        assert_eq!(validate_hours(&bad).unwrap_err(), HoursError::NoWeekday);
        bad = hours("UTC");
        bad.end = bad.start;
        assert!(matches!(validate_hours(&bad).unwrap_err(), HoursError::StartNotBeforeEnd { .. }));
    }
}
