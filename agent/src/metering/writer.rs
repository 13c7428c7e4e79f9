//! The metering writer thread: records arrive over a bounded channel and are inserted
//! in batches (one transaction per 50 ms or 500 rows), so the invocation path never
//! waits for SQLite.

use super::store;
use super::WarnLimiter;
use crate::observe::InvocationRecord;
use rusqlite::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a record waits before its batch is committed.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Most rows in one transaction.
pub const BATCH_ROWS: usize = 500;

/// What the writer is told.
pub enum Msg {
    /// Store this record.
    Record(Box<InvocationRecord>),
    /// Commit everything received so far, then answer.
    Flush(SyncSender<()>),
}

/// Collects one batch, starting with `first`; says whether the channel closed.
fn collect(
    first: Msg,
    rx: &Receiver<Msg>,
    batch: &mut Vec<InvocationRecord>,
    acks: &mut Vec<SyncSender<()>>,
) -> bool {
    let deadline = Instant::now() + BATCH_WINDOW;
    let mut next = first;
    loop {
        match next {
            Msg::Record(r) => batch.push(*r),
            // Everything sent before the flush is in the batch (the channel is FIFO).
            Msg::Flush(ack) => {
                acks.push(ack);
                return false;
            }
        }
        if batch.len() >= BATCH_ROWS {
            return false;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        next = match rx.recv_timeout(left) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => return false,
            Err(RecvTimeoutError::Disconnected) => return true,
        };
    }
}

/// Runs until every sender is gone and the last batch is committed. Rows that cannot
/// be inserted are counted in `lost` and logged (rate-limited).
pub fn run(mut conn: Connection, rx: Receiver<Msg>, lost: Arc<AtomicU64>, warn: Arc<WarnLimiter>) {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let closed = collect(first, &rx, &mut batch, &mut acks);
        if !batch.is_empty() {
            if let Err(e) = store::insert(&mut conn, &batch) {
                let n = lost.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64;
                if warn.allow() {
                    tracing::warn!(error = %e, rows = batch.len(), lost_total = n, "metering: cannot store invocation records");
                }
            }
            batch.clear();
        }
        for a in acks.drain(..) {
            let _ = a.send(());
        }
        if closed {
            break;
        }
    }
}
