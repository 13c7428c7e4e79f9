//! The code of a namespace-sandbox instance: a detached, read-only (nosuid, nodev)
//! copy of the bundle's directory unpacked once on the host ([`crate::unpacked`]),
//! sent to flint-init with Configure (SCM_RIGHTS) and attached at /var/task. One
//! host directory serves every instance of that code; nothing is written per
//! instance and nothing counts against the instance's memory.

use super::mount_api::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use std::os::fd::OwnedFd;
use std::path::Path;

/// A detached read-only mount of the unpacked bundle at `dir`.
pub fn read_only_tree(dir: &Path) -> std::io::Result<OwnedFd> {
    mount_api::clone_tree(
        dir,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
}
