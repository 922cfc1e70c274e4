//! Times in a config: fixed (`2025-01-31T09:00:00Z`, `2025-01-31`) or
//! relative to the call's `now` (`now`, `now-7d`, `now+2h`).

/// A time a config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// A fixed instant, in milliseconds since the Unix epoch.
    At(i64),
    /// The call's `now` plus this many milliseconds (negative: before).
    FromNow(i64),
}

/// How to write a time, for error messages.
pub const FORMS: &str = "an RFC 3339 time such as 2025-01-31T09:00:00Z, a date such as 2025-01-31 (midnight UTC), or now, now-7d, \
     now+2h (units m, h, d, w)";

const MINUTE: i64 = 60_000;

impl When {
    /// Parses a time as a config writes it; `None` when it is not one.
    pub fn parse(text: &str) -> Option<When> {
        match text.strip_prefix("now") {
            Some(offset) => relative(offset).map(When::FromNow),
            None => instant(text).map(When::At),
        }
    }

    /// The instant, for a call made at `now`. Saturates instead of
    /// overflowing for offsets past the representable range.
    pub fn resolve(self, now: i64) -> i64 {
        match self {
            When::At(at) => at,
            When::FromNow(offset) => now.saturating_add(offset),
        }
    }
}

/// The offset after `now`: empty, or a sign, digits and a unit.
fn relative(offset: &str) -> Option<i64> {
    if offset.is_empty() {
        return Some(0);
    }
    let (sign, rest) = match offset.as_bytes()[0] {
        b'+' => (1, &offset[1..]),
        b'-' => (-1, &offset[1..]),
        _ => return None,
    };
    let unit = rest.chars().last()?;
    let digits = &rest[..rest.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let per = match unit {
        'm' => MINUTE,
        'h' => 60 * MINUTE,
        'd' => 24 * 60 * MINUTE,
        'w' => 7 * 24 * 60 * MINUTE,
        _ => return None,
    };
    digits.parse::<i64>().ok()?.checked_mul(per)?.checked_mul(sign)
}

/// A fixed instant: RFC 3339, or a `YYYY-MM-DD` date at midnight UTC.
/// Contact attributes holding times are read with this too.
pub fn instant(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let date_only = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    if date_only {
        let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * MINUTE;

    #[test]
    fn relative_times_count_from_now() {
        assert_eq!(When::parse("now"), Some(When::FromNow(0)));
        assert_eq!(When::parse("now-7d"), Some(When::FromNow(-7 * DAY)));
        assert_eq!(When::parse("now+2h"), Some(When::FromNow(2 * 60 * MINUTE)));
        assert_eq!(When::parse("now-90m"), Some(When::FromNow(-90 * MINUTE)));
        assert_eq!(When::parse("now+1w"), Some(When::FromNow(7 * DAY)));
        assert_eq!(When::parse("now-7d").unwrap().resolve(10 * DAY), 3 * DAY);
    }

    #[test]
    fn malformed_relative_times_are_refused() {
        for bad in [
            "now-",
            "now-d",
            "now7d",
            "now-7",
            "now-7y",
            "now - 7d",
            "now-7D",
            "now-1.5d",
            "now-99999999999999999w",
            "Now",
        ] {
            assert_eq!(When::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fixed_times_are_rfc3339_or_dates_at_midnight_utc() {
        assert_eq!(When::parse("1970-01-02"), Some(When::At(DAY)));
        assert_eq!(When::parse("1970-01-01T00:01:00Z"), Some(When::At(MINUTE)));
        assert_eq!(When::parse("1970-01-01T01:00:00+01:00"), Some(When::At(0)));
        assert_eq!(When::parse("2025-01-31T09:00:00.250Z"), Some(When::At(1_738_314_000_250)));
        for bad in ["2025-02-30", "2025-1-31", "31/01/2025", "2025-01-31 09:00", "", "soon", "12"] {
            assert_eq!(When::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn resolving_far_offsets_saturates() {
        assert_eq!(When::FromNow(i64::MAX).resolve(1), i64::MAX);
        assert_eq!(When::FromNow(i64::MIN).resolve(-1), i64::MIN);
    }
}
