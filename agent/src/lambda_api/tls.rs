//! TLS for the REST API and the function URL listener (rustls with the ring
//! provider): the certificate chain and the private key come from PEM files
//! (`--api-tls-cert`/`--api-tls-key`, `--http-tls-cert`/`--http-tls-key`).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// TLS set-up failures; each names the file to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no PEM certificate
    #[error("{flag} {path}: {reason}")]
    Cert {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The key file is unreadable or holds no PEM private key
    #[error("{flag} {path}: {reason}")]
    Key {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// rustls refused the pair (for example a key that does not match)
    #[error("TLS certificate and key: {0}")]
    Config(#[from] rustls::Error),
}

/// The REST API's TLS acceptor serving `cert` (PEM chain, leaf first) with `key`
/// (PEM), HTTP/1.1 only.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    acceptor_for(
        cert,
        key,
        ("--api-tls-cert", "--api-tls-key"),
        &[b"http/1.1"],
    )
}

/// A TLS acceptor serving `cert` with `key`; errors name the `flags` (certificate,
/// key) they came from; `alpn` lists the protocols offered, preferred first.
pub fn acceptor_for(
    cert: &Path,
    key: &Path,
    flags: (&'static str, &'static str),
    alpn: &[&[u8]],
) -> Result<TlsAcceptor, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        flag: flags.0,
        path: cert.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err(
            "no CERTIFICATE block: give a PEM certificate chain".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        flag: flags.1,
        path: key.to_path_buf(),
        reason: format!("{e}: give a PEM private key (PKCS#8, PKCS#1 or SEC1)"),
    })?;
    // ring rather than aws-lc-rs keeps the build free of cmake; the price is no
    // post-quantum key exchange, which rustls marks by deprecating this constructor.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_files_name_the_flag() {
        let d = tempfile::tempdir().unwrap();
        let empty = d.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = acceptor(&d.path().join("nope.pem"), &empty)
            .err()
            .expect("a missing certificate is refused");
        assert!(e.to_string().starts_with("--api-tls-cert"), "{e}");
        let e = acceptor(&empty, &empty)
            .err()
            .expect("an empty certificate file is refused");
        assert!(e.to_string().contains("no CERTIFICATE block"), "{e}");
    }
}
