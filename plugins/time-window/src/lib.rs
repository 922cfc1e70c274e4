//! The `time-window` criteria predicate: holds when the call's `now` falls
//! inside a window of weekdays and hours in the contact's local time
//! (`{"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00",
//! "end": "17:00"}`).
//!
//! The local time is the contact's timezone, else the action owner's, else
//! UTC. A window whose end is before its start runs across midnight into
//! the next day. Everything is computed from the call's subject and
//! context: no capability, no host call.

use chrono::{DateTime, Datelike, Timelike, Weekday};
use chrono_tz::Tz;
use stepwise_plugin_sdk::prelude::*;

/// A time-window criterion's configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The days the window opens on (`mon` … `sun`); every day when absent.
    /// A window across midnight belongs to the day it opens on.
    #[serde(default = "every_day")]
    #[schemars(length(min = 1, max = 7))]
    pub weekdays: Vec<Day>,
    /// When the window opens, local time, `HH:MM` (24-hour), inclusive.
    #[schemars(pattern(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// When the window closes, local time, `HH:MM` or `24:00`, exclusive.
    /// Before `start`: the window closes the next day.
    #[schemars(pattern(r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub end: String,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

const WEEK: [Day; 7] = [Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri, Day::Sat, Day::Sun];

fn every_day() -> Vec<Day> {
    WEEK.to_vec()
}

impl Day {
    fn of(weekday: Weekday) -> Day {
        WEEK[weekday.num_days_from_monday() as usize]
    }

    fn name(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self as usize]
    }
}

/// A checked window: days it opens on and its hours, in minutes after
/// local midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    /// Opening minute, 0 ..= 1439.
    start: u32,
    /// Closing minute, 0 ..= 1440; at or before `start`: the next day.
    end: u32,
}

const WHOLE_DAY: u32 = 24 * 60;

impl Window {
    /// Checks `config` and compiles it.
    ///
    /// # Errors
    ///
    /// Every problem found, each at its JSON Pointer (`/weekdays/2`,
    /// `/start`, `/end`).
    pub fn compile(config: &Config) -> Result<Window, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut days = [false; 7];
        if config.weekdays.is_empty() {
            problems.push(ConfigProblem::new("/weekdays", "needs at least one day (leave it out for every day)"));
        }
        for (i, day) in config.weekdays.iter().enumerate() {
            if days[*day as usize] {
                let first = config.weekdays.iter().position(|d| d == day).unwrap_or_default();
                problems.push(ConfigProblem::new(format!("/weekdays/{i}"), format!("repeats /weekdays/{first}")));
            }
            days[*day as usize] = true;
        }
        let start = match minute_of_day(&config.start) {
            Some(WHOLE_DAY) => {
                problems.push(ConfigProblem::new("/start", "a window cannot open at 24:00; write 00:00"));
                None
            }
            Some(minute) => Some(minute),
            None => {
                problems.push(ConfigProblem::new("/start", format!("{:?} {HH_MM}", config.start)));
                None
            }
        };
        let end = minute_of_day(&config.end);
        if end.is_none() {
            problems.push(ConfigProblem::new("/end", format!("{:?} {HH_MM}, or 24:00", config.end)));
        }
        if let (Some(start), Some(end)) = (start, end)
            && start == end % WHOLE_DAY
            && !(start == 0 && end == WHOLE_DAY)
        {
            problems.push(ConfigProblem::new(
                "/end",
                "must differ from start: the window would be empty (for a whole day, write 00:00 to 24:00)",
            ));
        }
        match (start, end) {
            (Some(start), Some(end)) if problems.is_empty() => Ok(Window { days, start, end }),
            _ => Err(problems),
        }
    }

    /// Whether local time `day`, `second` seconds after midnight, is inside
    /// the window. Opening is inclusive, closing exclusive. A window across
    /// midnight is inside from its opening on a listed day until its
    /// closing the day after.
    pub fn contains(&self, day: Weekday, second: u32) -> bool {
        let (start, end) = (self.start * 60, self.end * 60);
        let open = |d: Weekday| self.days[Day::of(d) as usize];
        if self.start < self.end {
            open(day) && (start..end).contains(&second)
        } else {
            (open(day) && second >= start) || (open(day.pred()) && second < end)
        }
    }

    /// The days the window opens on, for messages.
    pub fn day_names(&self) -> Vec<&'static str> {
        WEEK.iter().filter(|d| self.days[**d as usize]).map(|d| d.name()).collect()
    }
}

const HH_MM: &str = "is not a time of day: write HH:MM on a 24-hour clock, such as 09:00 or 17:30";

/// `HH:MM` as minutes after midnight; `24:00` is 1440.
fn minute_of_day(text: &str) -> Option<u32> {
    let bytes = text.as_bytes();
    let digits = [0, 1, 3, 4].iter().all(|i| bytes.get(*i).is_some_and(u8::is_ascii_digit));
    if bytes.len() != 5 || bytes[2] != b':' || !digits {
        return None;
    }
    let hour = u32::from(bytes[0] - b'0') * 10 + u32::from(bytes[1] - b'0');
    let minute = u32::from(bytes[3] - b'0') * 10 + u32::from(bytes[4] - b'0');
    match (hour, minute) {
        (24, 0) => Some(WHOLE_DAY),
        (0..=23, 0..=59) => Some(hour * 60 + minute),
        _ => None,
    }
}

/// Whose timezone a local time is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The contact's.
    Contact,
    /// The action owner's: the contact has none.
    Owner,
    /// Neither has one.
    Utc,
}

/// The timezone of `subject`: the contact's, else the owner's, else UTC.
/// Blank names count as none.
///
/// # Errors
///
/// A name that is not an IANA timezone: the predicate does not guess the
/// local time, it says which record to fix.
pub fn zone(subject: &Subject) -> Result<(Tz, Source), String> {
    if let Some(name) = named(subject.contact.timezone.as_deref()) {
        let tz = name.parse().map_err(|_| format!("the contact's timezone `{name}` is not an IANA timezone"))?;
        return Ok((tz, Source::Contact));
    }
    if let Some(name) = named(subject.owner.as_ref().map(|o| o.timezone.as_str())) {
        let tz = name.parse().map_err(|_| format!("the owner's timezone `{name}` is not an IANA timezone"))?;
        return Ok((tz, Source::Owner));
    }
    Ok((Tz::UTC, Source::Utc))
}

/// A timezone name, unless absent or blank.
fn named(name: Option<&str>) -> Option<&str> {
    name.map(str::trim).filter(|n| !n.is_empty())
}

/// The local weekday and seconds after midnight of `now` (milliseconds
/// since the Unix epoch) in `tz`.
///
/// # Errors
///
/// A `now` outside the range of dates chrono represents.
pub fn local(now: i64, tz: Tz) -> Result<(Weekday, u32), String> {
    let utc = DateTime::from_timestamp_millis(now).ok_or_else(|| format!("the time {now} ms is out of range"))?;
    let local = utc.with_timezone(&tz);
    Ok((local.weekday(), local.num_seconds_from_midnight()))
}

/// The predicate.
#[derive(Debug)]
pub struct TimeWindow;

impl Predicate for TimeWindow {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest::predicate("time-window", "Within a time window").description(
            "holds when it is a listed weekday between start and end in the contact's local time (its timezone, \
             else its owner's, else UTC); a window whose end is before its start runs across midnight",
        )
    }

    fn validate(config: &Config) -> Vec<ConfigProblem> {
        Window::compile(config).err().unwrap_or_default()
    }

    fn evaluate(context: &StepContext, config: Config, subject: &Subject) -> Result<bool, String> {
        let window = Window::compile(&config).map_err(|problems| ConfigProblem::describe_all(&problems))?;
        let (tz, _) = zone(subject)?;
        let (day, second) = local(context.now, tz)?;
        Ok(window.contains(day, second))
    }
}

stepwise_plugin_sdk::export_predicate!(TimeWindow);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stepwise_plugin_sdk::{fixtures, parse_config};

    /// 2025-01-06T09:00:00Z, a Monday.
    const MONDAY_9_UTC: i64 = 1_736_154_000_000;
    const HOUR: i64 = 3_600_000;

    fn window(value: serde_json::Value) -> Window {
        let config: Config = parse_config(&value.to_string()).expect("parses");
        Window::compile(&config).unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn problems(value: serde_json::Value) -> Vec<(String, String)> {
        match parse_config::<Config>(&value.to_string()) {
            Err(problem) => vec![(problem.field, problem.message)],
            Ok(config) => TimeWindow::validate(&config).into_iter().map(|p| (p.field, p.message)).collect(),
        }
    }

    const fn at(hour: u32, minute: u32) -> u32 {
        (hour * 60 + minute) * 60
    }

    fn subject(contact_tz: Option<&str>, owner_tz: Option<&str>) -> Subject {
        let contact = Contact { timezone: contact_tz.map(str::to_owned), ..fixtures::contact() };
        let owner = owner_tz.map(|tz| User { timezone: tz.to_owned(), ..fixtures::user() });
        Subject { contact, owner, company: None }
    }

    #[test]
    fn a_day_window_opens_inclusive_and_closes_exclusive() {
        let office = window(json!({"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}));
        assert!(office.contains(Weekday::Mon, at(9, 0)));
        assert!(office.contains(Weekday::Fri, at(16, 59) + 59));
        assert!(!office.contains(Weekday::Mon, at(17, 0)));
        assert!(!office.contains(Weekday::Mon, at(8, 59) + 59));
        assert!(!office.contains(Weekday::Sat, at(10, 0)));
        assert!(!office.contains(Weekday::Sun, at(12, 0)));
        assert_eq!(office.day_names(), ["mon", "tue", "wed", "thu", "fri"]);
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_opens() {
        let night = window(json!({"weekdays": ["fri"], "start": "22:00", "end": "02:00"}));
        assert!(night.contains(Weekday::Fri, at(22, 0)));
        assert!(night.contains(Weekday::Fri, at(23, 59)));
        assert!(night.contains(Weekday::Sat, at(0, 0)));
        assert!(night.contains(Weekday::Sat, at(1, 59)));
        assert!(!night.contains(Weekday::Sat, at(2, 0)));
        assert!(!night.contains(Weekday::Sat, at(22, 30)), "saturday is not listed");
        assert!(!night.contains(Weekday::Fri, at(1, 0)), "thursday is not listed");
        assert!(!night.contains(Weekday::Fri, at(21, 59)));
        // Sunday night runs into Monday morning: the week wraps.
        let sunday = window(json!({"weekdays": ["sun"], "start": "23:00", "end": "01:00"}));
        assert!(sunday.contains(Weekday::Mon, at(0, 30)));
        assert!(!sunday.contains(Weekday::Sun, at(0, 30)));
        // Closing at midnight is the same as closing at 24:00.
        let late = window(json!({"weekdays": ["mon"], "start": "20:00", "end": "00:00"}));
        assert!(late.contains(Weekday::Mon, at(23, 59)));
        assert!(!late.contains(Weekday::Tue, at(0, 0)));
    }

    #[test]
    fn whole_days_and_every_day() {
        let always = window(json!({"start": "00:00", "end": "24:00"}));
        for day in [Weekday::Mon, Weekday::Wed, Weekday::Sun] {
            assert!(always.contains(day, 0));
            assert!(always.contains(day, at(23, 59) + 59));
        }
        let weekend = window(json!({"weekdays": ["sat", "sun"], "start": "00:00", "end": "24:00"}));
        assert!(weekend.contains(Weekday::Sun, at(12, 0)));
        assert!(!weekend.contains(Weekday::Mon, 0));
    }

    #[test]
    fn local_time_follows_the_zone_and_its_daylight_saving() {
        let new_york: Tz = "America/New_York".parse().unwrap();
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(local(MONDAY_9_UTC, Tz::UTC), Ok((Weekday::Mon, at(9, 0))));
        assert_eq!(local(MONDAY_9_UTC, new_york), Ok((Weekday::Mon, at(4, 0))));
        assert_eq!(local(MONDAY_9_UTC, tokyo), Ok((Weekday::Mon, at(18, 0))));
        assert_eq!(local(MONDAY_9_UTC - 10 * HOUR, tokyo), Ok((Weekday::Mon, at(8, 0))));
        assert_eq!(local(MONDAY_9_UTC - 10 * HOUR, new_york), Ok((Weekday::Sun, at(18, 0))));
        // Paris springs forward on 2025-03-30 at 01:00 UTC: 02:00 becomes 03:00.
        let spring = 1_743_296_400_000; // 2025-03-30T01:00:00Z
        assert_eq!(local(spring - HOUR / 2, paris), Ok((Weekday::Sun, at(1, 30))));
        assert_eq!(local(spring + HOUR / 2, paris), Ok((Weekday::Sun, at(3, 30))));
        assert!(local(i64::MAX, Tz::UTC).is_err());
    }

    #[test]
    fn the_zone_is_the_contacts_else_the_owners_else_utc() {
        let tz = |c: Option<&str>, o: Option<&str>| zone(&subject(c, o)).map(|(tz, s)| (tz.name().to_owned(), s));
        assert_eq!(tz(Some("Europe/Paris"), Some("Asia/Tokyo")), Ok(("Europe/Paris".into(), Source::Contact)));
        assert_eq!(tz(None, Some("Asia/Tokyo")), Ok(("Asia/Tokyo".into(), Source::Owner)));
        assert_eq!(tz(Some("  "), Some("Asia/Tokyo")), Ok(("Asia/Tokyo".into(), Source::Owner)));
        assert_eq!(tz(None, None), Ok(("UTC".into(), Source::Utc)));
        assert_eq!(tz(None, Some("")), Ok(("UTC".into(), Source::Utc)));
        assert_eq!(
            tz(Some("Mars/Olympus"), Some("Asia/Tokyo")),
            Err("the contact's timezone `Mars/Olympus` is not an IANA timezone".into())
        );
        assert_eq!(tz(None, Some("EST5")), Err("the owner's timezone `EST5` is not an IANA timezone".into()));
    }

    #[test]
    fn evaluates_in_the_contacts_local_time() {
        let config = || -> Config {
            parse_config(r#"{"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}"#)
                .unwrap()
        };
        let now = fixtures::context(MONDAY_9_UTC);
        // 09:00 in London, 04:00 in New York, 18:00 in Tokyo.
        assert_eq!(TimeWindow::evaluate(&now, config(), &subject(Some("Europe/London"), None)), Ok(true));
        assert_eq!(TimeWindow::evaluate(&now, config(), &subject(Some("America/New_York"), None)), Ok(false));
        assert_eq!(TimeWindow::evaluate(&now, config(), &subject(None, Some("Asia/Tokyo"))), Ok(false));
        assert_eq!(TimeWindow::evaluate(&now, config(), &subject(None, None)), Ok(true));
        let later = fixtures::context(MONDAY_9_UTC + 5 * HOUR);
        assert_eq!(TimeWindow::evaluate(&later, config(), &subject(Some("America/New_York"), None)), Ok(true));
        let error = TimeWindow::evaluate(&now, config(), &subject(Some("Nowhere"), None)).unwrap_err();
        assert!(error.contains("`Nowhere` is not an IANA timezone"), "{error}");
        let bad: Config = parse_config(r#"{"start": "9am", "end": "17:00"}"#).unwrap();
        let error = TimeWindow::evaluate(&now, bad, &subject(None, None)).unwrap_err();
        assert!(error.starts_with("invalid config: /start: \"9am\" is not a time of day"), "{error}");
    }

    #[test]
    fn problems_name_their_field() {
        let found = problems(json!({"weekdays": ["mon", "mon"], "start": "9:00", "end": "25:00"}));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["/weekdays/1", "/start", "/end"], "{found:?}");
        assert_eq!(found[0].1, "repeats /weekdays/0");
        assert!(found[1].1.contains("\"9:00\" is not a time of day: write HH:MM"), "{found:?}");
        assert!(found[2].1.ends_with("or 24:00"), "{found:?}");
        let found = problems(json!({"weekdays": [], "start": "09:00", "end": "17:00"}));
        assert_eq!(found, [("/weekdays".to_owned(), "needs at least one day (leave it out for every day)".into())]);
        let found = problems(json!({"start": "09:00", "end": "09:00"}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "/end");
        assert!(found[0].1.starts_with("must differ from start"), "{found:?}");
        assert_eq!(problems(json!({"start": "00:00", "end": "00:00"}))[0].0, "/end");
        assert_eq!(problems(json!({"start": "24:00", "end": "05:00"}))[0].0, "/start");
        for bad in ["12:60", "1200", "12-00", "ab:cd", "", " 9:00", "09:00 ", "２３:00"] {
            assert_eq!(problems(json!({"start": bad, "end": "17:00"}))[0].0, "/start", "{bad:?}");
        }
        let found = problems(json!({"weekdays": ["monday"], "start": "09:00", "end": "17:00"}));
        assert_eq!(found[0].0, "/weekdays/0");
        assert!(found[0].1.contains("unknown variant `monday`, expected one of `mon`"), "{found:?}");
        assert_eq!(problems(json!({"start": "09:00", "end": "17:00", "timezone": "UTC"}))[0].0, "/timezone");
        assert!(problems(json!({"start": "09:00"}))[0].1.contains("missing field `end`"));
        for good in [
            json!({"start": "09:00", "end": "17:00"}),
            json!({"weekdays": ["sat"], "start": "22:00", "end": "02:00"}),
            json!({"start": "00:00", "end": "24:00"}),
            json!({"start": "23:59", "end": "00:00"}),
        ] {
            assert_eq!(problems(good.clone()), [], "{good}");
        }
    }

    #[test]
    fn the_schema_requires_the_hours() {
        assert_eq!(TimeWindow::manifest().id(), "time-window");
        let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        assert_eq!(schema["required"], json!(["start", "end"]), "{schema}");
        assert_eq!(schema["properties"]["weekdays"]["default"].as_array().map(Vec::len), Some(7), "{schema}");
        assert_eq!(schema["properties"]["weekdays"]["default"][0], "mon", "{schema}");
        assert!(schema["properties"]["end"]["pattern"].as_str().is_some_and(|p| p.contains("24:00")), "{schema}");
    }
}
