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
//!
//! Making an overlay (a new superblock) cost 0.1-0.2 ms of every pool hit on the host
//! measured, sometimes 2 ms. So the first overlay of a directory is kept as a
//! template, and each instance gets a clone of it (`open_tree(OPEN_TREE_CLONE)`,
//! about 10 µs): a mount of its own over the same read-only file system. A template
//! is used only while it still shows the directory at that path: it holds the
//! directory's inode, so an inode number that matches is that directory, not a new
//! one made after a collection removed it. Templates of removed directories are
//! dropped when the next template is kept and after each collection
//! ([`drop_stale_templates`]), so a removed bundle's files do not stay held; at most
//! [`TEMPLATES_MAX`] are kept. A kernel that cannot clone a detached mount (before
//! 6.15) gets a new overlay per instance, as before.

use super::mount_api::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use super::own_cwd;
use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The most templates kept (one descriptor each).
pub const TEMPLATES_MAX: usize = 256;

/// The overlay first made of a directory, and which directory that was.
struct Template {
    /// The directory's device and inode numbers when the overlay was made.
    id: (u64, u64),
    tree: OwnedFd,
}

/// Templates by directory path, for every agent of this process.
fn templates() -> MutexGuard<'static, HashMap<PathBuf, Template>> {
    static TEMPLATES: OnceLock<Mutex<HashMap<PathBuf, Template>>> = OnceLock::new();
    // Whole entries are inserted and removed: valid after a panic.
    TEMPLATES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Cleared the first time the kernel refuses to clone a template.
static CLONES: AtomicBool = AtomicBool::new(true);

fn dir_id(dir: &Path) -> io::Result<(u64, u64)> {
    std::fs::metadata(dir).map(|m| (m.dev(), m.ino()))
}

/// Drops the templates whose directory is gone or is another directory now.
pub fn drop_stale_templates() {
    drop_stale(&mut templates());
}

fn drop_stale(all: &mut HashMap<PathBuf, Template>) {
    all.retain(|dir, t| dir_id(dir).ok() == Some(t.id));
}

/// The empty directory beside the unpacked bundles (names starting with a dot are
/// not bundles to the cache).
const EMPTY: &str = ".empty";

/// A detached read-only mount of the unpacked bundle at `dir` (`<cache>/<sha256>`):
/// a clone of its template when there is one, else a new overlay (kept as the
/// template).
pub fn read_only_tree(dir: &Path) -> io::Result<OwnedFd> {
    if !CLONES.load(Ordering::Relaxed) {
        return new_overlay(dir);
    }
    let id = dir_id(dir)?;
    // The lock is released at the end of this statement, before anything else.
    let cloned = templates()
        .get(dir)
        .filter(|t| t.id == id)
        .map(|t| mount_api::clone_tree(&t.tree));
    match cloned {
        Some(Ok(tree)) => return Ok(tree),
        Some(Err(e)) => clone_failed(&e),
        None => {}
    }
    let tree = new_overlay(dir)?;
    if CLONES.load(Ordering::Relaxed) {
        match mount_api::clone_tree(&tree) {
            Ok(template) => keep(dir, Template { id, tree: template }),
            Err(e) => clone_failed(&e),
        }
    }
    Ok(tree)
}

/// Keeps `t` as `dir`'s template, first dropping stale ones (and, when full, all).
fn keep(dir: &Path, t: Template) {
    let mut all = templates();
    drop_stale(&mut all);
    if all.len() >= TEMPLATES_MAX {
        all.clear();
    }
    all.insert(dir.to_path_buf(), t);
}

/// A clone failed: EINVAL is a kernel that cannot clone a detached mount (no more
/// templates from now on); anything else (EMFILE, ENOMEM) only costs this instance a
/// new overlay.
fn clone_failed(e: &io::Error) {
    if e.raw_os_error() != Some(libc::EINVAL) {
        tracing::warn!(error = %e, "code mount template not cloned: making a new overlay");
        return;
    }
    if CLONES.swap(false, Ordering::Relaxed) {
        tracing::info!(error = %e, "this kernel cannot clone a detached mount: every instance's code gets an overlay of its own");
        templates().clear();
    }
}

/// A new overlay of `dir` (see the module's documentation).
fn new_overlay(dir: &Path) -> io::Result<OwnedFd> {
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
        // As the sandbox sees it once attached (the first and, a clone of the
        // template, the second): root `/`, source `overlay`, layers named relative to
        // the cache.
        for t in [&tree, &again] {
            let line = mount_api::attached_line(t);
            let (mine, fs) = line.split_once(" - ").unwrap();
            assert_eq!(mine.split(' ').nth(3), Some("/"), "{line}");
            let opts = mine.split(' ').nth(5).unwrap_or_default();
            assert!(opts.starts_with("ro,nosuid,nodev"), "{line}");
            let fs: Vec<&str> = fs.split(' ').collect();
            assert_eq!(fs[..2], ["overlay", "overlay"], "{line}");
            assert!(fs[2].contains("lowerdir=0123abcd:.empty"), "{line}");
            assert!(!fs[2].contains('/'), "{line}");
        }
    }

    fn read(tree: &OwnedFd, name: &str) -> Vec<u8> {
        std::fs::read(format!("/proc/self/fd/{}/{name}", tree.as_raw_fd())).unwrap()
    }

    /// The device of a detached mount's file system (one per overlay superblock).
    fn device(tree: &OwnedFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{}", tree.as_raw_fd()))
            .unwrap()
            .dev()
    }

    #[test]
    fn instances_get_clones_of_the_template_while_it_is_the_same_directory() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("feedbeef");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f"), b"one").unwrap();
        let first = read_only_tree(&dir).unwrap();
        let cloning = CLONES.load(Ordering::Relaxed);
        assert_eq!(templates().contains_key(&dir), cloning);
        let second = read_only_tree(&dir).unwrap();
        assert_eq!(read(&second, "f"), b"one");
        // A clone is the same file system (no new overlay); without clones, a new one.
        assert_eq!(device(&first) == device(&second), cloning);
        // Removed (as a collection does) and unpacked again at the same path: the new
        // directory's files in a new overlay, never the old template's.
        let away = cache.path().join(".del-feedbeef");
        std::fs::rename(&dir, &away).unwrap();
        std::fs::remove_dir_all(&away).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f"), b"two").unwrap();
        let third = read_only_tree(&dir).unwrap();
        assert_eq!(read(&third, "f"), b"two");
        assert_ne!(device(&third), device(&first));
        // Gone for good: its template goes at the next sweep.
        std::fs::remove_dir_all(&dir).unwrap();
        drop_stale_templates();
        assert!(!templates().contains_key(&dir));
    }

    #[test]
    fn a_directory_outside_a_cache_is_refused() {
        let e = read_only_tree(Path::new("/")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }
}
