//! Envelope encryption of one secret value: a fresh random data key encrypts the value
//! (XChaCha20-Poly1305), and the operator key wraps the data key (XChaCha20-Poly1305).
//! The value's context (which function and variable, or which secret) is bound as
//! associated data, so a sealed value copied to another row does not open.
//!
//! Sealed text: `fsv1:` + base64 of
//! `fingerprint(8) | key nonce(24) | wrapped data key(32 + 16) | value nonce(24) | ciphertext + tag`.

use super::key::OperatorKey;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Prefix of every sealed value (format version 1).
pub const PREFIX: &str = "fsv1:";

const FP: usize = 8;
const NONCE: usize = 24;
const TAG: usize = 16;
const WRAPPED: usize = 32 + TAG;
const HEADER: usize = FP + NONCE + WRAPPED + NONCE;

/// Associated data of the wrapped data key.
const WRAP_AAD: &[u8] = b"flint data key v1";

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No randomness from the kernel
    #[error("reading random bytes for a data key: {0}")]
    Random(std::io::Error),
    /// The text is not a sealed value of this format
    #[error("a stored secret is not in the sealed format (fsv1): the registry row is corrupt")]
    Format,
    /// Sealed under another operator key
    #[error(
        "a stored secret was sealed with another operator key (fingerprint {found}, this \
         flintd's is {ours}): start flintd with the key it was stored under"
    )]
    OtherKey { found: String, ours: String },
    /// Authentication failed: tampered, or moved to another context
    #[error("a stored secret failed authentication: it was altered or copied from another place")]
    Tampered,
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.into())
}

/// Seals `value` for `context` under `key`.
pub fn seal(key: &OperatorKey, context: &str, value: &[u8]) -> Result<String, SealError> {
    let rnd =
        crate::lambda_api::keys::random_bytes(32 + NONCE + NONCE).map_err(SealError::Random)?;
    let mut data_key = [0u8; 32];
    data_key.copy_from_slice(&rnd[..32]);
    let key_nonce = &rnd[32..32 + NONCE];
    let value_nonce = &rnd[32 + NONCE..];
    let wrapped = cipher(key.bytes())
        .encrypt(
            XNonce::from_slice(key_nonce),
            Payload {
                msg: &data_key,
                aad: WRAP_AAD,
            },
        )
        .map_err(|_| SealError::Tampered)?;
    let ct = cipher(&data_key)
        .encrypt(
            XNonce::from_slice(value_nonce),
            Payload {
                msg: value,
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| SealError::Tampered)?;
    data_key.fill(0);
    let mut out = Vec::with_capacity(HEADER + ct.len());
    out.extend_from_slice(&key.fingerprint());
    out.extend_from_slice(key_nonce);
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(value_nonce);
    out.extend_from_slice(&ct);
    Ok(format!("{PREFIX}{}", B64.encode(out)))
}

/// Opens a value sealed by [`seal`] for the same `context`.
pub fn open(key: &OperatorKey, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
    let raw = sealed
        .strip_prefix(PREFIX)
        .and_then(|b| B64.decode(b).ok())
        .filter(|r| r.len() >= HEADER + TAG)
        .ok_or(SealError::Format)?;
    let (fp, rest) = raw.split_at(FP);
    if fp != key.fingerprint() {
        return Err(SealError::OtherKey {
            found: hex::encode(fp),
            ours: hex::encode(key.fingerprint()),
        });
    }
    let (key_nonce, rest) = rest.split_at(NONCE);
    let (wrapped, rest) = rest.split_at(WRAPPED);
    let (value_nonce, ct) = rest.split_at(NONCE);
    let dk = cipher(key.bytes())
        .decrypt(
            XNonce::from_slice(key_nonce),
            Payload {
                msg: wrapped,
                aad: WRAP_AAD,
            },
        )
        .map_err(|_| SealError::Tampered)?;
    let mut data_key = [0u8; 32];
    data_key.copy_from_slice(&dk);
    let value = cipher(&data_key)
        .decrypt(
            XNonce::from_slice(value_nonce),
            Payload {
                msg: ct,
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| SealError::Tampered);
    data_key.fill(0);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> OperatorKey {
        OperatorKey::from_bytes([b; 32])
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let k = key(1);
        let s = seal(&k, "function/f/env/DB_PASSWORD", b"hunter2").unwrap();
        assert!(s.starts_with(PREFIX));
        assert!(!s.contains("hunter2"));
        assert_eq!(
            open(&k, "function/f/env/DB_PASSWORD", &s).unwrap(),
            b"hunter2"
        );
        // Another context: copied to another variable or function.
        assert!(matches!(
            open(&k, "function/g/env/DB_PASSWORD", &s),
            Err(SealError::Tampered)
        ));
        // Another operator key.
        let err = open(&key(2), "function/f/env/DB_PASSWORD", &s).unwrap_err();
        assert!(matches!(err, SealError::OtherKey { .. }), "{err}");
    }

    #[test]
    fn every_seal_uses_a_fresh_data_key_and_nonces() {
        let k = key(3);
        let a = seal(&k, "c", b"same").unwrap();
        let b = seal(&k, "c", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_detected() {
        let k = key(4);
        let s = seal(&k, "c", b"value").unwrap();
        let raw = B64.decode(s.strip_prefix(PREFIX).unwrap()).unwrap();
        for i in FP..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let text = format!("{PREFIX}{}", B64.encode(&bad));
            assert!(open(&k, "c", &text).is_err(), "byte {i} not authenticated");
        }
        assert!(matches!(open(&k, "c", "plain"), Err(SealError::Format)));
        assert!(matches!(
            open(&k, "c", &format!("{PREFIX}AAAA")),
            Err(SealError::Format)
        ));
    }
}
