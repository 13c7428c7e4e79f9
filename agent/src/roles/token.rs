//! Temporary credentials for an execution role, verifiable without storing them.
//!
//! - The access key id is `ASIA` and 16 random characters (AWS's prefix for
//!   temporary keys).
//! - The session token carries its claims in the clear (`v1|KEYID|ROLE|FUNCTION|EXPIRY`)
//!   and an HMAC-SHA256 over them with the host's signing key: flintd recognises its
//!   own tokens, and nothing in them can be changed.
//! - The secret access key is derived from the claims by HMAC with the same key, so
//!   flintd recomputes it to check a SigV4 signature: no credential is ever stored.
//!
//! The signing key is 32 random bytes in `<data>/role-signing.key` (mode 0600),
//! created on first use; replacing it revokes every outstanding credential.

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<Sha256>;

/// File name of the signing key inside the data directory.
pub const KEY_FILE: &str = "role-signing.key";
/// Longest lifetime of a credential (Lambda's: one hour).
pub const TTL_MAX_S: u64 = 3600;
/// Prefix of every session token this version mints.
const TOKEN_PREFIX: &str = "FLT1.";

/// Credential failures.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The signing key file could not be read or written
    #[error("role signing key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The signing key file is readable by others
    #[error("role signing key {0} is readable by group or others: chmod 600 it")]
    Permissions(PathBuf),
    /// The signing key file is not 32 bytes
    #[error(
        "role signing key {0} is corrupt: remove it (every issued credential is then revoked)"
    )]
    Corrupt(PathBuf),
    /// Not a token flintd minted, or altered
    #[error("The security token included in the request is invalid.")]
    Invalid,
    /// The token's lifetime is over
    #[error("The security token included in the request is expired")]
    Expired,
}

/// What a valid session token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub access_key_id: String,
    pub role: String,
    /// The function whose instance received the credentials.
    pub function: String,
    /// Unix seconds.
    pub expires: u64,
}

/// One set of temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Minted {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Unix seconds.
    pub expires: u64,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the token: this type may reach a log line.
        f.debug_struct("Minted")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// The host's signing key.
#[derive(Clone)]
pub struct SigningKey {
    key: [u8; 32],
}

impl SigningKey {
    /// A key from raw bytes (tests).
    #[cfg(test)]
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// Reads `<data_dir>/role-signing.key`, creating it (0600) when missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, TokenError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| TokenError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(TokenError::Permissions(path));
                }
                let raw = B64
                    .decode(text.trim())
                    .map_err(|_| TokenError::Corrupt(path.clone()))?;
                let key: [u8; 32] = raw
                    .try_into()
                    .map_err(|_| TokenError::Corrupt(path.clone()))?;
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let raw = crate::lambda_api::keys::random_bytes(32).map_err(io)?;
                let mut key = [0u8; 32];
                key.copy_from_slice(&raw);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                f.write_all(B64.encode(key).as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(io)?;
                Ok(Self { key })
            }
            Err(e) => Err(io(e)),
        }
    }

    fn mac(&self, label: &[u8], claims: &str) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(label);
        m.update(claims.as_bytes());
        m
    }

    fn secret_for(&self, claims: &str) -> String {
        let d = self.mac(b"flint role secret v1|", claims).finalize();
        B64.encode(d.into_bytes())[..40].to_string()
    }

    /// Mints credentials for `role`, received by an instance of `function`, valid
    /// until `now + ttl_s` (at most [`TTL_MAX_S`]).
    pub fn mint(
        &self,
        role: &str,
        function: &str,
        now: u64,
        ttl_s: u64,
    ) -> Result<Minted, TokenError> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let rnd = crate::lambda_api::keys::random_bytes(16).map_err(|source| TokenError::Io {
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
        let id: String = "ASIA"
            .chars()
            .chain(rnd.iter().map(|b| ALPHABET[(*b & 31) as usize] as char))
            .collect();
        let expires = now + ttl_s.min(TTL_MAX_S);
        let claims = format!("v1|{id}|{role}|{function}|{expires}");
        let tag = self.mac(b"flint session token v1|", &claims).finalize();
        let token = format!(
            "{TOKEN_PREFIX}{}.{}",
            B64URL.encode(claims.as_bytes()),
            B64URL.encode(tag.into_bytes())
        );
        Ok(Minted {
            secret_access_key: self.secret_for(&claims),
            access_key_id: id,
            session_token: token,
            expires,
        })
    }

    /// Checks a session token presented with `access_key_id` at `now`; returns its
    /// claims and the secret the request must have been signed with.
    pub fn verify(
        &self,
        token: &str,
        access_key_id: &str,
        now: u64,
    ) -> Result<(Claims, String), TokenError> {
        let body = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Invalid)?;
        let (c, t) = body.split_once('.').ok_or(TokenError::Invalid)?;
        let claims = B64URL
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(TokenError::Invalid)?;
        let tag = B64URL.decode(t).map_err(|_| TokenError::Invalid)?;
        self.mac(b"flint session token v1|", &claims)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Invalid)?;
        let parts: Vec<&str> = claims.split('|').collect();
        let [v, id, role, function, expires] = parts[..] else {
            return Err(TokenError::Invalid);
        };
        let expires: u64 = expires.parse().map_err(|_| TokenError::Invalid)?;
        if v != "v1" || id != access_key_id {
            return Err(TokenError::Invalid);
        }
        if now >= expires {
            return Err(TokenError::Expired);
        }
        let secret = self.secret_for(&claims);
        Ok((
            Claims {
                access_key_id: id.to_string(),
                role: role.to_string(),
                function: function.to_string(),
                expires,
            },
            secret,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key() -> SigningKey {
        SigningKey::from_bytes([9; 32])
    }

    #[test]
    fn minted_credentials_verify_and_give_back_the_same_secret() {
        let m = key().mint("reader", "caller", NOW, 3600).unwrap();
        assert!(m.access_key_id.starts_with("ASIA"));
        assert_eq!(m.access_key_id.len(), 20);
        assert_eq!(m.secret_access_key.len(), 40);
        assert_eq!(m.expires, NOW + 3600);
        let (claims, secret) = key()
            .verify(&m.session_token, &m.access_key_id, NOW + 10)
            .unwrap();
        assert_eq!(secret, m.secret_access_key);
        assert_eq!(
            claims,
            Claims {
                access_key_id: m.access_key_id.clone(),
                role: "reader".into(),
                function: "caller".into(),
                expires: NOW + 3600,
            }
        );
        assert!(!format!("{m:?}").contains(&m.secret_access_key));
        assert!(!format!("{m:?}").contains(&m.session_token));
    }

    #[test]
    fn lifetimes_are_capped_at_an_hour_and_expire() {
        let m = key().mint("r", "f", NOW, 99_999).unwrap();
        assert_eq!(m.expires, NOW + TTL_MAX_S);
        let m = key().mint("r", "f", NOW, 5).unwrap();
        assert!(key()
            .verify(&m.session_token, &m.access_key_id, NOW + 4)
            .is_ok());
        assert!(matches!(
            key().verify(&m.session_token, &m.access_key_id, NOW + 5),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn altered_foreign_or_mismatched_tokens_are_invalid() {
        let m = key().mint("reader", "f", NOW, 60).unwrap();
        // Another host's key.
        let other = SigningKey::from_bytes([1; 32]);
        assert!(matches!(
            other.verify(&m.session_token, &m.access_key_id, NOW),
            Err(TokenError::Invalid)
        ));
        // Another access key id than the token's.
        let n = key().mint("reader", "f", NOW, 60).unwrap();
        assert!(matches!(
            key().verify(&m.session_token, &n.access_key_id, NOW),
            Err(TokenError::Invalid)
        ));
        // Claims rewritten (a longer expiry, another role) with the old tag.
        let body = m.session_token.strip_prefix(TOKEN_PREFIX).unwrap();
        let (_, tag) = body.split_once('.').unwrap();
        for forged in [
            format!("v1|{}|reader|f|{}", m.access_key_id, NOW + 99_999),
            format!("v1|{}|admin|f|{}", m.access_key_id, m.expires),
        ] {
            let t = format!("{TOKEN_PREFIX}{}.{tag}", B64URL.encode(forged));
            assert!(matches!(
                key().verify(&t, &m.access_key_id, NOW),
                Err(TokenError::Invalid)
            ));
        }
        for junk in ["", "FLT1.", "FLT1.a.b", "x.y", "FLT1.!!.??"] {
            assert!(key().verify(junk, &m.access_key_id, NOW).is_err());
        }
    }

    #[test]
    fn the_signing_key_is_created_private_and_reread() {
        let d = tempfile::tempdir().unwrap();
        let a = SigningKey::load_or_create(d.path()).unwrap();
        let mode = std::fs::metadata(d.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = SigningKey::load_or_create(d.path()).unwrap();
        assert_eq!(a.key, b.key);
        std::fs::set_permissions(
            d.path().join(KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            SigningKey::load_or_create(d.path()),
            Err(TokenError::Permissions(_))
        ));
    }
}
