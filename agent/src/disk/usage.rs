//! The data directory's size by part: what flintd's own files take on disk
//! (allocated blocks, so a sparse or truncated file counts what it really uses).
//! Walked at most every [`MAX_AGE`]; other file systems mounted inside are skipped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a measurement is reused (a scrape every few seconds walks once).
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// The parts, in metric label order.
pub const PARTS: [&str; 6] = ["code", "registry", "metering", "events", "logs", "other"];

/// Bytes per part of the data directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// In [`PARTS`] order.
    pub bytes: [u64; 6],
}

/// Which part a top-level entry of the data directory belongs to.
fn part_of(name: &str) -> usize {
    let db = |base: &str| name == base || name.starts_with(&format!("{base}-"));
    if name == "code" {
        0
    } else if db("flint.db") {
        1
    } else if db("metering.db") {
        2
    } else if db("events.db") {
        3
    } else if name == "logs" {
        4
    } else {
        5
    }
}

/// Allocated bytes under `p` (not following links, staying on device `dev`).
fn allocated(p: &Path, dev: u64) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if m.dev() != dev {
        return 0;
    }
    let own = m.blocks() * 512;
    if !m.is_dir() {
        return own;
    }
    let Ok(entries) = std::fs::read_dir(p) else {
        return own;
    };
    own + entries
        .flatten()
        .map(|e| allocated(&e.path(), dev))
        .sum::<u64>()
}

/// Measures the data directory `dir` now.
pub fn measure(dir: &Path) -> Usage {
    let mut u = Usage::default();
    let Ok(m) = std::fs::metadata(dir) else {
        return u;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return u;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        u.bytes[part_of(&name)] += allocated(&e.path(), m.dev());
    }
    u
}

/// A measurement reused for [`MAX_AGE`].
pub struct Cached {
    dir: PathBuf,
    last: Mutex<Option<(Instant, Usage)>>,
}

impl Cached {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            last: Mutex::new(None),
        }
    }

    /// The latest measurement, measuring again if it is older than [`MAX_AGE`].
    pub fn get(&self) -> Usage {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, u)) = *last {
            if at.elapsed() < MAX_AGE {
                return u;
            }
        }
        let u = measure(&self.dir);
        *last = Some((Instant::now(), u));
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_counts_in_its_part() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("code")).unwrap();
        std::fs::create_dir_all(d.join("logs")).unwrap();
        let mb = vec![7u8; 1 << 20];
        std::fs::write(d.join("code/abc.zip"), &mb).unwrap();
        std::fs::write(d.join("logs/f.log"), &mb[..4096]).unwrap();
        std::fs::write(d.join("flint.db"), &mb[..8192]).unwrap();
        std::fs::write(d.join("flint.db-wal"), &mb[..8192]).unwrap();
        std::fs::write(d.join("metering.db"), &mb[..4096]).unwrap();
        std::fs::write(d.join("events.db-shm"), &mb[..4096]).unwrap();
        std::fs::write(d.join("role-signing.key"), b"k").unwrap();
        let u = measure(d);
        let [code, registry, metering, events, logs, other] = u.bytes;
        assert!(code >= 1 << 20, "{u:?}");
        assert!(registry >= 16384, "{u:?}");
        assert!(
            metering >= 4096 && events >= 4096 && logs >= 4096 && other > 0,
            "{u:?}"
        );
        assert!(code < (1 << 20) + 65536, "{u:?}");
    }
}
