//! flintd's own disk: the data directory's free space, checked before new work that
//! writes to it (`--min-free-disk-mb`), and its use by part for the metrics
//! (`usage.rs`, `metrics.rs`). New code (CreateFunction, UpdateFunctionCode) and new
//! events (Event invocations, trigger events) are refused with a clear error while the
//! file system holding the data directory has less free space than the floor, so the
//! disk never fills up under the registry, the event queue or the metering database;
//! synchronous invocations, reads and deletes keep working.

pub(crate) mod metrics;
pub(crate) mod usage;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Default of `--min-free-disk-mb`.
pub const MIN_FREE_DEFAULT_MB: u64 = 256;

/// New work refused because the data directory's file system is nearly full.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{what} refused: the file system of flintd's data directory {dir} has {free_mb} MB free, \
     below the {floor_mb} MB flintd keeps free (--min-free-disk-mb); free space there (delete \
     unused functions or other files on that file system) or give it more space, then retry; \
     synchronous invocations still run"
)]
pub struct LowDisk {
    /// What was refused, e.g. "CreateFunction".
    pub what: &'static str,
    pub dir: String,
    pub free_mb: u64,
    pub floor_mb: u64,
}

/// The data directory's free-space floor and its refusal counter.
pub struct Disk {
    dir: PathBuf,
    floor_bytes: u64,
    refused: AtomicU64,
    usage: usage::Cached,
}

/// Bytes available to unprivileged writers on the file system holding `dir`
/// (statvfs `f_bavail`), or `None` if it cannot be read.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

impl Disk {
    /// The data directory `dir`, keeping `floor_mb` MB free (0: never refuse).
    pub fn new(dir: &Path, floor_mb: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            floor_bytes: floor_mb.saturating_mul(1 << 20),
            refused: AtomicU64::new(0),
            usage: usage::Cached::new(dir),
        }
    }

    /// The floor in bytes.
    pub fn floor_bytes(&self) -> u64 {
        self.floor_bytes
    }

    /// Free bytes now (0 if unknown).
    pub fn free_bytes(&self) -> u64 {
        free_bytes(&self.dir).unwrap_or(0)
    }

    /// Work refused so far for lack of disk.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The data directory's use by part (cached for a few seconds).
    pub fn usage(&self) -> usage::Usage {
        self.usage.get()
    }

    /// Refuses `what` while the free space is below the floor. A file system whose
    /// free space cannot be read is not refused (the write itself will say why).
    pub fn check(&self, what: &'static str) -> Result<(), LowDisk> {
        if self.floor_bytes == 0 {
            return Ok(());
        }
        let Some(free) = free_bytes(&self.dir) else {
            return Ok(());
        };
        if free >= self.floor_bytes {
            return Ok(());
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        let e = LowDisk {
            what,
            dir: self.dir.display().to_string(),
            free_mb: free >> 20,
            floor_mb: self.floor_bytes >> 20,
        };
        tracing::warn!(free_bytes = free, floor_bytes = self.floor_bytes, "{e}");
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_above_the_free_space_refuses_naming_the_directory_and_both_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let ok = Disk::new(dir.path(), 1);
        assert_eq!(ok.check("CreateFunction"), Ok(()));
        let off = Disk::new(dir.path(), 0);
        assert_eq!(off.check("CreateFunction"), Ok(()));
        // A floor of twice what is free always refuses.
        let floor_mb = (free >> 20) * 2 + 1;
        let full = Disk::new(dir.path(), floor_mb);
        let e = full.check("an Event invocation").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("an Event invocation refused"), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains(&format!("below the {floor_mb} MB")), "{msg}");
        assert!(msg.contains("--min-free-disk-mb"), "{msg}");
        assert_eq!(full.refused(), 1);
    }
}
