//! The metering database (`<data>/metering.db`, apart from the function registry):
//! one row per finished invocation, and the SQL aggregates reports are made of.

use crate::observe::InvocationRecord;
use crate::schema::{Schema, SchemaError};
use rusqlite::{params, Connection};
use std::path::Path;

/// The metering database's schema. Append a migration to change it; never edit a
/// released one (agent/README.md, "Schema migrations").
pub const SCHEMA: Schema = Schema {
    name: "metering database",
    migrations: &[
        // 1: the schema flintd wrote before versioning (up to commit 0a838de), adopted
        // as it is.
        "CREATE TABLE IF NOT EXISTS invocations (
    request_id       TEXT PRIMARY KEY,
    function         TEXT NOT NULL,
    started_unix_ms  INTEGER NOT NULL,
    duration_ns      INTEGER NOT NULL,
    billed_ms        INTEGER NOT NULL,
    memory_mb        INTEGER NOT NULL,
    init_duration_ns INTEGER NOT NULL,
    cold_start       INTEGER NOT NULL,
    pool_hit         INTEGER NOT NULL,
    asynchronous     INTEGER NOT NULL,
    outcome          TEXT NOT NULL,
    error_type       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_by_time ON invocations(started_unix_ms);
CREATE INDEX IF NOT EXISTS invocations_by_function ON invocations(function, started_unix_ms);",
        // 2: each attempt of a queued event is
        // a row of its own (Lambda bills every attempt): the attempt number, and a key
        // of (request_id, attempt). SQLite cannot change a primary key in place: a new
        // table, copied, swapped in, its indexes made again.
        "CREATE TABLE invocations_v2 (
    request_id       TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 1,
    function         TEXT NOT NULL,
    started_unix_ms  INTEGER NOT NULL,
    duration_ns      INTEGER NOT NULL,
    billed_ms        INTEGER NOT NULL,
    memory_mb        INTEGER NOT NULL,
    init_duration_ns INTEGER NOT NULL,
    cold_start       INTEGER NOT NULL,
    pool_hit         INTEGER NOT NULL,
    asynchronous     INTEGER NOT NULL,
    outcome          TEXT NOT NULL,
    error_type       TEXT NOT NULL,
    PRIMARY KEY (request_id, attempt)
);
INSERT INTO invocations_v2 (request_id, attempt, function, started_unix_ms, duration_ns,
    billed_ms, memory_mb, init_duration_ns, cold_start, pool_hit, asynchronous, outcome,
    error_type)
SELECT request_id, 1, function, started_unix_ms, duration_ns, billed_ms, memory_mb,
    init_duration_ns, cold_start, pool_hit, asynchronous, outcome, error_type
FROM invocations;
DROP TABLE invocations;
ALTER TABLE invocations_v2 RENAME TO invocations;
CREATE INDEX invocations_by_time ON invocations(started_unix_ms);
CREATE INDEX invocations_by_function ON invocations(function, started_unix_ms);",
        // 3: the version that ran ($LATEST or a published number);
        // rows from before versions ran $LATEST.
        "ALTER TABLE invocations ADD COLUMN version TEXT NOT NULL DEFAULT '$LATEST';",
    ],
};

/// Sums over one function's invocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub function: String,
    pub requests: u64,
    /// Invocations whose outcome is not success.
    pub errors: u64,
    pub cold_starts: u64,
    pub billed_ms: u64,
    /// Sum of billed_ms x memory_mb (GB-seconds x 1,024,000, exact).
    pub billed_ms_x_memory_mb: u64,
}

fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql_int(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Opens (creating if needed) the database at `path` and brings its schema up to
/// date. WAL: the writer thread and report queries do not block each other.
pub fn open(path: &Path) -> Result<Connection, SchemaError> {
    SCHEMA.open(path, std::time::Duration::from_secs(5))
}

/// Inserts records in one transaction; an attempt of a request already stored is kept
/// as it is (each attempt of a queued event is a row of its own).
pub fn insert(conn: &mut Connection, recs: &[InvocationRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO invocations (request_id, function, started_unix_ms,
               duration_ns, billed_ms, memory_mb, init_duration_ns, cold_start, pool_hit,
               asynchronous, outcome, error_type, attempt, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for r in recs {
            st.execute(params![
                r.request_id,
                r.function,
                sql_int(r.started_unix_ms),
                sql_int(r.duration_ns),
                sql_int(r.billed_ms),
                r.memory_mb,
                sql_int(r.init_duration_ns),
                r.cold_start,
                r.pool_hit,
                r.asynchronous,
                r.outcome.label(),
                r.outcome.error_type(),
                r.attempt,
                r.version,
            ])?;
        }
    }
    tx.commit()
}

/// Per-function sums of invocations that started at or after `since_unix_ms`, of one
/// function or all, ordered by function name.
pub fn aggregate(
    conn: &Connection,
    function: Option<&str>,
    since_unix_ms: u64,
) -> rusqlite::Result<Vec<Aggregate>> {
    let mut st = conn.prepare_cached(
        "SELECT function, COUNT(*) AS requests, SUM(outcome != 'success') AS errors,
                SUM(cold_start) AS cold_starts, SUM(billed_ms) AS billed_ms,
                SUM(billed_ms * memory_mb) AS billed_ms_x_memory_mb
         FROM invocations
         WHERE started_unix_ms >= ?1 AND (?2 IS NULL OR function = ?2)
         GROUP BY function ORDER BY function",
    )?;
    let rows = st.query_map(params![sql_int(since_unix_ms), function], |row| {
        Ok(Aggregate {
            function: row.get("function")?,
            requests: from_sql_int(row.get("requests")?),
            errors: from_sql_int(row.get("errors")?),
            cold_starts: from_sql_int(row.get("cold_starts")?),
            billed_ms: from_sql_int(row.get("billed_ms")?),
            billed_ms_x_memory_mb: from_sql_int(row.get("billed_ms_x_memory_mb")?),
        })
    })?;
    rows.collect()
}

/// One version's sums: (version, requests, errors, billed_ms x memory_mb).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionAggregate {
    pub version: String,
    pub requests: u64,
    pub errors: u64,
    pub billed_ms_x_memory_mb: u64,
}

/// `function`'s invocations since `since_unix_ms`, summed per version that ran
/// ($LATEST first, then by number).
pub fn aggregate_versions(
    conn: &Connection,
    function: &str,
    since_unix_ms: u64,
) -> rusqlite::Result<Vec<VersionAggregate>> {
    let mut st = conn.prepare_cached(
        "SELECT version, COUNT(*) AS requests, SUM(outcome != 'success') AS errors,
                SUM(billed_ms * memory_mb) AS billed_ms_x_memory_mb
         FROM invocations WHERE function = ?1 AND started_unix_ms >= ?2
         GROUP BY version
         ORDER BY version != '$LATEST', CAST(version AS INTEGER)",
    )?;
    let rows = st.query_map(params![function, sql_int(since_unix_ms)], |row| {
        Ok(VersionAggregate {
            version: row.get("version")?,
            requests: from_sql_int(row.get("requests")?),
            errors: from_sql_int(row.get("errors")?),
            billed_ms_x_memory_mb: from_sql_int(row.get("billed_ms_x_memory_mb")?),
        })
    })?;
    rows.collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::observe::RecordedOutcome;

    /// A record with the fields aggregation looks at.
    pub(crate) fn rec(
        id: &str,
        function: &str,
        started: u64,
        billed_ms: u64,
        memory_mb: u32,
        cold: bool,
        outcome: RecordedOutcome,
    ) -> InvocationRecord {
        InvocationRecord {
            request_id: id.into(),
            function: function.into(),
            started_unix_ms: started,
            duration_ns: (billed_ms * 1_000_000).saturating_sub(1),
            billed_ms,
            memory_mb,
            init_duration_ns: if cold { 50_000_000 } else { 0 },
            cold_start: cold,
            pool_hit: false,
            asynchronous: false,
            attempt: 1,
            outcome,
            version: "$LATEST".into(),
        }
    }

    #[test]
    fn usage_is_summed_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir.path().join("m.db")).unwrap();
        let mut recs = vec![rec("1", "a", 1, 2, 128, false, RecordedOutcome::Success)];
        for (id, v) in [("2", "10"), ("3", "2"), ("4", "2")] {
            let mut r = rec(id, "a", 1, 1, 1024, false, RecordedOutcome::Timeout);
            r.version = v.into();
            recs.push(r);
        }
        insert(&mut c, &recs).unwrap();
        let by = aggregate_versions(&c, "a", 0).unwrap();
        let got: Vec<(&str, u64, u64)> = by
            .iter()
            .map(|v| (v.version.as_str(), v.requests, v.errors))
            .collect();
        assert_eq!(got, [("$LATEST", 1, 0), ("2", 2, 2), ("10", 1, 1)]);
        assert_eq!(by[1].billed_ms_x_memory_mb, 2048);
    }

    #[test]
    fn aggregates_by_function_with_time_and_name_filters() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir.path().join("m.db")).unwrap();
        insert(
            &mut c,
            &[
                rec("1", "a", 100, 3, 128, true, RecordedOutcome::Success),
                rec(
                    "2",
                    "a",
                    200,
                    5,
                    128,
                    false,
                    RecordedOutcome::FunctionError("E".into()),
                ),
                rec("3", "b", 150, 10, 512, true, RecordedOutcome::Timeout),
                rec("4", "b", 300, 1, 512, false, RecordedOutcome::Success),
            ],
        )
        .unwrap();
        let all = aggregate(&c, None, 0).unwrap();
        assert_eq!(
            all,
            vec![
                Aggregate {
                    function: "a".into(),
                    requests: 2,
                    errors: 1,
                    cold_starts: 1,
                    billed_ms: 8,
                    billed_ms_x_memory_mb: 8 * 128,
                },
                Aggregate {
                    function: "b".into(),
                    requests: 2,
                    errors: 1,
                    cold_starts: 1,
                    billed_ms: 11,
                    billed_ms_x_memory_mb: 11 * 512,
                },
            ]
        );
        let late = aggregate(&c, None, 200).unwrap();
        assert_eq!(late.len(), 2);
        assert_eq!((late[0].requests, late[0].billed_ms), (1, 5));
        assert_eq!((late[1].requests, late[1].billed_ms), (1, 1));
        let b = aggregate(&c, Some("b"), 0).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].function, "b");
        assert!(aggregate(&c, Some("nobody"), 0).unwrap().is_empty());
        assert!(aggregate(&c, None, 301).unwrap().is_empty());
    }

    #[test]
    fn a_request_id_is_counted_once_per_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir.path().join("m.db")).unwrap();
        let r = rec("same", "a", 1, 2, 128, false, RecordedOutcome::Success);
        insert(&mut c, std::slice::from_ref(&r)).unwrap();
        insert(&mut c, std::slice::from_ref(&r)).unwrap();
        assert_eq!(aggregate(&c, None, 0).unwrap()[0].requests, 1);
        // A retried event: every attempt is a request (Lambda bills each).
        for attempt in [2, 3] {
            let again = InvocationRecord {
                attempt,
                asynchronous: true,
                ..r.clone()
            };
            insert(&mut c, &[again]).unwrap();
        }
        let a = &aggregate(&c, None, 0).unwrap()[0];
        assert_eq!((a.requests, a.billed_ms), (3, 6));
    }

    #[test]
    fn migration_2_keeps_the_rows_of_version_1_as_first_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA.migrations[0]).unwrap();
            c.execute(
                "INSERT INTO invocations VALUES ('old', 'a', 5, 1000000, 1, 128, 0, 0, 0, 1, 'success', '')",
                [],
            )
            .unwrap();
        }
        let mut c = open(&path).unwrap();
        let attempt: u32 = c
            .query_row(
                "SELECT attempt FROM invocations WHERE request_id = 'old'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(attempt, 1);
        let mut r = rec("old", "a", 5, 1, 128, false, RecordedOutcome::Success);
        r.attempt = 2;
        insert(&mut c, &[r]).unwrap();
        assert_eq!(aggregate(&c, None, 0).unwrap()[0].requests, 2);
        let indexes: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invocations' AND name LIKE 'invocations_by_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 2);
    }
}
