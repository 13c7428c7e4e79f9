//! Code bundles: validation of the zip a user uploads, and the content-addressed
//! store that keeps each distinct bundle once, named by its sha256.

use crate::limits::{CODE_ENTRIES_MAX, CODE_UNZIPPED_MAX, CODE_ZIP_MAX};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{Cursor, Write};
use std::path::{Component, Path, PathBuf};

/// A code bundle that cannot be used, or a store failure.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// Empty upload
    #[error("the code bundle is empty: upload a zip archive holding your function's files")]
    Empty,
    /// Upload too large
    #[error("the code bundle is {0} bytes: at most {CODE_ZIP_MAX} bytes (50 MB) zipped")]
    TooLarge(usize),
    /// Not a zip
    #[error("the code bundle is not a valid zip archive ({0}): upload a .zip file")]
    Malformed(String),
    /// Too many files
    #[error("the code bundle has {0} entries: at most {CODE_ENTRIES_MAX} allowed")]
    TooManyEntries(usize),
    /// Unpacked size too large
    #[error("the code bundle unpacks to {0} bytes: at most {CODE_UNZIPPED_MAX} bytes (250 MB)")]
    UnzippedTooLarge(u64),
    /// An entry would land outside the code root
    #[error("zip entry {0:?} escapes the code root: use relative paths without '..'")]
    Escapes(String),
    /// Symbolic links are refused
    #[error("zip entry {0:?} is a symbolic link: replace it with the file it points to")]
    Symlink(String),
    /// I/O in the code store
    #[error("code store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A stored bundle is gone
    #[error("code bundle {0} is missing from the store")]
    Missing(String),
}

/// What validation learned about a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    pub sha256: String,
    pub size: u64,
    pub entries: usize,
    pub unzipped: u64,
}

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// Checks that `zip` is a zip archive safe to unpack under a code root.
pub fn check_bundle(zip: &[u8]) -> Result<BundleInfo, CodeError> {
    if zip.is_empty() {
        return Err(CodeError::Empty);
    }
    if zip.len() > CODE_ZIP_MAX {
        return Err(CodeError::TooLarge(zip.len()));
    }
    let mut archive =
        zip::ZipArchive::new(Cursor::new(zip)).map_err(|e| CodeError::Malformed(e.to_string()))?;
    let entries = archive.len();
    if entries == 0 {
        return Err(CodeError::Empty);
    }
    if entries > CODE_ENTRIES_MAX {
        return Err(CodeError::TooManyEntries(entries));
    }
    let mut unzipped: u64 = 0;
    for i in 0..entries {
        let file = archive
            .by_index_raw(i)
            .map_err(|e| CodeError::Malformed(e.to_string()))?;
        let name = file.name().to_string();
        if !is_enclosed(&name) {
            return Err(CodeError::Escapes(name));
        }
        if file.unix_mode().is_some_and(|m| m & S_IFMT == S_IFLNK) {
            return Err(CodeError::Symlink(name));
        }
        unzipped = unzipped.saturating_add(file.size());
    }
    if unzipped > CODE_UNZIPPED_MAX {
        return Err(CodeError::UnzippedTooLarge(unzipped));
    }
    Ok(BundleInfo {
        sha256: hex::encode(Sha256::digest(zip)),
        size: zip.len() as u64,
        entries,
        unzipped,
    })
}

/// True when `name` stays below the directory it is unpacked into.
fn is_enclosed(name: &str) -> bool {
    if name.is_empty() || name.contains('\0') || name.starts_with('/') || name.contains('\\') {
        return false;
    }
    Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Code bundles on disk, one file per distinct sha256.
#[derive(Debug, Clone)]
pub struct CodeStore {
    dir: PathBuf,
}

impl CodeStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, CodeError> {
        std::fs::create_dir_all(dir).map_err(|source| CodeError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.zip"))
    }

    /// Stores a validated bundle; a bundle already present is not written again.
    pub fn put(&self, sha256: &str, zip: &[u8]) -> Result<(), CodeError> {
        let path = self.path_of(sha256);
        if path.exists() {
            return Ok(());
        }
        let io = |source| CodeError::Io {
            path: path.clone(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io)?;
        tmp.write_all(zip).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Reads a stored bundle.
    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, CodeError> {
        let path = self.path_of(sha256);
        std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                CodeError::Missing(sha256.to_string())
            } else {
                CodeError::Io { path, source }
            }
        })
    }

    /// Deletes every stored bundle whose sha256 is not in `keep`; returns how many.
    pub fn collect_garbage(&self, keep: &HashSet<String>) -> Result<usize, CodeError> {
        let io = |source| CodeError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(sha) = name.strip_suffix(".zip") {
                if !keep.contains(sha) {
                    std::fs::remove_file(entry.path()).map_err(io)?;
                    removed += 1;
                }
            } else if name.starts_with(".tmp") {
                // A temp file left by a crash during put.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    pub(crate) fn make_zip(files: &[(&str, &[u8], Option<u32>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data, mode) in files {
            let mut opts = SimpleFileOptions::default();
            if let Some(m) = mode {
                opts = opts.unix_permissions(*m);
            }
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn accepts_a_plain_bundle() {
        let z = make_zip(&[("app.py", b"def handler(e, c): return 1\n", None)]);
        let info = check_bundle(&z).unwrap();
        assert_eq!(info.entries, 1);
        assert_eq!(info.sha256.len(), 64);
    }

    #[test]
    fn rejects_garbage_and_empty() {
        assert!(matches!(check_bundle(b""), Err(CodeError::Empty)));
        assert!(matches!(
            check_bundle(b"definitely not a zip"),
            Err(CodeError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_escaping_entries() {
        for bad in ["../evil.py", "a/../../evil.py", "/etc/passwd"] {
            let z = make_zip(&[(bad, b"x", None)]);
            assert!(
                matches!(check_bundle(&z), Err(CodeError::Escapes(_))),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn rejects_symlinks() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/shadow", SimpleFileOptions::default())
            .unwrap();
        let z = w.finish().unwrap().into_inner();
        assert!(matches!(check_bundle(&z), Err(CodeError::Symlink(_))));
    }

    #[test]
    fn store_keeps_each_bundle_once_and_collects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path()).unwrap();
        let z = make_zip(&[("a.py", b"1", None)]);
        let info = check_bundle(&z).unwrap();
        store.put(&info.sha256, &z).unwrap();
        store.put(&info.sha256, &z).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(store.get(&info.sha256).unwrap(), z);
        assert_eq!(store.collect_garbage(&HashSet::new()).unwrap(), 1);
        assert!(matches!(
            store.get(&info.sha256),
            Err(CodeError::Missing(_))
        ));
    }
}
