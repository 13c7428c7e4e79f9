//! Parsing `flint usage --since`: a duration back from now (`90s`, `15m`, `1h30m`,
//! `7d`, `2w`), an RFC 3339 time (`2026-11-27T00:00:00Z`, `2026-11-27T09:30:00.250+01:00`)
//! or a UTC date (`2026-11-01`), into Unix milliseconds.

/// A `--since` value that is neither form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinceError {
    /// Not a duration, time or date
    #[error("--since {0:?}: give a duration back from now (30s, 15m, 1h30m, 7d, 2w), an RFC 3339 time (2026-11-27T00:00:00Z) or a date (2026-11-27)")]
    Invalid(String),
}

fn unit_ms(u: char) -> Option<u64> {
    Some(match u {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    })
}

/// `1h30m` into milliseconds.
fn duration_ms(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(
                num.unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(d))?,
            );
        } else {
            total = total.checked_add(num?.checked_mul(unit_ms(c)?)?)?;
            num = None;
        }
    }
    // A trailing number without a unit, or an empty string, is not a duration.
    if num.is_some() || s.is_empty() {
        return None;
    }
    Some(total)
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD` into days since the epoch.
fn date_days(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d) = (digits(y)?, digits(m)?, digits(d)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(flint_agent::timefmt::days_from_civil(y, m, d))
}

/// An RFC 3339 time (or a bare date) into Unix milliseconds; None if malformed or
/// before 1970.
fn timestamp_ms(s: &str) -> Option<u64> {
    let (date, rest) = match s.find(['T', 't']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let days = date_days(date)?;
    let mut ms = days * 86_400_000;
    if let Some(rest) = rest {
        let (clock, offset_min) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else {
            let i = rest.rfind(['+', '-'])?;
            let (c, off) = (&rest[..i], &rest[i..]);
            let (oh, om) = off[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            let (oh, om) = (digits(oh)?, digits(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if off.starts_with('-') { -1 } else { 1 };
            (c, sign * (oh * 60 + om))
        };
        let (hms, frac) = match clock.split_once('.') {
            Some((a, f)) => (a, Some(f)),
            None => (clock, None),
        };
        let mut parts = hms.split(':');
        let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || h.len() != 2 || m.len() != 2 || sec.len() != 2 {
            return None;
        }
        let (h, m, sec) = (digits(h)?, digits(m)?, digits(sec)?);
        // 60 allows a leap second.
        if h > 23 || m > 59 || sec > 60 {
            return None;
        }
        let frac_ms = match frac {
            Some(f) => {
                digits(f)?;
                let f3: String = f.chars().chain("000".chars()).take(3).collect();
                digits(&f3)?
            }
            None => 0,
        };
        ms += ((h * 60 + m - offset_min) * 60 + sec) * 1000 + frac_ms;
    }
    u64::try_from(ms).ok()
}

/// Parses `s` relative to `now_unix_ms`.
pub fn parse(s: &str, now_unix_ms: u64) -> Result<u64, SinceError> {
    let s = s.trim();
    if let Some(d) = duration_ms(s) {
        return Ok(now_unix_ms.saturating_sub(d));
    }
    timestamp_ms(s).ok_or_else(|| SinceError::Invalid(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_787_634_005; // 2026-11-27T13:53:54.005Z

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(parse("1h", NOW), Ok(NOW - 3_600_000));
        assert_eq!(parse("90s", NOW), Ok(NOW - 90_000));
        assert_eq!(parse("1h30m", NOW), Ok(NOW - 5_400_000));
        assert_eq!(parse("7d", NOW), Ok(NOW - 7 * 86_400_000));
        assert_eq!(parse("2w", NOW), Ok(NOW - 14 * 86_400_000));
        assert_eq!(parse("100000w", NOW), Ok(0), "floored at the epoch");
    }

    #[test]
    fn rfc3339_times_and_dates() {
        assert_eq!(parse("2026-11-27T13:53:54.005Z", NOW), Ok(NOW));
        assert_eq!(parse("2026-11-27T13:53:54Z", NOW), Ok(NOW - 5));
        assert_eq!(parse("2026-11-27T14:53:54.005+01:00", NOW), Ok(NOW));
        assert_eq!(parse("2026-11-27T12:53:54.0051-01:00", NOW), Ok(NOW));
        assert_eq!(parse("1970-01-01T00:00:00Z", NOW), Ok(0));
        assert_eq!(parse("2000-02-29", NOW), Ok(951_782_400_000));
        assert_eq!(
            parse("2026-11-27", NOW),
            Ok(NOW - (13 * 3600 + 53 * 60 + 54) * 1000 - 5)
        );
    }

    #[test]
    fn garbage_is_refused_with_the_accepted_forms() {
        for bad in [
            "",
            "1",
            "h",
            "1x",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "2026-11-27T25:00:00Z",
            "2026-11-27T10:00Z",
            "2026-11-27T10:00:00",
            "2026-11-27T10:00:00+1:00",
            "1969-12-31T23:59:59Z",
            "2026-1-01",
        ] {
            let e = parse(bad, NOW).unwrap_err();
            assert!(e.to_string().contains("RFC 3339"), "{bad}: {e}");
        }
    }
}
