//! Access keys for the REST API: an access key id and a secret, as AWS issues them.
//! SigV4 needs the secret itself to recompute signatures, so it cannot be stored
//! hashed; it is kept in `<data>/access-keys.json`, a file created with mode 0600 (only
//! root, who runs flintd, can read it) and replaced atomically. Secrets are never
//! logged; `list` shows ids only.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name of the key file inside the data directory.
pub const FILE_NAME: &str = "access-keys.json";

/// Key store failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written
    #[error("access key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The key file is not what this version writes
    #[error(
        "access key file {path} is corrupt ({reason}): fix or remove it, then create keys again"
    )]
    Corrupt { path: PathBuf, reason: String },
    /// Revoking an id that does not exist
    #[error("no access key {0}: list them with `flint keys list`")]
    NotFound(String),
    /// A grant of `--allow` that cannot be used
    #[error(transparent)]
    Policy(crate::access_policy::GrantError),
    /// The file can be read by others than its owner
    #[error("access key file {0} is readable by group or others: chmod 600 it")]
    Permissions(PathBuf),
}

/// One stored key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    /// What the key is for, as given at creation.
    #[serde(default)]
    pub description: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// The key's grants (`ACTION[:PATTERN]`, access_policy.rs); absent: full access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Vec<String>>,
}

impl AccessKey {
    /// Who calls with this key: its id and parsed policy.
    pub fn caller(&self) -> Result<crate::access_policy::Caller, KeyError> {
        let policy = match &self.policy {
            None => None,
            Some(specs) => Some(crate::access_policy::KeyPolicy::parse(specs).map_err(|e| {
                KeyError::Corrupt {
                    path: PathBuf::from(FILE_NAME),
                    reason: format!("key {}: {e}", self.id),
                }
            })?),
        };
        Ok(crate::access_policy::Caller {
            key_id: self.id.clone(),
            policy,
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<AccessKey>,
}

/// The key file of one data directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    path: PathBuf,
}

/// `n` bytes from the kernel's CSPRNG.
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, std::io::Error> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

impl KeyStore {
    /// The key store of the data directory `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// Where the keys are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> KeyError {
        KeyError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn load(&self) -> Result<KeyFile, KeyError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyFile::default()),
            Err(e) => return Err(self.io(e)),
        };
        let mode = std::fs::metadata(&self.path)
            .map_err(|e| self.io(e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions(self.path.clone()));
        }
        serde_json::from_slice(&text).map_err(|e| KeyError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    fn save(&self, f: &KeyFile) -> Result<(), KeyError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let text = serde_json::to_vec_pretty(f).map_err(|e| KeyError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.io(e))?;
        out.write_all(&text)
            .and_then(|_| out.sync_all())
            .map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }

    /// Creates a key with full access: an id of 20 upper-case characters starting
    /// `FLK` and a 40-character secret.
    pub fn create(&self, description: &str) -> Result<AccessKey, KeyError> {
        self.create_with_policy(description, None)
    }

    /// Creates a key limited to `policy`'s grants (`None`: full access); the grants
    /// are checked first.
    pub fn create_with_policy(
        &self,
        description: &str,
        policy: Option<Vec<String>>,
    ) -> Result<AccessKey, KeyError> {
        use base64::Engine;
        if let Some(specs) = &policy {
            crate::access_policy::KeyPolicy::parse(specs).map_err(KeyError::Policy)?;
        }
        let mut f = self.load()?;
        let rnd = random_bytes(40).map_err(|e| self.io(e))?;
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let id: String = std::iter::once("FLK".to_string())
            .chain(
                rnd[..17]
                    .iter()
                    .map(|b| (ALPHABET[(*b & 31) as usize] as char).to_string()),
            )
            .collect();
        let secret = base64::engine::general_purpose::STANDARD.encode(&rnd[10..40]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let key = AccessKey {
            id,
            secret,
            description: description.to_string(),
            created: crate::timefmt::rfc3339_secs(now),
            policy,
        };
        f.keys.push(key.clone());
        self.save(&f)?;
        tracing::info!(access_key = %key.id, "access key created");
        Ok(key)
    }

    /// Every key (with secrets: callers print ids only).
    pub fn list(&self) -> Result<Vec<AccessKey>, KeyError> {
        Ok(self.load()?.keys)
    }

    /// Deletes a key; requests signed with it are refused from then on.
    pub fn revoke(&self, id: &str) -> Result<(), KeyError> {
        let mut f = self.load()?;
        let before = f.keys.len();
        f.keys.retain(|k| k.id != id);
        if f.keys.len() == before {
            return Err(KeyError::NotFound(id.to_string()));
        }
        self.save(&f)?;
        tracing::info!(access_key = %id, "access key revoked");
        Ok(())
    }

    /// The key `id`, if it exists.
    pub fn get(&self, id: &str) -> Result<Option<AccessKey>, KeyError> {
        Ok(self.load()?.keys.into_iter().find(|k| k.id == id))
    }

    /// The secret of `id`, if the key exists.
    pub fn secret(&self, id: &str) -> Result<Option<String>, KeyError> {
        Ok(self
            .load()?
            .keys
            .into_iter()
            .find(|k| k.id == id)
            .map(|k| k.secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_found_and_revoked_in_a_private_file() {
        let d = tempfile::tempdir().unwrap();
        let s = KeyStore::new(d.path());
        assert!(s.list().unwrap().is_empty());
        let a = s.create("ci").unwrap();
        let b = s.create("").unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 20);
        assert!(a.id.starts_with("FLK"));
        assert_eq!(a.secret.len(), 40);
        let mode = std::fs::metadata(s.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(s.secret(&a.id).unwrap(), Some(a.secret.clone()));
        s.revoke(&a.id).unwrap();
        assert_eq!(s.secret(&a.id).unwrap(), None);
        assert!(matches!(s.revoke(&a.id), Err(KeyError::NotFound(_))));
        assert_eq!(s.list().unwrap(), vec![b]);
    }

    #[test]
    fn a_key_keeps_its_checked_policy_and_old_keys_have_full_access() {
        let d = tempfile::tempdir().unwrap();
        let s = KeyStore::new(d.path());
        let k = s
            .create_with_policy("inv", Some(vec!["lambda:InvokeFunction:orders-*".into()]))
            .unwrap();
        let c = s.get(&k.id).unwrap().unwrap().caller().unwrap();
        assert!(c
            .policy
            .unwrap()
            .allows("lambda:InvokeFunction", Some("orders-1")));
        assert!(matches!(
            s.create_with_policy("bad", Some(vec!["lambda:Nope".into()])),
            Err(KeyError::Policy(_))
        ));
        // A file written before policies existed: no `policy` field.
        std::fs::write(
            s.path(),
            r#"{"keys":[{"id":"FLKOLD","secret":"s","created":"2026-01-01T00:00:00Z"}]}"#,
        )
        .unwrap();
        let old = s.get("FLKOLD").unwrap().unwrap();
        assert!(old.caller().unwrap().policy.is_none());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = KeyStore::new(d.path());
        s.create("x").unwrap();
        std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(s.list(), Err(KeyError::Permissions(_))));
    }
}
