//! Versioned schema migrations for the agent's SQLite databases (the function
//! registry, metering), on `rusqlite_migration`: the schema version is SQLite's
//! `PRAGMA user_version`, and opening a database runs, in one transaction, every
//! migration it has not had yet.
//!
//! Rules (agent/README.md, "Schema migrations"): a migration, once released, is never
//! edited; a change is a new migration appended to the database's list. Migration 1 of
//! each database is exactly the schema flintd wrote before versioning (up to commit
//! 0a838de), with `IF NOT EXISTS`, so such a database (user_version 0, tables present)
//! is adopted unchanged.

use rusqlite::Connection;
use rusqlite_migration::{Migrations, SchemaVersion};
use std::path::Path;
use std::time::Duration;

/// One database's identity and migrations, oldest first.
pub struct Schema {
    /// What the database is called in errors, e.g. "function registry".
    pub name: &'static str,
    /// The SQL of each migration; version N is after `migrations[N-1]` ran.
    pub migrations: &'static [&'static str],
}

/// A database that cannot be opened or brought to the current schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// SQLite refused to open or configure the file
    #[error("{name} {path}: {source}")]
    Open {
        name: &'static str,
        path: String,
        source: rusqlite::Error,
    },
    /// The database was written by a newer flintd
    #[error(
        "{name} {path} is at schema version {found}, but this flintd knows versions up to {known}: \
         it was written by a newer release; run that release (or a newer one), or restore a backup"
    )]
    TooNew {
        name: &'static str,
        path: String,
        found: usize,
        known: usize,
    },
    /// A migration failed; the transaction was rolled back, the file is unchanged
    #[error("{name} {path}: migrating to schema version {known} failed (the database is unchanged): {source}")]
    Migrate {
        name: &'static str,
        path: String,
        known: usize,
        source: Box<rusqlite_migration::Error>,
    },
}

impl Schema {
    /// The newest schema version this build knows.
    pub fn latest(&self) -> usize {
        self.migrations.len()
    }

    fn steps(&self) -> Migrations<'static> {
        Migrations::new(
            self.migrations
                .iter()
                .map(|sql| rusqlite_migration::M::up(sql))
                .collect(),
        )
    }

    /// Opens (creating) `path` in WAL mode with `busy_timeout`, and migrates it to
    /// [`Schema::latest`].
    pub fn open(&self, path: &Path, busy_timeout: Duration) -> Result<Connection, SchemaError> {
        let shown = path.display().to_string();
        let open_err = |source| SchemaError::Open {
            name: self.name,
            path: shown.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(busy_timeout).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        self.migrate(&mut conn, &shown)?;
        Ok(conn)
    }

    /// Runs the migrations `conn` has not had yet; `shown` names it in errors.
    pub fn migrate(&self, conn: &mut Connection, shown: &str) -> Result<(), SchemaError> {
        let steps = self.steps();
        let migrate_err = |source| SchemaError::Migrate {
            name: self.name,
            path: shown.to_string(),
            known: self.latest(),
            source: Box::new(source),
        };
        if let SchemaVersion::Outside(found) = steps.current_version(conn).map_err(migrate_err)? {
            return Err(SchemaError::TooNew {
                name: self.name,
                path: shown.to_string(),
                found: found.get(),
                known: self.latest(),
            });
        }
        steps.to_latest(conn).map_err(migrate_err)
    }
}

/// The database's schema version (`PRAGMA user_version`; 0 before any migration).
#[cfg(test)]
pub fn version(conn: &Connection) -> rusqlite::Result<usize> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(usize::try_from(v).unwrap_or(0))
}

/// Every table and index as `(type, name, sql)`, by name: what a migration test
/// compares between a migrated database and a new one.
#[cfg(test)]
pub fn dump(conn: &Connection) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut st = conn
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: Schema = Schema {
        name: "test database",
        migrations: &[
            "CREATE TABLE IF NOT EXISTS t (a TEXT NOT NULL);",
            "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 7;",
        ],
    };

    #[test]
    fn a_new_database_gets_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let conn = TWO.open(&dir.path().join("t.db"), Duration::ZERO).unwrap();
        assert_eq!(version(&conn).unwrap(), 2);
        conn.execute("INSERT INTO t (a) VALUES ('x')", []).unwrap();
        let b: i64 = conn.query_row("SELECT b FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(b, 7);
    }

    #[test]
    fn an_unversioned_database_with_the_first_schema_is_adopted_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            // What a release before versioning wrote: the table, user_version 0.
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE t (a TEXT NOT NULL); INSERT INTO t (a) VALUES ('old');")
                .unwrap();
            assert_eq!(version(&c).unwrap(), 0);
        }
        let conn = TWO.open(&path, Duration::ZERO).unwrap();
        assert_eq!(version(&conn).unwrap(), 2);
        let row: (String, i64) = conn
            .query_row("SELECT a, b FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(row, ("old".to_string(), 7));
        // Opening again runs nothing.
        drop(conn);
        assert_eq!(
            version(&TWO.open(&path, Duration::ZERO).unwrap()).unwrap(),
            2
        );
    }

    #[test]
    fn a_database_from_a_newer_release_is_refused_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE t (a TEXT); PRAGMA user_version = 5;")
                .unwrap();
        }
        let err = TWO.open(&path, Duration::ZERO).unwrap_err();
        assert!(
            matches!(
                err,
                SchemaError::TooNew {
                    found: 5,
                    known: 2,
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("schema version 5") && msg.contains("newer release"),
            "{msg}"
        );
        assert_eq!(version(&Connection::open(&path).unwrap()).unwrap(), 5);
    }

    #[test]
    fn a_failing_migration_rolls_back_and_says_which_version() {
        const BAD: Schema = Schema {
            name: "test database",
            migrations: &[
                "CREATE TABLE IF NOT EXISTS t (a TEXT);",
                "ALTER TABLE nowhere ADD COLUMN b INTEGER;",
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let err = BAD.open(&path, Duration::ZERO).unwrap_err();
        assert!(
            matches!(err, SchemaError::Migrate { known: 2, .. }),
            "{err}"
        );
        let c = Connection::open(&path).unwrap();
        assert_eq!(version(&c).unwrap(), 0);
        assert!(
            dump(&c).unwrap().is_empty(),
            "the first migration was rolled back too"
        );
    }
}
