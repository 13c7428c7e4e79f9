//! Removal of sandbox cgroups no live sandbox owns: those a killed agent left (at
//! start-up) and any a stopping agent could not remove. A cgroup can only be removed
//! once every process in it has exited and been reaped, which after a SIGKILL of
//! hundreds of sandboxes takes a while: the sweep retries in passes until each
//! leftover is gone, first for a bounded time, then (at start-up) in the background.

use super::cgroup::CONTROLLERS;
use crate::sandbox::SANDBOX_ID_PREFIX;
use cgroups_rs::fs::hierarchies;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long start-up (and stop) wait for leftovers to go.
const WAIT: Duration = Duration::from_secs(5);
/// How long the background sweep keeps retrying what start-up could not remove.
const BACKGROUND: Duration = Duration::from_secs(600);
/// Pause between passes.
const PASS_GAP: Duration = Duration::from_millis(50);

/// The sandbox cgroup directories (named like sandbox ids; nothing else is touched,
/// even when `--cgroup-parent` is shared) under `parent`, in every hierarchy used.
pub fn leftovers(parent: &str) -> Vec<PathBuf> {
    let hier = hierarchies::auto();
    let roots: Vec<PathBuf> = if hier.v2() {
        vec![hier.root().join(parent)]
    } else {
        CONTROLLERS
            .iter()
            .map(|c| Path::new("/sys/fs/cgroup").join(c).join(parent))
            .collect()
    };
    roots.iter().flat_map(|r| sandbox_dirs(r)).collect()
}

/// The directories in `root` named like sandbox ids.
fn sandbox_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(SANDBOX_ID_PREFIX)
        })
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

fn pids_in(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Thaws a possibly frozen sandbox directory (a frozen process does not die of
/// SIGKILL on cgroup v1 until thawed) and lifts its CPU quota (so the killed exit
/// quickly); a directory without the file is left alone.
fn thaw(dir: &Path) {
    use std::io::Write;
    for (file, value) in [
        ("freezer.state", "THAWED"),
        ("cgroup.freeze", "0"),
        ("cpu.cfs_quota_us", "-1"),
        ("cpu.max", "max"),
    ] {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(dir.join(file)) {
            let _ = f.write_all(value.as_bytes());
        }
    }
}

/// One pass: SIGKILL every process in every directory, then remove each directory
/// that is empty; keeps in `dirs` the ones still there. Returns how many went.
fn pass(dirs: &mut Vec<PathBuf>) -> usize {
    for dir in dirs.iter() {
        thaw(dir);
        for pid in pids_in(dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let before = dirs.len();
    dirs.retain(|dir| match std::fs::remove_dir(dir) {
        Ok(()) => false,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    });
    before - dirs.len()
}

/// Passes over `dirs` until all are gone or `within` has passed; returns how many
/// were removed, leaving the rest in `dirs`.
pub fn sweep(dirs: &mut Vec<PathBuf>, within: Duration) -> usize {
    let t0 = Instant::now();
    let mut removed = 0;
    loop {
        removed += pass(dirs);
        if dirs.is_empty() || t0.elapsed() >= within {
            return removed;
        }
        std::thread::sleep(PASS_GAP);
    }
}

/// Start-up: kills and removes the sandboxes an earlier agent run left under
/// `parent`. Waits up to a few seconds; what is still there then is retried by a
/// background thread (only those directories: sandboxes this run makes are never
/// touched). Returns how many were removed before returning.
pub fn remove_stale(parent: &str) -> usize {
    let mut dirs = leftovers(parent);
    let removed = sweep(&mut dirs, WAIT);
    if !dirs.is_empty() {
        tracing::warn!(
            left = dirs.len(),
            "sandbox cgroups of an earlier run are not gone yet; retrying in the background"
        );
        let spawned = std::thread::Builder::new()
            .name("flint-sweep".into())
            .spawn(move || {
                let late = sweep(&mut dirs, BACKGROUND);
                if dirs.is_empty() {
                    tracing::info!(
                        removed = late,
                        "late sandbox cgroups of an earlier run removed"
                    );
                } else {
                    tracing::error!(left = ?dirs, "sandbox cgroups could not be removed");
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the background cgroup sweep");
        }
    }
    removed
}

/// Stop: after every instance was destroyed, removes any sandbox cgroup still under
/// `parent` (waiting a few seconds at most); returns those that stay.
pub fn remove_on_stop(parent: &str) -> Vec<PathBuf> {
    let mut dirs = leftovers(parent);
    let removed = sweep(&mut dirs, WAIT);
    if removed > 0 {
        tracing::info!(removed, "removed sandbox cgroups left at stop");
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_named_like_sandboxes_are_swept() {
        let d = tempfile::tempdir().unwrap();
        for name in ["sbx-0123456789ab", "user-service", "sbx"] {
            std::fs::create_dir(d.path().join(name)).unwrap();
        }
        std::fs::write(d.path().join("sbx-file"), "").unwrap();
        assert_eq!(
            sandbox_dirs(d.path()),
            vec![d.path().join("sbx-0123456789ab")]
        );
    }

    #[test]
    fn a_pass_removes_empty_directories_and_keeps_busy_ones() {
        // Plain directories stand in for cgroups: a non-empty one cannot be removed,
        // like a cgroup with processes.
        let d = tempfile::tempdir().unwrap();
        let empty = d.path().join("sbx-empty");
        let busy = d.path().join("sbx-busy");
        std::fs::create_dir(&empty).unwrap();
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("cgroup.procs"), "").unwrap();
        let gone = d.path().join("sbx-gone");
        let mut dirs = vec![empty.clone(), busy.clone(), gone];
        assert_eq!(pass(&mut dirs), 2, "removed and already gone both count");
        assert_eq!(dirs, vec![busy.clone()]);
        // Retried until it can go.
        let b = busy.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::remove_file(b.join("cgroup.procs")).unwrap();
        });
        assert_eq!(sweep(&mut dirs, Duration::from_secs(5)), 1);
        assert!(dirs.is_empty());
        t.join().unwrap();
    }
}
