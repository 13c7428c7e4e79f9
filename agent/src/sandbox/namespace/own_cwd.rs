//! Runs a step on a short-lived thread with a working directory of its own, so that
//! a mount can be given names relative to it: the kernel records a mount's source
//! and an overlay's layer paths as the strings it was given, and
//! `/proc/self/mountinfo` inside the sandbox shows them. Relative names keep host
//! paths (the data directory, `/dev/loopN`) out of it (docs/ISOLATION.md).
//!
//! The thread leaves flintd's shared file-system context first
//! (`unshare(CLONE_FS)`), so changing its directory changes no other thread's.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Runs `step` on a new thread whose working directory is `dir`; returns its result.
pub fn in_dir<T: Send>(dir: &Path, step: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let dir = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("flint-mount".into())
            .spawn_scoped(s, || {
                // SAFETY: unshare with CLONE_FS only gives this thread its own copy
                // of the root, working directory and umask.
                if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: `dir` is NUL-terminated and outlives the call.
                if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                step()
            })?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the mount thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_the_threads_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("here"), b"x").unwrap();
        let before = std::env::current_dir().unwrap();
        let got = in_dir(dir.path(), || std::fs::read("here")).unwrap();
        assert_eq!(got, b"x");
        assert_eq!(std::env::current_dir().unwrap(), before);
        let missing = in_dir(&dir.path().join("nope"), || Ok(()));
        assert_eq!(missing.unwrap_err().raw_os_error(), Some(libc::ENOENT));
    }
}
