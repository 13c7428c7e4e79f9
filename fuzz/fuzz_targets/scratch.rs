// A scratch directory per fuzz process (included by the targets that unpack).

/// `/tmp/flint-fuzz-<pid>`, created empty.
pub fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("flint-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch directory");
    d
}

/// Removes what an iteration left.
pub fn clear(d: &std::path::Path) {
    let _ = std::fs::remove_dir_all(d);
}
