//! [`SecretRepo`]: the secret records in the cluster store, and the one place their keys are
//! built: `["ami","secret",sid,name]` = `{"v":1,"nonce":…,"ciphertext":…,"updatedAt":…}`
//! (nonce and ciphertext in base64), and `["ami","secrets-key"]` = the fingerprint of the key
//! the cluster's secrets are sealed with. Scripts' own keys live under `["kv",…]`: no script can
//! reach these.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::key::NONCE_BYTES;
use super::{KeyError, MAX_SECRETS_PER_WORKER, SecretError, SecretsKey, check_name, check_value};
use crate::store::{
    AtomicWrite, CommitOutcome, Key, KeyPart, ListOptions, RawJson, Store, StoreError, list_all,
};
use crate::workers::repo::worker_key;

/// Writes a `set` tries before it reports that the worker kept changing.
const SET_ATTEMPTS: usize = 5;

/// Keys one delete commit removes at most (the store takes 128 operations a commit).
const DELETE_BATCH: usize = 100;

/// Delete commits one cleaning makes at most; secrets cannot be added to a deleted worker, so
/// a second round is already rare.
const DELETE_ROUNDS: usize = 64;

/// The prefix of every secret record.
pub fn secrets_prefix() -> Key {
    Key::of(&["ami", "secret"])
}

/// The prefix of worker `sid`'s secret records.
fn worker_prefix(sid: &str) -> Key {
    secrets_prefix().child(sid)
}

/// The key of secret `name` of worker `sid`.
pub fn secret_key(sid: &str, name: &str) -> Key {
    worker_prefix(sid).child(name)
}

/// Where the fingerprint of the cluster's key is kept.
fn fingerprint_key() -> Key {
    Key::of(&["ami", "secrets-key"])
}

/// A stored secret: sealed, never the value itself.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretRecord {
    /// The record's format.
    v: u32,
    /// The nonce it was sealed with (base64).
    nonce: String,
    /// The sealed value with its tag (base64).
    ciphertext: String,
    /// When it was set, in ms since the Unix epoch.
    updated_at: i64,
}

/// A secret as clients may see it: its name and when it was set, never its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// When it was last set, in ms since the Unix epoch (`None` for a record that cannot be
    /// read).
    pub updated_at: Option<i64>,
}

/// What a `set` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetOutcome {
    /// When, in ms since the Unix epoch.
    pub updated_at: i64,
    /// The worker had no secret of this name before.
    pub created: bool,
}

/// What a node's start found about its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// The cluster had no key yet: this one is now the cluster's.
    Recorded,
    /// The cluster's key is this one.
    Matched,
}

/// The secret records of one store, sealed and opened with one key.
#[derive(Clone)]
pub struct SecretRepo {
    store: Arc<dyn Store>,
    key: Arc<SecretsKey>,
    /// Why this node seals nothing (its key is not the cluster's), if it does not.
    refused: Option<Arc<str>>,
}

impl SecretRepo {
    /// The secrets of `store`, sealed with `key`.
    pub fn new(store: Arc<dyn Store>, key: Arc<SecretsKey>) -> SecretRepo {
        SecretRepo {
            store,
            key,
            refused: None,
        }
    }

    /// From now on `set` fails with [`SecretError::KeyRefused`] saying `reason`; listing and
    /// deleting, which need no key, go on.
    pub fn refuse_sealing(&mut self, reason: &str) {
        self.refused = Some(Arc::from(reason));
    }

    /// Seals `value` and stores it as secret `name` of worker `sid`, in a commit that checks
    /// the worker record is still the one read: a worker deleted meanwhile gets no secret.
    pub async fn set(
        &self,
        sid: &str,
        name: &str,
        value: &str,
        now_ms: i64,
    ) -> Result<SetOutcome, SecretError> {
        check_name(name)?;
        check_value(value)?;
        if let Some(reason) = &self.refused {
            return Err(SecretError::KeyRefused(reason.to_string()));
        }
        let (nonce, sealed) = self
            .key
            .seal(sid, name, value.as_bytes())
            .ok_or(SecretError::Seal)?;
        let record = SecretRecord {
            v: 1,
            nonce: BASE64.encode(nonce),
            ciphertext: BASE64.encode(sealed),
            updated_at: now_ms,
        };
        let record = RawJson::to_json(&record).map_err(|_| SecretError::Seal)?;
        let key = secret_key(sid, name);
        for _ in 0..SET_ATTEMPTS {
            let Some(worker) = self.store.get(&worker_key(sid)).await?.entry else {
                return Err(SecretError::WorkerNotFound);
            };
            let names = self.names(sid).await?;
            let created = !names.iter().any(|n| n == name);
            if created && names.len() >= MAX_SECRETS_PER_WORKER {
                return Err(SecretError::TooMany {
                    max: MAX_SECRETS_PER_WORKER,
                });
            }
            let write = AtomicWrite::new()
                .check(worker_key(sid), Some(worker.versionstamp))
                .set(key.clone(), record.clone());
            if let CommitOutcome::Committed(_) = self.store.commit(write).await? {
                return Ok(SetOutcome {
                    updated_at: now_ms,
                    created,
                });
            }
        }
        Err(SecretError::Busy(SET_ATTEMPTS))
    }

    /// The names of worker `sid`'s secrets and when each was set, in name order; never a value.
    pub async fn list(&self, sid: &str) -> Result<Vec<SecretInfo>, SecretError> {
        self.require_worker(sid).await?;
        let page = list_all(self.store.as_ref(), &worker_prefix(sid)).await?;
        Ok(page
            .entries
            .iter()
            .filter_map(|entry| {
                let name = entry.key.last_str()?.to_string();
                let updated_at = entry
                    .value
                    .deserialize::<SecretRecord>()
                    .ok()
                    .map(|r| r.updated_at);
                Some(SecretInfo { name, updated_at })
            })
            .collect())
    }

    /// Deletes secret `name` of worker `sid`.
    pub async fn delete(&self, sid: &str, name: &str) -> Result<(), SecretError> {
        check_name(name)?;
        self.require_worker(sid).await?;
        let key = secret_key(sid, name);
        if self.store.get(&key).await?.entry.is_none() {
            return Err(SecretError::SecretNotFound);
        }
        self.store.commit(AtomicWrite::new().delete(key)).await?;
        Ok(())
    }

    /// Deletes every secret of worker `sid` (its record deleted first, so none can be added
    /// meanwhile); returns how many there were.
    pub async fn delete_all(&self, sid: &str) -> Result<usize, StoreError> {
        delete_under(self.store.as_ref(), &worker_prefix(sid)).await
    }

    /// Compares this node's key with the one the cluster's secrets are sealed with, recording
    /// it when the cluster has none yet. `path` names the key file in the error.
    pub async fn claim_key(&self, path: &Path, nid: &str, now_ms: i64) -> Result<KeyClaim, KeyError> {
        let ours = self.key.fingerprint();
        for _ in 0..SET_ATTEMPTS {
            let Some(entry) = self.store.get(&fingerprint_key()).await?.entry else {
                let write = AtomicWrite::new()
                    .check(fingerprint_key(), None)
                    .set(fingerprint_key(), self.fingerprint_record(nid, now_ms));
                match self.store.commit(write).await? {
                    CommitOutcome::Committed(_) => return Ok(KeyClaim::Recorded),
                    // Another node recorded its key at the same moment: compare with it.
                    CommitOutcome::CheckFailed => continue,
                }
            };
            let stored = entry.value.parse().unwrap_or_default();
            let text = |field: &str| {
                let value = stored.get(field).and_then(serde_json::Value::as_str);
                value.unwrap_or("?").to_string()
            };
            if text("fingerprint") == ours {
                return Ok(KeyClaim::Matched);
            }
            return Err(KeyError::Mismatch {
                path: path.to_path_buf(),
                ours: ours.to_string(),
                stored: text("fingerprint"),
                stored_by: text("nid"),
            });
        }
        Err(KeyError::Store(StoreError::Conflict(
            "the cluster's secrets key record kept changing".into(),
        )))
    }

    /// Deletes every stored secret of every worker and makes this node's key the cluster's
    /// (`--secrets-key-reset`, for a lost key); returns how many secrets were deleted.
    pub async fn reset_key(&self, nid: &str, now_ms: i64) -> Result<usize, StoreError> {
        let deleted = delete_under(self.store.as_ref(), &secrets_prefix()).await?;
        let write = AtomicWrite::new().set(fingerprint_key(), self.fingerprint_record(nid, now_ms));
        self.store.commit(write).await?;
        Ok(deleted)
    }

    fn fingerprint_record(&self, nid: &str, now_ms: i64) -> RawJson {
        RawJson::from_value(&json!({
            "fingerprint": self.key.fingerprint(),
            "nid": nid,
            "createdAt": now_ms,
        }))
    }

    async fn require_worker(&self, sid: &str) -> Result<(), SecretError> {
        match self.store.get(&worker_key(sid)).await?.entry {
            Some(_) => Ok(()),
            None => Err(SecretError::WorkerNotFound),
        }
    }

    /// The names of worker `sid`'s secrets.
    async fn names(&self, sid: &str) -> Result<Vec<String>, StoreError> {
        let page = list_all(self.store.as_ref(), &worker_prefix(sid)).await?;
        Ok(page
            .entries
            .iter()
            .filter_map(|e| e.key.last_str().map(str::to_string))
            .collect())
    }
}

/// Deletes every key under `prefix`, a batch a commit; returns how many.
async fn delete_under(store: &dyn Store, prefix: &Key) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for _ in 0..DELETE_ROUNDS {
        let options = ListOptions {
            limit: Some(DELETE_BATCH),
            ..ListOptions::default()
        };
        let page = store.list(prefix, options).await?;
        if page.entries.is_empty() {
            break;
        }
        let write = page
            .entries
            .iter()
            .fold(AtomicWrite::new(), |write, entry| write.delete(entry.key.clone()));
        store.commit(write).await?;
        deleted += page.entries.len();
    }
    Ok(deleted)
}

/// The worker and name a secret record's key names; `None` for any other key.
pub(super) fn secret_of_key(key: &Key) -> Option<(&str, &str)> {
    match key.0.as_slice() {
        [
            KeyPart::Str(ami),
            KeyPart::Str(secret),
            KeyPart::Str(sid),
            KeyPart::Str(name),
        ] if ami == "ami" && secret == "secret" => Some((sid, name)),
        _ => None,
    }
}

/// Opens the stored record `value` of secret `name` of worker `sid` with `key`.
pub(super) fn open_record(
    key: &SecretsKey,
    sid: &str,
    name: &str,
    value: &RawJson,
) -> Result<String, String> {
    let record: SecretRecord = value
        .deserialize()
        .map_err(|e| format!("not a secret record: {e}"))?;
    if record.v != 1 {
        return Err(format!("unknown record format {}", record.v));
    }
    let nonce: [u8; NONCE_BYTES] = BASE64
        .decode(&record.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or("its nonce is not 24 bytes of base64")?;
    let sealed = BASE64
        .decode(&record.ciphertext)
        .map_err(|_| "its ciphertext is not base64")?;
    let opened = key
        .open(sid, name, &nonce, &sealed)
        .ok_or("it does not open with this node's key (another key, another worker or name, or altered)")?;
    String::from_utf8(opened).map_err(|_| "its value is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fjall::FjallStore;

    async fn repo_with_worker(sid: &str) -> (tempfile::TempDir, Arc<dyn Store>, SecretRepo) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FjallStore::open(dir.path(), false).unwrap());
        let write = AtomicWrite::new().set(worker_key(sid), RawJson::from_value(&json!({"raw": {}})));
        store.commit(write).await.unwrap();
        let repo = SecretRepo::new(store.clone(), Arc::new(SecretsKey::from_bytes([1; 32])));
        (dir, store, repo)
    }

    #[tokio::test]
    async fn set_list_delete_and_limits() {
        let (_dir, store, repo) = repo_with_worker("w").await;
        let set = repo.set("w", "B", "value-b", 10).await.unwrap();
        assert_eq!(
            set,
            SetOutcome {
                updated_at: 10,
                created: true
            }
        );
        let set = repo.set("w", "B", "value-b2", 11).await.unwrap();
        assert!(!set.created);
        repo.set("w", "A", "value-a", 12).await.unwrap();
        let listed = repo.list("w").await.unwrap();
        let names: Vec<_> = listed.iter().map(|s| (s.name.as_str(), s.updated_at)).collect();
        assert_eq!(names, [("A", Some(12)), ("B", Some(11))]);

        let stored = store.get(&secret_key("w", "B")).await.unwrap().entry.unwrap();
        assert!(!stored.value.as_str().contains("value-b"));
        let key = SecretsKey::from_bytes([1; 32]);
        assert_eq!(open_record(&key, "w", "B", &stored.value).unwrap(), "value-b2");
        assert!(open_record(&key, "x", "B", &stored.value).is_err());

        assert!(matches!(
            repo.set("nope", "A", "v", 1).await,
            Err(SecretError::WorkerNotFound)
        ));
        assert!(matches!(
            repo.list("nope").await,
            Err(SecretError::WorkerNotFound)
        ));
        assert!(matches!(
            repo.delete("w", "C").await,
            Err(SecretError::SecretNotFound)
        ));
        assert!(matches!(
            repo.set("w", "1A", "v", 1).await,
            Err(SecretError::BadName(_))
        ));

        for i in 2..MAX_SECRETS_PER_WORKER {
            repo.set("w", &format!("S{i}"), "v", 1).await.unwrap();
        }
        assert!(matches!(
            repo.set("w", "ONE_MORE", "v", 1).await,
            Err(SecretError::TooMany { .. })
        ));
        // Replacing one is still allowed at the limit.
        repo.set("w", "A", "again", 13).await.unwrap();

        repo.delete("w", "A").await.unwrap();
        assert_eq!(repo.list("w").await.unwrap().len(), MAX_SECRETS_PER_WORKER - 1);
        assert_eq!(repo.delete_all("w").await.unwrap(), MAX_SECRETS_PER_WORKER - 1);
        assert!(repo.list("w").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_node_with_another_key_is_told_so() {
        let (_dir, store, repo) = repo_with_worker("w").await;
        let path = Path::new("/etc/heterogen/secrets-key");
        assert_eq!(repo.claim_key(path, "n1", 1).await.unwrap(), KeyClaim::Recorded);
        assert_eq!(repo.claim_key(path, "n1", 2).await.unwrap(), KeyClaim::Matched);
        repo.set("w", "A", "value", 1).await.unwrap();

        let mut other = SecretRepo::new(store.clone(), Arc::new(SecretsKey::from_bytes([2; 32])));
        let error = other.claim_key(path, "n2", 3).await.unwrap_err().to_string();
        other.refuse_sealing(&error);
        let refused = other.set("w", "B", "v", 3).await.unwrap_err().to_string();
        assert!(
            refused.starts_with("This node cannot seal secrets: /etc/heterogen"),
            "{refused}"
        );
        assert_eq!(other.list("w").await.unwrap().len(), 1);
        other = SecretRepo::new(store.clone(), Arc::new(SecretsKey::from_bytes([2; 32])));
        assert!(error.contains("first used by node n1"), "{error}");
        assert!(
            error.contains("/etc/heterogen/secrets-key (fingerprint"),
            "{error}"
        );
        assert_eq!(other.reset_key("n2", 4).await.unwrap(), 1);
        assert_eq!(other.claim_key(path, "n2", 5).await.unwrap(), KeyClaim::Matched);
        assert!(other.list("w").await.unwrap().is_empty());
    }
}
