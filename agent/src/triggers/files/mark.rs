//! A file-event trigger's high-water mark, kept in its row's `last_fire` column: a
//! time T such that every change the watcher saw before T is in the durable event
//! queue. After a restart the watcher delivers the files modified after the mark
//! (see `watch.rs`).

use crate::store::{Store, StoreError};
use crate::triggers::store::fmt_time;
use chrono::{DateTime, Utc};
use rusqlite::params;

impl Store {
    /// Moves a file-event trigger's mark forward to `at` (never back).
    pub fn set_files_mark(&self, name: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE triggers SET last_fire = ?2 \
             WHERE name = ?1 AND kind = 'files' AND (last_fire IS NULL OR last_fire < ?2)",
            params![name, fmt_time(at)],
        )?;
        Ok(())
    }
}
