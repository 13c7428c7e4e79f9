//! Unpacked code bundles on the host, one read-only directory per code hash
//! (`<data>/unpacked/<sha256>/`), shared by every namespace-sandbox instance of that
//! code (mounted read-only at its /var/task by the namespace sandbox backend),
//! so neither the unpack nor the unpacked files count against a function's memory.
//!
//! A directory is made on the first start that needs it (unpacked into a temporary
//! directory, then renamed: a reader sees all of it or nothing; concurrent first starts
//! of one hash unpack once) and removed by [`UnpackCache::collect_garbage`] when no
//! function references its hash and no [`UnpackPin`] holds it. Every instance holds
//! a pin for its whole life, and a start pins before it looks, so a directory in use
//! is never removed; the same pin-then-read discipline as [`crate::code::CodeStore`].

pub mod unzip;

use crate::code::CodeError;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Prefix of a directory being unpacked.
const TMP_PREFIX: &str = ".tmp-";
/// Prefix of a directory being removed.
const DEL_PREFIX: &str = ".del-";

/// The cache of unpacked bundles.
#[derive(Debug, Clone)]
pub struct UnpackCache {
    dir: PathBuf,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Pins per hash.
    pins: HashMap<String, usize>,
    /// One lock per hash being unpacked, so concurrent first starts unpack once.
    unpacking: HashMap<String, Arc<Mutex<()>>>,
    /// Hashes a collection found unreferenced but pinned: removed with their last pin.
    doomed: HashSet<String>,
    /// The cache's directory (for removals at the last pin).
    dir: PathBuf,
}

/// Keeps one unpacked directory from garbage collection while it lives.
#[derive(Debug)]
pub struct UnpackPin {
    state: Arc<Mutex<State>>,
    sha256: String,
}

impl Drop for UnpackPin {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        let Some(n) = st.pins.get_mut(&self.sha256) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        st.pins.remove(&self.sha256);
        if !st.doomed.remove(&self.sha256) {
            return;
        }
        // The last instance of code no function references any more is gone.
        let away = rename_away(&st.dir, &self.sha256);
        drop(st);
        if let Some(away) = away {
            if let Err(e) = std::fs::remove_dir_all(&away) {
                tracing::warn!(dir = %away.display(), error = %e, "unpacked code not removed");
            }
        }
    }
}

/// Renames `dir/name` to a `.del-` name (a start that pins afterwards unpacks
/// again); None when it is not there.
fn rename_away(dir: &Path, name: &str) -> Option<PathBuf> {
    let away = dir.join(format!(
        "{DEL_PREFIX}{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::rename(dir.join(name), &away).ok().map(|()| away)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Plain counts and lock handles, each updated in one step: valid after a panic.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A bundle that cannot be unpacked, as a code error.
pub fn unzip_error(e: unzip::UnzipError) -> CodeError {
    match e {
        unzip::UnzipError::Io { path, source } => CodeError::Io { path, source },
        other => CodeError::Unpack(other.to_string()),
    }
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> CodeError + '_ {
    move |source| CodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl UnpackCache {
    /// Opens (creating) the cache in `dir`; removes what a crash left half made or
    /// half removed.
    pub fn open(dir: &Path) -> Result<Self, CodeError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) || name.starts_with(DEL_PREFIX) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            state: Arc::new(Mutex::new(State {
                dir: dir.to_path_buf(),
                ..State::default()
            })),
        })
    }

    /// Where the bundle `sha256` is (or will be) unpacked.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// Keeps the directory of `sha256` from garbage collection until the pin drops.
    pub fn pin(&self, sha256: &str) -> UnpackPin {
        *lock(&self.state)
            .pins
            .entry(sha256.to_string())
            .or_default() += 1;
        UnpackPin {
            state: self.state.clone(),
            sha256: sha256.to_string(),
        }
    }

    /// The pinned bundle's directory when it is unpacked already (one `stat`, so a
    /// start whose code is there needs no blocking hop).
    pub fn unpacked(&self, pin: &UnpackPin) -> Option<PathBuf> {
        let path = self.path_of(&pin.sha256);
        path.is_dir().then_some(path)
    }

    /// The unpacked directory of the pinned bundle, unpacking it first (from the zip
    /// `read` returns) when it is not there yet. Blocking.
    pub fn ensure(
        &self,
        pin: &UnpackPin,
        read: impl FnOnce() -> Result<Vec<u8>, CodeError>,
    ) -> Result<PathBuf, CodeError> {
        self.ensure_with(pin, |dir| {
            let zip = read()?;
            unzip::unzip(&zip, dir).map(|_| ()).map_err(unzip_error)
        })
    }

    /// The pinned directory, made first by `fill` (given an empty directory) when it
    /// is not there yet: a bundle, or the layers of an /opt tree one over the other.
    /// Blocking.
    pub fn ensure_with(
        &self,
        pin: &UnpackPin,
        fill: impl FnOnce(&Path) -> Result<(), CodeError>,
    ) -> Result<PathBuf, CodeError> {
        if let Some(path) = self.unpacked(pin) {
            return Ok(path);
        }
        let path = self.path_of(&pin.sha256);
        let one = lock(&self.state)
            .unpacking
            .entry(pin.sha256.clone())
            .or_default()
            .clone();
        let result = {
            let _unpacking = one.lock().unwrap_or_else(|p| p.into_inner());
            if path.is_dir() {
                Ok(path.clone())
            } else {
                self.unpack(&path, fill)
            }
        };
        let mut st = lock(&self.state);
        if Arc::strong_count(&one) == 2 {
            st.unpacking.remove(&pin.sha256);
        }
        result
    }

    fn unpack(
        &self,
        path: &Path,
        fill: impl FnOnce(&Path) -> Result<(), CodeError>,
    ) -> Result<PathBuf, CodeError> {
        let tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempdir_in(&self.dir)
            .map_err(io_at(&self.dir))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(io_at(tmp.path()))?;
        fill(tmp.path())?;
        // Renamed whole: a reader sees every file or no directory.
        let made = tmp.keep();
        std::fs::rename(&made, path).map_err(|e| {
            let _ = std::fs::remove_dir_all(&made);
            CodeError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        })?;
        Ok(path.to_path_buf())
    }

    /// Removes every unpacked directory whose hash is neither in the set
    /// `referenced` returns nor pinned; returns how many. One that is pinned but no
    /// longer referenced goes when its last pin (its last instance) does. `referenced` is read under
    /// the pin lock (so a start that pinned has its directory kept, and a start that
    /// pins later unpacks again); `None` removes nothing. Directories are renamed
    /// away under the lock and deleted after it.
    pub fn collect_garbage(
        &self,
        referenced: impl FnOnce() -> Option<HashSet<String>>,
    ) -> Result<usize, CodeError> {
        let mut doomed = Vec::new();
        {
            let mut st = lock(&self.state);
            let Some(keep) = referenced() else {
                return Ok(0);
            };
            st.doomed.retain(|sha| !keep.contains(sha));
            for entry in std::fs::read_dir(&self.dir).map_err(io_at(&self.dir))? {
                let entry = entry.map_err(io_at(&self.dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || keep.contains(&name) {
                    continue;
                }
                if st.pins.contains_key(&name) {
                    st.doomed.insert(name);
                    continue;
                }
                if let Some(away) = rename_away(&self.dir, &name) {
                    doomed.push(away);
                }
            }
        }
        for d in &doomed {
            std::fs::remove_dir_all(d).map_err(io_at(d))?;
        }
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests;
