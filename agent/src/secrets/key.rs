//! The operator key: 32 bytes that wrap every data key of [`super::envelope`]. It comes
//! from a file that only its owner may read (`--secrets-key-file`) or from the
//! environment (`FLINT_SECRETS_KEY`), base64 in both cases. flintd never writes it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Length of the operator key in bytes.
pub const KEY_LEN: usize = 32;

/// The environment variable that may hold the key (base64).
pub const KEY_ENV: &str = "FLINT_SECRETS_KEY";

/// Why the operator key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read
    #[error("operator key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The key file can be read by others than its owner
    #[error(
        "operator key file {0} is readable by its group or others (mode {1:o}): \
         run `chmod 600 {0}` (the key decrypts every secret in the registry)"
    )]
    Permissions(PathBuf, u32),
    /// The key is not 32 bytes of base64
    #[error(
        "operator key from {0} is not 32 bytes in base64: make one with \
         `head -c 32 /dev/urandom | base64`"
    )]
    Format(String),
}

/// The operator key, with a short fingerprint that sealed values carry so that a
/// value sealed under another key is recognised as such.
#[derive(Clone)]
pub struct OperatorKey {
    bytes: [u8; KEY_LEN],
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorKey({})", hex::encode(self.fingerprint()))
    }
}

impl OperatorKey {
    /// A key from its raw bytes.
    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// Decodes base64 text (surrounding white space ignored); `source` names where
    /// it came from in the error.
    pub fn from_base64(text: &str, source: &str) -> Result<Self, KeyError> {
        let raw = B64
            .decode(text.trim())
            .map_err(|_| KeyError::Format(source.to_string()))?;
        let bytes: [u8; KEY_LEN] = raw
            .try_into()
            .map_err(|_| KeyError::Format(source.to_string()))?;
        Ok(Self { bytes })
    }

    /// Reads the key file, refusing one its group or others can read.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions(path.to_path_buf(), mode & 0o777));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_base64(&text, &path.display().to_string())
    }

    /// The key of flintd's settings: the file when given, else [`KEY_ENV`], else none.
    pub fn load(file: Option<&Path>) -> Result<Option<Self>, KeyError> {
        if let Some(p) = file {
            return Self::from_file(p).map(Some);
        }
        match std::env::var(KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::from_base64(&v, KEY_ENV).map(Some),
            _ => Ok(None),
        }
    }

    pub(super) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The first 8 bytes of SHA-256 over a label and the key: identifies the key
    /// without revealing it.
    pub fn fingerprint(&self) -> [u8; 8] {
        let mut h = Sha256::new();
        h.update(b"flint operator key fingerprint v1");
        h.update(self.bytes);
        let d = h.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&d[..8]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_key(dir: &Path, mode: u32) -> PathBuf {
        let p = dir.join("operator.key");
        let mut f = std::fs::File::create(&p).unwrap();
        writeln!(f, "{}", B64.encode([7u8; 32])).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_private_key_file_is_read() {
        let d = tempfile::tempdir().unwrap();
        let k = OperatorKey::from_file(&write_key(d.path(), 0o600)).unwrap();
        assert_eq!(k.bytes(), &[7u8; 32]);
        assert_eq!(format!("{k:?}").len(), "OperatorKey()".len() + 16);
    }

    #[test]
    fn a_group_or_world_readable_key_file_is_refused_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o644] {
            let err = OperatorKey::from_file(&write_key(d.path(), mode)).unwrap_err();
            assert!(matches!(err, KeyError::Permissions(..)), "{err}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused() {
        let err = OperatorKey::from_base64(&B64.encode([1u8; 16]), "test").unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        assert!(OperatorKey::from_base64("not base64!", "test").is_err());
    }
}
