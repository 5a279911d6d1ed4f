//! [`SecretsKey`]: the key file that seals workers' secrets, and the sealing itself.
//!
//! The file holds 32 random bytes as 64 hex digits and a newline, readable by its owner only
//! (created with mode 0600). Every node of a cluster needs the same file: a value sealed on one
//! node is opened on every node that runs the worker. The key's fingerprint (a hash of it,
//! which says nothing about it) is what the store keeps to find a node with another key.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::store::StoreError;

/// The key file's name in the data directory, unless `--secrets-key` names another.
pub const KEY_FILE: &str = "secrets-key";

/// Bytes of a key.
const KEY_BYTES: usize = 32;

/// Bytes of an XChaCha20-Poly1305 nonce: random nonces this long never repeat in practice.
pub(super) const NONCE_BYTES: usize = 24;

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file cannot be created.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds something else than a key.
    #[error("{path} is not a secrets key file: {reason} (a key file holds 64 hex digits)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The operating system gave no random bytes for a new key.
    #[error("cannot make a secrets key: no randomness from the operating system ({0})")]
    Randomness(String),
    /// The cluster's secrets are sealed with another key.
    #[error(
        "{path} (fingerprint {ours}) is not the key this cluster's secrets are sealed with \
         (fingerprint {stored}, first used by node {stored_by}): every node of a cluster needs the \
         same key file, so copy that node's file here (or name it with --secrets-key) and restart \
         this node. If that key is lost, its secrets are unreadable: start once with \
         --secrets-key-reset to delete every stored secret and use this key"
    )]
    Mismatch {
        /// This node's key file.
        path: PathBuf,
        /// Its fingerprint.
        ours: String,
        /// The fingerprint the store holds.
        stored: String,
        /// The node that stored it.
        stored_by: String,
    },
    /// The store could not be asked.
    #[error("cannot check the secrets key against the cluster's: {0}")]
    Store(#[from] StoreError),
}

/// The key that seals secrets, ready to seal and open.
pub struct SecretsKey {
    aead: XChaCha20Poly1305,
    /// A hash of the key, safe to show and store.
    fingerprint: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SecretsKey {
    /// The key made of `bytes`.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> SecretsKey {
        let mut hash = Sha256::new();
        hash.update(b"heterogen secrets key fingerprint v1\0");
        hash.update(bytes);
        let digest = hash.finalize();
        SecretsKey {
            aead: XChaCha20Poly1305::new(&bytes.into()),
            fingerprint: hex::encode(digest.get(..8).unwrap_or_default()),
        }
    }

    /// The key in the file at `path`, created there first (mode 0600) if there is none.
    /// Returns whether it was created. A key file others may read is used, with a warning.
    pub fn read_or_create(path: &Path) -> Result<(SecretsKey, bool), KeyError> {
        match Self::read(path) {
            Ok(key) => Ok((key, false)),
            Err(KeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                match Self::create(path) {
                    Ok(key) => Ok((key, true)),
                    // Another process made it first: use theirs.
                    Err(KeyError::Write { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Ok((Self::read(path)?, false))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The key in the file at `path`.
    pub fn read(path: &Path) -> Result<SecretsKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |reason: &str| KeyError::Invalid {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let digits = text.trim();
        if digits.len() != KEY_BYTES * 2 {
            return Err(invalid(&format!("it holds {} characters", digits.len())));
        }
        let mut bytes = [0u8; KEY_BYTES];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| invalid("not hex digits"))?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    key = %path.display(),
                    "the secrets key file may be read by other users: chmod 600 it"
                );
            }
        }
        Ok(SecretsKey::from_bytes(bytes))
    }

    /// Makes a new key and writes it to a new file at `path` (mode 0600).
    fn create(path: &Path) -> Result<SecretsKey, KeyError> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Randomness(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let write_error = |source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut file = options.open(path).map_err(write_error)?;
        let written = file
            .write_all(format!("{}\n", hex::encode(bytes)).as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(source) = written {
            // A half-written key must not be taken for one at the next start.
            let _ = std::fs::remove_file(path);
            return Err(write_error(source));
        }
        Ok(SecretsKey::from_bytes(bytes))
    }

    /// A hash of the key (16 hex digits): shows which key a node has without showing the key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `value` sealed for secret `name` of worker `sid`: a fresh random nonce and the
    /// ciphertext with its tag; `None` if sealing failed.
    pub(super) fn seal(&self, sid: &str, name: &str, value: &[u8]) -> Option<([u8; NONCE_BYTES], Vec<u8>)> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).ok()?;
        let aad = associated_data(sid, name);
        let sealed = self
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: value,
                    aad: &aad,
                },
            )
            .ok()?;
        Some((nonce, sealed))
    }

    /// The value sealed by [`SecretsKey::seal`] for this `sid` and `name`; `None` when it was
    /// sealed with another key, for another worker or name, or altered.
    pub(super) fn open(
        &self,
        sid: &str,
        name: &str,
        nonce: &[u8; NONCE_BYTES],
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        let aad = associated_data(sid, name);
        self.aead
            .decrypt(
                &XNonce::from(*nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()
    }
}

/// What a sealed value is bound to: its worker and name, as a JSON array (unambiguous whatever
/// the sid holds).
fn associated_data(sid: &str, name: &str) -> Vec<u8> {
    serde_json::json!(["heterogen.secret.v1", sid, name])
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_worker_and_name() {
        let key = SecretsKey::from_bytes([7; 32]);
        let (nonce, sealed) = key.seal("w1", "API_KEY", b"hunter22").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"hunter22"));
        assert_eq!(key.open("w1", "API_KEY", &nonce, &sealed).unwrap(), b"hunter22");
        assert!(key.open("w2", "API_KEY", &nonce, &sealed).is_none());
        assert!(key.open("w1", "OTHER", &nonce, &sealed).is_none());
        let other = SecretsKey::from_bytes([8; 32]);
        assert!(other.open("w1", "API_KEY", &nonce, &sealed).is_none());
        let mut altered = sealed.clone();
        altered[0] ^= 1;
        assert!(key.open("w1", "API_KEY", &nonce, &altered).is_none());
        // A fresh nonce every time.
        let (again, _) = key.seal("w1", "API_KEY", b"hunter22").unwrap();
        assert_ne!(nonce, again);
        assert_ne!(key.fingerprint(), other.fingerprint());
        assert_eq!(key.fingerprint().len(), 16);
        assert!(!format!("{key:?}").contains("07070707"));
    }

    #[test]
    fn the_key_file_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let (made, created) = SecretsKey::read_or_create(&path).unwrap();
        assert!(created);
        let (read, created) = SecretsKey::read_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(made.fingerprint(), read.fingerprint());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key\n").unwrap();
        let error = SecretsKey::read_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("is not a secrets key file"), "{error}");
        let missing_dir = dir.path().join("nowhere").join(KEY_FILE);
        let error = SecretsKey::read_or_create(&missing_dir).unwrap_err().to_string();
        assert!(error.starts_with("cannot write"), "{error}");
    }
}
