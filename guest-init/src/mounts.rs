//! The per-function mounts made on Configure: a writable tmpfs /tmp and a tmpfs
//! /var/task that is remounted read-only once the code is unpacked.

use nix::mount::{mount, MsFlags};
use std::path::Path;

/// Default size of /tmp in MB when Configure leaves it 0.
pub const DEFAULT_TMP_MB: u32 = 512;
/// Size cap of /var/task: Lambda's 250 MB unzipped limit, rounded up.
pub const TASK_MB: u32 = 256;

/// A mount failed.
#[derive(Debug, thiserror::Error)]
#[error("mounting {what} on {target}: {source}")]
pub struct MountError {
    /// What was being mounted.
    pub what: &'static str,
    /// The mount point.
    pub target: String,
    /// The error.
    pub source: nix::Error,
}

fn err(what: &'static str, target: &Path) -> impl FnOnce(nix::Error) -> MountError {
    let target = target.display().to_string();
    move |source| MountError {
        what,
        target,
        source,
    }
}

/// Mounts a tmpfs of `size_mb` MB with `mode` on `target`.
pub fn tmpfs(target: &Path, size_mb: u32, mode: u32, flags: MsFlags) -> Result<(), MountError> {
    let data = format!("size={}m,mode={:o}", size_mb, mode);
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        flags,
        Some(data.as_str()),
    )
    .map_err(err("tmpfs", target))
}

/// Mounts /tmp: `tmp_mb` MB (default 512), mode 1777, nosuid, nodev.
pub fn tmp(target: &Path, tmp_mb: u32) -> Result<(), MountError> {
    let size = if tmp_mb == 0 { DEFAULT_TMP_MB } else { tmp_mb };
    tmpfs(target, size, 0o1777, MsFlags::MS_NOSUID | MsFlags::MS_NODEV)
}

/// Mounts the (still writable) tmpfs for /var/task.
pub fn task(target: &Path) -> Result<(), MountError> {
    tmpfs(
        target,
        TASK_MB,
        0o755,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
}

/// Remounts the mount at `target` read-only (nosuid, nodev kept).
pub fn remount_readonly(target: &Path) -> Result<(), MountError> {
    let flags = MsFlags::MS_REMOUNT
        | MsFlags::MS_BIND
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(err("read-only remount", target))
}
