//! The microVM snapshot store: `<data dir>/vm-snapshots/<family>-<hash>/`, one
//! flint-vmm snapshot per (runtime, memory size) and set of inputs
//! ([`SnapshotKey`]). A snapshot is built in `<name>.building` and renamed into place
//! once complete, so a directory with the final name is always whole; building one
//! deletes the family's snapshots of older inputs. One build at a time per key; a key
//! whose build failed is tried again only after [`BUILD_RETRY_AFTER`] (starts boot
//! meanwhile). Counters of how microVMs started feed the agent's metrics.

use super::snapshot_key::{SnapshotKey, FUNCTION_FAMILY};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The file in a snapshot directory naming its inputs.
pub const KEY_FILE: &str = "flint-snapshot-key.txt";
const BUILDING: &str = ".building";
/// Most function snapshots (a runtime snapshotted waiting, one per function and memory
/// size) kept; building one more deletes the least recently restored.
pub const FUNCTION_SNAPSHOTS_KEPT: usize = 16;
/// How long after a failed build starts of that key boot instead of building again.
pub const BUILD_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How microVMs started, since the agent started (`flint_microvm_starts_total`).
#[derive(Debug, Default)]
pub struct StartCounts {
    /// Booted from the kernel: snapshots off, or a fallback.
    pub boots: AtomicU64,
    /// Booted to flint-init's Hello and snapshotted (that VM then ends).
    pub snapshot_builds: AtomicU64,
    /// Snapshot builds that failed (the start then boots).
    pub snapshot_build_failures: AtomicU64,
    /// Restored from a snapshot taken at Hello, flint-init reconnected.
    pub restores: AtomicU64,
    /// Restored from a function's snapshot taken with its runtime waiting.
    pub restores_waiting: AtomicU64,
    /// Restores that failed and fell back to a boot (the snapshot is deleted).
    pub restore_failures: AtomicU64,
}

/// The process's counts (one microVM backend per agent).
pub static STARTS: StartCounts = StartCounts {
    boots: AtomicU64::new(0),
    snapshot_builds: AtomicU64::new(0),
    snapshot_build_failures: AtomicU64::new(0),
    restores: AtomicU64::new(0),
    restores_waiting: AtomicU64::new(0),
    restore_failures: AtomicU64::new(0),
};

impl StartCounts {
    /// `(how, count)` pairs for the metric's `how` label.
    pub fn samples(&self) -> [(&'static str, u64); 6] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("boot", g(&self.boots)),
            ("snapshot_build", g(&self.snapshot_builds)),
            ("snapshot_build_failed", g(&self.snapshot_build_failures)),
            ("restore", g(&self.restores)),
            ("restore_runtime_waiting", g(&self.restores_waiting)),
            ("restore_failed", g(&self.restore_failures)),
        ]
    }

    /// Adds one to `c`.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Errors of the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation in the store failed
    #[error("microVM snapshot store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The snapshot directories.
pub struct Snapshots {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Keys whose build failed, and when.
    failed: Mutex<HashMap<String, Instant>>,
}

impl Snapshots {
    /// The store in `root`, created if missing; half-built snapshots of an earlier run
    /// are removed.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).map_err(io(root))?;
        for e in std::fs::read_dir(root).map_err(io(root))?.flatten() {
            if e.file_name().to_string_lossy().ends_with(BUILDING) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(Snapshots {
            root: root.to_path_buf(),
            locks: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        })
    }

    /// Where `key`'s snapshot lives once built.
    pub fn dir(&self, key: &SnapshotKey) -> PathBuf {
        self.root.join(key.dir_name())
    }

    /// `key`'s snapshot directory when it is built.
    pub fn ready(&self, key: &SnapshotKey) -> Option<PathBuf> {
        let dir = self.dir(key);
        dir.join(KEY_FILE).is_file().then_some(dir)
    }

    /// True when building `key` failed less than [`BUILD_RETRY_AFTER`] ago.
    pub fn failed_before(&self, key: &SnapshotKey) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key.hash)
            .is_some_and(|at| at.elapsed() < BUILD_RETRY_AFTER)
    }

    /// Remembers that building `key` failed.
    pub fn mark_failed(&self, key: &SnapshotKey) {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.hash.clone(), Instant::now());
    }

    /// The lock that serialises builds of `key`.
    pub fn build_lock(&self, key: &SnapshotKey) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.hash.clone())
            .or_default()
            .clone()
    }

    /// An empty directory to build `key`'s snapshot in (`<name>.building`).
    pub fn start_build(&self, key: &SnapshotKey) -> Result<PathBuf, StoreError> {
        let tmp = self.root.join(format!("{}{BUILDING}", key.dir_name()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(io(&tmp))?;
        Ok(tmp)
    }

    /// Makes the snapshot built in `tmp` `key`'s: owned by root, readable by every
    /// jailed VMM's uid (each restore runs as its own), the key file written, renamed
    /// into place; then deletes the family's snapshots of other inputs.
    pub fn finish_build(&self, key: &SnapshotKey, tmp: &Path) -> Result<PathBuf, StoreError> {
        for e in std::fs::read_dir(tmp).map_err(io(tmp))?.flatten() {
            let p = e.path();
            std::os::unix::fs::chown(&p, Some(0), Some(0)).map_err(io(&p))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).map_err(io(&p))?;
        }
        let key_file = tmp.join(KEY_FILE);
        std::fs::write(&key_file, &key.inputs).map_err(io(&key_file))?;
        std::os::unix::fs::chown(tmp, Some(0), Some(0)).map_err(io(tmp))?;
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).map_err(io(tmp))?;
        let dir = self.dir(key);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(tmp, &dir).map_err(io(&dir))?;
        self.remove_others(key);
        if key.family.contains(FUNCTION_FAMILY) {
            self.keep_recent_functions(FUNCTION_SNAPSHOTS_KEPT);
        }
        Ok(dir)
    }

    /// Notes that `key`'s snapshot was restored just now (its key file's time), for
    /// [`Self::keep_recent_functions`].
    pub fn used(&self, key: &SnapshotKey) {
        let file = self.dir(key).join(KEY_FILE);
        let touched = std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        if let Err(e) = touched {
            tracing::debug!(file = %file.display(), error = %e, "cannot mark a microVM snapshot used");
        }
    }

    /// Deletes function snapshots beyond the `kept` most recently built or restored.
    /// VMs running from a deleted one keep their mapping of its memory file.
    fn keep_recent_functions(&self, kept: usize) {
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return;
        };
        let mut functions: Vec<(std::time::SystemTime, PathBuf)> = rd
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.contains(FUNCTION_FAMILY) && !name.ends_with(BUILDING)
            })
            .filter_map(|e| {
                let at = std::fs::metadata(e.path().join(KEY_FILE))
                    .ok()?
                    .modified()
                    .ok()?;
                Some((at, e.path()))
            })
            .collect();
        functions.sort();
        let excess = functions.len().saturating_sub(kept);
        for (_, dir) in functions.into_iter().take(excess) {
            let _ = std::fs::remove_dir_all(&dir);
            tracing::info!(snapshot = %dir.display(), kept, "deleted the least recently used function microVM snapshot");
        }
    }

    /// Deletes a snapshot that failed to restore, so the next start builds it again.
    pub fn discard(&self, key: &SnapshotKey) {
        let dir = self.dir(key);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::warn!(snapshot = %dir.display(), "deleted a microVM snapshot that failed to restore")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(snapshot = %dir.display(), error = %e, "cannot delete a microVM snapshot")
            }
        }
    }

    /// Deletes `key`'s family's snapshots made from other inputs.
    fn remove_others(&self, key: &SnapshotKey) {
        let prefix = format!("{}-", key.family);
        let keep = key.dir_name();
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let other = name
                .strip_prefix(&prefix)
                .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if other && name != keep {
                let _ = std::fs::remove_dir_all(e.path());
                tracing::info!(snapshot = %name, "deleted a microVM snapshot of older inputs");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(family: &str, hash: &str) -> SnapshotKey {
        SnapshotKey {
            family: family.into(),
            hash: format!("{hash:0<64}"),
            inputs: "kernel=x\n".into(),
        }
    }

    #[test]
    fn a_build_replaces_the_familys_older_snapshot_only() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("vm-snapshots");
        let s = Snapshots::open(&root).unwrap();
        let (old, new, other) = (
            key("py-128mb", "aa"),
            key("py-128mb", "bb"),
            key("py-256mb", "aa"),
        );
        for k in [&old, &other] {
            let tmp = s.start_build(k).unwrap();
            std::fs::write(tmp.join("memory"), b"m").unwrap();
            s.finish_build(k, &tmp).unwrap();
        }
        assert!(s.ready(&old).is_some() && s.ready(&other).is_some());
        assert!(s.ready(&new).is_none());
        let tmp = s.start_build(&new).unwrap();
        assert!(
            s.ready(&new).is_none(),
            "a half-built snapshot is not ready"
        );
        s.finish_build(&new, &tmp).unwrap();
        assert!(s.ready(&new).is_some());
        assert!(s.ready(&old).is_none(), "older inputs' snapshot deleted");
        assert!(s.ready(&other).is_some(), "another memory size is kept");
        let mode = std::fs::metadata(s.dir(&other).join("memory"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        s.discard(&new);
        assert!(s.ready(&new).is_none());
        assert!(!s.failed_before(&new));
        s.mark_failed(&new);
        assert!(s.failed_before(&new) && !s.failed_before(&old));
        // A half-built snapshot left by a crash is removed when the store opens.
        let tmp = s.start_build(&old).unwrap();
        drop(s);
        Snapshots::open(&root).unwrap();
        assert!(!tmp.exists());
    }

    #[test]
    fn function_snapshots_beside_the_pools_and_only_the_recent_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let s = Snapshots::open(&d.path().join("vm-snapshots")).unwrap();
        let build = |k: &SnapshotKey| {
            let tmp = s.start_build(k).unwrap();
            s.finish_build(k, &tmp).unwrap();
        };
        let pool = key("java17-128mb", "aa");
        build(&pool);
        let function = |n: usize| key(&format!("java17-128mb{FUNCTION_FAMILY}{n:012x}"), "cc");
        let kept = FUNCTION_SNAPSHOTS_KEPT;
        for n in 0..kept {
            build(&function(n));
        }
        // The pool's Hello snapshot and a function's of the same runtime and size do
        // not replace each other.
        assert!(s.ready(&pool).is_some());
        assert!((0..kept).all(|n| s.ready(&function(n)).is_some()));
        // Restoring the oldest makes it recent; one more build deletes the next oldest.
        let past = std::time::SystemTime::now() - Duration::from_secs(60);
        for n in 0..kept {
            let f = std::fs::File::options()
                .write(true)
                .open(s.dir(&function(n)).join(KEY_FILE))
                .unwrap();
            f.set_modified(past + Duration::from_secs(n as u64))
                .unwrap();
        }
        s.used(&function(0));
        build(&function(kept));
        assert!(s.ready(&function(0)).is_some(), "restored recently");
        assert!(s.ready(&function(1)).is_none(), "least recently used");
        assert!((2..=kept).all(|n| s.ready(&function(n)).is_some()));
        assert!(
            s.ready(&pool).is_some(),
            "the pool's snapshot is not counted"
        );
        // The pool's snapshot rebuilt from new inputs leaves the functions' alone.
        build(&key("java17-128mb", "dd"));
        assert!(s.ready(&pool).is_none());
        assert!((2..=kept).all(|n| s.ready(&function(n)).is_some()));
    }
}
