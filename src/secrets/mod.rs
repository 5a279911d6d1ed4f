//! Workers' secrets: values an owner sets for one worker (`heterogen secrets set SID NAME`),
//! kept encrypted in the cluster store apart from the worker record, and read by that worker's
//! script as `Stels.secrets.NAME` (or `Deno.env.get(NAME)`).
//!
//! - [`SecretsKey`]: the node's key file (32 random bytes as hex, mode 0600, the same on every
//!   node of a cluster) and the AEAD, XChaCha20-Poly1305, that seals each value with its
//!   worker's sid and its name as associated data, so a sealed value moved to another worker or
//!   name no longer opens.
//! - [`SecretRepo`]: the records `["ami","secret",sid,name]` and the key's fingerprint
//!   `["ami","secrets-key"]`: the first key a cluster's node starts with is the cluster's, and a
//!   node with another key refuses secrets (it cannot open the cluster's nor seal values the
//!   others could open) while it runs everything else. Values go in and never come out:
//!   nothing here hands a value to a client.
//! - [`SecretBook`]: every worker's values, opened, kept current by a watch of the records; a
//!   run reads its worker's through a [`WorkerSecrets`] view, so a change reaches a running
//!   script without a restart, and [`WorkerSecrets::mask`] hides the values in log lines.
//!
//! Not here: who may call (the API asks for the Owner role), and the script's side (the
//! runtime's `SecretReader`, which `node` implements with a [`WorkerSecrets`]): this module
//! knows nothing of the runtime.
//!
//! Limits: a name is `[A-Za-z_][A-Za-z0-9_]*` of at most [`MAX_NAME_BYTES`]; a value is UTF-8
//! text of 1 byte to [`MAX_VALUE_BYTES`]; a worker has at most [`MAX_SECRETS_PER_WORKER`].
//! Masking leaves values shorter than [`MIN_MASKED_CHARS`] alone.

mod book;
mod key;
mod repo;

pub use book::{SecretBook, WorkerSecrets};
pub use key::{KEY_FILE, KeyError, SecretsKey};
pub use repo::{KeyClaim, SecretInfo, SecretRepo, SetOutcome, secret_key, secrets_prefix};

use crate::store::StoreError;

/// Longest secret name, in bytes (all ASCII).
pub const MAX_NAME_BYTES: usize = 64;

/// Largest secret value, in bytes of UTF-8. Sealed (16 bytes of tag), base64-encoded (4/3) and
/// wrapped in its record's JSON, a value of this size still fits the store's 64 KiB value limit
/// (etcd's), which a 64 KiB value would not.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

/// Secrets one worker may hold.
pub const MAX_SECRETS_PER_WORKER: usize = 100;

/// Values shorter than this many characters are not masked in log lines: replacing every
/// `"ab"` would garble the lines and give the value away by where the `***` fall.
pub const MIN_MASKED_CHARS: usize = 4;

/// What a secret's value is replaced by in log lines.
pub const MASK: &str = "***";

/// Why a secret could not be set, listed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No worker has this sid.
    #[error("Worker not found")]
    WorkerNotFound,
    /// The worker has no secret of this name.
    #[error("Secret not found")]
    SecretNotFound,
    /// A name outside `[A-Za-z_][A-Za-z0-9_]*` or longer than [`MAX_NAME_BYTES`].
    #[error(
        "name must be 1 to {MAX_NAME_BYTES} ASCII letters, digits or underscores, not starting with a digit (got {0})"
    )]
    BadName(String),
    /// An empty value.
    #[error("value must not be empty")]
    EmptyValue,
    /// A value over [`MAX_VALUE_BYTES`].
    #[error("value is {size} bytes; a secret holds at most {max} bytes")]
    ValueTooLarge {
        /// Its size in bytes.
        size: usize,
        /// [`MAX_VALUE_BYTES`].
        max: usize,
    },
    /// The worker already has [`MAX_SECRETS_PER_WORKER`] secrets and this name is new.
    #[error("the worker already has {max} secrets, the most a worker may have; delete one first")]
    TooMany {
        /// [`MAX_SECRETS_PER_WORKER`].
        max: usize,
    },
    /// The worker record changed at every attempt to write beside it.
    #[error("the worker changed {0} times while its secret was being written; try again")]
    Busy(usize),
    /// Sealing failed (it cannot for values this small; reported rather than assumed).
    #[error("sealing the value failed")]
    Seal,
    /// This node's key is not the cluster's: it seals nothing (the text says why and what to do).
    #[error("This node cannot seal secrets: {0}")]
    KeyRefused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a secret's name; the error shows it (names are not secret), cut to a readable length.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && name.len() <= MAX_NAME_BYTES && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Ok(());
    }
    let shown: String = name.chars().take(MAX_NAME_BYTES + 8).collect();
    let shown = if shown.len() < name.len() {
        format!("{shown:?}…")
    } else {
        format!("{shown:?}")
    };
    Err(SecretError::BadName(shown))
}

/// Checks a secret's value: not empty, at most [`MAX_VALUE_BYTES`]. The error never shows it.
pub fn check_value(value: &str) -> Result<(), SecretError> {
    if value.is_empty() {
        return Err(SecretError::EmptyValue);
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(SecretError::ValueTooLarge {
            size: value.len(),
            max: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_identifiers() {
        for good in ["A", "_", "API_KEY", "a1", "_9", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", "a.b", &"x".repeat(65), "KEY\n"] {
            let error = check_name(bad).unwrap_err().to_string();
            assert!(error.starts_with("name must be 1 to 64"), "{bad}: {error}");
        }
        let long = check_name(&"y".repeat(500)).unwrap_err().to_string();
        assert!(long.len() < 250 && long.ends_with("…)"), "{long}");
    }

    #[test]
    fn values_are_bounded_and_never_shown() {
        assert!(check_value("s").is_ok());
        assert!(check_value(&"v".repeat(MAX_VALUE_BYTES)).is_ok());
        assert!(matches!(check_value(""), Err(SecretError::EmptyValue)));
        let error = check_value(&"v".repeat(MAX_VALUE_BYTES + 1)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "value is 32769 bytes; a secret holds at most 32768 bytes"
        );
    }
}
