//! Compaction of the metering database by age (`--metering-retention-days`): a
//! background thread deletes invocation rows older than the retention, a few thousand
//! per transaction (so the writer thread never waits long for the lock), then gives the
//! freed pages back to the file system with SQLite's incremental vacuum. The database is
//! switched to `auto_vacuum = INCREMENTAL` when the meter opens it (a one-time VACUUM
//! for a database written by an older flintd).

use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Rows deleted per transaction.
pub const DELETE_BATCH: usize = 5_000;
/// How often the compaction runs (and once shortly after start-up).
pub const INTERVAL: Duration = Duration::from_secs(3600);
/// Delay of the first compaction after start-up.
const FIRST_RUN: Duration = Duration::from_secs(30);
/// Pages given back per incremental-vacuum step.
const VACUUM_STEP_PAGES: u32 = 2_000;

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Invocation rows deleted.
    pub rows: u64,
    /// Pages of the file given back to the file system.
    pub pages_freed: u64,
}

/// Makes `path`'s database give freed pages back on `PRAGMA incremental_vacuum`: a
/// new (empty) database is switched at once, an existing one with one VACUUM. Returns
/// whether a switch was needed. Call before the meter's connections are opened.
pub fn make_incremental(path: &Path) -> rusqlite::Result<bool> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == 2 {
        return Ok(false);
    }
    // Only a VACUUM changes auto_vacuum on a database with tables; on a new one it
    // writes the header with the new mode.
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    Ok(true)
}

/// Deletes invocations that started before `cutoff_unix_ms`, `batch` rows per
/// transaction, then frees the pages that emptied.
pub fn compact(
    conn: &Connection,
    cutoff_unix_ms: u64,
    batch: usize,
) -> rusqlite::Result<Compaction> {
    let cutoff = i64::try_from(cutoff_unix_ms).unwrap_or(i64::MAX);
    let mut done = Compaction::default();
    loop {
        let n = conn.execute(
            "DELETE FROM invocations WHERE rowid IN
               (SELECT rowid FROM invocations WHERE started_unix_ms < ?1 LIMIT ?2)",
            params![cutoff, i64::try_from(batch).unwrap_or(i64::MAX)],
        )?;
        done.rows += n as u64;
        if n < batch {
            break;
        }
    }
    loop {
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        if free <= 0 {
            break;
        }
        conn.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))?;
        let after: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        done.pages_freed += (free - after).max(0) as u64;
        if after >= free {
            // Not an incremental database (or nothing could be freed): stop.
            break;
        }
    }
    Ok(done)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Runs [`compact`] with a cutoff of now minus `retention`, after [`FIRST_RUN`] and then
/// every [`INTERVAL`], until `stop` is dropped or sent to.
pub fn run(conn: Connection, retention: Duration, stop: Receiver<()>) {
    let mut wait = FIRST_RUN;
    loop {
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        wait = INTERVAL;
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        let started = std::time::Instant::now();
        match compact(&conn, cutoff, DELETE_BATCH) {
            Ok(c) if c.rows > 0 || c.pages_freed > 0 => tracing::info!(
                rows = c.rows,
                pages_freed = c.pages_freed,
                ms = started.elapsed().as_millis() as u64,
                retention_days = retention.as_secs() / 86_400,
                "metering: old invocation records deleted"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "metering: compaction failed; retrying in an hour")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::store;
    use crate::metering::store::tests::rec;
    use crate::observe::RecordedOutcome;

    const DAY_MS: u64 = 86_400_000;

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM invocations", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn rows_older_than_the_retention_go_in_batches_and_the_file_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metering.db");
        assert!(
            make_incremental(&path).unwrap(),
            "a new database is switched"
        );
        assert!(!make_incremental(&path).unwrap(), "once");
        let mut conn = store::open(&path).unwrap();
        let now = 1_000 * DAY_MS;
        // 3,000 rows 100 days old, 2,000 rows 95 days old, 500 rows 10 days old and
        // one row exactly at the cutoff (kept: only rows before it go).
        let mut recs = Vec::new();
        for i in 0..3_000 {
            recs.push(rec(
                &format!("old-{i}"),
                "f",
                now - 100 * DAY_MS,
                1,
                128,
                false,
                RecordedOutcome::Success,
            ));
        }
        for i in 0..2_000 {
            recs.push(rec(
                &format!("older-{i}"),
                "g",
                now - 95 * DAY_MS + i,
                1,
                128,
                false,
                RecordedOutcome::Success,
            ));
        }
        for i in 0..500 {
            recs.push(rec(
                &format!("new-{i}"),
                "f",
                now - 10 * DAY_MS,
                1,
                128,
                false,
                RecordedOutcome::Success,
            ));
        }
        recs.push(rec(
            "edge",
            "f",
            now - 90 * DAY_MS,
            1,
            128,
            false,
            RecordedOutcome::Success,
        ));
        store::insert(&mut conn, &recs).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let pages =
            |c: &Connection| -> i64 { c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap() };
        let before = pages(&conn);

        let c = compact(&conn, now - 90 * DAY_MS, 1_000).unwrap();
        assert_eq!(c.rows, 5_000);
        assert_eq!(count(&conn), 501);
        let left: Vec<String> = conn
            .prepare("SELECT DISTINCT substr(request_id, 1, 3) FROM invocations ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, ["edg", "new"]);
        assert!(c.pages_freed > 0, "{c:?}");
        assert!(
            pages(&conn) < before / 2,
            "{} pages of {before} kept",
            pages(&conn)
        );
        let free: i64 = conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap();
        assert_eq!(free, 0);
        // Nothing more to do.
        assert_eq!(
            compact(&conn, now - 90 * DAY_MS, 1_000).unwrap(),
            Compaction::default()
        );
    }

    #[test]
    fn a_database_of_an_older_flintd_is_switched_with_one_vacuum_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metering.db");
        {
            let mut conn = store::open(&path).unwrap();
            store::insert(
                &mut conn,
                &[rec("a", "f", 5, 1, 128, false, RecordedOutcome::Success)],
            )
            .unwrap();
            let mode: i64 = conn
                .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, 0, "no auto_vacuum before");
        }
        assert!(make_incremental(&path).unwrap());
        let conn = store::open(&path).unwrap();
        let mode: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 2);
        assert_eq!(count(&conn), 1);
    }
}
