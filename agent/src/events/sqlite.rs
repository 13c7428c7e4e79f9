//! The embedded event queue: `<data dir>/events.db`, SQLite in WAL mode, versioned with
//! the agent's schema migrations (`crate::schema`).
//!
//! Durability: an enqueue, a dead-letter, a redrive and a configuration commit with
//! `synchronous = FULL` (on disk when the call returns: they survive kill -9 and a host
//! reboot). Enqueues that arrive together share one transaction and one fsync (group
//! commit): each caller adds its event to a pending list, and whoever takes the
//! connection next commits everything pending. The dispatcher's own state changes
//! (lease, retry time, completion) commit with `synchronous = NORMAL`: they survive
//! kill -9, and a power loss can only make an event run again (at least once).

use super::{
    Event, EventConfig, EventConfigs, EventQueue, EventState, NewEvent, QueueError, QueueStats,
};
use crate::schema::Schema;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The schema, one migration per change; never edit a released one (see
/// agent/README.md, "Schema migrations").
pub const SCHEMA: Schema = Schema {
    name: "event queue",
    migrations: &[
        "CREATE TABLE events (
            seq             INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id      TEXT NOT NULL UNIQUE,
            function        TEXT NOT NULL,
            qualifier       TEXT NOT NULL,
            payload         BLOB NOT NULL,
            client_context  TEXT NOT NULL,
            enqueued_ms     INTEGER NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            deferrals       INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL,
            last_error      TEXT NOT NULL DEFAULT '',
            state           TEXT NOT NULL
        );
        CREATE INDEX events_due ON events (state, next_attempt_ms);
        CREATE INDEX events_function ON events (function, state);
        CREATE TABLE event_configs (
            function    TEXT PRIMARY KEY,
            max_retries INTEGER NOT NULL,
            max_age_s   INTEGER NOT NULL,
            on_success  TEXT,
            on_failure  TEXT
        );",
        // The dispatcher's lease and its next-due time read only waiting events, in due
        // order: a partial index keeps that one index step at any queue depth (with the
        // (state, next_attempt_ms) index every lease sorted all waiting events).
        "DROP INDEX events_due;
             CREATE INDEX events_waiting ON events (next_attempt_ms, seq)
             WHERE state IN ('queued', 'retrying');",
        // Events throttled (waiting for capacity, not for a retry after a function
        // error): a run of their function that ends makes the first of them due.
        "ALTER TABLE events ADD COLUMN for_capacity INTEGER NOT NULL DEFAULT 0;",
        // 4: webhook destinations. Each pending
        // POST of a destination record is a row of its own (with the event it came
        // from, so that an undeliverable record can go to the dead-letter queue), and
        // the dead-letter target of each function's configuration.
        "CREATE TABLE deliveries (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            url             TEXT NOT NULL,
            destination     TEXT NOT NULL,
            record          BLOB NOT NULL,
            request_id      TEXT NOT NULL,
            function        TEXT NOT NULL,
            qualifier       TEXT NOT NULL,
            payload         BLOB NOT NULL,
            client_context  TEXT NOT NULL,
            enqueued_ms     INTEGER NOT NULL,
            invokes         INTEGER NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL,
            last_error      TEXT NOT NULL DEFAULT '',
            state           TEXT NOT NULL DEFAULT 'pending'
        );
        CREATE INDEX deliveries_due ON deliveries (next_attempt_ms, id) WHERE state = 'pending';
        CREATE INDEX deliveries_function ON deliveries (function);
        ALTER TABLE event_configs ADD COLUMN dead_letter TEXT;",
    ],
};

/// The first due waiting event (`?1`: now); served by the partial index events_waiting.
const NEXT_DUE: &str = "SELECT seq FROM events
     WHERE state IN ('queued', 'retrying') AND next_attempt_ms <= ?1
     ORDER BY next_attempt_ms, seq LIMIT 1";

const COLUMNS: &str = "request_id, function, qualifier, payload, client_context, enqueued_ms, \
                       attempts, deferrals, next_attempt_ms, last_error, state";

/// One enqueue waiting for a group commit; the committer fills `done`.
struct Pending {
    event: NewEvent,
    done: Arc<Mutex<Option<Result<(), QueueError>>>>,
}

/// The SQLite queue.
pub struct SqliteQueue {
    path: String,
    conn: Mutex<Connection>,
    pending: Mutex<Vec<Pending>>,
}

/// A copy of a SQLite error for every event of a failed group commit.
fn copy_err(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, m) => rusqlite::Error::SqliteFailure(*f, m.clone()),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

impl SqliteQueue {
    /// Opens (creating, migrating) the queue at `path`.
    pub fn open(path: &Path) -> Result<Self, QueueError> {
        let p = path.display().to_string();
        let sq = |source| QueueError::Sqlite {
            path: p.clone(),
            source,
        };
        let conn = SCHEMA
            .open(path, std::time::Duration::from_secs(5))
            .map_err(|source| QueueError::Migration {
                path: p.clone(),
                source: Box::new(source),
            })?;
        // Enqueues commit durably (see `durably`); the dispatcher's own changes
        // with NORMAL, the schema's default.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sq)?;
        Ok(Self {
            path: p,
            conn: Mutex::new(conn),
            pending: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` in one transaction committed with `synchronous = FULL`.
    pub(in crate::events) fn durably<T>(
        conn: &mut Connection,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        conn.pragma_update(None, "synchronous", "FULL")?;
        let r = (|| {
            let tx = conn.transaction()?;
            // On an error the transaction is dropped, i.e. rolled back (SQLite may
            // already have rolled it back itself, e.g. on SQLITE_FULL).
            let v = f(&tx)?;
            tx.commit()?;
            Ok(v)
        })();
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        r
    }

    /// Commits every pending enqueue in one durable transaction; fills their results.
    /// A duplicate request id fails alone; any other error (a full disk) fails the
    /// whole batch, nothing of which is kept.
    fn commit_pending(&self, conn: &mut Connection) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return;
        }
        let r = Self::durably(conn, |tx| {
            let mut results = Vec::with_capacity(batch.len());
            for p in &batch {
                let e = &p.event;
                let r = tx.execute(
                    "INSERT INTO events (request_id, function, qualifier, payload, client_context,
                                         enqueued_ms, next_attempt_ms, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 'queued')",
                    params![
                        e.request_id,
                        e.function,
                        e.qualifier,
                        e.payload,
                        e.client_context,
                        e.enqueued_ms as i64
                    ],
                );
                results.push(match r {
                    Ok(_) => Ok(()),
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == ErrorCode::ConstraintViolation =>
                    {
                        Err(QueueError::Duplicate(e.request_id.clone()))
                    }
                    Err(err) => return Err(err),
                });
            }
            Ok(results)
        });
        match r {
            Ok(results) => {
                for (p, r) in batch.iter().zip(results) {
                    *p.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            }
            Err(err) => {
                for p in &batch {
                    *p.done.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(Err(self.err(copy_err(&err))));
                }
            }
        }
    }

    /// The database file, for error messages.
    pub(in crate::events) fn path(&self) -> &str {
        &self.path
    }

    pub(in crate::events) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(in crate::events) fn err(&self, source: rusqlite::Error) -> QueueError {
        if let rusqlite::Error::SqliteFailure(f, _) = &source {
            if f.code == ErrorCode::DiskFull {
                return QueueError::Full {
                    path: self.path.clone(),
                };
            }
        }
        QueueError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn event(&self, r: &Row<'_>) -> Result<Event, QueueError> {
        let get = |r: &Row<'_>| -> rusqlite::Result<(Event, String)> {
            let state: String = r.get(10)?;
            Ok((
                Event {
                    request_id: r.get(0)?,
                    function: r.get(1)?,
                    qualifier: r.get(2)?,
                    payload: r.get(3)?,
                    client_context: r.get(4)?,
                    enqueued_ms: r.get::<_, i64>(5)? as u64,
                    attempts: r.get(6)?,
                    deferrals: r.get(7)?,
                    next_attempt_ms: r.get::<_, i64>(8)? as u64,
                    last_error: r.get(9)?,
                    state: EventState::Queued,
                },
                state,
            ))
        };
        let (mut e, state) = get(r).map_err(|e| self.err(e))?;
        e.state = EventState::parse(&state).ok_or_else(|| QueueError::Corrupt {
            path: self.path.clone(),
            request_id: e.request_id.clone(),
            what: format!("unknown state {state:?}"),
        })?;
        Ok(e)
    }

    fn update(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize, QueueError> {
        self.lock().execute(sql, p).map_err(|e| self.err(e))
    }

    /// [`Self::update`] committed with `synchronous = FULL`.
    fn update_durably(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize, QueueError> {
        let mut conn = self.lock();
        Self::durably(&mut conn, |tx| tx.execute(sql, p)).map_err(|e| self.err(e))
    }
}

impl EventQueue for SqliteQueue {
    fn enqueue(&self, e: &NewEvent) -> Result<(), QueueError> {
        let done = Arc::new(Mutex::new(None));
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Pending {
                event: e.clone(),
                done: done.clone(),
            });
        let mut conn = self.lock();
        // The committer before us may have committed this event already; results are
        // filled before the connection is released, so an empty one is still pending.
        if let Some(r) = done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return r;
        }
        self.commit_pending(&mut conn);
        let r = done.lock().unwrap_or_else(|e| e.into_inner()).take();
        r.unwrap_or_else(|| {
            Err(QueueError::Corrupt {
                path: self.path.clone(),
                request_id: e.request_id.clone(),
                what: "the group commit did not report this event".into(),
            })
        })
    }

    fn lease_due(&self, now_ms: u64) -> Result<Option<Event>, QueueError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(&format!(
                "UPDATE events SET state = 'in-flight' WHERE seq = ({NEXT_DUE}) RETURNING {COLUMNS}"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![now_ms as i64]).map_err(|e| self.err(e))?;
        let leased = match rows.next().map_err(|e| self.err(e))? {
            Some(r) => Some(self.event(r)?),
            None => None,
        };
        // The change commits when the statement completes, after its RETURNING row:
        // step it to the end so that a commit that fails (a full disk) is an error
        // here, not a lease that was never stored (and is leased again).
        while rows.next().map_err(|e| self.err(e))?.is_some() {}
        Ok(leased)
    }

    fn next_due_ms(&self) -> Result<Option<u64>, QueueError> {
        self.lock()
            .query_row(
                "SELECT MIN(next_attempt_ms) FROM events WHERE state IN ('queued', 'retrying')",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(|v| v as u64))
            .map_err(|e| self.err(e))
    }

    fn complete(&self, request_id: &str) -> Result<(), QueueError> {
        self.update(
            "DELETE FROM events WHERE request_id = ?1",
            params![request_id],
        )
        .map(drop)
    }

    fn retry_at(
        &self,
        request_id: &str,
        at_ms: u64,
        attempts: u32,
        deferrals: u32,
        error: &str,
        for_capacity: bool,
    ) -> Result<(), QueueError> {
        self.update(
            "UPDATE events SET state = 'retrying', next_attempt_ms = ?2, attempts = ?3,
                               deferrals = ?4, last_error = ?5, for_capacity = ?6
             WHERE request_id = ?1",
            params![
                request_id,
                at_ms as i64,
                attempts,
                deferrals,
                error,
                for_capacity
            ],
        )
        .map(drop)
    }

    fn promote(&self, function: &str, now_ms: u64) -> Result<bool, QueueError> {
        self.update(
            "UPDATE events SET next_attempt_ms = ?2
             WHERE seq = (SELECT seq FROM events
                          WHERE function = ?1 AND state = 'retrying' AND for_capacity = 1
                                AND next_attempt_ms > ?2
                          ORDER BY next_attempt_ms, seq LIMIT 1)",
            params![function, now_ms as i64],
        )
        .map(|n| n > 0)
    }

    fn dead_letter(&self, request_id: &str, attempts: u32, error: &str) -> Result<(), QueueError> {
        self.update_durably(
            "UPDATE events SET state = 'dead', attempts = ?2, last_error = ?3
             WHERE request_id = ?1",
            params![request_id, attempts, error],
        )
        .map(drop)
    }

    fn list(
        &self,
        function: Option<&str>,
        states: &[EventState],
        limit: u32,
    ) -> Result<Vec<Event>, QueueError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events
                 WHERE (?1 IS NULL OR function = ?1)
                 ORDER BY enqueued_ms, seq"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![function]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let e = self.event(r)?;
            if states.is_empty() || states.contains(&e.state) {
                out.push(e);
                if out.len() >= limit as usize {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn redrive(&self, function: &str, now_ms: u64) -> Result<u64, QueueError> {
        self.update_durably(
            "UPDATE events SET state = 'queued', attempts = 0, deferrals = 0,
                               enqueued_ms = ?2, next_attempt_ms = ?2
             WHERE function = ?1 AND state = 'dead'",
            params![function, now_ms as i64],
        )
        .map(|n| n as u64)
    }

    fn stats(&self) -> Result<QueueStats, QueueError> {
        self.lock()
            .query_row(
                "SELECT COALESCE(SUM(state != 'dead'), 0), COALESCE(SUM(state = 'dead'), 0),
                        MIN(CASE WHEN state != 'dead' THEN enqueued_ms END)
                 FROM events",
                [],
                |r| {
                    Ok(QueueStats {
                        depth: r.get::<_, i64>(0)? as u64,
                        dead: r.get::<_, i64>(1)? as u64,
                        oldest_enqueued_ms: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    fn recover(&self) -> Result<u64, QueueError> {
        self.update(
            "UPDATE events SET state = CASE WHEN attempts > 0 OR deferrals > 0
                                            THEN 'retrying' ELSE 'queued' END
             WHERE state = 'in-flight'",
            [],
        )
        .map(|n| n as u64)
    }
}

impl EventConfigs for SqliteQueue {
    fn get_config(&self, function: &str) -> Result<Option<EventConfig>, QueueError> {
        self.lock()
            .query_row(
                &format!("SELECT {CONFIG_COLUMNS} FROM event_configs WHERE function = ?1"),
                params![function],
                |r| config(r).map(|(_, c)| c),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn put_config(&self, function: &str, c: &EventConfig) -> Result<(), QueueError> {
        self.update_durably(
            "INSERT OR REPLACE INTO event_configs (function, max_retries, max_age_s, on_success,
                                                   on_failure, dead_letter)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                function,
                c.max_retries,
                c.max_age_s,
                c.on_success,
                c.on_failure,
                c.dead_letter
            ],
        )
        .map(drop)
    }

    fn delete_config(&self, function: &str) -> Result<bool, QueueError> {
        self.update_durably(
            "DELETE FROM event_configs WHERE function = ?1",
            params![function],
        )
        .map(|n| n > 0)
    }

    fn list_configs(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, EventConfig)>, QueueError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {CONFIG_COLUMNS} FROM event_configs WHERE function > ?1
                 ORDER BY function LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![after, limit], config)
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e));
        rows
    }
}

const CONFIG_COLUMNS: &str =
    "function, max_retries, max_age_s, on_success, on_failure, dead_letter";

fn config(r: &Row<'_>) -> rusqlite::Result<(String, EventConfig)> {
    Ok((
        r.get(0)?,
        EventConfig {
            max_retries: r.get(1)?,
            max_age_s: r.get(2)?,
            on_success: r.get(3)?,
            on_failure: r.get(4)?,
            dead_letter: r.get(5)?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, f: &str, at: u64) -> NewEvent {
        NewEvent {
            request_id: id.into(),
            function: f.into(),
            qualifier: "$LATEST".into(),
            payload: format!("{{\"id\":\"{id}\"}}").into_bytes(),
            client_context: String::new(),
            enqueued_ms: at,
        }
    }

    #[test]
    fn migrations_run_to_the_latest_version_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let conn = SCHEMA
            .open(&path, std::time::Duration::from_secs(1))
            .unwrap();
        assert_eq!(crate::schema::version(&conn).unwrap(), SCHEMA.latest());
        drop(conn);
        SCHEMA
            .open(&path, std::time::Duration::from_secs(1))
            .unwrap();
    }

    #[test]
    fn the_lease_reads_one_index_step_not_a_sort_of_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("events.db")).unwrap();
        let conn = q.lock();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {NEXT_DUE}"))
            .unwrap()
            .query_map(params![0i64], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("events_waiting"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn events_survive_reopen_and_in_flight_ones_are_queued_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        {
            let q = SqliteQueue::open(&path).unwrap();
            q.enqueue(&ev("a", "f", 100)).unwrap();
            q.enqueue(&ev("b", "f", 200)).unwrap();
            q.enqueue(&ev("c", "g", 300)).unwrap();
            let leased = q.lease_due(1_000).unwrap().unwrap();
            assert_eq!(leased.request_id, "a");
            assert_eq!(leased.state, EventState::InFlight);
            q.retry_at("b", 5_000, 1, 0, "Unhandled", false).unwrap();
            // dropped without completing "a": a crash mid-attempt
        }
        let q = SqliteQueue::open(&path).unwrap();
        assert_eq!(q.recover().unwrap(), 1);
        let all = q.list(None, &[], 100).unwrap();
        let states: Vec<_> = all
            .iter()
            .map(|e| (e.request_id.as_str(), e.state))
            .collect();
        assert_eq!(
            states,
            [
                ("a", EventState::Queued),
                ("b", EventState::Retrying),
                ("c", EventState::Queued)
            ]
        );
        assert_eq!(all[0].payload, br#"{"id":"a"}"#);
        assert_eq!(all[1].attempts, 1);
        assert_eq!(all[1].last_error, "Unhandled");
        // "b" is not due until 5,000: "a" then "c" come first.
        assert_eq!(q.lease_due(1_000).unwrap().unwrap().request_id, "a");
        assert_eq!(q.lease_due(1_000).unwrap().unwrap().request_id, "c");
        assert_eq!(q.lease_due(1_000).unwrap(), None);
        assert_eq!(q.next_due_ms().unwrap(), Some(5_000));
        assert_eq!(q.lease_due(5_000).unwrap().unwrap().request_id, "b");
    }

    #[test]
    fn complete_dead_letter_redrive_and_stats() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("events.db")).unwrap();
        assert_eq!(q.stats().unwrap(), QueueStats::default());
        q.enqueue(&ev("a", "f", 100)).unwrap();
        q.enqueue(&ev("b", "f", 200)).unwrap();
        assert!(matches!(
            q.enqueue(&ev("a", "f", 300)),
            Err(QueueError::Duplicate(_))
        ));
        q.lease_due(1_000).unwrap();
        q.complete("a").unwrap();
        q.lease_due(1_000).unwrap();
        q.dead_letter("b", 3, "RetriesExhausted").unwrap();
        assert_eq!(
            q.stats().unwrap(),
            QueueStats {
                depth: 0,
                dead: 1,
                oldest_enqueued_ms: None
            }
        );
        let dead = q.list(Some("f"), &[EventState::Dead], 10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].attempts, 3);
        assert_eq!(
            q.lease_due(10_000).unwrap(),
            None,
            "dead events are not leased"
        );
        assert_eq!(q.redrive("g", 20_000).unwrap(), 0);
        assert_eq!(q.redrive("f", 20_000).unwrap(), 1);
        let back = q.lease_due(20_000).unwrap().unwrap();
        assert_eq!((back.request_id.as_str(), back.attempts), ("b", 0));
        assert_eq!(
            q.stats().unwrap(),
            QueueStats {
                depth: 1,
                dead: 0,
                oldest_enqueued_ms: Some(20_000)
            }
        );
    }

    #[test]
    fn concurrent_enqueues_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(SqliteQueue::open(&dir.path().join("events.db")).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        q.enqueue(&ev(&format!("{t}-{i}"), "f", 1)).unwrap();
                    }
                    // A duplicate in a shared commit fails alone.
                    assert!(matches!(
                        q.enqueue(&ev(&format!("{t}-0"), "f", 1)),
                        Err(QueueError::Duplicate(_))
                    ));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(q.stats().unwrap().depth, 400);
        drop(q);
        let q = SqliteQueue::open(&dir.path().join("events.db")).unwrap();
        assert_eq!(q.list(None, &[], 1000).unwrap().len(), 400);
    }

    #[test]
    fn a_freed_slot_promotes_one_throttled_event_not_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("events.db")).unwrap();
        for id in ["retry", "t1", "t2"] {
            q.enqueue(&ev(id, "f", 1)).unwrap();
            q.lease_due(1).unwrap();
        }
        q.retry_at("retry", 9_000, 1, 0, "Unhandled", false)
            .unwrap();
        q.retry_at("t1", 5_000, 0, 3, "throttled", true).unwrap();
        q.retry_at("t2", 6_000, 0, 3, "throttled", true).unwrap();
        assert!(!q.promote("g", 100).unwrap());
        assert!(q.promote("f", 100).unwrap());
        assert_eq!(q.lease_due(100).unwrap().unwrap().request_id, "t1");
        assert_eq!(q.lease_due(100).unwrap(), None, "one slot, one event");
        assert!(q.promote("f", 100).unwrap());
        assert_eq!(q.lease_due(100).unwrap().unwrap().request_id, "t2");
        assert!(
            !q.promote("f", 100).unwrap(),
            "a function-error retry keeps its backoff"
        );
    }

    #[test]
    fn a_full_disk_refuses_the_event_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("events.db")).unwrap();
        q.enqueue(&ev("small", "f", 1)).unwrap();
        {
            // SQLite answers SQLITE_FULL once the file may not grow: as a full disk does.
            let conn = q.lock();
            let pages: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap();
            conn.pragma_update(None, "max_page_count", pages).unwrap();
        }
        let mut big = ev("big", "f", 1);
        big.payload = vec![b'x'; 256 * 1024];
        let err = q.enqueue(&big).unwrap_err();
        assert!(matches!(err, QueueError::Full { .. }), "{err:?}");
        assert!(err.to_string().contains("disk is full"), "{err}");
        assert!(err.to_string().contains("not accepted"), "{err}");
        // Nothing half-written: the queue still holds exactly the first event.
        assert_eq!(q.list(None, &[], 10).unwrap().len(), 1);
    }

    #[test]
    fn configs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("events.db")).unwrap();
        assert_eq!(q.get_config("f").unwrap(), None);
        let c = EventConfig {
            max_retries: 1,
            max_age_s: 120,
            on_success: Some("ok".into()),
            on_failure: None,
            dead_letter: Some("http://127.0.0.1:9/dlq".into()),
        };
        q.put_config("f", &c).unwrap();
        assert_eq!(q.get_config("f").unwrap(), Some(c.clone()));
        q.put_config("a", &EventConfig::default()).unwrap();
        q.put_config("z", &EventConfig::default()).unwrap();
        let names = |after: &str, n: u32| -> Vec<String> {
            q.list_configs(after, n)
                .unwrap()
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert_eq!(names("", 10), ["a", "f", "z"]);
        assert_eq!(names("", 2), ["a", "f"]);
        assert_eq!(names("f", 2), ["z"]);
        assert_eq!(q.list_configs("e", 1).unwrap()[0].1, c);
        assert!(q.delete_config("f").unwrap());
        assert!(!q.delete_config("f").unwrap());
    }
}
