//! What a microVM snapshot was made from, as one hash: the guest kernel, the runtime's
//! root disk (which holds flint-init as /sbin/init: images/build-ext4.sh copies it in),
//! the flint-vmm binary, the memory size, the vCPU count, flint-vmm's snapshot format
//! version and the init protocol version; for a snapshot taken with the runtime waiting
//! for its function, also that runtime's Prepare and the one function whose instances
//! restore it. A file is identified by its canonical path,
//! device, inode, size and modification time (not its bytes: root disks are hundreds of
//! MB and the key is computed on every start), so rebuilding or replacing any of them
//! changes the key and the snapshot is made again.

use crate::sandbox::WaitingRuntime;
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a function's own snapshot family has after `<runtime>-<MB>mb`.
pub const FUNCTION_FAMILY: &str = "-fn-";

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
    /// The key of a snapshot of `disk` booted by `kernel` in `vmm` with `memory_mb`,
    /// taken at flint-init's Hello or, with `waiting`, once the runtime waits for its
    /// function (family `<runtime>-<MB>mb-fn-<12 hex digits of the function's name>`).
    pub fn new(
        kernel: &Path,
        disk: &Path,
        vmm: &Path,
        memory_mb: u32,
        waiting: Option<&WaitingRuntime>,
    ) -> Result<Self, KeyError> {
        let mut inputs = String::new();
        inputs += &identity("kernel", kernel)?;
        inputs += &identity("root_disk", disk)?;
        inputs += &identity("vmm", vmm)?;
        inputs += &format!(
            "memory_mb={memory_mb}\nvcpus={VCPUS}\nsnapshot_format={}\ninit_protocol={}\n",
            flint_vmm::SNAPSHOT_FORMAT_VERSION,
            flint_proto::init::PROTOCOL_VERSION
        );
        if let Some(w) = waiting {
            let p = &w.prepare;
            inputs += &format!(
                "runtime_waiting bootstrap={:?} runtime={:?} memory_mb={} tmp_mb={} start_runtime={}\nfunction={:?}\n",
                p.bootstrap, p.runtime, p.memory_mb, p.tmp_mb, p.start_runtime, w.function
            );
        }
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
        let mut family = format!("{runtime}-{memory_mb}mb");
        if let Some(w) = waiting {
            // Function names are the user's: a digest keeps the directory name plain.
            let digest = hex::encode(Sha256::digest(w.function.as_bytes()));
            family += &format!("{FUNCTION_FAMILY}{}", &digest[..12]);
        }
        Ok(SnapshotKey {
            family,
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
        let a = SnapshotKey::new(&k, &disk, &vmm, 128, None).unwrap();
        assert_eq!(a, SnapshotKey::new(&k, &disk, &vmm, 128, None).unwrap());
        assert_eq!(a.family, "python3.11-128mb");
        assert!(a.dir_name().starts_with("python3.11-128mb-"));
        assert_ne!(
            a.hash,
            SnapshotKey::new(&k, &disk, &vmm, 256, None).unwrap().hash
        );
        // A kernel rebuilt in place (new size and time) is another input.
        std::fs::write(&k, b"kernel two").unwrap();
        let b = SnapshotKey::new(&k, &disk, &vmm, 128, None).unwrap();
        assert_eq!(b.family, a.family);
        assert_ne!(b.hash, a.hash);
        let e = SnapshotKey::new(Path::new("/nonexistent/vmlinux"), &disk, &vmm, 128, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/vmlinux"), "{e}");
    }

    #[test]
    fn a_waiting_runtime_gets_a_family_and_key_of_its_function() {
        let d = tempfile::tempdir().unwrap();
        let (k, vmm) = (d.path().join("vmlinux"), d.path().join("flint-vmm"));
        let rt = d.path().join("java17");
        std::fs::create_dir(&rt).unwrap();
        let disk = rt.join("rootfs.ext4");
        for f in [&k, &vmm, &disk] {
            std::fs::write(f, b"one").unwrap();
        }
        let waiting = |function: &str, bootstrap: &str| WaitingRuntime {
            prepare: flint_proto::init::Prepare {
                bootstrap: vec![bootstrap.into()],
                runtime: "java17".into(),
                memory_mb: 128,
                tmp_mb: 512,
                start_runtime: true,
            },
            function: function.into(),
        };
        let at_hello = SnapshotKey::new(&k, &disk, &vmm, 128, None).unwrap();
        let orders = waiting("orders", "/var/runtime/bootstrap");
        let a = SnapshotKey::new(&k, &disk, &vmm, 128, Some(&orders)).unwrap();
        assert!(a.family.starts_with("java17-128mb-fn-"), "{}", a.family);
        assert_eq!(a.family.len(), "java17-128mb-fn-".len() + 12);
        assert_ne!(a.hash, at_hello.hash);
        assert!(a.inputs.contains("function=\"orders\""), "{}", a.inputs);
        let b = SnapshotKey::new(
            &k,
            &disk,
            &vmm,
            128,
            Some(&waiting("users", "/var/runtime/bootstrap")),
        )
        .unwrap();
        assert_ne!(a.family, b.family, "another function, another family");
        let c = SnapshotKey::new(&k, &disk, &vmm, 128, Some(&waiting("orders", "/other"))).unwrap();
        assert_eq!(
            (c.family.as_str(), c.hash != a.hash),
            (a.family.as_str(), true)
        );
    }
}
