//! Pending webhook deliveries in events.db (table `deliveries`): added durably
//! (`synchronous = FULL`) before the event they come from is removed or
//! dead-lettered, leased by the sender, and on their last failure moved to the
//! function's dead-letter queue in one transaction.

use crate::events::sqlite::SqliteQueue;
use crate::events::{Event, QueueError};
use rusqlite::params;

pub use crate::events::counters::Kind;

/// A record to POST.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub url: &'a str,
    pub kind: Kind,
    pub record: Vec<u8>,
    /// The event the record is about (dead-lettered if the record cannot be delivered).
    pub event: &'a Event,
    /// Its runs (approximateInvokeCount).
    pub invokes: u32,
}

/// A pending delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub url: String,
    pub kind: Kind,
    pub record: Vec<u8>,
    pub request_id: String,
    pub function: String,
    /// POSTs made so far.
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub last_error: String,
}

/// A durable list of webhook deliveries.
pub trait DeliveryQueue: Send + Sync + 'static {
    /// Stores `d`, due at `now_ms`; durable when this returns.
    fn add_delivery(&self, d: &NewDelivery<'_>, now_ms: u64) -> Result<(), QueueError>;
    /// Marks the first due pending delivery in flight and returns it.
    fn lease_delivery(&self, now_ms: u64) -> Result<Option<Delivery>, QueueError>;
    /// The earliest next-attempt time of a pending delivery.
    fn next_delivery_ms(&self) -> Result<Option<u64>, QueueError>;
    /// Delivered: removes it.
    fn delivery_done(&self, id: i64) -> Result<(), QueueError>;
    /// Failed: pending again at `at_ms` with `attempts` made.
    fn delivery_retry(
        &self,
        id: i64,
        at_ms: u64,
        attempts: u32,
        error: &str,
    ) -> Result<(), QueueError>;
    /// Undeliverable: its event goes to the dead-letter queue (state dead, with
    /// `error`; an event already there keeps its state and gets `error` appended)
    /// and the delivery is removed, in one transaction.
    fn delivery_dead(&self, id: i64, error: &str) -> Result<(), QueueError>;
    /// Deliveries of `function` (all when None), oldest first.
    fn list_deliveries(&self, function: Option<&str>) -> Result<Vec<Delivery>, QueueError>;
    /// Puts deliveries left in flight by a previous run back to pending.
    fn recover_deliveries(&self) -> Result<u64, QueueError>;
}

const COLUMNS: &str =
    "id, url, destination, record, request_id, function, attempts, next_attempt_ms, last_error";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Delivery, String)> {
    Ok((
        Delivery {
            id: r.get(0)?,
            url: r.get(1)?,
            kind: Kind::OnSuccess,
            record: r.get(3)?,
            request_id: r.get(4)?,
            function: r.get(5)?,
            attempts: r.get(6)?,
            next_attempt_ms: r.get::<_, i64>(7)? as u64,
            last_error: r.get(8)?,
        },
        r.get(2)?,
    ))
}

impl SqliteQueue {
    fn delivery(&self, (mut d, kind): (Delivery, String)) -> Result<Delivery, QueueError> {
        d.kind = Kind::parse(&kind).ok_or_else(|| QueueError::Corrupt {
            path: self.path().to_string(),
            request_id: d.request_id.clone(),
            what: format!("delivery {} has unknown destination {kind:?}", d.id),
        })?;
        Ok(d)
    }
}

impl DeliveryQueue for SqliteQueue {
    fn add_delivery(&self, d: &NewDelivery<'_>, now_ms: u64) -> Result<(), QueueError> {
        let e = d.event;
        let mut conn = self.lock();
        SqliteQueue::durably(&mut conn, |tx| {
            tx.execute(
                "INSERT INTO deliveries (url, destination, record, request_id, function,
                     qualifier, payload, client_context, enqueued_ms, invokes, next_attempt_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    d.url,
                    d.kind.as_str(),
                    d.record,
                    e.request_id,
                    e.function,
                    e.qualifier,
                    e.payload,
                    e.client_context,
                    e.enqueued_ms as i64,
                    d.invokes,
                    now_ms as i64
                ],
            )
        })
        .map(drop)
        .map_err(|e| self.err(e))
    }

    fn lease_delivery(&self, now_ms: u64) -> Result<Option<Delivery>, QueueError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(&format!(
                "UPDATE deliveries SET state = 'in-flight'
                 WHERE id = (SELECT id FROM deliveries
                             WHERE state = 'pending' AND next_attempt_ms <= ?1
                             ORDER BY next_attempt_ms, id LIMIT 1)
                 RETURNING {COLUMNS}"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![now_ms as i64]).map_err(|e| self.err(e))?;
        let got = match rows.next().map_err(|e| self.err(e))? {
            Some(r) => Some(row(r).map_err(|e| self.err(e))?),
            None => None,
        };
        // Stepped to the end: the commit happens there, and may fail (a full disk).
        while rows.next().map_err(|e| self.err(e))?.is_some() {}
        got.map(|r| self.delivery(r)).transpose()
    }

    fn next_delivery_ms(&self) -> Result<Option<u64>, QueueError> {
        self.lock()
            .query_row(
                "SELECT MIN(next_attempt_ms) FROM deliveries WHERE state = 'pending'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(|v| v as u64))
            .map_err(|e| self.err(e))
    }

    fn delivery_done(&self, id: i64) -> Result<(), QueueError> {
        self.lock()
            .execute("DELETE FROM deliveries WHERE id = ?1", params![id])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn delivery_retry(
        &self,
        id: i64,
        at_ms: u64,
        attempts: u32,
        error: &str,
    ) -> Result<(), QueueError> {
        self.lock()
            .execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_ms = ?2, attempts = ?3,
                                       last_error = ?4
                 WHERE id = ?1",
                params![id, at_ms as i64, attempts, error],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn delivery_dead(&self, id: i64, error: &str) -> Result<(), QueueError> {
        let mut conn = self.lock();
        SqliteQueue::durably(&mut conn, |tx| {
            tx.execute(
                "INSERT INTO events (request_id, function, qualifier, payload, client_context,
                                     enqueued_ms, attempts, next_attempt_ms, last_error, state)
                 SELECT request_id, function, qualifier, payload, client_context,
                        enqueued_ms, invokes, next_attempt_ms, ?2, 'dead'
                 FROM deliveries WHERE id = ?1
                 ON CONFLICT (request_id) DO UPDATE
                 SET last_error = events.last_error || '; ' || excluded.last_error",
                params![id, error],
            )?;
            tx.execute("DELETE FROM deliveries WHERE id = ?1", params![id])
        })
        .map(drop)
        .map_err(|e| self.err(e))
    }

    fn list_deliveries(&self, function: Option<&str>) -> Result<Vec<Delivery>, QueueError> {
        let rows: Vec<_> = {
            let conn = self.lock();
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM deliveries WHERE (?1 IS NULL OR function = ?1) ORDER BY id"
                ))
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map(params![function], row)
                .map_err(|e| self.err(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?;
            rows
        };
        rows.into_iter().map(|r| self.delivery(r)).collect()
    }

    fn recover_deliveries(&self) -> Result<u64, QueueError> {
        self.lock()
            .execute(
                "UPDATE deliveries SET state = 'pending' WHERE state = 'in-flight'",
                [],
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventQueue, EventState, NewEvent};

    fn event(q: &SqliteQueue, id: &str) -> Event {
        q.enqueue(&NewEvent {
            request_id: id.into(),
            function: "f".into(),
            qualifier: "$LATEST".into(),
            payload: br#"{"k":1}"#.to_vec(),
            client_context: String::new(),
            enqueued_ms: 10,
        })
        .unwrap();
        q.lease_due(10).unwrap().unwrap()
    }

    #[test]
    fn deliveries_survive_reopen_retry_and_end_in_the_dead_letter_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        {
            let q = SqliteQueue::open(&path).unwrap();
            let e = event(&q, "r1");
            let d = NewDelivery {
                url: "http://127.0.0.1:1/h",
                kind: Kind::OnSuccess,
                record: b"{\"rec\":1}".to_vec(),
                event: &e,
                invokes: 1,
            };
            q.add_delivery(&d, 100).unwrap();
            // An on-success record: the event itself is finished.
            q.complete("r1").unwrap();
            let leased = q.lease_delivery(100).unwrap().unwrap();
            assert_eq!((leased.kind, leased.attempts), (Kind::OnSuccess, 0));
            assert_eq!(q.lease_delivery(100).unwrap(), None, "leased once");
            // killed mid-POST
        }
        let q = SqliteQueue::open(&path).unwrap();
        assert_eq!(q.recover_deliveries().unwrap(), 1);
        let d = q.lease_delivery(100).unwrap().unwrap();
        q.delivery_retry(d.id, 500, 1, "connection refused")
            .unwrap();
        assert_eq!(q.lease_delivery(499).unwrap(), None);
        assert_eq!(q.next_delivery_ms().unwrap(), Some(500));
        let d = q.lease_delivery(500).unwrap().unwrap();
        assert_eq!(
            (d.attempts, d.last_error.as_str()),
            (1, "connection refused")
        );
        q.delivery_dead(d.id, "on_success webhook failed 4 times: 503")
            .unwrap();
        assert!(q.list_deliveries(None).unwrap().is_empty());
        let dead = q.list(Some("f"), &[EventState::Dead], 10).unwrap();
        assert_eq!(
            dead.len(),
            1,
            "the record's event is in the dead-letter queue"
        );
        assert_eq!(dead[0].request_id, "r1");
        assert_eq!(dead[0].payload, br#"{"k":1}"#);
        assert_eq!(dead[0].attempts, 1);
        assert!(dead[0].last_error.contains("503"));
        // Redrivable like any dead event.
        assert_eq!(q.redrive("f", 1_000).unwrap(), 1);
    }

    #[test]
    fn an_event_already_dead_keeps_one_row_and_gains_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("events.db")).unwrap();
        let e = event(&q, "r2");
        q.dead_letter("r2", 3, "Unhandled").unwrap();
        q.add_delivery(
            &NewDelivery {
                url: "https://h.example/x",
                kind: Kind::OnFailure,
                record: b"{}".to_vec(),
                event: &e,
                invokes: 3,
            },
            0,
        )
        .unwrap();
        let d = q.lease_delivery(0).unwrap().unwrap();
        q.delivery_dead(d.id, "webhook down").unwrap();
        let dead = q.list(None, &[], 10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].state, EventState::Dead);
        assert_eq!(dead[0].last_error, "Unhandled; webhook down");
    }
}
