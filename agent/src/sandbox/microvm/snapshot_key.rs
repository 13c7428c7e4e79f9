//! What a microVM snapshot was made from, as one hash: the guest kernel, the runtime's
//! root disk (which holds flint-init as /sbin/init: images/build-ext4.sh copies it in),
//! the flint-vmm binary, the memory size, the vCPU count, flint-vmm's snapshot format
//! version and the init protocol version. A file is identified by its canonical path,
//! device, inode, size and modification time (not its bytes: root disks are hundreds of
//! MB and the key is computed on every start), so rebuilding or replacing any of them
//! changes the key and the snapshot is made again.

use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// vCPUs the backend gives every microVM (flint-vmm's default).
pub const VCPUS: u8 = 1;

/// A snapshot's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotKey {
    /// `<runtime>-<memory>mb`: snapshots of one pool share it, whatever their inputs.
    pub family: String,
    /// Hex SHA-256 of every input.
    pub hash: String,
    /// The inputs in words, stored next to the snapshot for operators.
    pub inputs: String,
}

/// Errors computing a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An input file cannot be read
    #[error("snapshot input {path}: {source}")]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn identity(label: &str, path: &Path) -> Result<String, KeyError> {
    let err = |source| KeyError::Input {
        path: path.to_path_buf(),
        source,
    };
    let canonical = path.canonicalize().map_err(err)?;
    let m = std::fs::metadata(&canonical).map_err(err)?;
    Ok(format!(
        "{label}={} dev={} ino={} size={} mtime={}.{:09}\n",
        canonical.display(),
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

impl SnapshotKey {
    /// The key of a snapshot of `disk` booted by `kernel` in `vmm` with `memory_mb`.
    pub fn new(kernel: &Path, disk: &Path, vmm: &Path, memory_mb: u32) -> Result<Self, KeyError> {
        let mut inputs = String::new();
        inputs += &identity("kernel", kernel)?;
        inputs += &identity("root_disk", disk)?;
        inputs += &identity("vmm", vmm)?;
        inputs += &format!(
            "memory_mb={memory_mb}\nvcpus={VCPUS}\nsnapshot_format={}\ninit_protocol={}\n",
            flint_vmm::SNAPSHOT_FORMAT_VERSION,
            flint_proto::init::PROTOCOL_VERSION
        );
        let runtime = disk
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "runtime".into());
        let runtime: String = runtime
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(SnapshotKey {
            family: format!("{runtime}-{memory_mb}mb"),
            hash: hex::encode(Sha256::digest(inputs.as_bytes())),
            inputs,
        })
    }

    /// The snapshot's directory name: `<family>-<first 16 hex digits of the hash>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.family, &self.hash[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_changed_input_changes_the_key() {
        let d = tempfile::tempdir().unwrap();
        let (k, vmm) = (d.path().join("vmlinux"), d.path().join("flint-vmm"));
        let rt = d.path().join("python3.11");
        std::fs::create_dir(&rt).unwrap();
        let disk = rt.join("rootfs.ext4");
        for f in [&k, &vmm, &disk] {
            std::fs::write(f, b"one").unwrap();
        }
        let a = SnapshotKey::new(&k, &disk, &vmm, 128).unwrap();
        assert_eq!(a, SnapshotKey::new(&k, &disk, &vmm, 128).unwrap());
        assert_eq!(a.family, "python3.11-128mb");
        assert!(a.dir_name().starts_with("python3.11-128mb-"));
        assert_ne!(a.hash, SnapshotKey::new(&k, &disk, &vmm, 256).unwrap().hash);
        // A kernel rebuilt in place (new size and time) is another input.
        std::fs::write(&k, b"kernel two").unwrap();
        let b = SnapshotKey::new(&k, &disk, &vmm, 128).unwrap();
        assert_eq!(b.family, a.family);
        assert_ne!(b.hash, a.hash);
        let e = SnapshotKey::new(Path::new("/nonexistent/vmlinux"), &disk, &vmm, 128)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/vmlinux"), "{e}");
    }
}
