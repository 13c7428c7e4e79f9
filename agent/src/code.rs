//! Code bundles: validation of the zip a user uploads, and the content-addressed
//! store that keeps each distinct bundle once, named by its sha256.

use crate::limits::{CODE_ENTRIES_MAX, CODE_UNZIPPED_MAX, CODE_ZIP_MAX};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// An entry holds more than its header declares: a crafted archive (zip bomb)
    #[error("zip entry {name:?} declares {declared} bytes unpacked but holds more: the archive is corrupt or crafted; re-create it with a standard zip tool")]
    SizeMismatch { name: String, declared: u64 },
    /// An entry's data cannot be decompressed
    #[error("zip entry {name:?} cannot be unpacked ({reason}): re-create the archive with a standard zip tool")]
    Unreadable { name: String, reason: String },
    /// An entry would land outside the code root
    #[error("zip entry {0:?} escapes the code root: use relative paths without '..'")]
    Escapes(String),
    /// Symbolic links are refused
    #[error("zip entry {0:?} is a symbolic link: replace it with the file it points to")]
    Symlink(String),
    /// A file entry whose name is only the code root itself (".", "./.")
    #[error("zip entry {0:?} is a file named after the code root itself: give it a file name or remove it")]
    Unnamed(String),
    /// I/O in the code store
    #[error("code store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A stored bundle is gone
    #[error("code bundle {0} is missing from the store")]
    Missing(String),
    /// A stored bundle could not be unpacked on the host (namespace sandbox)
    #[error("the code bundle could not be unpacked: {0}")]
    Unpack(String),
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
        if !file.is_dir() && names_the_root(&name) {
            return Err(CodeError::Unnamed(name));
        }
        unzipped = unzipped.saturating_add(file.size());
    }
    if unzipped > CODE_UNZIPPED_MAX {
        return Err(CodeError::UnzippedTooLarge(unzipped));
    }
    // The sizes above are what the headers declare; a crafted archive understates
    // them. Decompress every entry and refuse one that holds more than declared, so
    // the real total is bounded by the declared one.
    for i in 0..entries {
        check_real_size(&mut archive, i)?;
    }
    Ok(BundleInfo {
        sha256: hex::encode(Sha256::digest(zip)),
        size: zip.len() as u64,
        entries,
        unzipped,
    })
}

/// Decompresses entry `i` (into nothing), reading at most one byte more than its
/// header declares; fails if that byte exists or the data is corrupt (the zip
/// reader checks the CRC when an entry is read to its end).
fn check_real_size(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    i: usize,
) -> Result<(), CodeError> {
    let entry = archive
        .by_index(i)
        .map_err(|e| CodeError::Malformed(e.to_string()))?;
    let name = entry.name().to_string();
    let declared = entry.size();
    let mut limited = entry.take(declared.saturating_add(1));
    let real =
        std::io::copy(&mut limited, &mut std::io::sink()).map_err(|e| CodeError::Unreadable {
            name: name.clone(),
            reason: e.to_string(),
        })?;
    if real > declared {
        return Err(CodeError::SizeMismatch { name, declared });
    }
    Ok(())
}

/// True when `name` (already [`is_enclosed`]) has no component but `.`: a
/// directory entry so named is the code root (nothing to make), a file cannot be.
fn names_the_root(name: &str) -> bool {
    Path::new(name)
        .components()
        .all(|c| matches!(c, Component::CurDir))
}

/// True when `name` stays below the directory it is unpacked into.
pub(crate) fn is_enclosed(name: &str) -> bool {
    if name.is_empty() || name.contains('\0') || name.starts_with('/') || name.contains('\\') {
        return false;
    }
    Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Code bundles on disk, one file per distinct sha256.
///
/// A bundle is removed only by [`CodeStore::collect_garbage`], and only when no
/// function references it and no [`CodePin`] holds it. A writer pins the bundle
/// before storing it and keeps the pin until the function row that references it
/// is committed, so a concurrent delete of another function with byte-identical
/// code cannot remove it in between.
#[derive(Debug, Clone)]
pub struct CodeStore {
    dir: PathBuf,
    /// Bundles being written or referenced by a row not yet committed, with counts.
    /// Garbage collection holds this lock from reading the references to the last
    /// removal, so a pin taken or released meanwhile waits for it.
    pins: Arc<Mutex<HashMap<String, usize>>>,
}

/// Keeps one bundle from garbage collection while it lives.
#[derive(Debug)]
pub struct CodePin {
    pins: Arc<Mutex<HashMap<String, usize>>>,
    sha256: String,
}

impl Drop for CodePin {
    fn drop(&mut self) {
        let mut pins = lock_pins(&self.pins);
        if let Some(n) = pins.get_mut(&self.sha256) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.sha256);
            }
        }
    }
}

fn lock_pins(pins: &Mutex<HashMap<String, usize>>) -> MutexGuard<'_, HashMap<String, usize>> {
    // The map holds plain counts updated in one step each: still valid after a panic.
    pins.lock().unwrap_or_else(|p| p.into_inner())
}

impl CodeStore {
    /// Opens (creating) the store in `dir`; removes temporary files a crash left.
    pub fn open(dir: &Path) -> Result<Self, CodeError> {
        let io = |source| CodeError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if entry.file_name().to_string_lossy().starts_with(".tmp") {
                // A temp file left by a crash during put: nobody is writing it now.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            pins: Arc::default(),
        })
    }

    fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.zip"))
    }

    /// Keeps the bundle `sha256` (stored or about to be) from garbage collection
    /// until the pin is dropped.
    pub fn pin(&self, sha256: &str) -> CodePin {
        *lock_pins(&self.pins).entry(sha256.to_string()).or_default() += 1;
        CodePin {
            pins: self.pins.clone(),
            sha256: sha256.to_string(),
        }
    }

    /// Reads a row with `read` and pins the bundle `sha256_of` names in it, both under
    /// the lock garbage collection holds from reading the references to its last
    /// removal: the bundle a committed row names cannot be collected between the read
    /// and the pin, so one read is enough.
    pub fn read_pinned<T, E>(
        &self,
        read: impl FnOnce() -> Result<T, E>,
        sha256_of: impl FnOnce(&T) -> &str,
    ) -> Result<(T, CodePin), E> {
        let mut pins = lock_pins(&self.pins);
        let row = read()?;
        let sha256 = sha256_of(&row).to_string();
        *pins.entry(sha256.clone()).or_default() += 1;
        drop(pins);
        let pin = CodePin {
            pins: self.pins.clone(),
            sha256,
        };
        Ok((row, pin))
    }

    /// Stores a validated bundle; a bundle already present is not written again.
    /// The caller holds a pin on it (see [`CodeStore::pin`]) until the reference
    /// to it is committed.
    pub fn put(&self, pin: &CodePin, zip: &[u8]) -> Result<(), CodeError> {
        let path = self.path_of(&pin.sha256);
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

    /// Deletes every stored bundle that is neither in the set `referenced` returns
    /// nor pinned; returns how many. `referenced` is read under the pin lock, so a
    /// writer that released its pin has committed its reference before it is read.
    /// `None` from `referenced` (the registry could not be read) removes nothing.
    pub fn collect_garbage(
        &self,
        referenced: impl FnOnce() -> Option<HashSet<String>>,
    ) -> Result<usize, CodeError> {
        let pins = lock_pins(&self.pins);
        let Some(keep) = referenced() else {
            return Ok(0);
        };
        let io = |source| CodeError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(sha) = name.strip_suffix(".zip") else {
                // Temporary files belong to a put in progress.
                continue;
            };
            if keep.contains(sha) || pins.contains_key(sha) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
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
    fn a_file_named_after_the_root_is_refused_a_directory_is_not() {
        for bad in [".", "./.", "././."] {
            let z = make_zip(&[(bad, b"x", None)]);
            match check_bundle(&z) {
                Err(e @ CodeError::Unnamed(_)) => assert!(e.to_string().contains("file name")),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_directory("./", SimpleFileOptions::default()).unwrap();
        w.start_file("./app.py", SimpleFileOptions::default())
            .unwrap();
        w.write_all(b"x = 1\n").unwrap();
        let z = w.finish().unwrap().into_inner();
        assert_eq!(check_bundle(&z).unwrap().entries, 2);
    }

    /// Rewrites every uncompressed-size field of a one-entry zip (local header and
    /// central directory) to `size`, as a crafted bomb does; the CRC stays right.
    fn understate_size(zip: &mut [u8], size: u32) {
        let mut patched = 0;
        for i in 0..zip.len().saturating_sub(4) {
            match &zip[i..i + 4] {
                b"PK\x03\x04" => {
                    zip[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
                    patched += 1;
                }
                b"PK\x01\x02" => {
                    zip[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
                    patched += 1;
                }
                _ => {}
            }
        }
        assert_eq!(patched, 2, "expected one local and one central header");
    }

    fn deflated_zeros(n: usize) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        w.start_file("bomb.bin", opts).unwrap();
        w.write_all(&vec![0u8; n]).unwrap();
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn rejects_a_bomb_that_understates_its_size() {
        // 4 MB of zeros deflate to ~4 KB; the headers claim 1 KB. (Any real size
        // above the declared one is refused, so the size of the bomb does not matter.)
        let mut z = deflated_zeros(4 << 20);
        understate_size(&mut z, 1024);
        match check_bundle(&z) {
            Err(e @ CodeError::SizeMismatch { declared: 1024, .. }) => {
                assert!(e.to_string().contains("bomb.bin"), "{e}")
            }
            other => panic!("bomb accepted or wrong error: {other:?}"),
        }
    }

    #[test]
    fn accepts_real_sizes_that_match() {
        let z = deflated_zeros(1 << 20);
        assert_eq!(check_bundle(&z).unwrap().unzipped, 1 << 20);
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
        let pin = store.pin(&info.sha256);
        store.put(&pin, &z).unwrap();
        store.put(&pin, &z).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(store.get(&info.sha256).unwrap(), z);
        assert_eq!(store.collect_garbage(|| Some(HashSet::new())).unwrap(), 0);
        drop(pin);
        assert_eq!(store.collect_garbage(|| None).unwrap(), 0);
        assert_eq!(store.collect_garbage(|| Some(HashSet::new())).unwrap(), 1);
        assert!(matches!(
            store.get(&info.sha256),
            Err(CodeError::Missing(_))
        ));
    }

    /// The race of issue 14: function X is created with the same code as function Y
    /// while Y is deleted. The bundle must survive whatever the interleaving.
    #[test]
    fn pinned_bundle_survives_a_concurrent_collection() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path()).unwrap();
        let z = make_zip(&[("a.py", b"shared", None)]);
        let sha = check_bundle(&z).unwrap().sha256;
        // The registry: which functions reference the bundle.
        let rows = Arc::new(Mutex::new(HashSet::<&str>::new()));
        let referenced = |rows: &Mutex<HashSet<&str>>| {
            let rows = rows.lock().unwrap();
            Some(if rows.is_empty() {
                HashSet::new()
            } else {
                HashSet::from([sha.clone()])
            })
        };
        for _ in 0..300 {
            // Y exists with the bundle.
            let pin = store.pin(&sha);
            store.put(&pin, &z).unwrap();
            rows.lock().unwrap().insert("y");
            drop(pin);
            std::thread::scope(|s| {
                s.spawn(|| {
                    // Create X: pin, store, commit the row, unpin.
                    let pin = store.pin(&sha);
                    store.put(&pin, &z).unwrap();
                    std::thread::yield_now();
                    rows.lock().unwrap().insert("x");
                    drop(pin);
                });
                s.spawn(|| {
                    // Delete Y, then collect.
                    rows.lock().unwrap().remove("y");
                    store.collect_garbage(|| referenced(&rows)).unwrap();
                });
            });
            assert_eq!(store.get(&sha).unwrap(), z, "X's code was removed");
            rows.lock().unwrap().remove("x");
            store.collect_garbage(|| referenced(&rows)).unwrap();
            assert!(matches!(store.get(&sha), Err(CodeError::Missing(_))));
        }
    }

    #[test]
    fn a_read_pinned_bundle_outlives_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path()).unwrap();
        let z = make_zip(&[("a.py", b"read", None)]);
        let sha = check_bundle(&z).unwrap().sha256;
        let pin = store.pin(&sha);
        store.put(&pin, &z).unwrap();
        drop(pin);
        let (row, pin) = store
            .read_pinned(|| Ok::<_, ()>(sha.clone()), |r| r.as_str())
            .unwrap();
        assert_eq!(row, sha);
        // The row is gone (deleted or its code replaced): the pin keeps the bundle.
        store.collect_garbage(|| Some(HashSet::new())).unwrap();
        assert_eq!(store.get(&sha).unwrap(), z);
        drop(pin);
        store.collect_garbage(|| Some(HashSet::new())).unwrap();
        assert!(matches!(store.get(&sha), Err(CodeError::Missing(_))));
        // A failed read pins nothing.
        assert_eq!(
            store
                .read_pinned(|| Err::<String, _>(7), |r| r.as_str())
                .unwrap_err(),
            7
        );
        assert!(lock_pins(&store.pins).is_empty());
    }

    #[test]
    fn collection_leaves_temporary_files_of_a_put_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path()).unwrap();
        std::fs::write(dir.path().join(".tmpXYZ"), b"half").unwrap();
        store.collect_garbage(|| Some(HashSet::new())).unwrap();
        assert!(dir.path().join(".tmpXYZ").exists());
        CodeStore::open(dir.path()).unwrap();
        assert!(!dir.path().join(".tmpXYZ").exists(), "open cleans up");
    }
}
