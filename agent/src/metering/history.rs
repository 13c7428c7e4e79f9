//! Invocation history (`flint history`): one function's finished invocations from the
//! metering database, newest first, read with the (function, started) index.

#[cfg(test)]
use super::store;
use super::{Meter, MeterError};
use rusqlite::{params, Connection};

/// Most rows one query returns.
pub const LIMIT_MAX: u32 = 10_000;
/// Rows returned when no limit is given.
pub const LIMIT_DEFAULT: u32 = 100;

/// One finished invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Past {
    pub request_id: String,
    pub started_unix_ms: u64,
    pub duration_ns: u64,
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub init_duration_ns: u64,
    pub cold_start: bool,
    pub asynchronous: bool,
    pub outcome: String,
    pub error_type: String,
}

/// The limit asked for, defaulted and capped.
pub fn limit(asked: u32) -> u32 {
    match asked {
        0 => LIMIT_DEFAULT,
        n => n.min(LIMIT_MAX),
    }
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `function`'s invocations started at or after `since_unix_ms`, newest first.
pub fn query(
    conn: &Connection,
    function: &str,
    since_unix_ms: u64,
    limit: u32,
) -> rusqlite::Result<Vec<Past>> {
    let mut st = conn.prepare_cached(
        "SELECT request_id, started_unix_ms, duration_ns, billed_ms, memory_mb,
                init_duration_ns, cold_start, asynchronous, outcome, error_type
         FROM invocations
         WHERE function = ?1 AND started_unix_ms >= ?2
         ORDER BY started_unix_ms DESC, request_id DESC LIMIT ?3",
    )?;
    let since = i64::try_from(since_unix_ms).unwrap_or(i64::MAX);
    let rows = st.query_map(params![function, since, limit], |r| {
        Ok(Past {
            request_id: r.get(0)?,
            started_unix_ms: u(r.get(1)?),
            duration_ns: u(r.get(2)?),
            billed_ms: u(r.get(3)?),
            memory_mb: r.get(4)?,
            init_duration_ns: u(r.get(5)?),
            cold_start: r.get(6)?,
            asynchronous: r.get(7)?,
            outcome: r.get(8)?,
            error_type: r.get(9)?,
        })
    })?;
    rows.collect()
}

impl Meter {
    /// `function`'s invocations since `since_unix_ms`, newest first, at most `limit`
    /// (see [`limit`]). Blocks briefly (flush + SQL): call it from a blocking context.
    pub fn history(
        &self,
        function: &str,
        since_unix_ms: u64,
        limit: u32,
    ) -> Result<Vec<Past>, MeterError> {
        self.flush()?;
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        Ok(query(&conn, function, since_unix_ms, self::limit(limit))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::store::tests::rec;
    use crate::observe::RecordedOutcome;

    #[test]
    fn newest_first_with_since_and_limit_of_one_function() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = store::open(&dir.path().join("m.db")).unwrap();
        store::insert(
            &mut c,
            &[
                rec("1", "a", 100, 3, 128, true, RecordedOutcome::Success),
                rec("2", "a", 200, 5, 128, false, RecordedOutcome::Timeout),
                rec("3", "b", 150, 10, 512, true, RecordedOutcome::Success),
                rec(
                    "4",
                    "a",
                    300,
                    1,
                    128,
                    false,
                    RecordedOutcome::FunctionError("E".into()),
                ),
            ],
        )
        .unwrap();
        let all = query(&c, "a", 0, 100).unwrap();
        let ids: Vec<&str> = all.iter().map(|p| p.request_id.as_str()).collect();
        assert_eq!(ids, ["4", "2", "1"]);
        assert_eq!(
            (all[0].outcome.as_str(), all[0].error_type.as_str()),
            ("function_error", "E")
        );
        assert_eq!(all[1].error_type, "Sandbox.Timedout");
        assert!(all[2].cold_start && !all[1].cold_start);
        assert_eq!(query(&c, "a", 200, 100).unwrap().len(), 2);
        assert_eq!(query(&c, "a", 0, 1).unwrap()[0].request_id, "4");
        assert!(query(&c, "nobody", 0, 100).unwrap().is_empty());
        assert_eq!((limit(0), limit(5), limit(1_000_000)), (100, 5, LIMIT_MAX));
    }
}
