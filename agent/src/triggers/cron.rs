//! EventBridge's six-field cron: `min hour day-of-month month day-of-week year`,
//! parsed into sets and day rules, and the calendar test "does this local date and
//! time match". Finding the next time (and time zones) is `schedule_expr.rs`'s job.
//!
//! Rules (EventBridge's): `*`, `,`, `-` (a range; a range whose start is after its end
//! wraps, e.g. hours `22-2`), `/` (`a/b`, `*/b`, `a-b/c`), `?` in exactly one of
//! day-of-month and day-of-week; day-of-month also `L` (last day), `nW` (the weekday
//! nearest day n, within the month), `LW` (last weekday); day-of-week 1-7 = SUN-SAT,
//! also `L` (= 7, Saturday), `nL` (the last weekday n of the month), `n#k` (the k-th
//! weekday n, k 1-5); month names JAN-DEC and day names SUN-SAT (any case); years
//! 1970-2199.

use super::schedule_expr::ScheduleError;
use chrono::{Datelike, NaiveDate, Weekday};

pub(super) const YEAR_MIN: i32 = 1970;
pub(super) const YEAR_MAX: i32 = 2199;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A set of values of one field, as bits (bit v = value v is in the set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bits(u64);

impl Bits {
    pub(super) fn has(self, v: u32) -> bool {
        v < 64 && self.0 & (1 << v) != 0
    }
}

/// The day-of-month field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    /// `?`: the day-of-week field decides.
    Unspecified,
    Days(Bits),
    /// `L`
    Last,
    /// `LW`
    LastWeekday,
    /// `nW`
    NearestWeekday(u32),
}

/// The day-of-week field; days are 1-7 = SUN-SAT.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    /// `?`: the day-of-month field decides.
    Unspecified,
    Days(Bits),
    /// `nL`: the last such weekday of the month.
    LastOf(u32),
    /// `n#k`: the k-th such weekday of the month.
    Nth(u32, u32),
}

/// A parsed cron expression (the text between `cron(` and `)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Bits,
    hours: Bits,
    dom: DayOfMonth,
    months: Bits,
    dow: DayOfWeek,
    years: Vec<bool>,
}

/// One field's identity: its name in errors, its bounds, its names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minutes",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hours",
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTHS,
};
const DOW: Field = Field {
    name: "day-of-week",
    min: 1,
    max: 7,
    names: &DAYS,
};
const YEAR: Field = Field {
    name: "year",
    min: YEAR_MIN as u32,
    max: YEAR_MAX as u32,
    names: &[],
};

impl Field {
    fn err(&self, text: &str, reason: impl Into<String>) -> ScheduleError {
        ScheduleError::CronField {
            field: self.name,
            value: text.to_string(),
            reason: reason.into(),
        }
    }

    /// One value: a number in bounds or (where the field has them) a name.
    fn value(&self, whole: &str, v: &str) -> Result<u32, ScheduleError> {
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(self.min + i as u32);
        }
        let n: u32 = v.parse().map_err(|_| {
            let names = if self.names.is_empty() {
                String::new()
            } else {
                format!(" or {}-{}", self.names[0], self.names[self.names.len() - 1])
            };
            self.err(
                whole,
                format!(
                    "'{v}' is not a value; expected {}-{}{names}",
                    self.min, self.max
                ),
            )
        })?;
        if n < self.min || n > self.max {
            return Err(self.err(
                whole,
                format!("{n} is out of range {}-{}", self.min, self.max),
            ));
        }
        Ok(n)
    }

    /// A list of `*`, values, ranges and steps, as the values it selects.
    fn list(&self, text: &str) -> Result<Vec<u32>, ScheduleError> {
        let mut out = Vec::new();
        for item in text.split(',') {
            if item.is_empty() {
                return Err(self.err(text, "empty list item"));
            }
            let (base, step) = match item.split_once('/') {
                Some((b, s)) => {
                    let s: u32 = s.parse().map_err(|_| {
                        self.err(text, format!("step '{s}' is not a positive number"))
                    })?;
                    if s == 0 {
                        return Err(self.err(text, "a step of 0 never advances"));
                    }
                    (b, Some(s))
                }
                None => (item, None),
            };
            let (start, end) = if base == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = base.split_once('-') {
                (self.value(text, a)?, self.value(text, b)?)
            } else {
                let a = self.value(text, base)?;
                // `a/b` runs from a to the field's end.
                (a, if step.is_some() { self.max } else { a })
            };
            // A range whose start is after its end wraps past the field's end.
            let span: Vec<u32> = if start <= end {
                (start..=end).collect()
            } else {
                (start..=self.max).chain(self.min..=end).collect()
            };
            let step = step.unwrap_or(1) as usize;
            out.extend(span.into_iter().step_by(step));
        }
        Ok(out)
    }

    fn bits(&self, text: &str) -> Result<Bits, ScheduleError> {
        Ok(Bits(
            self.list(text)?.into_iter().fold(0, |b, v| b | 1 << v),
        ))
    }
}

impl Cron {
    /// Parses the six fields.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() != 6 {
            return Err(ScheduleError::CronFieldCount {
                text: text.to_string(),
                found: f.len(),
            });
        }
        let dom = parse_dom(f[2])?;
        let dow = parse_dow(f[4])?;
        match (&dom, &dow) {
            (DayOfMonth::Unspecified, DayOfWeek::Unspecified) => {
                return Err(DOW.err(
                    f[4],
                    "day-of-month and day-of-week are both '?'; one of them must say which days",
                ))
            }
            (DayOfMonth::Unspecified, _) | (_, DayOfWeek::Unspecified) => {}
            _ => {
                return Err(DOW.err(
                    f[4],
                    format!(
                        "exactly one of day-of-month ('{}') and day-of-week must be '?'",
                        f[2]
                    ),
                ))
            }
        }
        let mut years = vec![false; (YEAR_MAX - YEAR_MIN + 1) as usize];
        for y in YEAR.list(f[5])? {
            years[(y - YEAR_MIN as u32) as usize] = true;
        }
        Ok(Self {
            minutes: MINUTE.bits(f[0])?,
            hours: HOUR.bits(f[1])?,
            dom,
            months: MONTH.bits(f[3])?,
            dow,
            years,
        })
    }

    pub(super) fn has_year(&self, y: i32) -> bool {
        (YEAR_MIN..=YEAR_MAX).contains(&y) && self.years[(y - YEAR_MIN) as usize]
    }

    pub(super) fn has_month(&self, m: u32) -> bool {
        self.months.has(m)
    }

    pub(super) fn hours(&self) -> Bits {
        self.hours
    }

    pub(super) fn minutes(&self) -> Bits {
        self.minutes
    }

    /// Whether the day-of-month and day-of-week fields select `date`.
    pub(super) fn has_day(&self, date: NaiveDate) -> bool {
        let last = last_day(date.year(), date.month());
        let day = date.day();
        let dom_ok = match &self.dom {
            DayOfMonth::Unspecified => true,
            DayOfMonth::Days(b) => b.has(day),
            DayOfMonth::Last => day == last,
            DayOfMonth::LastWeekday => day == nearest_weekday(date, last),
            DayOfMonth::NearestWeekday(n) => *n <= last && day == nearest_weekday(date, *n),
        };
        let wd = dow_number(date.weekday());
        let dow_ok = match &self.dow {
            DayOfWeek::Unspecified => true,
            DayOfWeek::Days(b) => b.has(wd),
            DayOfWeek::LastOf(n) => wd == *n && day + 7 > last,
            DayOfWeek::Nth(n, k) => wd == *n && (day - 1) / 7 + 1 == *k,
        };
        dom_ok && dow_ok
    }
}

/// EventBridge's day-of-week number, 1-7 = SUN-SAT.
fn dow_number(w: Weekday) -> u32 {
    w.num_days_from_sunday() + 1
}

/// The last day (28-31) of a month.
pub(super) fn last_day(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// The weekday (Mon-Fri) nearest day `n` of `date`'s month, never leaving the month:
/// a Saturday moves to the Friday before (or the Monday after, on the 1st), a Sunday
/// to the Monday after (or the Friday before, on the last day).
fn nearest_weekday(date: NaiveDate, n: u32) -> u32 {
    let Some(target) = date.with_day(n) else {
        return 0;
    };
    let last = last_day(date.year(), date.month());
    match target.weekday() {
        Weekday::Sat if n == 1 => 3,
        Weekday::Sat => n - 1,
        Weekday::Sun if n == last => n - 2,
        Weekday::Sun => n + 1,
        _ => n,
    }
}

fn parse_dom(text: &str) -> Result<DayOfMonth, ScheduleError> {
    let up = text.to_ascii_uppercase();
    if up == "?" {
        return Ok(DayOfMonth::Unspecified);
    }
    if up == "L" {
        return Ok(DayOfMonth::Last);
    }
    if up == "LW" {
        return Ok(DayOfMonth::LastWeekday);
    }
    if let Some(n) = up.strip_suffix('W') {
        let d = DOM.value(text, n).map_err(|_| {
            DOM.err(
                text,
                "'W' takes one day, 1-31 ('15W'), or 'LW' for the last weekday",
            )
        })?;
        return Ok(DayOfMonth::NearestWeekday(d));
    }
    if up.contains('L') || up.contains('W') || up.contains('#') {
        return Err(DOM.err(
            text,
            "'L' and 'W' stand alone ('L', 'LW', '15W'); '#' belongs to day-of-week",
        ));
    }
    Ok(DayOfMonth::Days(DOM.bits(text)?))
}

fn parse_dow(text: &str) -> Result<DayOfWeek, ScheduleError> {
    let up = text.to_ascii_uppercase();
    if up == "?" {
        return Ok(DayOfWeek::Unspecified);
    }
    if up == "L" {
        return Ok(DayOfWeek::Days(Bits(1 << 7)));
    }
    if let Some((d, k)) = up.split_once('#') {
        let d = DOW.value(text, d)?;
        let k: u32 = k
            .parse()
            .ok()
            .filter(|k| (1..=5).contains(k))
            .ok_or_else(|| DOW.err(text, format!("'#{k}': the week must be 1-5")))?;
        return Ok(DayOfWeek::Nth(d, k));
    }
    if let Some(d) = up.strip_suffix('L') {
        return Ok(DayOfWeek::LastOf(DOW.value(text, d)?));
    }
    if up.contains('L') {
        return Err(DOW.err(
            text,
            "'L' stands alone or after one day ('6L'); 'W' belongs to day-of-month",
        ));
    }
    Ok(DayOfWeek::Days(DOW.bits(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn days(c: &str, y: i32, m: u32) -> Vec<u32> {
        let c = Cron::parse(c).unwrap();
        (1..=last_day(y, m))
            .filter(|&day| c.has_day(d(y, m, day)))
            .collect()
    }

    #[test]
    fn last_day_knows_leap_years() {
        assert_eq!(last_day(2024, 2), 29);
        assert_eq!(last_day(2023, 2), 28);
        assert_eq!(last_day(2000, 2), 29);
        assert_eq!(last_day(2100, 2), 28);
        assert_eq!(last_day(2026, 12), 31);
        assert_eq!(last_day(2026, 4), 30);
    }

    #[test]
    fn lists_ranges_steps_and_names() {
        let c = Cron::parse("0/15 22-2 ? jan-MAR,Dec MON-FRI 2026-2030/2").unwrap();
        let mins: Vec<u32> = (0..60).filter(|&m| c.minutes.has(m)).collect();
        assert_eq!(mins, [0, 15, 30, 45]);
        let hours: Vec<u32> = (0..24).filter(|&h| c.hours.has(h)).collect();
        assert_eq!(hours, [0, 1, 2, 22, 23]);
        let months: Vec<u32> = (1..=12).filter(|&m| c.months.has(m)).collect();
        assert_eq!(months, [1, 2, 3, 12]);
        assert!(c.has_year(2026) && c.has_year(2028) && c.has_year(2030));
        assert!(!c.has_year(2027) && !c.has_year(2031));
        // December 2026: the 1st is a Tuesday; weekdays only.
        assert_eq!(days("0 0 ? * MON-FRI *", 2026, 12)[..5], [1, 2, 3, 4, 7]);
        // Day-of-week 1 is Sunday.
        assert_eq!(days("0 0 ? * 1 *", 2026, 12), [6, 13, 20, 27]);
    }

    #[test]
    fn last_day_of_month() {
        assert_eq!(days("0 0 L * ? *", 2024, 2), [29]);
        assert_eq!(days("0 0 L * ? *", 2023, 2), [28]);
        assert_eq!(days("0 0 L * ? *", 2026, 4), [30]);
    }

    #[test]
    fn nearest_weekday_stays_in_the_month() {
        // 2026-08-01 is a Saturday: 1W is Monday the 3rd, not July 31st.
        assert_eq!(days("0 0 1W * ? *", 2026, 8), [3]);
        // 2026-08-15 is a Saturday: 15W is Friday the 14th.
        assert_eq!(days("0 0 15W * ? *", 2026, 8), [14]);
        // 2026-08-16 is a Sunday: 16W is Monday the 17th.
        assert_eq!(days("0 0 16W * ? *", 2026, 8), [17]);
        // 2026-05-31 is a Sunday and the last day: 31W is Friday the 29th.
        assert_eq!(days("0 0 31W * ? *", 2026, 5), [29]);
        // 31W in a 30-day month never fires.
        assert!(days("0 0 31W * ? *", 2026, 4).is_empty());
        // LW: May 2026 ends on a Sunday, so Friday the 29th; Feb 2024 on Thursday 29th.
        assert_eq!(days("0 0 LW * ? *", 2026, 5), [29]);
        assert_eq!(days("0 0 LW * ? *", 2024, 2), [29]);
    }

    #[test]
    fn nth_and_last_weekday() {
        // 2026-11: Thursdays are 5, 12, 19, 26 (US Thanksgiving = 4th Thursday).
        assert_eq!(days("0 0 ? * 5#4 *", 2026, 11), [26]);
        assert_eq!(days("0 0 ? * THU#4 *", 2026, 11), [26]);
        assert_eq!(days("0 0 ? * 5L *", 2026, 11), [26]);
        // A fifth Monday: June 2026 has Mondays 1, 8, 15, 22, 29; February 2026 none.
        assert_eq!(days("0 0 ? * MON#5 *", 2026, 6), [29]);
        assert!(days("0 0 ? * MON#5 *", 2026, 2).is_empty());
        // Last Friday of February 2024 (leap year): the 23rd.
        assert_eq!(days("0 0 ? * FRIL *", 2024, 2), [23]);
        // L alone in day-of-week is Saturday.
        assert_eq!(days("0 0 ? * L *", 2026, 12), [5, 12, 19, 26]);
    }

    fn err(c: &str) -> String {
        Cron::parse(c).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err("0 0 ? * FOO *"),
            "cron day-of-week field 'FOO': 'FOO' is not a value; expected 1-7 or SUN-SAT"
        );
        assert_eq!(
            err("60 0 * * ? *"),
            "cron minutes field '60': 60 is out of range 0-59"
        );
        assert!(err("0 24 * * ? *").starts_with("cron hours field '24'"));
        assert!(err("0 0 * 13 ? *").starts_with("cron month field '13'"));
        assert!(err("0 0 * * ? 2200").starts_with("cron year field '2200'"));
        assert!(err("0 0 * * ? 1969").starts_with("cron year field '1969'"));
        assert!(err("*/0 0 * * ? *").contains("a step of 0"));
        assert!(err("0 0 * * MON *").contains("exactly one of day-of-month"));
        assert!(err("0 0 ? * ? *").contains("both '?'"));
        assert!(err("0 0 ? * 2#6 *").contains("the week must be 1-5"));
        assert!(err("0 0 5L * ? *").starts_with("cron day-of-month field '5L'"));
        assert!(err("0 0 * * ?").contains("6 fields"));
        assert!(err("0 0 1,,2 * ? *").contains("empty list item"));
    }
}
