//! Mounts handed over by flintd as descriptors (namespace sandbox only): a detached
//! mount (from `open_tree(OPEN_TREE_CLONE)` or `fsmount`, made in the host's mount
//! namespace) is attached at a path in the sandbox's own namespace with `move_mount`.
//! The code bundle comes this way with Configure (read-only, unpacked once per code
//! hash on the host), and the disk-backed /tmp at launch.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `move_mount` flag: the source is the descriptor itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Attaching a handed-over mount failed.
#[derive(Debug, thiserror::Error)]
#[error("attaching the mount flintd handed over at {target}: {source}")]
pub struct HostMountError {
    /// The mount point.
    pub target: String,
    /// The error.
    pub source: std::io::Error,
}

/// Attaches the detached mount `tree` at `target` (an existing directory); the
/// descriptor is closed afterwards.
pub fn attach(tree: OwnedFd, target: &Path) -> Result<(), HostMountError> {
    let err = |source| HostMountError {
        target: target.display().to_string(),
        source,
    };
    let path = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| err(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
    let empty = c"";
    // SAFETY: both strings are NUL-terminated and outlive the call; `tree` is an open
    // descriptor owned here.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(())
}
