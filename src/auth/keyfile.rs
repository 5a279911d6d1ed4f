//! Wallet key files for the command line: JSON with the private key, readable by the owner only.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::gliesereum::Wallet;

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{0} already exists; refusing to overwrite a wallet")]
    /// The file to create exists already (a key is never overwritten).
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    /// The key file cannot be written.
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    /// The key file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    #[error("{path} is not a heterogen wallet key file: {reason}")]
    /// The file is not a key file this program wrote.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Writes `wallet` to a new file at `path` with mode 0600.
pub fn write_new(path: &Path, wallet: &Wallet) -> Result<(), KeyFileError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(path.to_path_buf())
        } else {
            KeyFileError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let text = json!({
        "kind": "gliesereum-wallet",
        "address": wallet.address(),
        "publicKey": wallet.public_compressed_hex(),
        "privateKey": wallet.private_hex(),
    });
    let write = |file: &mut std::fs::File| -> std::io::Result<()> {
        file.write_all(format!("{text:#}\n").as_bytes())?;
        file.sync_all()
    };
    write(&mut file).map_err(|source| KeyFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a key file written by [`write_new`].
pub fn read(path: &Path) -> Result<Wallet, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let private = value
        .get("privateKey")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no privateKey".into()))?;
    let wallet = Wallet::from_private_hex(private).map_err(|e| invalid(e.to_string()))?;
    if let Some(address) = value.get("address").and_then(Value::as_str)
        && address != wallet.address()
    {
        return Err(invalid("its address does not belong to its private key".into()));
    }
    Ok(wallet)
}

/// The wallet in the key file at `path`, created there first (mode 0600) if there is none.
/// Returns whether it was created.
pub fn read_or_create(path: &Path) -> Result<(Wallet, bool), KeyFileError> {
    match read(path) {
        Ok(wallet) => Ok((wallet, false)),
        Err(KeyFileError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let wallet = Wallet::generate();
            write_new(path, &wallet)?;
            Ok((wallet, true))
        }
        Err(e) => Err(e),
    }
}
