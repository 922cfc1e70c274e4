//! A company's health score: weighted indicators measured against targets,
//! configured per account, with the sort of the indicator table and the
//! weekly history of the score (the engagement page). Pure functions; the
//! callers gather the measures and store the snapshots.

use std::cmp::Ordering;
use std::collections::HashSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::engagement::UnknownVariant;

/// How many weeks the history of a health score shows.
pub const HISTORY_WEEKS: usize = 12;

/// Which way an indicator improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More is better: a value at or above the target attains it.
    HigherIsBetter,
    /// Less is better: a value at or below the target attains it.
    LowerIsBetter,
}

impl Direction {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsBetter => "higher_is_better",
            Direction::LowerIsBetter => "lower_is_better",
        }
    }
}

/// Something measured about a company that counts toward its health.
///
/// The order of declaration is the order of [`Indicator::ALL`], of
/// [`HealthConfig::default`] and of ties when sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Indicator {
    /// Days since any of the company's contacts last engaged; lower is better.
    DaysSinceEngaged,
    /// The share, 0 to 1, of positive enrollment outcomes among the positive
    /// and negative ones in the window; higher is better.
    PositiveOutcomeShare,
    /// The company's active actions past due; lower is better.
    OverdueWorkItems,
    /// Replies received in the window; higher is better.
    Replies,
    /// Bounces in the window; lower is better.
    Bounces,
    /// Opt-outs in the window; lower is better.
    OptOuts,
}

impl Indicator {
    /// Every variant, in declaration order.
    pub const ALL: &'static [Indicator] = &[
        Indicator::DaysSinceEngaged,
        Indicator::PositiveOutcomeShare,
        Indicator::OverdueWorkItems,
        Indicator::Replies,
        Indicator::Bounces,
        Indicator::OptOuts,
    ];

    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::DaysSinceEngaged => "days_since_engaged",
            Indicator::PositiveOutcomeShare => "positive_outcome_share",
            Indicator::OverdueWorkItems => "overdue_work_items",
            Indicator::Replies => "replies",
            Indicator::Bounces => "bounces",
            Indicator::OptOuts => "opt_outs",
        }
    }

    /// Which way the indicator improves.
    pub fn direction(self) -> Direction {
        match self {
            Indicator::PositiveOutcomeShare | Indicator::Replies => Direction::HigherIsBetter,
            Indicator::DaysSinceEngaged | Indicator::OverdueWorkItems | Indicator::Bounces | Indicator::OptOuts => {
                Direction::LowerIsBetter
            }
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            Indicator::DaysSinceEngaged => "Days since last engaged",
            Indicator::PositiveOutcomeShare => "Positive outcome share",
            Indicator::OverdueWorkItems => "Overdue work items",
            Indicator::Replies => "Replies",
            Indicator::Bounces => "Bounces",
            Indicator::OptOuts => "Opt-outs",
        }
    }

    /// The unit of its values, targets and gaps.
    pub fn unit(self) -> &'static str {
        match self {
            Indicator::DaysSinceEngaged => "days",
            Indicator::PositiveOutcomeShare => "share",
            Indicator::OverdueWorkItems => "items",
            Indicator::Replies => "replies",
            Indicator::Bounces => "bounces",
            Indicator::OptOuts => "opt-outs",
        }
    }

    /// The attainment when the company has no value: never engaged counts
    /// as nothing attained, no outcomes yet as neutral.
    fn attainment_without_value(self) -> f64 {
        match self {
            Indicator::PositiveOutcomeShare => 0.5,
            _ => 0.0,
        }
    }
}

impl std::str::FromStr for Indicator {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Indicator::ALL
            .iter()
            .copied()
            .find(|indicator| indicator.as_str() == s)
            .ok_or_else(|| UnknownVariant { kind: "health indicator", value: s.to_owned() })
    }
}

impl std::fmt::Display for Indicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One indicator of a configuration: its target and how much it counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndicatorSetting {
    /// The indicator.
    pub indicator: Indicator,
    /// The value that attains it fully, in the indicator's unit.
    pub target: f64,
    /// How much it counts relative to the other indicators' weights.
    pub weight: f64,
}

/// How an account scores its companies' health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct HealthConfig {
    /// The indicators that count, each at most once.
    pub indicators: Vec<IndicatorSetting>,
    /// The days back that windowed measures (outcomes, replies, bounces,
    /// opt-outs) count, 1 to 365.
    pub window_days: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        let setting = |indicator, target, weight| IndicatorSetting { indicator, target, weight };
        Self {
            indicators: vec![
                setting(Indicator::DaysSinceEngaged, 14.0, 30.0),
                setting(Indicator::PositiveOutcomeShare, 0.5, 20.0),
                setting(Indicator::OverdueWorkItems, 0.0, 15.0),
                setting(Indicator::Replies, 2.0, 15.0),
                setting(Indicator::Bounces, 0.0, 10.0),
                setting(Indicator::OptOuts, 0.0, 10.0),
            ],
            window_days: 90,
        }
    }
}

/// The longest window a configuration may count.
const MAX_WINDOW_DAYS: u32 = 365;

impl HealthConfig {
    /// Checks the configuration and returns every problem found, in the
    /// order of the fields: each weight and target finite and at least 0, a
    /// share's target at most 1, no indicator twice, at least one indicator,
    /// weights summing to more than 0, a window of 1 to 365 days.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if self.indicators.is_empty() {
            problems.push(ConfigProblem::new("/indicators", "at least one indicator is required"));
        }
        let mut seen = HashSet::new();
        let mut weights = 0.0;
        let mut weights_valid = true;
        for (i, setting) in self.indicators.iter().enumerate() {
            if !seen.insert(setting.indicator) {
                problems.push(ConfigProblem::new(
                    format!("/indicators/{i}/indicator"),
                    format!("indicator `{}` appears more than once", setting.indicator),
                ));
            }
            if !is_non_negative(setting.target) {
                problems.push(ConfigProblem::new(
                    format!("/indicators/{i}/target"),
                    "target must be a finite number of at least 0",
                ));
            } else if setting.indicator == Indicator::PositiveOutcomeShare && setting.target > 1.0 {
                problems
                    .push(ConfigProblem::new(format!("/indicators/{i}/target"), "target of a share must be at most 1"));
            }
            if is_non_negative(setting.weight) {
                weights += setting.weight;
            } else {
                weights_valid = false;
                problems.push(ConfigProblem::new(
                    format!("/indicators/{i}/weight"),
                    "weight must be a finite number of at least 0",
                ));
            }
        }
        // A sum spoilt by an invalid weight is reported at that weight.
        if weights_valid && !self.indicators.is_empty() {
            if weights <= 0.0 {
                problems.push(ConfigProblem::new("/indicators", "weights must sum to more than 0"));
            } else if !weights.is_finite() {
                problems.push(ConfigProblem::new("/indicators", "weights must sum to a finite number"));
            }
        }
        if !(1..=MAX_WINDOW_DAYS).contains(&self.window_days) {
            problems.push(ConfigProblem::new(
                "/window_days",
                format!("window must be 1 to {MAX_WINDOW_DAYS} days, not {}", self.window_days),
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// Whether a number is finite and at least 0.
fn is_non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// A problem with a [`HealthConfig`], at the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigProblem {
    /// A JSON pointer into the configuration, such as `/indicators/2/weight`.
    pub field: String,
    /// What is wrong, lowercase.
    pub message: String,
}

impl ConfigProblem {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// What is measured of a company, the inputs of [`compute`]. The windowed
/// counts cover the configuration's `window_days`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Measures {
    /// Days since any of the company's contacts last engaged; `None` when
    /// none ever has.
    pub days_since_engaged: Option<f64>,
    /// Enrollments that ended with a positive outcome in the window.
    pub positive_outcomes: u64,
    /// Enrollments that ended with a negative outcome in the window.
    pub negative_outcomes: u64,
    /// The company's active actions past due.
    pub overdue_work_items: u64,
    /// Replies received in the window.
    pub replies: u64,
    /// Bounces in the window.
    pub bounces: u64,
    /// Opt-outs in the window.
    pub opt_outs: u64,
}

impl Measures {
    /// The indicator's value: `None` for the days when the company never
    /// engaged (or the days are not a finite number; negative days count as
    /// 0) and for the share when there are no outcomes.
    pub fn value(&self, indicator: Indicator) -> Option<f64> {
        match indicator {
            Indicator::DaysSinceEngaged => self.days_since_engaged.filter(|d| d.is_finite()).map(|d| d.max(0.0)),
            Indicator::PositiveOutcomeShare => {
                let positive = self.positive_outcomes as f64;
                let all = positive + self.negative_outcomes as f64;
                (all > 0.0).then(|| positive / all)
            }
            Indicator::OverdueWorkItems => Some(self.overdue_work_items as f64),
            Indicator::Replies => Some(self.replies as f64),
            Indicator::Bounces => Some(self.bounces as f64),
            Indicator::OptOuts => Some(self.opt_outs as f64),
        }
    }
}

/// How one indicator scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndicatorScore {
    /// The indicator.
    pub indicator: Indicator,
    /// Its name people read.
    pub label: String,
    /// The unit of its value, target and gap.
    pub unit: String,
    /// Which way it improves.
    pub direction: Direction,
    /// The company's value; `None` when there is none (see [`Measures::value`]).
    pub value: Option<f64>,
    /// The configured target.
    pub target: f64,
    /// The weight it counted with.
    pub weight: f64,
    /// How much of the target is attained, 0 to 1.
    pub attainment: f64,
    /// How far the value falls short of the target in the indicator's unit,
    /// at least 0; `None` when there is no value.
    pub gap: Option<f64>,
    /// Its share of the score: the points of all indicators sum to the score
    /// before rounding.
    pub points: f64,
}

/// A company's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthScore {
    /// 0 to 100, rounded to one decimal.
    pub score: f64,
    /// Each configured indicator, in the configuration's order.
    pub indicators: Vec<IndicatorScore>,
}

/// Scores a company's measures with a configuration.
///
/// An indicator's attainment is, for higher-is-better, 1 when the target is
/// 0 or less and otherwise `min(value / target, 1)`; for lower-is-better, 1
/// at or below the target and otherwise `s / (value - target + s)` with
/// `s = max(target, 1)`, so one past a zero target attains 0.5. A company
/// that never engaged attains 0 on the days; one with no outcomes yet
/// attains a neutral 0.5 on the share. The score is
/// `100 × Σ(weight × attainment) / Σ weight`.
///
/// The configuration is expected to be valid ([`HealthConfig::validate`]);
/// otherwise a weight that is negative or not finite counts as 0, an
/// attainment that is not a number as 0, and weights that do not sum to a
/// finite number above 0 give a score of 0.
pub fn compute(config: &HealthConfig, measures: &Measures) -> HealthScore {
    let mut indicators: Vec<IndicatorScore> = config
        .indicators
        .iter()
        .map(|setting| {
            let indicator = setting.indicator;
            let direction = indicator.direction();
            let value = measures.value(indicator);
            let target = setting.target;
            let (attainment, gap) = match value {
                None => (indicator.attainment_without_value(), None),
                Some(value) => match direction {
                    Direction::HigherIsBetter => {
                        let attainment = if target <= 0.0 { 1.0 } else { (value / target).min(1.0) };
                        (attainment, Some((target - value).max(0.0)))
                    }
                    Direction::LowerIsBetter => {
                        let attainment = if value <= target {
                            1.0
                        } else {
                            let s = target.max(1.0);
                            s / (value - target + s)
                        };
                        (attainment, Some((value - target).max(0.0)))
                    }
                },
            };
            let attainment = if attainment.is_nan() { 0.0 } else { attainment.clamp(0.0, 1.0) };
            IndicatorScore {
                indicator,
                label: indicator.label().to_owned(),
                unit: indicator.unit().to_owned(),
                direction,
                value,
                target,
                weight: if is_non_negative(setting.weight) { setting.weight } else { 0.0 },
                attainment,
                gap,
                points: 0.0,
            }
        })
        .collect();
    let total: f64 = indicators.iter().map(|s| s.weight).sum();
    if !(total.is_finite() && total > 0.0) {
        return HealthScore { score: 0.0, indicators };
    }
    let mut raw = 0.0;
    for score in &mut indicators {
        score.points = 100.0 * score.weight * score.attainment / total;
        raw += score.points;
    }
    HealthScore { score: ((raw * 10.0).round() / 10.0).clamp(0.0, 100.0), indicators }
}

/// A column of the indicator table to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// The indicator's label, alphabetically.
    Indicator,
    /// The company's value.
    Value,
    /// The target.
    Target,
    /// The weight.
    Weight,
    /// The shortfall from the target.
    Gap,
    /// The points toward the score.
    Points,
}

impl SortKey {
    /// Every variant, in declaration order.
    pub const ALL: &'static [SortKey] =
        &[SortKey::Indicator, SortKey::Value, SortKey::Target, SortKey::Weight, SortKey::Gap, SortKey::Points];

    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Indicator => "indicator",
            SortKey::Value => "value",
            SortKey::Target => "target",
            SortKey::Weight => "weight",
            SortKey::Gap => "gap",
            SortKey::Points => "points",
        }
    }
}

impl std::str::FromStr for SortKey {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SortKey::ALL
            .iter()
            .copied()
            .find(|key| key.as_str() == s)
            .ok_or_else(|| UnknownVariant { kind: "health sort key", value: s.to_owned() })
    }
}

impl std::fmt::Display for SortKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sorts indicator scores by a column, ascending or descending. Missing
/// values and gaps sort last in either direction; ties keep the order of
/// [`Indicator::ALL`].
pub fn sort(scores: &mut [IndicatorScore], key: SortKey, descending: bool) {
    let directed = |ordering: Ordering| if descending { ordering.reverse() } else { ordering };
    let optional = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => directed(compare_numbers(a, b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    scores.sort_by(|a, b| {
        let primary = match key {
            SortKey::Indicator => directed(a.label.cmp(&b.label)),
            SortKey::Value => optional(a.value, b.value),
            SortKey::Target => directed(compare_numbers(a.target, b.target)),
            SortKey::Weight => directed(compare_numbers(a.weight, b.weight)),
            SortKey::Gap => optional(a.gap, b.gap),
            SortKey::Points => directed(compare_numbers(a.points, b.points)),
        };
        primary.then_with(|| a.indicator.cmp(&b.indicator))
    });
}

/// A total order of numbers in which -0 equals 0 and NaN sorts by
/// [`f64::total_cmp`].
fn compare_numbers(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or_else(|| a.total_cmp(&b))
}

/// The Monday, in UTC, of the ISO week of an instant.
pub fn week_start(t: DateTime<Utc>) -> NaiveDate {
    monday_of(t.date_naive())
}

/// The Monday of a date's ISO week (the earliest date when that is before
/// the calendar's start).
fn monday_of(date: NaiveDate) -> NaiveDate {
    let back = u64::from(date.weekday().num_days_from_monday());
    date.checked_sub_days(Days::new(back)).unwrap_or(NaiveDate::MIN)
}

/// One week of a health score's history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WeekPoint {
    /// The week's Monday.
    pub week_start: NaiveDate,
    /// The score snapshot of that week; `None` when there is none.
    pub score: Option<f64>,
}

/// The last `weeks` weeks of a score, oldest first, ending with the week of
/// `now`, each with its snapshot or `None`.
///
/// A snapshot counts in the week its date falls in, whatever the weekday;
/// of several in one week the latest date wins (the later in the slice on
/// the same date). Snapshots outside the weeks shown are ignored.
pub fn history(snapshots: &[(NaiveDate, f64)], now: DateTime<Utc>, weeks: usize) -> Vec<WeekPoint> {
    let current = week_start(now);
    let mut points: Vec<WeekPoint> = (0..weeks)
        .map_while(|i| {
            let back = u64::try_from(i).ok()?.checked_mul(7)?;
            current.checked_sub_days(Days::new(back))
        })
        .map(|week_start| WeekPoint { week_start, score: None })
        .collect();
    points.reverse();
    let Some(first) = points.first().map(|p| p.week_start) else {
        return points;
    };
    let mut dates: Vec<Option<NaiveDate>> = vec![None; points.len()];
    for &(date, score) in snapshots {
        let offset = (monday_of(date) - first).num_days();
        let Some(index) = usize::try_from(offset / 7).ok().filter(|&i| offset >= 0 && i < points.len()) else {
            continue;
        };
        if dates[index].is_none_or(|latest| date >= latest) {
            dates[index] = Some(date);
            points[index].score = Some(score);
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Weekday};

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn by_indicator(score: &HealthScore, indicator: Indicator) -> &IndicatorScore {
        score.indicators.iter().find(|s| s.indicator == indicator).unwrap()
    }

    #[test]
    fn indicator_names_round_trip() {
        for &indicator in Indicator::ALL {
            assert_eq!(indicator.as_str().parse::<Indicator>(), Ok(indicator));
            assert_eq!(serde_json::to_value(indicator).unwrap(), serde_json::json!(indicator.as_str()));
            assert!(!indicator.label().is_empty() && !indicator.unit().is_empty());
        }
        for &key in SortKey::ALL {
            assert_eq!(key.as_str().parse::<SortKey>(), Ok(key));
            assert_eq!(serde_json::to_value(key).unwrap(), serde_json::json!(key.as_str()));
        }
        assert_eq!("churn".parse::<Indicator>().unwrap_err().to_string(), "unknown health indicator `churn`");
        assert_eq!(serde_json::to_value(Direction::LowerIsBetter).unwrap(), serde_json::json!("lower_is_better"));
        assert_eq!(Indicator::DaysSinceEngaged.label(), "Days since last engaged");
        assert_eq!(Indicator::Replies.direction(), Direction::HigherIsBetter);
        assert_eq!(Indicator::OptOuts.direction(), Direction::LowerIsBetter);
    }

    #[test]
    fn default_config_is_valid_and_covers_every_indicator() {
        let config = HealthConfig::default();
        assert_eq!(config.validate(), Ok(()));
        let indicators: Vec<Indicator> = config.indicators.iter().map(|s| s.indicator).collect();
        assert_eq!(indicators, Indicator::ALL);
        assert_eq!(config.indicators.iter().map(|s| s.weight).sum::<f64>(), 100.0);
        assert_eq!(serde_json::from_str::<HealthConfig>("{}").unwrap(), config);
    }

    #[test]
    fn a_healthy_company_scores_100() {
        let measures = Measures {
            days_since_engaged: Some(3.0),
            positive_outcomes: 4,
            negative_outcomes: 1,
            overdue_work_items: 0,
            replies: 5,
            bounces: 0,
            opt_outs: 0,
        };
        let score = compute(&HealthConfig::default(), &measures);
        assert_eq!(score.score, 100.0);
        assert_eq!(score.indicators.len(), 6);
        for s in &score.indicators {
            assert_eq!(s.attainment, 1.0, "{}", s.indicator);
            assert_eq!(s.gap, Some(0.0), "{}", s.indicator);
            assert_eq!(s.points, s.weight, "{}", s.indicator);
        }
        assert_eq!(by_indicator(&score, Indicator::PositiveOutcomeShare).value, Some(0.8));
    }

    #[test]
    fn a_never_engaged_company_with_overdue_work_and_a_bounce() {
        let measures = Measures { days_since_engaged: None, overdue_work_items: 3, bounces: 1, ..Measures::default() };
        let score = compute(&HealthConfig::default(), &measures);
        // By hand, weights summing to 100:
        //   days since engaged: never engaged      → 0            × 30 = 0
        //   positive share:     no outcomes yet    → 0.5          × 20 = 10
        //   overdue items:      3 past target 0    → 1/(3-0+1)    × 15 = 3.75
        //   replies:            0 of target 2      → 0            × 15 = 0
        //   bounces:            1 past target 0    → 1/(1-0+1)    × 10 = 5
        //   opt-outs:           0, at target 0     → 1            × 10 = 10
        // 100 × 28.75 / 100 = 28.75, rounded to one decimal: 28.8.
        assert_eq!(score.score, 28.8);
        let expected = [
            (Indicator::DaysSinceEngaged, None, 0.0, None, 0.0),
            (Indicator::PositiveOutcomeShare, None, 0.5, None, 10.0),
            (Indicator::OverdueWorkItems, Some(3.0), 0.25, Some(3.0), 3.75),
            (Indicator::Replies, Some(0.0), 0.0, Some(2.0), 0.0),
            (Indicator::Bounces, Some(1.0), 0.5, Some(1.0), 5.0),
            (Indicator::OptOuts, Some(0.0), 1.0, Some(0.0), 10.0),
        ];
        for (s, (indicator, value, attainment, gap, points)) in score.indicators.iter().zip(expected) {
            assert_eq!(s.indicator, indicator);
            assert_eq!(s.value, value, "{indicator}");
            assert_eq!(s.attainment, attainment, "{indicator}");
            assert_eq!(s.gap, gap, "{indicator}");
            assert_eq!(s.points, points, "{indicator}");
        }
        assert_eq!(score.indicators.iter().map(|s| s.points).sum::<f64>(), 28.75);
    }

    #[test]
    fn lower_is_better_halves_one_past_a_zero_target() {
        let config = |target| HealthConfig {
            indicators: vec![IndicatorSetting { indicator: Indicator::Bounces, target, weight: 1.0 }],
            window_days: 30,
        };
        let one_bounce = Measures { bounces: 1, ..Measures::default() };
        let score = compute(&config(0.0), &one_bounce);
        assert_eq!(score.indicators[0].attainment, 0.5);
        assert_eq!(score.score, 50.0);
        // Above 1 the target sets the scale: 8 against 4 is 4 / (8 - 4 + 4).
        let eight = Measures { bounces: 8, ..Measures::default() };
        assert_eq!(compute(&config(4.0), &eight).indicators[0].attainment, 0.5);
        // At the target it is fully attained; three past a zero target 1/4.
        assert_eq!(compute(&config(8.0), &eight).indicators[0].attainment, 1.0);
        let three = Measures { bounces: 3, ..Measures::default() };
        assert_eq!(compute(&config(0.0), &three).indicators[0].attainment, 0.25);
    }

    #[test]
    fn higher_is_better_is_proportional_up_to_the_target() {
        let config = HealthConfig {
            indicators: vec![
                IndicatorSetting { indicator: Indicator::Replies, target: 4.0, weight: 3.0 },
                IndicatorSetting { indicator: Indicator::PositiveOutcomeShare, target: 0.0, weight: 1.0 },
            ],
            window_days: 30,
        };
        let measures = Measures { replies: 1, negative_outcomes: 2, ..Measures::default() };
        let score = compute(&config, &measures);
        // Replies 1/4 × 3 = 0.75; share 0 against target 0 is attained, 1 × 1.
        // 100 × 1.75 / 4 = 43.75 → 43.8.
        assert_eq!(score.indicators[0].attainment, 0.25);
        assert_eq!(score.indicators[0].gap, Some(3.0));
        assert_eq!(score.indicators[1].value, Some(0.0));
        assert_eq!(score.indicators[1].attainment, 1.0);
        assert_eq!(score.score, 43.8);
    }

    #[test]
    fn zero_weights_score_zero() {
        let config = HealthConfig {
            indicators: vec![IndicatorSetting { indicator: Indicator::Replies, target: 1.0, weight: 0.0 }],
            window_days: 30,
        };
        let score = compute(&config, &Measures { replies: 3, ..Measures::default() });
        assert_eq!(score.score, 0.0);
        assert_eq!(score.indicators[0].attainment, 1.0);
        assert_eq!(score.indicators[0].points, 0.0);
    }

    #[test]
    fn validation_lists_every_problem_at_its_pointer() {
        let config = HealthConfig {
            indicators: vec![
                IndicatorSetting { indicator: Indicator::Replies, target: 2.0, weight: -1.0 },
                IndicatorSetting { indicator: Indicator::PositiveOutcomeShare, target: 1.5, weight: 10.0 },
                IndicatorSetting { indicator: Indicator::Replies, target: f64::NAN, weight: f64::INFINITY },
            ],
            window_days: 0,
        };
        let problems = config.validate().unwrap_err();
        let found: Vec<(&str, &str)> = problems.iter().map(|p| (p.field.as_str(), p.message.as_str())).collect();
        assert_eq!(
            found,
            [
                ("/indicators/0/weight", "weight must be a finite number of at least 0"),
                ("/indicators/1/target", "target of a share must be at most 1"),
                ("/indicators/2/indicator", "indicator `replies` appears more than once"),
                ("/indicators/2/target", "target must be a finite number of at least 0"),
                ("/indicators/2/weight", "weight must be a finite number of at least 0"),
                ("/window_days", "window must be 1 to 365 days, not 0"),
            ]
        );
        assert_eq!(problems[0].to_string(), "/indicators/0/weight: weight must be a finite number of at least 0");

        let empty = HealthConfig { indicators: Vec::new(), window_days: 366 };
        let found: Vec<String> = empty.validate().unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            ["/indicators: at least one indicator is required", "/window_days: window must be 1 to 365 days, not 366"]
        );

        let weightless = HealthConfig {
            indicators: vec![
                IndicatorSetting { indicator: Indicator::Bounces, target: 0.0, weight: 0.0 },
                IndicatorSetting { indicator: Indicator::OptOuts, target: 0.0, weight: 0.0 },
            ],
            window_days: 365,
        };
        let found: Vec<String> = weightless.validate().unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(found, ["/indicators: weights must sum to more than 0"]);
    }

    #[test]
    fn sorting_by_gap_puts_missing_gaps_last_either_way() {
        let measures = Measures { days_since_engaged: None, overdue_work_items: 3, bounces: 1, ..Measures::default() };
        let mut scores = compute(&HealthConfig::default(), &measures).indicators;
        let order = |scores: &[IndicatorScore]| scores.iter().map(|s| s.indicator).collect::<Vec<_>>();

        sort(&mut scores, SortKey::Gap, true);
        // Gaps: overdue 3, replies 2, bounces 1, opt-outs 0; days and share none.
        assert_eq!(
            order(&scores),
            [
                Indicator::OverdueWorkItems,
                Indicator::Replies,
                Indicator::Bounces,
                Indicator::OptOuts,
                Indicator::DaysSinceEngaged,
                Indicator::PositiveOutcomeShare,
            ]
        );
        sort(&mut scores, SortKey::Gap, false);
        assert_eq!(
            order(&scores),
            [
                Indicator::OptOuts,
                Indicator::Bounces,
                Indicator::Replies,
                Indicator::OverdueWorkItems,
                Indicator::DaysSinceEngaged,
                Indicator::PositiveOutcomeShare,
            ]
        );
        sort(&mut scores, SortKey::Indicator, false);
        assert_eq!(
            order(&scores),
            [
                Indicator::Bounces,
                Indicator::DaysSinceEngaged,
                Indicator::OptOuts,
                Indicator::OverdueWorkItems,
                Indicator::PositiveOutcomeShare,
                Indicator::Replies,
            ]
        );
        // Equal weights (15, 15 and 10, 10) keep the order of Indicator::ALL.
        sort(&mut scores, SortKey::Weight, true);
        assert_eq!(
            order(&scores),
            [
                Indicator::DaysSinceEngaged,
                Indicator::PositiveOutcomeShare,
                Indicator::OverdueWorkItems,
                Indicator::Replies,
                Indicator::Bounces,
                Indicator::OptOuts,
            ]
        );
    }

    #[test]
    fn week_start_is_the_monday_of_the_iso_week() {
        let sunday = Utc.with_ymd_and_hms(2025, 6, 22, 23, 59, 59).unwrap();
        assert_eq!(sunday.weekday(), Weekday::Sun);
        assert_eq!(week_start(sunday), date(2025, 6, 16));
        let monday = Utc.with_ymd_and_hms(2025, 6, 16, 0, 0, 0).unwrap();
        assert_eq!(week_start(monday), date(2025, 6, 16));
        // Across a year: Thursday 2026-01-01 is in the week of 2025-12-29.
        let new_year = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(week_start(new_year), date(2025, 12, 29));
    }

    #[test]
    fn history_fills_gaps_and_ends_with_the_current_week() {
        // Wednesday; the four weeks shown start 05-26, 06-02, 06-09, 06-16.
        let now = Utc.with_ymd_and_hms(2025, 6, 18, 10, 0, 0).unwrap();
        let snapshots = [
            (date(2025, 5, 19), 10.0), // the week before the range
            (date(2025, 5, 28), 45.0), // Wednesday, later than the Monday below
            (date(2025, 5, 26), 40.0),
            (date(2025, 6, 4), 55.5),  // a Wednesday: the week of 06-02
            (date(2025, 6, 22), 70.0), // Sunday of the current week
            (date(2025, 6, 23), 99.0), // next week
        ];
        let points = history(&snapshots, now, 4);
        assert_eq!(
            points,
            [
                WeekPoint { week_start: date(2025, 5, 26), score: Some(45.0) },
                WeekPoint { week_start: date(2025, 6, 2), score: Some(55.5) },
                WeekPoint { week_start: date(2025, 6, 9), score: None },
                WeekPoint { week_start: date(2025, 6, 16), score: Some(70.0) },
            ]
        );

        let full = history(&[], now, HISTORY_WEEKS);
        assert_eq!(full.len(), 12);
        assert!(full.iter().all(|p| p.score.is_none() && p.week_start.weekday() == Weekday::Mon));
        assert_eq!(full.first().unwrap().week_start, date(2025, 3, 31));
        assert_eq!(full.last().unwrap().week_start, date(2025, 6, 16));
        assert!(history(&snapshots, now, 0).is_empty());
    }
}
