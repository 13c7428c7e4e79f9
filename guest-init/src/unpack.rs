//! Unpacks a function's code bundle (zip) into /var/task. Entries that could escape
//! the target (absolute paths, `..`, symbolic links) reject the whole bundle; Unix
//! permission bits are kept (so `bootstrap` stays executable) and every file is made
//! readable by the unprivileged runtime user. No entry may unpack to more bytes than
//! its header declares (flintd checks this at create too; this is the second line).

use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Errors unpacking a bundle. Messages are shown to the function's owner.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The bundle is not a readable zip archive
    #[error("the code bundle is not a valid zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// An entry's path is absolute, contains `..`, or is otherwise unusable
    #[error("zip entry {0:?} has a path that escapes the directory it unpacks into")]
    Escape(String),
    /// An entry is a symbolic link, which is not allowed
    #[error("zip entry {0:?} is a symbolic link; links are not allowed in code bundles")]
    Symlink(String),
    /// A file entry whose name is only the directory itself (".", "./.")
    #[error("zip entry {0:?} is a file named after the directory it unpacks into: give it a file name or remove it")]
    Unnamed(String),
    /// An entry holds more data than its header declares (a crafted archive)
    #[error("zip entry {0:?} unpacks to more bytes than its header declares")]
    Oversized(String),
    /// Writing the unpacked files failed (for example the size limit was reached)
    #[error("unpacking {path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// What was unpacked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Regular files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Unpacks `bundle` into the existing directory `dest`.
pub fn unpack(bundle: &[u8], dest: &Path) -> Result<Stats, UnpackError> {
    unpack_into(bundle, dest, false)
}

/// Unpacks `bundle` over what `dest` already holds (a layer over the ones before it):
/// a file of the bundle replaces the file or directory at its path, and a directory
/// replaces a file.
pub fn unpack_over(bundle: &[u8], dest: &Path) -> Result<Stats, UnpackError> {
    unpack_into(bundle, dest, true)
}

fn unpack_into(bundle: &[u8], dest: &Path, over: bool) -> Result<Stats, UnpackError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bundle))?;
    let mut stats = Stats::default();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let name = entry.name().to_string();
        if entry.is_symlink() {
            return Err(UnpackError::Symlink(name));
        }
        let rel = safe_relative(&name).ok_or_else(|| UnpackError::Escape(name.clone()))?;
        if rel.as_os_str().is_empty() && !entry.is_dir() {
            return Err(UnpackError::Unnamed(name));
        }
        let path = dest.join(&rel);
        let io_err = |source| UnpackError::Io {
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
        let mode = file_mode(entry.unix_mode());
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .map_err(io_err)?;
        let declared = entry.size();
        let written = io::copy(&mut (&mut entry).take(declared), &mut out).map_err(io_err)?;
        let mut probe = [0u8; 1];
        if written == declared && entry.read(&mut probe).map_err(io_err)? > 0 {
            return Err(UnpackError::Oversized(name));
        }
        stats.bytes += written;
        // The mode given to open() is filtered by the umask; set it exactly.
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err)?;
        stats.files += 1;
    }
    Ok(stats)
}

/// Permission bits for a file: its own (no setuid/setgid/sticky), plus read for all;
/// 0644 when the archive carries no Unix mode.
fn file_mode(unix_mode: Option<u32>) -> u32 {
    match unix_mode {
        Some(m) if m & 0o777 != 0 => (m & 0o777) | 0o444,
        _ => 0o644,
    }
}

/// Creates `dest/rel` and its parents with mode 0755; with `over`, a file in the way
/// is replaced by the directory.
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

/// The entry name as a relative path of plain components (empty for a name of only
/// `.`, the directory itself), or None if it is absolute, contains `..` or a NUL.
fn safe_relative(name: &str) -> Option<PathBuf> {
    if name.contains('\0') || name.starts_with('/') || name.starts_with('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!name.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, mode, data) in entries {
            let opts = SimpleFileOptions::default().unix_permissions(*mode);
            if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_dirs_and_modes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let z = zip_of(&[
            ("bootstrap", 0o700, b"#!/bin/sh\n"),
            ("lib/", 0o700, b""),
            ("lib/a.py", 0o600, b"x = 1\n"),
            ("deep/er/b.txt", 0o4755, b"b"),
        ]);
        let stats = unpack(&z, dir.path()).unwrap();
        assert_eq!(
            stats,
            Stats {
                files: 3,
                bytes: 17
            }
        );
        assert_eq!(mode_of(&dir.path().join("bootstrap")), 0o744);
        assert_eq!(mode_of(&dir.path().join("lib/a.py")), 0o644);
        assert_eq!(mode_of(&dir.path().join("lib")), 0o755);
        assert_eq!(mode_of(&dir.path().join("deep/er")), 0o755);
        // setuid is never kept.
        assert_eq!(mode_of(&dir.path().join("deep/er/b.txt")), 0o755);
        assert_eq!(fs::read(dir.path().join("lib/a.py")).unwrap(), b"x = 1\n");
    }

    #[test]
    fn escaping_paths_are_rejected() {
        for bad in ["../evil", "a/../../evil", "/etc/evil", "a/../..", "./../x"] {
            let dir = tempfile::tempdir().unwrap();
            let inner = dir.path().join("task");
            fs::create_dir(&inner).unwrap();
            let z = zip_of(&[("ok", 0o644, b"1"), (bad, 0o644, b"x")]);
            let r = unpack(&z, &inner);
            assert!(matches!(r, Err(UnpackError::Escape(_))), "{bad}: {r:?}");
            assert!(!dir.path().join("evil").exists());
        }
    }

    #[test]
    fn a_file_named_dot_is_refused_a_dot_directory_is_the_root() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [".", "./."] {
            let r = unpack(&zip_of(&[(bad, 0o644, b"x")]), dir.path());
            assert!(matches!(r, Err(UnpackError::Unnamed(_))), "{bad}: {r:?}");
        }
        let z = zip_of(&[("./", 0o755, b""), ("./app.py", 0o644, b"x = 1\n")]);
        let stats = unpack(&z, dir.path()).unwrap();
        assert_eq!(stats, Stats { files: 1, bytes: 6 });
        assert_eq!(fs::read(dir.path().join("app.py")).unwrap(), b"x = 1\n");
    }

    #[test]
    fn symlinks_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let z = w.finish().unwrap().into_inner();
        let r = unpack(&z, dir.path());
        assert!(matches!(r, Err(UnpackError::Symlink(_))), "{r:?}");
        assert!(fs::symlink_metadata(dir.path().join("link")).is_err());
    }

    #[test]
    fn an_entry_larger_than_declared_is_refused() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        w.start_file("big.bin", opts).unwrap();
        w.write_all(&vec![0u8; 1 << 20]).unwrap();
        let mut z = w.finish().unwrap().into_inner();
        // Claim 1 KB in the local and central headers; the CRC stays right.
        let claim = 1024u32.to_le_bytes();
        for i in 0..z.len() - 4 {
            if &z[i..i + 4] == b"PK\x03\x04" {
                z[i + 22..i + 26].copy_from_slice(&claim);
            } else if &z[i..i + 4] == b"PK\x01\x02" {
                z[i + 24..i + 28].copy_from_slice(&claim);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let r = unpack(&z, dir.path());
        assert!(
            matches!(r, Err(UnpackError::Oversized(ref n)) if n == "big.bin"),
            "{r:?}"
        );
        let on_disk = fs::metadata(dir.path().join("big.bin")).map_or(0, |m| m.len());
        assert!(on_disk <= 1024, "{on_disk} bytes written");
    }

    #[test]
    fn garbage_is_a_zip_error() {
        let dir = tempfile::tempdir().unwrap();
        let r = unpack(b"this is not a zip", dir.path());
        assert!(matches!(r, Err(UnpackError::Zip(_))));
    }

    #[test]
    fn entries_without_unix_mode_get_0644() {
        assert_eq!(file_mode(None), 0o644);
        assert_eq!(file_mode(Some(0o100000)), 0o644);
        assert_eq!(file_mode(Some(0o100750)), 0o754);
    }
}
