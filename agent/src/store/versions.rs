//! Published versions and aliases in the registry (migration 5 of [`super::SCHEMA`]).
//!
//! A version is an immutable copy of its function's row at publish ([`Function`] as
//! one JSON snapshot), numbered 1, 2, ... per function; a number is never given twice,
//! even after its version is deleted (`version_numbers`). An alias names a version
//! ($LATEST or a number) and, optionally, a second version that gets a share of the
//! invocations. Both are cached as [`Store`]'s rows are: changed only while the
//! connection is held, right after the statement.

use super::{Function, Store, StoreError};
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::HashMap;
use std::sync::RwLock;

/// `$LATEST`: the function's mutable configuration.
pub const LATEST: &str = flint_proto::lambda::LATEST;

/// Version and alias failures.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The function itself: not found, or the registry failed
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Unknown version
    #[error("function {function} has no version {version}: publish it first (flint publish) or list them (flint versions {function})")]
    VersionNotFound { function: String, version: String },
    /// Unknown alias
    #[error("function {function} has no alias {alias}: create it first (flint aliases create) or list them (flint aliases ls {function})")]
    AliasNotFound { function: String, alias: String },
    /// Alias name taken
    #[error("Alias already exists: {function}:{alias}; update it instead (flint aliases update)")]
    AliasExists { function: String, alias: String },
    /// Deleting a version that aliases route to
    #[error("Unable to delete version {version} of {function} because the following aliases reference it: [{}]; point them elsewhere first (flint aliases update)", aliases.join(", "))]
    InUse {
        function: String,
        version: String,
        aliases: Vec<String>,
    },
    /// A request Lambda refuses (bad alias name, weight, qualifier)
    #[error("{0}")]
    Invalid(String),
    /// A RevisionId or CodeSha256 precondition that does not hold
    #[error("{0}")]
    Precondition(String),
}

impl From<rusqlite::Error> for VersionError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub number: u64,
    /// The function's configuration as published (its `description` is the
    /// version's, its `last_modified` the publish time).
    pub config: Function,
}

/// An alias's second version and its share of invocations (0.0 to 1.0).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Routing {
    pub version: String,
    pub weight: f64,
}

/// One alias.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub function: String,
    pub name: String,
    /// `$LATEST` or a version number.
    pub version: String,
    pub routing: Option<Routing>,
    pub description: String,
    /// Bumped on every change (RevisionId).
    pub revision: u64,
}

/// Versions and aliases by (function, number or name).
#[derive(Default)]
pub struct Cache {
    versions: RwLock<HashMap<(String, u64), Version>>,
    aliases: RwLock<HashMap<(String, String), Alias>>,
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

impl Cache {
    /// Forgets everything of `function` (deleted).
    pub(super) fn forget_function(&self, function: &str) {
        write(&self.versions).retain(|(f, _), _| f != function);
        write(&self.aliases).retain(|(f, _), _| f != function);
    }

    fn version(&self, function: &str, v: Option<&Version>, number: u64) {
        let key = (function.to_string(), number);
        match v {
            Some(v) => write(&self.versions).insert(key, v.clone()),
            None => write(&self.versions).remove(&key),
        };
    }

    fn alias(&self, function: &str, name: &str, a: Option<&Alias>) {
        let key = (function.to_string(), name.to_string());
        match a {
            Some(a) => write(&self.aliases).insert(key, a.clone()),
            None => write(&self.aliases).remove(&key),
        };
    }
}

/// Deletes every version and alias of `function` (in its deletion's transaction).
pub(super) fn delete_all(tx: &Transaction<'_>, function: &str) -> rusqlite::Result<()> {
    for table in ["versions", "version_numbers", "aliases"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE function = ?1"),
            params![function],
        )?;
    }
    Ok(())
}

fn corrupt(function: &str) -> StoreError {
    StoreError::Corrupt(function.to_string())
}

fn version_from_row(function: &str, number: i64, config: &str) -> Result<Version, StoreError> {
    let config: Function = serde_json::from_str(config).map_err(|_| corrupt(function))?;
    Ok(Version {
        number: number as u64,
        config,
    })
}

fn alias_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Alias, String)> {
    Ok((
        Alias {
            function: r.get("function")?,
            name: r.get("name")?,
            version: r.get("version")?,
            routing: None,
            description: r.get("description")?,
            revision: r.get::<_, i64>("revision")? as u64,
        },
        r.get("routing")?,
    ))
}

fn alias_from_row((mut a, routing): (Alias, String)) -> Result<Alias, StoreError> {
    a.routing = serde_json::from_str(&routing).map_err(|_| corrupt(&a.function))?;
    Ok(a)
}

fn function_exists(tx: &Transaction<'_>, function: &str) -> Result<(), StoreError> {
    let found: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM functions WHERE name = ?1",
            params![function],
            |r| r.get(0),
        )
        .optional()?;
    found
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(function.to_string()))
}

/// Refuses an alias target that is not $LATEST or a published version.
fn target_exists(tx: &Transaction<'_>, function: &str, version: &str) -> Result<(), VersionError> {
    if version == LATEST {
        return Ok(());
    }
    let missing = || VersionError::VersionNotFound {
        function: function.to_string(),
        version: version.to_string(),
    };
    let n: i64 = version.parse().map_err(|_| missing())?;
    tx.query_row(
        "SELECT 1 FROM versions WHERE function = ?1 AND version = ?2",
        params![function, n],
        |r| r.get::<_, i64>(0),
    )
    .optional()?
    .ok_or_else(missing)?;
    Ok(())
}

fn write_alias(tx: &Transaction<'_>, a: &Alias, insert: bool) -> Result<(), VersionError> {
    let routing = serde_json::to_string(&a.routing).map_err(|_| corrupt(&a.function))?;
    let sql = if insert {
        "INSERT INTO aliases (function, name, version, routing, description, revision) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    } else {
        "UPDATE aliases SET version = ?3, routing = ?4, description = ?5, revision = ?6 \
         WHERE function = ?1 AND name = ?2"
    };
    tx.execute(
        sql,
        params![
            a.function,
            a.name,
            a.version,
            routing,
            a.description,
            a.revision as i64
        ],
    )?;
    Ok(())
}

impl Store {
    /// Publishes `function`'s current row as a new version, after `check` accepted it
    /// (RevisionId and CodeSha256 preconditions); `description` (empty: the
    /// function's) becomes the version's. When nothing changed since the last version,
    /// that version is returned instead, as Lambda does. `now` is the publish time.
    pub fn publish(
        &self,
        function: &str,
        description: &str,
        now: &str,
        check: impl FnOnce(&Function) -> Result<(), VersionError>,
    ) -> Result<Version, VersionError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let current = tx
            .query_row(
                concat!(
                    "SELECT ",
                    function_columns!(),
                    " FROM functions WHERE name = ?1"
                ),
                params![function],
                super::row_to_raw,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(function.to_string()))?
            .into_function()?;
        check(&current)?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT version, config FROM versions WHERE function = ?1 \
                 ORDER BY version DESC LIMIT 1",
                params![function],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((n, config)) = last {
            let last = version_from_row(function, n, &config)?;
            if last.config.revision == current.revision
                && last.config.code_sha256 == current.code_sha256
            {
                return Ok(last);
            }
        }
        let number: i64 = tx.query_row(
            "INSERT INTO version_numbers (function, last) VALUES (?1, 1) \
             ON CONFLICT (function) DO UPDATE SET last = last + 1 RETURNING last",
            params![function],
            |r| r.get(0),
        )?;
        let mut config = current;
        config.last_modified = now.to_string();
        if !description.is_empty() {
            config.description = description.to_string();
        }
        let json = serde_json::to_string(&config).map_err(|_| corrupt(function))?;
        tx.execute(
            "INSERT INTO versions (function, version, code_sha256, config, created) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![function, number, config.code_sha256, json, now],
        )?;
        tx.commit()?;
        let v = Version {
            number: number as u64,
            config,
        };
        self.qualified.version(function, Some(&v), v.number);
        Ok(v)
    }

    /// Version `number` of `function` if this store has read or written it (no SQLite).
    pub fn cached_version(&self, function: &str, number: u64) -> Option<Version> {
        read(&self.qualified.versions)
            .get(&(function.to_string(), number))
            .cloned()
    }

    /// Alias `name` of `function` if this store has read or written it (no SQLite).
    pub fn cached_alias(&self, function: &str, name: &str) -> Option<Alias> {
        read(&self.qualified.aliases)
            .get(&(function.to_string(), name.to_string()))
            .cloned()
    }

    /// Version `number` of `function`.
    pub fn get_version(&self, function: &str, number: u64) -> Result<Version, VersionError> {
        let conn = self.lock();
        let row: Option<String> = conn
            .query_row(
                "SELECT config FROM versions WHERE function = ?1 AND version = ?2",
                params![function, number as i64],
                |r| r.get(0),
            )
            .optional()?;
        let Some(config) = row else {
            self.qualified.version(function, None, number);
            drop(conn);
            self.get(function)?;
            return Err(VersionError::VersionNotFound {
                function: function.to_string(),
                version: number.to_string(),
            });
        };
        let v = version_from_row(function, number as i64, &config)?;
        self.qualified.version(function, Some(&v), number);
        Ok(v)
    }

    /// Every version of `function`, oldest first (NotFound for an unknown function).
    pub fn list_versions(&self, function: &str) -> Result<Vec<Version>, VersionError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, function)?;
        let rows: Vec<(i64, String)> = tx
            .prepare("SELECT version, config FROM versions WHERE function = ?1 ORDER BY version")?
            .query_map(params![function], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        rows.iter()
            .map(|(n, c)| Ok(version_from_row(function, *n, c)?))
            .collect()
    }

    /// Deletes version `number`; refused while an alias routes to it.
    pub fn delete_version(&self, function: &str, number: u64) -> Result<Version, VersionError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, function)?;
        let aliases: Vec<(Alias, String)> = tx
            .prepare(
                "SELECT function, name, version, routing, description, revision FROM aliases \
                 WHERE function = ?1 ORDER BY name",
            )?
            .query_map(params![function], alias_row)?
            .collect::<Result<_, _>>()?;
        let v = number.to_string();
        let mut using = Vec::new();
        for row in aliases {
            let a = alias_from_row(row)?;
            if a.version == v || a.routing.as_ref().is_some_and(|r| r.version == v) {
                using.push(a.name);
            }
        }
        if !using.is_empty() {
            return Err(VersionError::InUse {
                function: function.to_string(),
                version: v,
                aliases: using,
            });
        }
        let config: Option<String> = tx
            .query_row(
                "DELETE FROM versions WHERE function = ?1 AND version = ?2 RETURNING config",
                params![function, number as i64],
                |r| r.get(0),
            )
            .optional()?;
        let config = config.ok_or_else(|| VersionError::VersionNotFound {
            function: function.to_string(),
            version: v,
        })?;
        let gone = version_from_row(function, number as i64, &config)?;
        tx.commit()?;
        self.qualified.version(function, None, number);
        Ok(gone)
    }

    /// Creates alias `a` (its versions must exist).
    pub fn create_alias(&self, a: &Alias) -> Result<(), VersionError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, &a.function)?;
        target_exists(&tx, &a.function, &a.version)?;
        if let Some(r) = &a.routing {
            target_exists(&tx, &a.function, &r.version)?;
        }
        let taken: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM aliases WHERE function = ?1 AND name = ?2",
                params![a.function, a.name],
                |r| r.get(0),
            )
            .optional()?;
        if taken.is_some() {
            return Err(VersionError::AliasExists {
                function: a.function.clone(),
                alias: a.name.clone(),
            });
        }
        write_alias(&tx, a, true)?;
        tx.commit()?;
        self.qualified.alias(&a.function, &a.name, Some(a));
        Ok(())
    }

    /// Changes alias `function:name` with `change` (given the current alias), checks
    /// the versions it names and stores it with its revision bumped.
    pub fn update_alias(
        &self,
        function: &str,
        name: &str,
        change: impl FnOnce(&mut Alias) -> Result<(), VersionError>,
    ) -> Result<Alias, VersionError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut a = read_alias(&tx, function, name)?;
        change(&mut a)?;
        target_exists(&tx, function, &a.version)?;
        if let Some(r) = &a.routing {
            target_exists(&tx, function, &r.version)?;
        }
        a.revision += 1;
        write_alias(&tx, &a, false)?;
        tx.commit()?;
        self.qualified.alias(function, name, Some(&a));
        Ok(a)
    }

    /// Alias `function:name`.
    pub fn get_alias(&self, function: &str, name: &str) -> Result<Alias, VersionError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let found = read_alias(&tx, function, name);
        self.qualified.alias(function, name, found.as_ref().ok());
        found
    }

    /// Every alias of `function`, by name.
    pub fn list_aliases(&self, function: &str) -> Result<Vec<Alias>, VersionError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, function)?;
        let rows: Vec<(Alias, String)> = tx
            .prepare(
                "SELECT function, name, version, routing, description, revision FROM aliases \
                 WHERE function = ?1 ORDER BY name",
            )?
            .query_map(params![function], alias_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .map(alias_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Deletes alias `function:name`.
    pub fn delete_alias(&self, function: &str, name: &str) -> Result<Alias, VersionError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let a = read_alias(&tx, function, name)?;
        tx.execute(
            "DELETE FROM aliases WHERE function = ?1 AND name = ?2",
            params![function, name],
        )?;
        tx.commit()?;
        self.qualified.alias(function, name, None);
        Ok(a)
    }
}

fn read_alias(tx: &Transaction<'_>, function: &str, name: &str) -> Result<Alias, VersionError> {
    let row = tx
        .query_row(
            "SELECT function, name, version, routing, description, revision FROM aliases \
             WHERE function = ?1 AND name = ?2",
            params![function, name],
            alias_row,
        )
        .optional()?;
    match row {
        Some(row) => Ok(alias_from_row(row)?),
        None => {
            function_exists(tx, function)?;
            Err(VersionError::AliasNotFound {
                function: function.to_string(),
                alias: name.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::sample;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("f.db")).unwrap();
        (dir, s)
    }

    fn ok(_: &Function) -> Result<(), VersionError> {
        Ok(())
    }

    #[test]
    fn a_version_is_a_snapshot_that_later_changes_do_not_touch() {
        let (_d, s) = open();
        let mut f = sample("f");
        s.insert(&f).unwrap();
        let v1 = s.publish("f", "first", "2026-12-06T00:00:00Z", ok).unwrap();
        assert_eq!(v1.number, 1);
        assert_eq!(v1.config.description, "first");
        // Nothing changed: the same version again.
        assert_eq!(s.publish("f", "", "later", ok).unwrap().number, 1);
        f.memory_mb = 1024;
        f.code_sha256 = "22".repeat(32);
        f.revision = 2;
        s.update(&f).unwrap();
        let v2 = s.publish("f", "", "2026-12-06T00:01:00Z", ok).unwrap();
        assert_eq!((v2.number, v2.config.memory_mb), (2, 1024));
        assert_eq!(v2.config.description, "d", "the function's description");
        // Version 1 still has what it was published with, read back from SQLite.
        drop(s);
        let s = Store::open(&_d.path().join("f.db")).unwrap();
        let v1 = s.get_version("f", 1).unwrap();
        assert_eq!(v1.config.memory_mb, 128);
        assert_eq!(v1.config.code_sha256, "00".repeat(32));
        assert_eq!(v1.config.environment, sample("f").environment);
        // Both bundles are referenced.
        let hashes = s.code_hashes().unwrap();
        assert!(hashes.contains(&"00".repeat(32)) && hashes.contains(&"22".repeat(32)));
    }

    #[test]
    fn numbers_are_never_reused_and_aliases_pin_their_versions() {
        let (_d, s) = open();
        let mut f = sample("f");
        s.insert(&f).unwrap();
        s.publish("f", "", "t", ok).unwrap();
        f.revision = 2;
        s.update(&f).unwrap();
        s.publish("f", "", "t", ok).unwrap();
        let live = Alias {
            function: "f".into(),
            name: "live".into(),
            version: "1".into(),
            routing: Some(Routing {
                version: "2".into(),
                weight: 0.2,
            }),
            description: String::new(),
            revision: 1,
        };
        s.create_alias(&live).unwrap();
        assert!(matches!(
            s.create_alias(&live),
            Err(VersionError::AliasExists { .. })
        ));
        match s.delete_version("f", 2) {
            Err(VersionError::InUse { aliases, .. }) => assert_eq!(aliases, ["live"]),
            other => panic!("deleted a routed-to version: {other:?}"),
        }
        let a = s
            .update_alias("f", "live", |a| {
                a.routing = None;
                Ok(())
            })
            .unwrap();
        assert_eq!(a.revision, 2);
        assert_eq!(s.cached_alias("f", "live"), Some(a));
        s.delete_version("f", 2).unwrap();
        assert!(s.cached_version("f", 2).is_none());
        f.revision = 3;
        s.update(&f).unwrap();
        assert_eq!(s.publish("f", "", "t", ok).unwrap().number, 3);
        let bad = Alias {
            version: "2".into(),
            name: "old".into(),
            ..live.clone()
        };
        assert!(matches!(
            s.create_alias(&bad),
            Err(VersionError::VersionNotFound { .. })
        ));
        // Deleting the function deletes its versions and aliases; numbers restart.
        s.delete("f", false).unwrap();
        assert!(s.cached_alias("f", "live").is_none());
        assert!(matches!(
            s.get_alias("f", "live"),
            Err(VersionError::Store(StoreError::NotFound(_)))
        ));
        s.insert(&f).unwrap();
        assert!(s.list_versions("f").unwrap().is_empty());
        assert!(s.list_aliases("f").unwrap().is_empty());
        assert_eq!(s.publish("f", "", "t", ok).unwrap().number, 1);
    }
}
