//! Thin wrappers over the kernel's mount API (Linux 5.12+): detached mounts that
//! flintd makes in its own mount namespace and hands to flint-init as descriptors,
//! which it attaches inside the sandbox with `move_mount` (docs/ISOLATION.md). A
//! detached mount lives as long as a descriptor or an attachment holds it; nothing
//! appears in flintd's mount table.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const OPEN_TREE_CLONE: libc::c_uint = 0x1;
const AT_EMPTY_PATH: libc::c_uint = 0x1000;
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

/// Read-only mount attribute.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// No set-user-id.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// No device files.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

fn fd_result(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the system call returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

fn unit_result(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A detached copy (bind) of the directory tree at `dir`, with the mount attributes
/// `attrs` set on it.
pub fn clone_tree(dir: &Path, attrs: u64) -> io::Result<OwnedFd> {
    let path = cpath(dir)?;
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let tree = fd_result(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    })?;
    set_attrs(&tree, attrs)?;
    Ok(tree)
}

/// Sets mount attributes on the detached mount `tree`.
pub fn set_attrs(tree: &OwnedFd, attrs: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid struct of the size passed; the path is an empty,
    // NUL-terminated string; `tree` is open.
    unit_result(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
}

/// A new detached mount of a `fstype` file system on the block device `source`,
/// with the string options `options` and the mount attributes `attrs`.
pub fn mount_device(
    fstype: &CStr,
    source: &Path,
    options: &[(&CStr, Option<&CStr>)],
    attrs: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: `fstype` is NUL-terminated.
    let fs =
        fd_result(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    let source = cpath(source)?;
    config(&fs, FSCONFIG_SET_STRING, c"source", Some(&source))?;
    for (key, value) in options {
        match value {
            Some(v) => config(&fs, FSCONFIG_SET_STRING, key, Some(v))?,
            None => config(&fs, FSCONFIG_SET_FLAG, key, None)?,
        }
    }
    config(&fs, FSCONFIG_CMD_CREATE, c"", None).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("creating the {fstype:?} file system: {e}"),
        )
    })?;
    // The attributes are MOUNT_ATTR_* bits, the same as fsmount's attr_flags.
    // SAFETY: `fs` is an open file-system context.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    })
}

fn config(fs: &OwnedFd, cmd: libc::c_uint, key: &CStr, value: Option<&CStr>) -> io::Result<()> {
    let key_ptr = if cmd == FSCONFIG_CMD_CREATE {
        std::ptr::null()
    } else {
        key.as_ptr()
    };
    let value_ptr = value.map_or(std::ptr::null(), |v| v.as_ptr());
    // SAFETY: the pointers are null or NUL-terminated strings that outlive the call.
    unit_result(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key_ptr,
            value_ptr,
            0,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloned_tree_is_read_only_and_absent_from_the_mount_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let tree = clone_tree(dir.path(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID).unwrap();
        // Reading through the detached mount works; writing does not.
        let f = format!("/proc/self/fd/{}/f", tree.as_raw_fd());
        assert_eq!(std::fs::read(&f).unwrap(), b"x");
        let w = std::fs::OpenOptions::new().write(true).open(&f);
        assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EROFS));
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!table.contains(dir.path().to_str().unwrap()));
    }
}
