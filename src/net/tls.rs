//! TLS on the node's listener (`--tls-cert`, `--tls-key`), with rustls. The certificate and key
//! are read again on SIGHUP (a renewed certificate needs no restart); a connection keeps the
//! configuration it was accepted with, so nothing open is dropped, and a file that does not
//! load leaves the previous certificate in place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring::default_provider;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no PEM certificate.
    #[error("cannot read the TLS certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key file could not be read or holds no PEM private key.
    #[error("cannot read the TLS key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("the TLS certificate and key cannot be used together: {0}")]
    Config(String),
}

/// The certificate and key files, and the configuration made from them last.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsFiles {
    /// Reads the pair; fails naming the file that cannot be used.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsFiles, TlsError> {
        Ok(TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(server_config(cert, key)?),
        })
    }

    /// Reads the pair again; on failure the previous one stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// What a connection accepted now handshakes with.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_error = |reason: String| TlsError::Certificate {
        path: cert.to_path_buf(),
        reason,
    };
    let chain = crate::pem::certificates(cert).map_err(cert_error)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    // WebSockets go over HTTP/1.1; HTTP/2 serves plain requests.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    #[test]
    fn a_pair_that_cannot_be_used_is_named_and_a_failed_reload_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let (_, other_key) = pair(dir.path(), "b");
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not PEM").unwrap();

        let error = TlsFiles::load(&missing, &key).err().unwrap();
        assert!(error.to_string().contains("missing.pem"), "{error}");
        let error = TlsFiles::load(&garbage, &key).err().unwrap();
        assert!(matches!(error, TlsError::Certificate { .. }), "{error}");
        let error = TlsFiles::load(&cert, &garbage).err().unwrap();
        assert!(matches!(error, TlsError::Key { .. }), "{error}");
        let error = TlsFiles::load(&cert, &other_key).err().unwrap();
        assert!(
            matches!(error, TlsError::Config(_)),
            "a key of another certificate: {error}"
        );

        let files = TlsFiles::load(&cert, &key).unwrap();
        let before = Arc::clone(&files.current.read().unwrap());
        std::fs::write(&cert, "renewal went wrong").unwrap();
        assert!(files.reload().is_err());
        assert!(
            Arc::ptr_eq(&before, &files.current.read().unwrap()),
            "the old pair stays"
        );
    }
}
