//! The function registry: an embedded SQLite database in the data directory.
//! Every function's configuration survives an agent restart.

use crate::sandbox::NetworkMode;
use crate::schema::{Schema, SchemaError};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, ToSql};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no
    #[error("function database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database cannot be opened or migrated
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A stored row could not be read back
    #[error("function database holds a corrupt row for {0}")]
    Corrupt(String),
    /// Name taken
    #[error("function {0} already exists: pick another name or update it")]
    Exists(String),
    /// Unknown name
    #[error("function {0} not found: create it first (flint create) or check the name (flint ls)")]
    NotFound(String),
    /// Deleting a function that triggers still invoke
    #[error(
        "function {function} has triggers: {}; delete them first (flint triggers delete NAME) \
         or delete the function with --force, which deletes them too",
        triggers.join(", ")
    )]
    HasTriggers {
        function: String,
        triggers: Vec<String>,
    },
}

/// One function's configuration as stored. A published version keeps a copy of it as
/// one JSON snapshot ([`versions`]): a new setting is a new field here and nothing
/// more (`#[serde(default)]` lets snapshots from before the field read back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Function {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub environment: HashMap<String, String>,
    pub description: String,
    pub code_sha256: String,
    pub code_size: u64,
    /// RFC 3339, UTC.
    pub last_modified: String,
    /// Bumped on every change; instances of an older revision are retired.
    pub revision: u64,
    /// Reserved concurrency, if set.
    pub reserved_concurrency: Option<u32>,
    /// Loopback only or outbound access (docs/NETWORK.md).
    pub network: NetworkMode,
    /// The execution role (docs/ROLES.md), if any.
    pub role: Option<String>,
    /// Secret environment variables, each sealed with the operator key
    /// ([`crate::secrets::seal`]); opened only to build the sandbox's environment.
    pub secret_environment: BTreeMap<String, String>,
    /// Size of the instance's /tmp in MB (Lambda's ephemeral storage); snapshots from
    /// before the setting read back as the default.
    #[serde(default = "default_ephemeral_mb")]
    pub ephemeral_storage_mb: u32,
    /// The layer versions extracted under /opt, in order ([`layers`]); snapshots
    /// from before layers read back as none.
    pub layers: Vec<layers::LayerRef>,
}

fn default_ephemeral_mb() -> u32 {
    crate::limits::TMP_MB
}

impl Default for Function {
    fn default() -> Self {
        Function {
            name: String::new(),
            runtime: String::new(),
            handler: String::new(),
            memory_mb: 0,
            timeout_s: 0,
            environment: HashMap::new(),
            description: String::new(),
            code_sha256: String::new(),
            code_size: 0,
            last_modified: String::new(),
            revision: 0,
            reserved_concurrency: None,
            network: NetworkMode::default(),
            role: None,
            secret_environment: BTreeMap::new(),
            ephemeral_storage_mb: default_ephemeral_mb(),
            layers: Vec::new(),
        }
    }
}

/// The SQLite-backed registry.
pub struct Store {
    conn: Mutex<Connection>,
    /// Function rows by name, as last read or written through this store, so that a
    /// warm invocation reads its function without SQLite. Changed only while `conn` is
    /// held, right after the statement that read or changed the row: once the
    /// connection lock is released the cache never holds a row older than the
    /// database. flintd is the database's only writer.
    rows: RwLock<HashMap<String, Function>>,
    /// Published versions and aliases as last read or written, kept as `rows` is.
    qualified: versions::Cache,
    /// Which functions have file-event triggers, kept as `rows` is.
    file_triggers: file_triggers::Index,
}

/// The registry's schema. Append a migration to change it; never edit a released one
/// (agent/README.md, "Schema migrations").
pub const SCHEMA: Schema = Schema {
    name: "function database",
    migrations: &[
        // 1: the schema flintd wrote before versioning (up to commit 0a838de), adopted
        // as it is.
        "CREATE TABLE IF NOT EXISTS functions (
    name          TEXT PRIMARY KEY,
    runtime       TEXT NOT NULL,
    handler       TEXT NOT NULL,
    memory_mb     INTEGER NOT NULL,
    timeout_s     INTEGER NOT NULL,
    environment   TEXT NOT NULL,
    description   TEXT NOT NULL,
    code_sha256   TEXT NOT NULL,
    code_size     INTEGER NOT NULL,
    last_modified TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    reserved_concurrency INTEGER
);",
        // 2: triggers (agent/src/triggers/store.rs). `spec` is the kind's settings as
        // JSON; times are RFC 3339 UTC with milliseconds.
        "CREATE TABLE triggers (
    name       TEXT PRIMARY KEY,
    function   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    created    TEXT NOT NULL,
    last_fire  TEXT,
    last_error TEXT,
    next_fire  TEXT
);
CREATE INDEX triggers_by_function ON triggers (function);",
        // 3: the function's network setting; functions from before it keep loopback only.
        "ALTER TABLE functions ADD COLUMN network TEXT NOT NULL DEFAULT 'none';",
        // 4: execution roles and secrets (docs/ROLES.md). A function names at most one
        // role; its secret environment is a JSON object of sealed values (never
        // plain text). `policy` is the role's policy as JSON; `secrets.value` is sealed.
        "ALTER TABLE functions ADD COLUMN role TEXT;
ALTER TABLE functions ADD COLUMN secret_environment TEXT NOT NULL DEFAULT '{}';
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    policy      TEXT NOT NULL,
    description TEXT NOT NULL,
    created     TEXT NOT NULL
);
CREATE TABLE secrets (
    name    TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX functions_by_role ON functions (role);",
        // 5: published versions and aliases (store/versions.rs). A
        // version's `config` is the function's row as JSON ([`Function`]), frozen at
        // publish; `code_sha256` repeats its bundle for code garbage collection.
        // `version_numbers` keeps each function's last number, so a deleted version's
        // number is never given again. An alias's `routing` is JSON: null or
        // {\"version\": \"2\", \"weight\": 0.2}.
        "CREATE TABLE versions (
    function    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    code_sha256 TEXT NOT NULL,
    config      TEXT NOT NULL,
    created     TEXT NOT NULL,
    PRIMARY KEY (function, version)
);
CREATE INDEX versions_by_code ON versions (code_sha256);
CREATE TABLE version_numbers (
    function TEXT PRIMARY KEY,
    last     INTEGER NOT NULL
);
CREATE TABLE aliases (
    function    TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    routing     TEXT NOT NULL,
    description TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    PRIMARY KEY (function, name)
);",
        // 6: the instance's /tmp size (ephemeral storage); functions
        // from before it keep Lambda's default.
        "ALTER TABLE functions ADD COLUMN ephemeral_storage_mb INTEGER NOT NULL DEFAULT 512;",
        // 7 (after the merge): layers (store/layers.rs). A layer version's row stays
        // after DeleteLayerVersion (`deleted` = 1), so its number is never given again
        // and functions that name it keep running; `compatible_runtimes` is a JSON
        // array. A function's `layers` is its ordered list as JSON ([`layers::LayerRef`]),
        // each entry with the bundle's sha256 (code garbage collection reads it).
        "CREATE TABLE layers (
    name                TEXT NOT NULL,
    version             INTEGER NOT NULL,
    code_sha256         TEXT NOT NULL,
    code_size           INTEGER NOT NULL,
    unpacked_size       INTEGER NOT NULL,
    description         TEXT NOT NULL,
    compatible_runtimes TEXT NOT NULL,
    created             TEXT NOT NULL,
    deleted             INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, version)
);
ALTER TABLE functions ADD COLUMN layers TEXT NOT NULL DEFAULT '[]';",
    ],
};

/// The columns a [`Function`] is read from, named (never `SELECT *`).
macro_rules! function_columns {
    () => {
        "name, runtime, handler, memory_mb, timeout_s, environment, description, \
         code_sha256, code_size, last_modified, revision, reserved_concurrency, network, role, \
         secret_environment, ephemeral_storage_mb, layers"
    };
}

// After the macro: versions read function rows with it.
pub mod file_triggers;
pub mod layers;
pub mod versions;

impl Store {
    /// Opens (creating) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = SCHEMA.open(path, BUSY_TIMEOUT)?;
        Ok(Self {
            conn: Mutex::new(conn),
            rows: RwLock::new(HashMap::new()),
            qualified: versions::Cache::default(),
            file_triggers: file_triggers::Index::default(),
        })
    }

    /// The function's row if this store has read or written it (no SQLite): the row
    /// as the database holds it now. `None` says nothing about whether it exists; ask
    /// [`Store::get`].
    pub fn cached(&self, name: &str) -> Option<Function> {
        self.rows
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Records what the database now holds for `name` (call with `conn` held).
    fn remember(&self, name: &str, row: Option<&Function>) {
        let mut rows = self.rows.write().unwrap_or_else(|p| p.into_inner());
        match row {
            Some(f) => rows.insert(name.to_string(), f.clone()),
            None => rows.remove(name),
        };
    }

    /// The file-event trigger index, for the trigger table's writers (call with the
    /// connection held, right after the statement).
    pub(crate) fn file_triggers(&self) -> &file_triggers::Index {
        &self.file_triggers
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: each
        // statement is atomic. Keep serving.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts a new function; fails if the name is taken.
    pub fn insert(&self, f: &Function) -> Result<(), StoreError> {
        let values = bind(f)?;
        let conn = self.lock();
        let r = conn.execute(
            concat!(
                "INSERT INTO functions (",
                function_columns!(),
                ") VALUES (:name, :runtime, :handler, :memory_mb, :timeout_s, :environment, \
                 :description, :code_sha256, :code_size, :last_modified, :revision, \
                 :reserved_concurrency, :network, :role, :secret_environment, \
                 :ephemeral_storage_mb, :layers)"
            ),
            named(&values).as_slice(),
        );
        match r {
            Ok(_) => {
                self.remember(&f.name, Some(f));
                Ok(())
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Exists(f.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces an existing function's row.
    pub fn update(&self, f: &Function) -> Result<(), StoreError> {
        let values = bind(f)?;
        let conn = self.lock();
        let n = conn.execute(
            "UPDATE functions SET runtime = :runtime, handler = :handler, \
             memory_mb = :memory_mb, timeout_s = :timeout_s, environment = :environment, \
             description = :description, code_sha256 = :code_sha256, code_size = :code_size, \
             last_modified = :last_modified, revision = :revision, \
             reserved_concurrency = :reserved_concurrency, network = :network, role = :role, \
             secret_environment = :secret_environment, \
             ephemeral_storage_mb = :ephemeral_storage_mb, layers = :layers WHERE name = :name",
            named(&values).as_slice(),
        )?;
        if n == 0 {
            self.remember(&f.name, None);
            return Err(StoreError::NotFound(f.name.clone()));
        }
        self.remember(&f.name, Some(f));
        Ok(())
    }

    /// Reads one function.
    pub fn get(&self, name: &str) -> Result<Function, StoreError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                concat!(
                    "SELECT ",
                    function_columns!(),
                    " FROM functions WHERE name = ?1"
                ),
                params![name],
                row_to_raw,
            )
            .optional()?;
        let f = match row {
            Some(raw) => raw.into_function()?,
            None => {
                self.remember(name, None);
                return Err(StoreError::NotFound(name.to_string()));
            }
        };
        self.remember(name, Some(&f));
        Ok(f)
    }

    /// Every function, by name.
    pub fn list(&self) -> Result<Vec<Function>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(concat!(
            "SELECT ",
            function_columns!(),
            " FROM functions ORDER BY name"
        ))?;
        let rows = stmt.query_map([], row_to_raw)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.into_function()?);
        }
        Ok(out)
    }

    /// The sha256 of every code bundle some function references, and every layer
    /// bundle a live layer version or a function names.
    pub fn code_hashes(&self) -> Result<HashSet<String>, StoreError> {
        let conn = self.lock();
        // Published versions keep their bundles too, and the layers they name.
        let mut stmt = conn.prepare(
            "SELECT code_sha256 FROM functions UNION SELECT code_sha256 FROM versions \
             UNION SELECT code_sha256 FROM layers WHERE deleted = 0 \
             UNION SELECT json_extract(l.value, '$.sha256') FROM functions, \
                   json_each(functions.layers) AS l \
             UNION SELECT json_extract(l.value, '$.sha256') FROM versions, \
                   json_each(versions.config, '$.layers') AS l",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a function; returns its last configuration. A function that triggers
    /// name is refused ([`StoreError::HasTriggers`]) unless `force`, which deletes
    /// those triggers in the same transaction.
    pub fn delete(&self, name: &str, force: bool) -> Result<Function, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let triggers: Vec<String> = tx
            .prepare("SELECT name FROM triggers WHERE function = ?1 ORDER BY name")?
            .query_map(params![name], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !triggers.is_empty() {
            if !force {
                return Err(StoreError::HasTriggers {
                    function: name.to_string(),
                    triggers,
                });
            }
            tx.execute("DELETE FROM triggers WHERE function = ?1", params![name])?;
        }
        let row = tx
            .query_row(
                concat!(
                    "DELETE FROM functions WHERE name = ?1 RETURNING ",
                    function_columns!()
                ),
                params![name],
                row_to_raw,
            )
            .optional()?;
        let f = match row {
            Some(raw) => raw.into_function()?,
            None => return Err(StoreError::NotFound(name.to_string())),
        };
        // Its versions and aliases go with it, and its version numbers start again.
        versions::delete_all(&tx, name)?;
        tx.commit()?;
        self.remember(name, None);
        self.qualified.forget_function(name);
        self.file_triggers.function_deleted(name);
        Ok(f)
    }
}

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A function's values by parameter name.
fn bind(f: &Function) -> Result<[(&'static str, Value); 17], StoreError> {
    let env =
        serde_json::to_string(&f.environment).map_err(|_| StoreError::Corrupt(f.name.clone()))?;
    let secret_env = serde_json::to_string(&f.secret_environment)
        .map_err(|_| StoreError::Corrupt(f.name.clone()))?;
    let layers =
        serde_json::to_string(&f.layers).map_err(|_| StoreError::Corrupt(f.name.clone()))?;
    Ok([
        (":name", Value::Text(f.name.clone())),
        (":runtime", Value::Text(f.runtime.clone())),
        (":handler", Value::Text(f.handler.clone())),
        (":memory_mb", Value::Integer(i64::from(f.memory_mb))),
        (":timeout_s", Value::Integer(i64::from(f.timeout_s))),
        (":environment", Value::Text(env)),
        (":description", Value::Text(f.description.clone())),
        (":code_sha256", Value::Text(f.code_sha256.clone())),
        (":code_size", Value::Integer(f.code_size as i64)),
        (":last_modified", Value::Text(f.last_modified.clone())),
        (":revision", Value::Integer(f.revision as i64)),
        (
            ":reserved_concurrency",
            f.reserved_concurrency
                .map_or(Value::Null, |n| Value::Integer(i64::from(n))),
        ),
        (":network", Value::Text(f.network.as_str().to_string())),
        (":role", f.role.clone().map_or(Value::Null, Value::Text)),
        (":secret_environment", Value::Text(secret_env)),
        (
            ":ephemeral_storage_mb",
            Value::Integer(i64::from(f.ephemeral_storage_mb)),
        ),
        (":layers", Value::Text(layers)),
    ])
}

fn named<'a>(values: &'a [(&'static str, Value)]) -> Vec<(&'static str, &'a dyn ToSql)> {
    values.iter().map(|(k, v)| (*k, v as &dyn ToSql)).collect()
}

struct RawRow {
    f: Function,
    env: String,
    network: String,
    secret_env: String,
    layers: String,
}

fn row_to_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        f: Function {
            name: r.get("name")?,
            runtime: r.get("runtime")?,
            handler: r.get("handler")?,
            memory_mb: r.get("memory_mb")?,
            timeout_s: r.get("timeout_s")?,
            environment: HashMap::new(),
            description: r.get("description")?,
            code_sha256: r.get("code_sha256")?,
            code_size: r.get::<_, i64>("code_size")? as u64,
            last_modified: r.get("last_modified")?,
            revision: r.get::<_, i64>("revision")? as u64,
            reserved_concurrency: r.get("reserved_concurrency")?,
            network: NetworkMode::None,
            role: r.get("role")?,
            secret_environment: BTreeMap::new(),
            ephemeral_storage_mb: r.get("ephemeral_storage_mb")?,
            layers: Vec::new(),
        },
        env: r.get("environment")?,
        network: r.get("network")?,
        secret_env: r.get("secret_environment")?,
        layers: r.get("layers")?,
    })
}

impl RawRow {
    fn into_function(self) -> Result<Function, StoreError> {
        let mut f = self.f;
        f.environment =
            serde_json::from_str(&self.env).map_err(|_| StoreError::Corrupt(f.name.clone()))?;
        f.network = self
            .network
            .parse()
            .map_err(|_| StoreError::Corrupt(f.name.clone()))?;
        f.secret_environment = serde_json::from_str(&self.secret_env)
            .map_err(|_| StoreError::Corrupt(f.name.clone()))?;
        f.layers =
            serde_json::from_str(&self.layers).map_err(|_| StoreError::Corrupt(f.name.clone()))?;
        Ok(f)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(name: &str) -> Function {
        Function {
            name: name.into(),
            runtime: "python3.11".into(),
            handler: "app.handler".into(),
            memory_mb: 128,
            timeout_s: 3,
            environment: [("A".to_string(), "1".to_string())].into(),
            description: "d".into(),
            code_sha256: "00".repeat(32),
            code_size: 10,
            last_modified: "2026-11-27T00:00:00Z".into(),
            revision: 1,
            reserved_concurrency: Some(5),
            network: NetworkMode::Outbound,
            role: Some("reader".into()),
            secret_environment: [("K".to_string(), "fsv1:sealed".to_string())].into(),
            ephemeral_storage_mb: 1024,
            layers: Vec::new(),
        }
    }

    #[test]
    fn ephemeral_storage_is_stored_and_old_snapshots_read_back_as_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("f.db")).unwrap();
        let mut f = sample("e");
        s.insert(&f).unwrap();
        assert_eq!(s.get("e").unwrap().ephemeral_storage_mb, 1024);
        f.ephemeral_storage_mb = 10240;
        s.update(&f).unwrap();
        drop(s);
        let s = Store::open(&dir.path().join("f.db")).unwrap();
        assert_eq!(s.get("e").unwrap().ephemeral_storage_mb, 10240);
        // A version snapshot published before the setting existed has no such field.
        let mut old = serde_json::to_value(sample("e")).unwrap();
        old.as_object_mut().unwrap().remove("ephemeral_storage_mb");
        let back: Function = serde_json::from_value(old).unwrap();
        assert_eq!(back.ephemeral_storage_mb, crate::limits::TMP_MB);
        assert_eq!(Function::default().ephemeral_storage_mb, 512);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("flint.db");
        {
            let s = Store::open(&db).unwrap();
            s.insert(&sample("a")).unwrap();
            s.insert(&sample("b")).unwrap();
            assert!(matches!(s.insert(&sample("a")), Err(StoreError::Exists(_))));
        }
        let s = Store::open(&db).unwrap();
        let all = s.list().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], sample("a"));
    }

    #[test]
    fn update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("f.db")).unwrap();
        let mut f = sample("x");
        assert!(matches!(s.update(&f), Err(StoreError::NotFound(_))));
        s.insert(&f).unwrap();
        f.memory_mb = 512;
        f.revision = 2;
        s.update(&f).unwrap();
        assert_eq!(s.get("x").unwrap().memory_mb, 512);
        s.delete("x", false).unwrap();
        assert!(matches!(s.get("x"), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn the_row_cache_follows_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("f.db");
        let s = Store::open(&db).unwrap();
        let mut f = sample("x");
        s.insert(&f).unwrap();
        assert_eq!(s.cached("x"), Some(f.clone()));
        f.code_sha256 = "11".repeat(32);
        s.update(&f).unwrap();
        assert_eq!(s.cached("x").unwrap().code_sha256, f.code_sha256);
        s.delete("x", false).unwrap();
        assert_eq!(s.cached("x"), None);
        // A failed update of a missing row leaves nothing cached.
        assert!(s.update(&f).is_err());
        assert_eq!(s.cached("x"), None);
        // A store opened on an existing database learns rows as it reads them.
        s.insert(&f).unwrap();
        drop(s);
        let s = Store::open(&db).unwrap();
        assert_eq!(s.cached("x"), None);
        assert_eq!(s.get("x").unwrap(), f);
        assert_eq!(s.cached("x"), Some(f));
    }
}
