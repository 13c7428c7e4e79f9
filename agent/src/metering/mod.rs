//! Metering: every finished invocation is stored in `<data>/metering.db` by a
//! background writer, and priced on request (`flint.v1.Usage`). The invocation path
//! only puts a record on a bounded queue; when the queue is full the record is dropped,
//! counted and a rate-limited warning is logged.

pub(crate) mod history;
pub(crate) mod pricing;
pub(crate) mod report;
pub(crate) mod retention;
pub(crate) mod store;
pub(crate) mod writer;

use crate::observe::{InvocationObserver, InvocationRecord};
use flint_proto::v1::UsageReport;
use pricing::Prices;
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use writer::Msg;

/// Records waiting for the writer before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 10_000;
/// How long a flush may wait for the writer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one warning about lost records per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Metering failures.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    /// The database cannot be opened or migrated
    #[error(transparent)]
    Open(#[from] crate::schema::SchemaError),
    /// A report query failed
    #[error("metering database query: {0}")]
    Query(#[from] rusqlite::Error),
    /// The writer thread cannot be started
    #[error("cannot start the metering writer thread: {0}")]
    Thread(std::io::Error),
    /// The writer did not answer a flush
    #[error("the metering writer did not flush within {FLUSH_TIMEOUT:?}; the report may miss the latest invocations, retry")]
    FlushTimeout,
}

/// Lets one event through per interval (for log lines a client can trigger).
pub struct WarnLimiter {
    last: Mutex<Option<Instant>>,
    every: Duration,
}

impl WarnLimiter {
    /// At most one `allow() == true` per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            last: Mutex::new(None),
            every,
        }
    }

    /// True if the caller may log now.
    pub fn allow(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.every) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// The agent's meter: an [`InvocationObserver`] that stores records, and the reports.
pub struct Meter {
    tx: Mutex<Option<SyncSender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reader: Mutex<Connection>,
    prices: Prices,
    dropped: Arc<AtomicU64>,
    warn: Arc<WarnLimiter>,
    /// The compaction thread (`retention.rs`) and what stops it.
    compactor: Mutex<Option<(SyncSender<()>, JoinHandle<()>)>>,
}

impl Meter {
    /// Opens `path` (created if missing) and starts the writer thread.
    pub fn open(path: &Path, prices: Prices) -> Result<Arc<Self>, MeterError> {
        Self::open_with_queue(path, prices, QUEUE_CAPACITY)
    }

    /// Like [`Meter::open`] with a queue of `capacity` records.
    pub fn open_with_queue(
        path: &Path,
        prices: Prices,
        capacity: usize,
    ) -> Result<Arc<Self>, MeterError> {
        retention::make_incremental(path)?;
        let write_conn = store::open(path)?;
        let reader = store::open(path)?;
        let (tx, rx) = sync_channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let warn = Arc::new(WarnLimiter::new(WARN_INTERVAL));
        let (lost, w) = (dropped.clone(), warn.clone());
        let writer = std::thread::Builder::new()
            .name("flint-metering".into())
            .spawn(move || writer::run(write_conn, rx, lost, w))
            .map_err(MeterError::Thread)?;
        Ok(Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(reader),
            prices,
            dropped,
            warn,
            compactor: Mutex::new(None),
        }))
    }

    /// Starts deleting invocation records older than `retention` from the database
    /// at `path` (the one this meter opened), hourly (`retention.rs`).
    pub fn keep_for(&self, path: &Path, retention: Duration) -> Result<(), MeterError> {
        let conn = store::open(path)?;
        let (stop, stopped) = sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("flint-metering-compact".into())
            .spawn(move || retention::run(conn, retention, stopped))
            .map_err(MeterError::Thread)?;
        *self.compactor.lock().unwrap_or_else(|p| p.into_inner()) = Some((stop, handle));
        Ok(())
    }

    /// The prices reports are computed with.
    pub fn prices(&self) -> Prices {
        self.prices
    }

    /// Records lost so far (queue full, agent stopping, or a failed insert).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn sender(&self) -> Option<SyncSender<Msg>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until every record handed over so far is committed (no-op once stopped).
    pub fn flush(&self) -> Result<(), MeterError> {
        let Some(tx) = self.sender() else {
            return Ok(());
        };
        let (ack_tx, ack_rx) = sync_channel(1);
        if tx.send(Msg::Flush(ack_tx)).is_err() {
            // The writer is gone: nothing more will be committed.
            return Ok(());
        }
        ack_rx
            .recv_timeout(FLUSH_TIMEOUT)
            .map_err(|_| MeterError::FlushTimeout)
    }

    /// Commits what is queued and stops the writer; later records are dropped.
    /// Blocks: call it from a blocking context.
    pub fn shutdown(&self) {
        let compactor = self
            .compactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((stop, handle)) = compactor {
            let _ = stop.send(());
            let _ = handle.join();
        }
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("metering writer thread panicked");
            }
        }
    }

    /// Usage of one function (or all) since `since_unix_ms`, priced. Blocks briefly
    /// (flush + SQL): call it from a blocking context.
    pub fn usage(
        &self,
        function: Option<&str>,
        since_unix_ms: u64,
    ) -> Result<UsageReport, MeterError> {
        self.flush()?;
        let rows = {
            let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
            store::aggregate(&conn, function, since_unix_ms)?
        };
        Ok(report::build(&rows, &self.prices))
    }

    /// `function`'s invocations summed per version that ran, over everything the
    /// database holds. Blocks briefly (flush + SQL).
    pub fn usage_by_version(
        &self,
        function: &str,
    ) -> Result<Vec<store::VersionAggregate>, MeterError> {
        self.flush()?;
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        Ok(store::aggregate_versions(&conn, function, 0)?)
    }

    fn lost(&self, why: &str) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if self.warn.allow() {
            tracing::warn!(
                dropped_total = n,
                reason = why,
                "metering: invocation record dropped"
            );
        }
    }
}

impl InvocationObserver for Meter {
    fn invocation(&self, rec: &InvocationRecord) {
        let Some(tx) = self.sender() else {
            self.lost("metering stopped");
            return;
        };
        match tx.try_send(Msg::Record(Box::new(rec.clone()))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.lost("queue full"),
            Err(TrySendError::Disconnected(_)) => self.lost("writer gone"),
        }
    }

    /// Throttled requests are not billed.
    fn throttled(&self, _function: &str, _limit: &str) {}
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::store::tests::rec;
    use super::*;
    use crate::observe::RecordedOutcome;

    fn prices() -> Prices {
        Prices {
            per_gb_second_usd: 0.5,
            per_million_requests_usd: 2_000_000.0,
            free_requests: 1,
        }
    }

    #[test]
    fn records_are_reported_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metering.db");
        let m = Meter::open(&path, prices()).unwrap();
        m.invocation(&rec("1", "a", 10, 4, 256, true, RecordedOutcome::Success));
        m.invocation(&rec(
            "2",
            "a",
            20,
            6,
            256,
            false,
            RecordedOutcome::OutOfMemory,
        ));
        m.throttled("a", "rate_limit");
        // Read-your-writes: usage() flushes the queue first.
        let r = m.usage(None, 0).unwrap();
        let t = r.total.clone().unwrap();
        assert_eq!(
            (t.requests, t.errors, t.cold_starts, t.billed_ms),
            (2, 1, 1, 10)
        );
        // 10 ms x 256 MB = 0.01 s x 0.25 GB.
        assert!((t.gb_seconds - 0.0025).abs() < 1e-15);
        // One of two requests is free: $2; compute 0.0025 x $0.5.
        assert!((t.cost_usd - (2.0 + 0.00125)).abs() < 1e-12);
        assert_eq!(m.dropped(), 0);
        m.shutdown();
        m.invocation(&rec("3", "a", 30, 1, 256, false, RecordedOutcome::Success));
        assert_eq!(m.dropped(), 1, "a record after shutdown is counted as lost");
        drop(m);
        let again = Meter::open(&path, prices()).unwrap();
        assert_eq!(again.usage(None, 0).unwrap(), r);
        assert_eq!(again.usage(Some("a"), 15).unwrap().functions[0].requests, 1);
    }

    #[test]
    fn shutdown_commits_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metering.db");
        let m = Meter::open(&path, prices()).unwrap();
        for i in 0..1200 {
            m.invocation(&rec(
                &i.to_string(),
                "f",
                i,
                1,
                128,
                false,
                RecordedOutcome::Success,
            ));
        }
        m.shutdown();
        let c = store::open(&path).unwrap();
        assert_eq!(store::aggregate(&c, None, 0).unwrap()[0].requests, 1200);
    }

    #[test]
    fn a_full_queue_drops_and_counts_records_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metering.db");
        let m = Meter::open_with_queue(&path, prices(), 1).unwrap();
        let sent = 5000u64;
        let t0 = Instant::now();
        for i in 0..sent {
            m.invocation(&rec(
                &i.to_string(),
                "f",
                i,
                1,
                128,
                false,
                RecordedOutcome::Success,
            ));
        }
        let took = t0.elapsed();
        let stored = m.usage(None, 0).unwrap().total.unwrap().requests;
        assert_eq!(
            stored + m.dropped(),
            sent,
            "every record is stored or counted"
        );
        assert!(stored >= 1);
        assert!(took < Duration::from_secs(2), "observing took {took:?}");
    }

    #[test]
    fn warn_limiter_lets_one_through_per_interval() {
        let w = WarnLimiter::new(Duration::from_millis(100));
        assert!(w.allow());
        assert!(!w.allow());
        std::thread::sleep(Duration::from_millis(120));
        assert!(w.allow());
    }
}
