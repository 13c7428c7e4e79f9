//! The code of a namespace-sandbox instance: a detached, read-only (nosuid, nodev)
//! overlay of the bundle's directory unpacked once on the host ([`crate::unpacked`]),
//! sent to flint-init with Configure (SCM_RIGHTS) and attached at /var/task. One
//! host directory serves every instance of that code; nothing is written per
//! instance and nothing counts against the instance's memory.
//!
//! An overlay rather than a bind of the directory: a bind's mountinfo line inside
//! the sandbox would show the directory's host path (its root within the host's file
//! system) and the host's disk device as the source. The overlay is a file system
//! of its own (root `/`, source `overlay`), and its layers are named relative to
//! the cache directory (`lowerdir=<sha256>:.empty`, made on a thread whose working
//! directory that is, [`super::own_cwd`]): an overlay without an upper layer needs
//! two lower ones, and the second is an empty directory.

use super::mount_api::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use super::own_cwd;
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// The empty directory beside the unpacked bundles (names starting with a dot are
/// not bundles to the cache).
const EMPTY: &str = ".empty";

/// A detached read-only mount of the unpacked bundle at `dir` (`<cache>/<sha256>`).
pub fn read_only_tree(dir: &Path) -> io::Result<OwnedFd> {
    let (Some(cache), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory of the unpack cache", dir.display()),
        ));
    };
    match std::fs::create_dir(cache.join(EMPTY)) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let name = name.to_str().filter(|n| !n.contains([':', ',', '\\']));
    let lower = name
        .and_then(|n| CString::new(format!("{n}:{EMPTY}")).ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} cannot name an overlay layer", dir.display()),
            )
        })?;
    own_cwd::in_dir(cache, || {
        mount_api::mount_fs(
            c"overlay",
            c"overlay",
            &[(c"lowerdir", Some(&lower))],
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_code_is_read_only_and_named_by_no_host_path() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("0123abcd");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f"), b"x").unwrap();
        let tree = read_only_tree(&dir).unwrap();
        let f = format!("/proc/self/fd/{}/f", tree.as_raw_fd());
        assert_eq!(std::fs::read(&f).unwrap(), b"x");
        let w = std::fs::OpenOptions::new().write(true).open(&f);
        assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EROFS));
        // A second instance of the same code gets its own mount.
        let again = read_only_tree(&dir).unwrap();
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{}/f", again.as_raw_fd())).unwrap(),
            b"x"
        );
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!table.contains(cache.path().to_str().unwrap()));
        // As the sandbox sees it once attached: root `/`, source `overlay`, layers
        // named relative to the cache.
        let line = mount_api::attached_line(&tree);
        let (mine, fs) = line.split_once(" - ").unwrap();
        assert_eq!(mine.split(' ').nth(3), Some("/"), "{line}");
        let fs: Vec<&str> = fs.split(' ').collect();
        assert_eq!(fs[..2], ["overlay", "overlay"], "{line}");
        assert!(fs[2].contains("lowerdir=0123abcd:.empty"), "{line}");
        assert!(!fs[2].contains('/'), "{line}");
    }

    #[test]
    fn a_directory_outside_a_cache_is_refused() {
        let e = read_only_tree(Path::new("/")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }
}
