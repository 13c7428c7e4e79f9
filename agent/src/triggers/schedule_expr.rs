//! EventBridge schedule expressions, `rate(...)` and `cron(...)`, in UTC or a named
//! IANA time zone, and the next time a schedule fires after a given instant.
//!
//! - `rate(N unit)`: unit `minute`/`hour`/`day` when N is 1, `minutes`/`hours`/`days`
//!   when N > 1 (EventBridge refuses the other forms). A rate fires at
//!   `anchor + k * period`, k >= 1, where the anchor is when the trigger was created.
//!   `second`/`seconds` exist only for tests (flintd's hidden `--schedule-seconds`).
//! - `cron(min hour day-of-month month day-of-week year)`: see `cron.rs`; evaluated on
//!   the wall clock of the schedule's time zone. Daylight saving time, as EventBridge
//!   Scheduler documents it: a local time that does not exist (the spring-forward gap)
//!   is skipped; a local time that happens twice (the fall-back overlap) fires once, at
//!   its first occurrence.

use super::cron::{Cron, YEAR_MAX};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// A schedule expression or time zone that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Neither `rate(...)` nor `cron(...)`
    #[error(
        "schedule '{0}': expected 'rate(N minutes|hours|days)' or \
         'cron(min hour day-of-month month day-of-week year)'"
    )]
    Syntax(String),
    /// A `rate(...)` that EventBridge would refuse
    #[error("rate expression '{text}': {reason}")]
    Rate { text: String, reason: String },
    /// A `cron(...)` without six fields
    #[error(
        "cron expression '{text}' has {found} fields; EventBridge's cron has 6 fields: \
         min hour day-of-month month day-of-week year"
    )]
    CronFieldCount { text: String, found: usize },
    /// One cron field is wrong
    #[error("cron {field} field '{value}': {reason}")]
    CronField {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// Not an IANA time zone name
    #[error(
        "time zone '{0}' is not an IANA time zone name (for example UTC, Europe/Berlin, \
         America/New_York)"
    )]
    TimeZone(String),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleExpr {
    /// Every period (whole seconds).
    Rate(TimeDelta),
    Cron(Box<Cron>),
}

/// Whether `rate(N seconds)` is accepted (tests only; EventBridge has no such unit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    pub allow_seconds: bool,
}

impl ScheduleExpr {
    /// Parses `rate(...)` or `cron(...)`.
    pub fn parse(text: &str, opts: ParseOptions) -> Result<Self, ScheduleError> {
        let t = text.trim();
        if let Some(inner) = t.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            return parse_rate(text, inner, opts).map(ScheduleExpr::Rate);
        }
        if let Some(inner) = t.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            return Ok(ScheduleExpr::Cron(Box::new(Cron::parse(inner)?)));
        }
        Err(ScheduleError::Syntax(text.to_string()))
    }
}

fn parse_rate(text: &str, inner: &str, opts: ParseOptions) -> Result<TimeDelta, ScheduleError> {
    let bad = |reason: &str| ScheduleError::Rate {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [n, unit] = parts[..] else {
        return Err(bad("expected a number and a unit, as in 'rate(5 minutes)'"));
    };
    let n: i64 = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad("the value must be a positive whole number"))?;
    let (singular, secs) = match unit {
        "minute" | "minutes" => ("minute", 60),
        "hour" | "hours" => ("hour", 3600),
        "day" | "days" => ("day", 86_400),
        "second" | "seconds" if opts.allow_seconds => ("second", 1),
        _ => return Err(bad("the unit must be minute(s), hour(s) or day(s)")),
    };
    if (n == 1) != (unit == singular) {
        return Err(bad(if n == 1 {
            "a value of 1 takes the singular unit (minute, hour, day)"
        } else {
            "a value above 1 takes the plural unit (minutes, hours, days)"
        }));
    }
    n.checked_mul(secs)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .map(TimeDelta::seconds)
        .ok_or_else(|| bad("the period is longer than 100 years"))
}

/// Parses an IANA time zone name (`None` = UTC).
pub fn parse_tz(name: Option<&str>) -> Result<Tz, ScheduleError> {
    match name {
        None | Some("") => Ok(Tz::UTC),
        Some(n) => n
            .parse::<Tz>()
            .map_err(|_| ScheduleError::TimeZone(n.to_string())),
    }
}

/// An expression with its time zone and (for rates) its anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub expr: ScheduleExpr,
    pub tz: Tz,
    /// When a rate's periods start (the trigger's creation).
    pub anchor: DateTime<Utc>,
}

impl Schedule {
    /// The first fire strictly after `after`; `None` when there is none (a cron whose
    /// years have passed, or that names a day that never comes, such as 30 February).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.expr {
            ScheduleExpr::Rate(period) => {
                let p = period.num_milliseconds();
                let since = (after - self.anchor).num_milliseconds();
                let k = if since < 0 { 1 } else { since / p + 1 };
                Some(self.anchor + TimeDelta::milliseconds(k.checked_mul(p)?))
            }
            ScheduleExpr::Cron(c) => cron_next(c, self.tz, after),
        }
    }
}

fn cron_next(c: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Start a day early on the local calendar (an offset can move the local date), and
    // take the first candidate that is after `after`.
    let mut date = after.with_timezone(&tz).date_naive().pred_opt()?;
    let (hours, minutes) = (c.hours(), c.minutes());
    loop {
        let y = date.year();
        if y > YEAR_MAX {
            return None;
        }
        if !c.has_year(y) {
            date = NaiveDate::from_ymd_opt(y + 1, 1, 1)?;
            continue;
        }
        if !c.has_month(date.month()) {
            date = first_of_next_month(date)?;
            continue;
        }
        if c.has_day(date) {
            for h in (0..24).filter(|h| hours.has(*h)) {
                for m in (0..60).filter(|m| minutes.has(*m)) {
                    let local = date.and_hms_opt(h, m, 0)?;
                    // A gap (no such local time) yields nothing: skipped. An overlap
                    // yields its earliest instant only: fired once.
                    if let Some(t) = tz.from_local_datetime(&local).earliest() {
                        let t = t.with_timezone(&Utc);
                        if t > after {
                            return Some(t);
                        }
                    }
                }
            }
        }
        date = date.succ_opt()?;
    }
}

fn first_of_next_month(d: NaiveDate) -> Option<NaiveDate> {
    if d.month() == 12 {
        NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sched(expr: &str, tz: Option<&str>) -> Schedule {
        Schedule {
            expr: ScheduleExpr::parse(expr, ParseOptions::default()).unwrap(),
            tz: parse_tz(tz).unwrap(),
            anchor: at("2026-12-06T10:00:00Z"),
        }
    }

    /// The first `n` fires after `from`, as RFC 3339 UTC strings.
    fn fires(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        let mut out = Vec::new();
        for _ in 0..n {
            match s.next_after(t) {
                Some(next) => {
                    out.push(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn rate_counts_periods_from_the_anchor() {
        let s = sched("rate(5 minutes)", None);
        assert_eq!(
            fires(&s, "2026-12-06T09:00:00Z", 2),
            ["2026-12-06T10:05:00Z", "2026-12-06T10:10:00Z"]
        );
        // Exactly on a fire time: the next one.
        assert_eq!(
            fires(&s, "2026-12-06T10:05:00Z", 1),
            ["2026-12-06T10:10:00Z"]
        );
        assert_eq!(
            fires(&s, "2026-12-06T10:07:31Z", 1),
            ["2026-12-06T10:10:00Z"]
        );
        let day = sched("rate(1 day)", None);
        assert_eq!(
            fires(&day, "2026-12-31T12:00:00Z", 1),
            ["2027-01-01T10:00:00Z"]
        );
    }

    #[test]
    fn rate_units_follow_eventbridge() {
        let p = |t| ScheduleExpr::parse(t, ParseOptions::default());
        assert_eq!(
            p("rate(1 hour)").unwrap(),
            ScheduleExpr::Rate(TimeDelta::hours(1))
        );
        assert_eq!(
            p("rate(3 days)").unwrap(),
            ScheduleExpr::Rate(TimeDelta::days(3))
        );
        let e = |t| p(t).unwrap_err().to_string();
        assert!(e("rate(1 minutes)").contains("singular"));
        assert!(e("rate(5 minute)").contains("plural"));
        assert!(e("rate(0 minutes)").contains("positive whole number"));
        assert!(e("rate(-5 minutes)").contains("positive whole number"));
        assert!(e("rate(5 weeks)").contains("minute(s), hour(s) or day(s)"));
        assert!(e("rate(5)").contains("a number and a unit"));
        assert!(e("rate(1 second)").contains("minute(s), hour(s) or day(s)"));
        assert!(e("every 5 minutes").starts_with("schedule 'every 5 minutes': expected"));
        let secs = ScheduleExpr::parse(
            "rate(1 second)",
            ParseOptions {
                allow_seconds: true,
            },
        );
        assert_eq!(secs.unwrap(), ScheduleExpr::Rate(TimeDelta::seconds(1)));
    }

    #[test]
    fn cron_in_utc_month_ends_and_leap_years() {
        let s = sched("cron(0 12 L * ? *)", None);
        assert_eq!(
            fires(&s, "2024-01-31T12:00:00Z", 3),
            [
                "2024-02-29T12:00:00Z",
                "2024-03-31T12:00:00Z",
                "2024-04-30T12:00:00Z"
            ]
        );
        // 29 February: the next leap year.
        let s = sched("cron(0 0 29 2 ? *)", None);
        assert_eq!(
            fires(&s, "2025-01-01T00:00:00Z", 2),
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
        );
        // 2100 is not a leap year: after 2096 comes 2104.
        assert_eq!(
            fires(&s, "2096-03-01T00:00:00Z", 1),
            ["2104-02-29T00:00:00Z"]
        );
        // 30 February never comes.
        assert!(sched("cron(0 0 30 2 ? *)", None)
            .next_after(at("2026-01-01T00:00:00Z"))
            .is_none());
        // A year list that has passed.
        let s = sched("cron(0 0 1 1 ? 2027)", None);
        assert_eq!(
            fires(&s, "2026-12-31T23:59:59Z", 2),
            ["2027-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn cron_every_ten_minutes_on_weekdays() {
        let s = sched("cron(0/10 * ? * MON-FRI *)", None);
        // Friday 2026-12-04 23:55 -> Monday 2026-12-07 00:00.
        assert_eq!(
            fires(&s, "2026-12-04T23:55:00Z", 2),
            ["2026-12-07T00:00:00Z", "2026-12-07T00:10:00Z"]
        );
    }

    #[test]
    fn cron_nth_last_and_nearest_weekday_dates() {
        // Third Monday of each month at 09:00 UTC.
        let s = sched("cron(0 9 ? * 2#3 *)", None);
        assert_eq!(
            fires(&s, "2026-12-01T00:00:00Z", 2),
            ["2026-12-21T09:00:00Z", "2027-01-18T09:00:00Z"]
        );
        // Last Friday.
        let s = sched("cron(0 18 ? * 6L *)", None);
        assert_eq!(
            fires(&s, "2026-12-01T00:00:00Z", 2),
            ["2026-12-25T18:00:00Z", "2027-01-29T18:00:00Z"]
        );
        // Last weekday of the month: January 2027 ends on a Sunday.
        let s = sched("cron(0 17 LW * ? *)", None);
        assert_eq!(
            fires(&s, "2026-12-31T18:00:00Z", 1),
            ["2027-01-29T17:00:00Z"]
        );
    }

    #[test]
    fn cron_in_a_time_zone() {
        // 08:00 in Berlin is 07:00Z in winter, 06:00Z in summer.
        let s = sched("cron(0 8 * * ? *)", Some("Europe/Berlin"));
        assert_eq!(
            fires(&s, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T06:00:00Z", "2026-03-30T06:00:00Z"]
        );
        assert_eq!(
            fires(&s, "2026-12-06T12:00:00Z", 1),
            ["2026-12-07T07:00:00Z"]
        );
        // The local date differs from the UTC date: midnight in Tokyo is 15:00Z the day before.
        let s = sched("cron(0 0 1 * ? *)", Some("Asia/Tokyo"));
        assert_eq!(
            fires(&s, "2026-12-06T00:00:00Z", 1),
            ["2026-12-31T15:00:00Z"]
        );
    }

    #[test]
    fn dst_gap_is_skipped() {
        // New York springs forward on 2026-03-08 at 02:00 -> 03:00: 02:30 does not exist.
        let s = sched("cron(30 2 * * ? *)", Some("America/New_York"));
        assert_eq!(
            fires(&s, "2026-03-07T12:00:00Z", 2),
            ["2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]
        );
    }

    #[test]
    fn dst_overlap_fires_once() {
        // New York falls back on 2026-11-01 at 02:00 -> 01:00: 01:30 happens twice
        // (05:30Z in EDT, 06:30Z in EST); the schedule fires at the first only.
        let s = sched("cron(30 1 * * ? *)", Some("America/New_York"));
        assert_eq!(
            fires(&s, "2026-11-01T00:00:00Z", 2),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
        );
    }

    #[test]
    fn bad_time_zone_is_named() {
        assert_eq!(
            parse_tz(Some("Mars/Olympus")).unwrap_err().to_string(),
            "time zone 'Mars/Olympus' is not an IANA time zone name (for example UTC, \
             Europe/Berlin, America/New_York)"
        );
        assert_eq!(parse_tz(None).unwrap(), Tz::UTC);
    }
}
