//! Thin wrappers over the kernel's mount API (Linux 5.12+): detached mounts that
//! flintd makes in its own mount namespace and hands to flint-init as descriptors,
//! which it attaches inside the sandbox with `move_mount` (docs/ISOLATION.md). A
//! detached mount lives as long as a descriptor or an attachment holds it; nothing
//! appears in flintd's mount table.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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

/// A new detached mount of a `fstype` file system from `source` (a block device's
/// path for a disk file system; relative paths resolve against the calling thread's
/// working directory, see [`super::own_cwd`]), with the string options `options`
/// and the mount attributes `attrs`. `source` is what mountinfo shows as the source.
pub fn mount_fs(
    fstype: &CStr,
    source: &CStr,
    options: &[(&CStr, Option<&CStr>)],
    attrs: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: `fstype` is NUL-terminated.
    let fs =
        fd_result(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    config(&fs, FSCONFIG_SET_STRING, c"source", Some(source))?;
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

/// A new detached mount of the same file system as the detached mount `tree`, with
/// its attributes (`open_tree` with `OPEN_TREE_CLONE`): no new superblock. Kernels
/// before 6.15 refuse to clone a mount that is not in the caller's mount namespace
/// (EINVAL).
pub fn clone_tree(tree: &OwnedFd) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 0x1;
    const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: `tree` is an open descriptor; the empty path is NUL-terminated.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            tree.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    })
}

/// The mountinfo line of the detached mount `tree` once attached, as a sandbox
/// sees it: attached on a thread of its own in a mount namespace of its own (which
/// goes with the thread), at a temporary directory.
#[cfg(test)]
pub fn attached_line(tree: &OwnedFd) -> String {
    let at = tempfile::tempdir().unwrap();
    let target = std::ffi::CString::new(at.path().to_str().unwrap()).unwrap();
    let line = std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: this thread leaves flintd's file-system context and mount
            // namespace; nothing else runs on it.
            let rc = unsafe { libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) };
            assert_eq!(rc, 0, "{}", io::Error::last_os_error());
            // SAFETY: NUL-terminated strings; no propagation back to the host's mounts.
            let rc = unsafe {
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
            };
            assert_eq!(rc, 0, "{}", io::Error::last_os_error());
            // SAFETY: `tree` is a detached mount; the strings are NUL-terminated.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_move_mount,
                    tree.as_raw_fd(),
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    0x4, // MOVE_MOUNT_F_EMPTY_PATH
                )
            };
            assert_eq!(rc, 0, "{}", io::Error::last_os_error());
            let table = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
            table
                .lines()
                .find(|l| l.split(' ').nth(4) == target.to_str().ok())
                .unwrap_or_else(|| panic!("not attached: {table}"))
                .to_string()
        })
        .join()
        .unwrap()
    });
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_mount_is_absent_from_the_mount_table_and_shows_its_source() {
        let tree = mount_fs(
            c"tmpfs",
            c"neutral-name",
            &[(c"size", Some(c"1m"))],
            MOUNT_ATTR_NOSUID,
        )
        .unwrap();
        let f = format!("/proc/self/fd/{}/f", tree.as_raw_fd());
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"x");
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!table.contains("neutral-name"));
    }
}
