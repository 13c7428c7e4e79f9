//! Unpacks a code bundle into a directory on the host, with the checks flint-init's
//! own unpacker makes (and the create-time check in [`crate::code`]): entry names
//! that stay below the directory, no symbolic links, no entry that holds more than
//! its header declares, at most Lambda's 250 MB unzipped and 20,000 entries in all.
//! Files get their Unix permission bits without setuid/setgid/sticky, plus read for
//! everyone (the runtime's uid reads them); directories are 0755.

use crate::code::is_enclosed;
use crate::limits::{CODE_ENTRIES_MAX, CODE_UNZIPPED_MAX};
use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// A bundle that cannot be unpacked, or an I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum UnzipError {
    /// Not a zip archive
    #[error("the code bundle is not a valid zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// Too many entries
    #[error("the code bundle has {0} entries: at most {CODE_ENTRIES_MAX} allowed")]
    TooManyEntries(usize),
    /// An entry escapes the directory
    #[error("zip entry {0:?} escapes /var/task: use relative paths without '..'")]
    Escape(String),
    /// A symbolic link
    #[error("zip entry {0:?} is a symbolic link: replace it with the file it points to")]
    Symlink(String),
    /// A file entry named after the directory itself
    #[error(
        "zip entry {0:?} is a file named after /var/task itself: give it a file name or remove it"
    )]
    Unnamed(String),
    /// An entry holds more than its header declares
    #[error("zip entry {0:?} unpacks to more bytes than its header declares")]
    Oversized(String),
    /// The whole bundle unpacks to more than Lambda's limit
    #[error("the code bundle unpacks to more than {CODE_UNZIPPED_MAX} bytes (250 MB)")]
    TooLarge,
    /// Writing failed
    #[error("unpacking {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Unpacks `bundle` into the existing, empty directory `dest`; returns the bytes
/// written.
pub fn unzip(bundle: &[u8], dest: &Path) -> Result<u64, UnzipError> {
    unzip_into(bundle, dest, false)
}

/// Unpacks `bundle` over what `dest` already holds (a later layer over earlier
/// ones): a file of the bundle replaces the file or directory at its path, and a
/// directory replaces a file. Returns the bytes written.
pub fn unzip_over(bundle: &[u8], dest: &Path) -> Result<u64, UnzipError> {
    unzip_into(bundle, dest, true)
}

fn unzip_into(bundle: &[u8], dest: &Path, over: bool) -> Result<u64, UnzipError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bundle))?;
    if archive.len() > CODE_ENTRIES_MAX {
        return Err(UnzipError::TooManyEntries(archive.len()));
    }
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let name = entry.name().to_string();
        if entry.is_symlink() || entry.unix_mode().is_some_and(|m| m & S_IFMT == S_IFLNK) {
            return Err(UnzipError::Symlink(name));
        }
        if !is_enclosed(&name) {
            return Err(UnzipError::Escape(name));
        }
        let rel: PathBuf = Path::new(&name)
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        // No component but `.`: a directory entry is the root itself, a file cannot be.
        if rel.as_os_str().is_empty() && !entry.is_dir() {
            return Err(UnzipError::Unnamed(name));
        }
        let path = dest.join(&rel);
        let io_err = |source| UnzipError::Io {
            path: path.clone(),
            source,
        };
        if entry.is_dir() {
            make_dirs(dest, &rel, over).map_err(io_err)?;
            continue;
        }
        if let Some(parent) = rel.parent() {
            make_dirs(dest, parent, over).map_err(io_err)?;
        }
        if over {
            remove_any(&path).map_err(io_err)?;
        }
        let declared = entry.size();
        total = total.saturating_add(declared);
        if total > CODE_UNZIPPED_MAX {
            return Err(UnzipError::TooLarge);
        }
        let mode = file_mode(entry.unix_mode());
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(io_err)?;
        let written = io::copy(&mut (&mut entry).take(declared), &mut out).map_err(io_err)?;
        let mut probe = [0u8; 1];
        if written == declared && entry.read(&mut probe).map_err(io_err)? > 0 {
            return Err(UnzipError::Oversized(name));
        }
        // The mode given to open() is filtered by the umask; set it exactly.
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err)?;
    }
    Ok(total)
}

/// A file's permission bits: its own without setuid/setgid/sticky, plus read for
/// all; 0644 when the archive has no Unix mode.
fn file_mode(unix_mode: Option<u32>) -> u32 {
    match unix_mode {
        Some(m) if m & 0o777 != 0 => (m & 0o777) | 0o444,
        _ => 0o644,
    }
}

/// Creates `dest/rel` and its parents with mode 0755; with `over`, a file in the
/// way is replaced by the directory.
fn make_dirs(dest: &Path, rel: &Path, over: bool) -> io::Result<()> {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        if over && fs::symlink_metadata(&cur).is_ok_and(|m| !m.is_dir()) {
            fs::remove_file(&cur)?;
        }
        match fs::create_dir(&cur) {
            Ok(()) => fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && cur.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes the file or directory tree at `path`, if any.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::tests::make_zip;

    #[test]
    fn unpacks_files_with_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let z = make_zip(&[
            ("bootstrap", b"#!/bin/sh\n", Some(0o4755)),
            ("lib/a.py", b"x = 1\n", Some(0o600)),
        ]);
        assert_eq!(unzip(&z, dir.path()).unwrap(), 16);
        let mode = |p: &str| {
            fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("bootstrap"), 0o755);
        assert_eq!(mode("lib/a.py"), 0o644);
        assert_eq!(mode("lib"), 0o755);
    }

    #[test]
    fn a_later_bundle_overrides_files_of_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = make_zip(&[
            ("python/shared.py", b"who = 'first'\n", None),
            ("python/only_first.py", b"x = 1\n", None),
            ("bin", b"a file\n", None),
        ]);
        let second = make_zip(&[
            ("python/shared.py", b"who = 'second'\n", None),
            ("bin/tool", b"#!/bin/sh\n", Some(0o755)),
        ]);
        unzip_over(&first, dir.path()).unwrap();
        unzip_over(&second, dir.path()).unwrap();
        let read = |p: &str| fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("python/shared.py"), "who = 'second'\n");
        assert_eq!(read("python/only_first.py"), "x = 1\n");
        assert_eq!(read("bin/tool"), "#!/bin/sh\n");
        // Without `over`, a second bundle never replaces a file.
        let plain = tempfile::tempdir().unwrap();
        unzip(&first, plain.path()).unwrap();
        assert!(unzip(&second, plain.path()).is_err());
    }

    #[test]
    fn refuses_escaping_names() {
        let dir = tempfile::tempdir().unwrap();
        let z = make_zip(&[("../x", b"1", None)]);
        assert!(matches!(unzip(&z, dir.path()), Err(UnzipError::Escape(_))));
        assert!(!dir.path().parent().unwrap().join("x").exists());
    }

    #[test]
    fn a_file_named_dot_is_refused_a_dot_directory_is_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let z = make_zip(&[(".", b"1", None)]);
        assert!(matches!(unzip(&z, dir.path()), Err(UnzipError::Unnamed(_))));
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        w.add_directory("./", opts).unwrap();
        w.start_file("./app.py", opts).unwrap();
        std::io::Write::write_all(&mut w, b"x = 1\n").unwrap();
        let z = w.finish().unwrap().into_inner();
        assert_eq!(unzip(&z, dir.path()).unwrap(), 6);
        assert_eq!(fs::read(dir.path().join("app.py")).unwrap(), b"x = 1\n");
    }
}
