//! Databases written before schema versioning (flintd at commit 0a838de, main when
//! versioning was added) open with this build: every function and every metering
//! record reads back intact, and the migrated schema is the one a new database gets.
//!
//! The fixture (tests/fixtures/release-0a838de/) was made by running that flintd with
//! the namespace sandbox, creating `fixture-a` (256 MB, 10 s, two environment variables,
//! a description, reserved concurrency 7) and `fixture-b` (defaults, then its timeout
//! updated to 5 s: revision 2) with the CLI, and invoking each twice (one `fixture-b`
//! call fails on purpose). The tests work on copies: opening migrates in place.

use crate::code::CodeStore;
use crate::metering::store::{self as metering_store, Aggregate};
use crate::schema;
use crate::store::{self, Function, Store};
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-0a838de")
}

/// A copy of the fixture's data directory (databases and code bundles).
fn copy_of_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for db in ["flint.db", "metering.db"] {
        std::fs::copy(fixture().join(db), dir.path().join(db)).unwrap();
    }
    std::fs::create_dir(dir.path().join("code")).unwrap();
    for e in std::fs::read_dir(fixture().join("code")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join("code").join(e.file_name())).unwrap();
    }
    dir
}

fn release_functions() -> Vec<Function> {
    vec![
        Function {
            name: "fixture-a".into(),
            runtime: "nodejs18.x".into(),
            handler: "index.handler".into(),
            memory_mb: 256,
            timeout_s: 10,
            environment: HashMap::from([
                ("GREETING".to_string(), "hello".to_string()),
                ("QUOTED".to_string(), "a \"b\" = c".to_string()),
            ]),
            description: "fixture written by flintd 0a838de".into(),
            code_sha256: "17fc19e80d1142a5fdf41f8c2d7b0c0709ff553487fab9edb16696490c245886".into(),
            code_size: 186,
            last_modified: "2026-12-06T07:50:24.757Z".into(),
            revision: 1,
            reserved_concurrency: Some(7),
            network: crate::sandbox::NetworkMode::None,
            role: None,
            secret_environment: Default::default(),
            // Migration 6: rows from before it keep Lambda's default /tmp size.
            ephemeral_storage_mb: 512,
            layers: Vec::new(),
        },
        Function {
            name: "fixture-b".into(),
            runtime: "nodejs18.x".into(),
            handler: "app.main".into(),
            memory_mb: 128,
            timeout_s: 5,
            environment: HashMap::new(),
            description: String::new(),
            code_sha256: "0fa7fba8d97f610096f794b59d08acdc1b2066ee40a6986264e80a2e37db2fa8".into(),
            code_size: 207,
            last_modified: "2026-12-06T07:50:27.182Z".into(),
            revision: 2,
            reserved_concurrency: None,
            network: crate::sandbox::NetworkMode::None,
            role: None,
            secret_environment: Default::default(),
            // Migration 6: rows from before it keep Lambda's default /tmp size.
            ephemeral_storage_mb: 512,
            layers: Vec::new(),
        },
    ]
}

/// The fixture files themselves are never opened with SQLite (even read-only, a WAL
/// database gets -shm/-wal files next to it): this reads `user_version` from the
/// database header (bytes 60-63, big-endian).
#[test]
fn the_fixture_is_unversioned() {
    for db in ["flint.db", "metering.db"] {
        let bytes = std::fs::read(fixture().join(db)).unwrap();
        assert!(bytes.starts_with(b"SQLite format 3\0"), "{db}");
        let user_version = u32::from_be_bytes(bytes[60..64].try_into().unwrap());
        assert_eq!(user_version, 0, "{db}");
    }
    let left: Vec<_> = std::fs::read_dir(fixture())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with("-wal") || n.to_string_lossy().ends_with("-shm"))
        .collect();
    assert!(
        left.is_empty(),
        "a test opened the fixture in place: {left:?}"
    );
}

#[test]
fn a_release_registry_opens_with_every_function_intact() {
    let dir = copy_of_fixture();
    let path = dir.path().join("flint.db");
    let s = Store::open(&path).unwrap();
    assert_eq!(s.list().unwrap(), release_functions());
    for f in release_functions() {
        assert_eq!(s.get(&f.name).unwrap(), f);
    }

    // Their code bundles are where the rows say, with those hashes.
    let code = CodeStore::open(&dir.path().join("code")).unwrap();
    for f in release_functions() {
        let zip = code.get(&f.code_sha256).unwrap();
        assert_eq!(zip.len() as u64, f.code_size, "{}", f.name);
        let info = crate::code::check_bundle(&zip).unwrap();
        assert_eq!(info.sha256, f.code_sha256, "{}", f.name);
    }
    let hashes = s.code_hashes().unwrap();
    assert_eq!(hashes.len(), 2);

    // The migrated file is at the latest version, with the schema a new database gets.
    drop(s);
    let migrated = Connection::open(&path).unwrap();
    assert_eq!(schema::version(&migrated).unwrap(), store::SCHEMA.latest());
    let fresh_path = dir.path().join("fresh.db");
    drop(Store::open(&fresh_path).unwrap());
    let fresh = Connection::open(&fresh_path).unwrap();
    assert_eq!(
        schema::dump(&migrated).unwrap(),
        schema::dump(&fresh).unwrap()
    );
}

#[test]
fn a_migrated_registry_takes_writes_and_reopens() {
    let dir = copy_of_fixture();
    let path = dir.path().join("flint.db");
    let mut expected = release_functions();
    {
        let s = Store::open(&path).unwrap();
        let mut b = expected[1].clone();
        b.memory_mb = 512;
        b.revision = 3;
        b.reserved_concurrency = Some(2);
        s.update(&b).unwrap();
        expected[1] = b;
        let mut c = expected[0].clone();
        c.name = "fixture-c".into();
        c.revision = 1;
        s.insert(&c).unwrap();
        expected.push(c);
        assert!(matches!(
            s.insert(&expected[0]),
            Err(store::StoreError::Exists(_))
        ));
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.list().unwrap(), expected);
    assert_eq!(s.delete("fixture-a", false).unwrap(), expected.remove(0));
    assert_eq!(s.list().unwrap(), expected);
}

/// One stored invocation, every column.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    request_id: String,
    function: String,
    started_unix_ms: i64,
    duration_ns: i64,
    billed_ms: i64,
    memory_mb: i64,
    init_duration_ns: i64,
    cold_start: bool,
    pool_hit: bool,
    asynchronous: bool,
    outcome: String,
    error_type: String,
}

fn rows(c: &Connection) -> Vec<Row> {
    let mut st = c
        .prepare(
            "SELECT request_id, function, started_unix_ms, duration_ns, billed_ms, memory_mb,
                    init_duration_ns, cold_start, pool_hit, asynchronous, outcome, error_type
             FROM invocations ORDER BY started_unix_ms",
        )
        .unwrap();
    let it = st
        .query_map([], |r| {
            Ok(Row {
                request_id: r.get("request_id")?,
                function: r.get("function")?,
                started_unix_ms: r.get("started_unix_ms")?,
                duration_ns: r.get("duration_ns")?,
                billed_ms: r.get("billed_ms")?,
                memory_mb: r.get("memory_mb")?,
                init_duration_ns: r.get("init_duration_ns")?,
                cold_start: r.get("cold_start")?,
                pool_hit: r.get("pool_hit")?,
                asynchronous: r.get("asynchronous")?,
                outcome: r.get("outcome")?,
                error_type: r.get("error_type")?,
            })
        })
        .unwrap();
    it.collect::<Result<_, _>>().unwrap()
}

#[allow(clippy::too_many_arguments)]
fn row(
    id: &str,
    function: &str,
    started: i64,
    duration_ns: i64,
    billed_ms: i64,
    memory_mb: i64,
    init_ns: i64,
    outcome: &str,
    error_type: &str,
) -> Row {
    Row {
        request_id: id.into(),
        function: function.into(),
        started_unix_ms: started,
        duration_ns,
        billed_ms,
        memory_mb,
        init_duration_ns: init_ns,
        cold_start: init_ns > 0,
        pool_hit: false,
        asynchronous: false,
        outcome: outcome.into(),
        error_type: error_type.into(),
    }
}

#[test]
fn a_release_metering_database_opens_with_every_record_intact() {
    let dir = copy_of_fixture();
    let path = dir.path().join("metering.db");
    let c = metering_store::open(&path).unwrap();
    assert_eq!(
        schema::version(&c).unwrap(),
        metering_store::SCHEMA.latest()
    );
    #[rustfmt::skip]
    let want = vec![
        row("02f468a0-78a1-4bd0-805e-70e2221b7eb6", "fixture-a", 1796543427189, 5082901, 6, 256, 316356447, "success", ""),
        row("177de0a0-3f12-4af5-acf7-f8661bf60324", "fixture-a", 1796543427520, 1864722, 2, 256, 0, "success", ""),
        row("f854d3aa-fbe9-4394-a1a3-7a6112b6a5ad", "fixture-b", 1796543427530, 6856829, 7, 128, 168265832, "success", ""),
        row("769767f9-ce82-4b8b-9762-05ee6b18230f", "fixture-b", 1796543427713, 3310623, 4, 128, 0, "function_error", "Error"),
    ];
    assert_eq!(rows(&c), want);
    // The sums `flint usage` printed from this file on that release.
    assert_eq!(
        metering_store::aggregate(&c, None, 0).unwrap(),
        vec![
            Aggregate {
                function: "fixture-a".into(),
                requests: 2,
                errors: 0,
                cold_starts: 1,
                billed_ms: 8,
                billed_ms_x_memory_mb: 8 * 256,
            },
            Aggregate {
                function: "fixture-b".into(),
                requests: 2,
                errors: 1,
                cold_starts: 1,
                billed_ms: 11,
                billed_ms_x_memory_mb: 11 * 128,
            },
        ]
    );
    let fresh = metering_store::open(&dir.path().join("fresh.db")).unwrap();
    assert_eq!(schema::dump(&c).unwrap(), schema::dump(&fresh).unwrap());
}
