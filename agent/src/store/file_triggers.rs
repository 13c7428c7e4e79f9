//! Which functions have file-event triggers (rows of kind [`KIND`] in the `triggers`
//! table), kept in memory so that a cold start learns that its function has no
//! mounts without SQLite: a blocking hop and a query were 0.15 ms of every pool hit.
//! Read from the table on first use; after that changed only while the connection
//! is held, right after the statement that changed the table, as `Store::rows` is.
//! flintd is the database's only writer.

use super::{Store, StoreError};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::RwLock;

/// The `kind` column of a file-event trigger (`TriggerKind::label`).
pub const KIND: &str = "files";

/// File-event triggers per function; `None` until first read.
#[derive(Debug, Default)]
pub(crate) struct Index(RwLock<Option<HashMap<String, u32>>>);

impl Index {
    fn known(&self, function: &str) -> Option<bool> {
        let all = self.0.read().unwrap_or_else(|p| p.into_inner());
        all.as_ref().map(|m| m.contains_key(function))
    }

    /// Reads the table (call with the connection held).
    fn load(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut counts = HashMap::new();
        let mut stmt = conn
            .prepare("SELECT function, COUNT(*) FROM triggers WHERE kind = ?1 GROUP BY function")?;
        for row in stmt.query_map([KIND], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
        })? {
            let (f, n) = row?;
            counts.insert(f, n);
        }
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(counts);
        Ok(())
    }

    /// Applies `change` to the counts when they have been read.
    fn change(&self, change: impl FnOnce(&mut HashMap<String, u32>)) {
        if let Some(m) = self.0.write().unwrap_or_else(|p| p.into_inner()).as_mut() {
            change(m);
        }
    }

    /// A trigger of `kind` for `function` was inserted.
    pub(crate) fn inserted(&self, function: &str, kind: &str) {
        if kind == KIND {
            self.change(|m| *m.entry(function.to_string()).or_default() += 1);
        }
    }

    /// A trigger of `kind` for `function` was deleted.
    pub(crate) fn deleted(&self, function: &str, kind: &str) {
        if kind != KIND {
            return;
        }
        self.change(|m| {
            if let Some(n) = m.get_mut(function) {
                *n -= 1;
                if *n == 0 {
                    m.remove(function);
                }
            }
        });
    }

    /// Every trigger of `function` was deleted.
    pub(crate) fn function_deleted(&self, function: &str) {
        self.change(|m| {
            m.remove(function);
        });
    }
}

impl Store {
    /// Whether `function` has file-event triggers, when that is known without SQLite.
    pub fn cached_has_file_triggers(&self, function: &str) -> Option<bool> {
        self.file_triggers.known(function)
    }

    /// Whether `function` has file-event triggers (reads the table the first time).
    pub fn has_file_triggers(&self, function: &str) -> Result<bool, StoreError> {
        if let Some(known) = self.file_triggers.known(function) {
            return Ok(known);
        }
        let conn = self.lock();
        if self.file_triggers.known(function).is_none() {
            self.file_triggers.load(&conn)?;
        }
        Ok(self.file_triggers.known(function) == Some(true))
    }
}
