//! [`SecretBook`]: every worker's secrets, opened, as the cluster store holds them now.
//!
//! The book lists `["ami","secret"]` once and then follows a watch of it (a watch that fails is
//! followed by a new list and watch), so a secret set or deleted through any node reaches the
//! scripts of every node within a commit's publication, without a restart. It holds at most
//! [`MAX_SECRETS_PER_WORKER`](super::MAX_SECRETS_PER_WORKER) values of
//! [`MAX_VALUE_BYTES`](super::MAX_VALUE_BYTES) per worker. A record that does not open (another
//! key, moved or altered) is logged and left out: the worker runs without it.
//!
//! Each worker's values are one immutable shelf, replaced whole on a change, with the strings a
//! log line is searched for ready: reading a value or masking a line takes a read lock for the
//! time of one map lookup.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::repo::{open_record, secret_of_key, secrets_prefix};
use super::{MASK, MIN_MASKED_CHARS, SecretsKey};
use crate::store::{Entry, Revision, Store, StoreResult, WatchEvent, list_all};

/// Wait before listing again after a watch failed (and between failed lists).
const RELIST_PAUSE: Duration = Duration::from_millis(500);

/// Shelves by sid.
type Shelves = RwLock<HashMap<String, Arc<Shelf>>>;

/// One worker's values, and what log lines are searched for.
#[derive(Default)]
struct Shelf {
    values: BTreeMap<String, String>,
    /// Each value long enough to mask, and its JSON-escaped form where that differs, longest
    /// first (so a value that holds another is masked whole).
    needles: Vec<String>,
}

impl Shelf {
    fn new(values: BTreeMap<String, String>) -> Shelf {
        let mut needles = Vec::new();
        for value in values.values() {
            if value.chars().count() < MIN_MASKED_CHARS {
                continue;
            }
            needles.push(value.clone());
            // `JSON.stringify` of an object holding the value writes it escaped.
            if let Ok(quoted) = serde_json::to_string(value)
                && let Some(escaped) = quoted.get(1..quoted.len().saturating_sub(1))
                && escaped != value
            {
                needles.push(escaped.to_string());
            }
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Shelf { values, needles }
    }
}

/// Every worker's secrets, kept current; [`SecretBook::worker`] hands out one worker's view.
#[derive(Clone)]
pub struct SecretBook {
    shelves: Arc<Shelves>,
    /// Why this node holds no secrets (its key is not the cluster's), if it cannot.
    refused: Option<Arc<str>>,
}

impl SecretBook {
    /// Lists every secret of `store`, opens them with `key`, and keeps following their changes
    /// until `stop`, in the task returned (it holds the store until it ends). Fails only if the
    /// first list does.
    pub async fn follow(
        store: Arc<dyn Store>,
        key: Arc<SecretsKey>,
        stop: CancellationToken,
    ) -> StoreResult<(SecretBook, JoinHandle<()>)> {
        let page = list_all(store.as_ref(), &secrets_prefix()).await?;
        let shelves = Arc::new(RwLock::new(load(&page.entries, &key)));
        let task = tokio::spawn(keep_current(
            Arc::clone(&shelves),
            store,
            key,
            page.revision,
            stop,
        ));
        let refused = None;
        Ok((SecretBook { shelves, refused }, task))
    }

    /// A book that holds nothing and follows nothing (for a runtime without secrets, in tests).
    pub fn empty() -> SecretBook {
        SecretBook {
            shelves: Arc::default(),
            refused: None,
        }
    }

    /// The book of a node whose key is not the cluster's: it holds nothing, and each worker's
    /// view says `reason` ([`WorkerSecrets::refused`]), so a script learns why it has no secrets.
    pub fn refusing(reason: &str) -> SecretBook {
        SecretBook {
            shelves: Arc::default(),
            refused: Some(Arc::from(reason)),
        }
    }

    /// Worker `sid`'s secrets, as they are at each read.
    pub fn worker(&self, sid: &str) -> WorkerSecrets {
        WorkerSecrets {
            shelves: Arc::clone(&self.shelves),
            sid: Arc::from(sid),
            refused: self.refused.clone(),
        }
    }
}

/// One worker's secrets as its script reads them: every read sees the book as it is then.
#[derive(Clone)]
pub struct WorkerSecrets {
    shelves: Arc<Shelves>,
    sid: Arc<str>,
    refused: Option<Arc<str>>,
}

impl WorkerSecrets {
    /// Why this node cannot give the worker its secrets, if it cannot (its key is not the
    /// cluster's).
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    fn shelf(&self) -> Option<Arc<Shelf>> {
        let shelves = self.shelves.read().unwrap_or_else(PoisonError::into_inner);
        shelves.get(&*self.sid).cloned()
    }

    /// The value of secret `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.shelf()?.values.get(name).cloned()
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.shelf()
            .map(|shelf| shelf.values.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every value.
    pub fn values(&self) -> Vec<String> {
        self.shelf()
            .map(|shelf| shelf.values.values().cloned().collect())
            .unwrap_or_default()
    }

    /// `text` with every value of at least [`MIN_MASKED_CHARS`] characters, as it is or
    /// JSON-escaped, replaced by [`MASK`]. Best effort: a value logged in pieces, encoded or
    /// transformed is not found.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.shelf() {
            Some(shelf) => mask(text, &shelf.needles),
            None => Cow::Borrowed(text),
        }
    }
}

/// `text` with each of `needles` (longest first) replaced by [`MASK`].
pub fn mask<'a>(text: &'a str, needles: &[String]) -> Cow<'a, str> {
    let mut masked = Cow::Borrowed(text);
    for needle in needles {
        if masked.contains(needle.as_str()) {
            masked = Cow::Owned(masked.replace(needle.as_str(), MASK));
        }
    }
    masked
}

/// The shelves of a listing.
fn load(entries: &[Entry], key: &SecretsKey) -> HashMap<String, Arc<Shelf>> {
    let mut by_worker: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for entry in entries {
        let Some((sid, name)) = secret_of_key(&entry.key) else {
            continue;
        };
        match open_record(key, sid, name, &entry.value) {
            Ok(value) => {
                by_worker
                    .entry(sid.to_string())
                    .or_default()
                    .insert(name.to_string(), value);
            }
            Err(reason) => unreadable(sid, name, &reason),
        }
    }
    by_worker
        .into_iter()
        .map(|(sid, values)| (sid, Arc::new(Shelf::new(values))))
        .collect()
}

fn unreadable(sid: &str, name: &str, reason: &str) {
    tracing::error!(%sid, secret = %name, %reason, "a stored secret cannot be read; the worker runs without it");
}

/// Applies one change of the records.
fn apply(shelves: &Shelves, key: &SecretsKey, event: &WatchEvent) {
    let Some((sid, name)) = secret_of_key(event.key()) else {
        return;
    };
    let opened = match event {
        WatchEvent::Put(entry) => match open_record(key, sid, name, &entry.value) {
            Ok(value) => Some(value),
            Err(reason) => {
                unreadable(sid, name, &reason);
                None
            }
        },
        WatchEvent::Delete { .. } => None,
    };
    // Only this book's one task writes: reading, then replacing, loses nothing.
    let current = shelves
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(sid)
        .cloned();
    let mut values = current.map(|shelf| shelf.values.clone()).unwrap_or_default();
    match opened {
        Some(value) => values.insert(name.to_string(), value),
        None => values.remove(name),
    };
    let shelf = (!values.is_empty()).then(|| Arc::new(Shelf::new(values)));
    let mut shelves = shelves.write().unwrap_or_else(PoisonError::into_inner);
    match shelf {
        Some(shelf) => shelves.insert(sid.to_string(), shelf),
        None => shelves.remove(sid),
    };
}

/// Follows the records from `after` until `stop`; a failed watch is logged and followed by a
/// new list (which replaces every shelf) and a watch from its revision.
async fn keep_current(
    shelves: Arc<Shelves>,
    store: Arc<dyn Store>,
    key: Arc<SecretsKey>,
    mut after: Revision,
    stop: CancellationToken,
) {
    loop {
        let failure = tokio::select! {
            () = stop.cancelled() => return,
            failure = follow_changes(&shelves, store.as_ref(), &key, &mut after) => failure,
        };
        tracing::warn!(error = %failure, "the watch of workers' secrets ended; listing them again");
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RELIST_PAUSE) => {}
            }
            match list_all(store.as_ref(), &secrets_prefix()).await {
                Ok(page) => {
                    let loaded = load(&page.entries, &key);
                    *shelves.write().unwrap_or_else(PoisonError::into_inner) = loaded;
                    after = page.revision;
                    break;
                }
                Err(error) => tracing::warn!(%error, "cannot list workers' secrets; retrying"),
            }
        }
    }
}

/// Applies changes after `after` (moving it on) until the watch fails; returns why.
async fn follow_changes(
    shelves: &Shelves,
    store: &dyn Store,
    key: &SecretsKey,
    after: &mut Revision,
) -> String {
    let mut changes = match store.watch(&secrets_prefix(), *after).await {
        Ok(changes) => changes,
        Err(error) => return error.to_string(),
    };
    loop {
        match changes.next().await {
            Some(Ok(event)) => {
                *after = event.revision();
                apply(shelves, key, &event);
            }
            Some(Err(error)) => return error.to_string(),
            None => return "the watch ended".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{SecretRepo, secret_key};
    use crate::store::fjall::FjallStore;
    use crate::store::{AtomicWrite, RawJson};

    #[test]
    fn masking_hides_values_whole_and_escaped_but_not_short_ones() {
        let mut values = BTreeMap::new();
        values.insert("A".to_string(), "abc".to_string());
        values.insert("B".to_string(), "token-123".to_string());
        values.insert("C".to_string(), "token-123-long".to_string());
        values.insert("D".to_string(), "quo\"te\nline".to_string());
        let shelf = Shelf::new(values);
        let needles = &shelf.needles;
        assert_eq!(mask("abc token-123", needles), "abc ***");
        assert_eq!(mask("token-123-long!", needles), "***!");
        assert_eq!(mask(r#"{"d":"quo\"te\nline"}"#, needles), r#"{"d":"***"}"#);
        assert_eq!(mask("quo\"te\nline", needles), "***");
        assert!(matches!(mask("nothing here", needles), Cow::Borrowed(_)));
    }

    #[tokio::test]
    async fn the_book_follows_sets_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FjallStore::open(dir.path(), false).unwrap());
        let worker = crate::workers::repo::worker_key("w");
        let write = AtomicWrite::new().set(worker, RawJson::from_value(&serde_json::json!({})));
        store.commit(write).await.unwrap();
        let key = Arc::new(SecretsKey::from_bytes([3; 32]));
        let repo = SecretRepo::new(store.clone(), key.clone());
        repo.set("w", "BEFORE", "listed-at-start", 1).await.unwrap();
        let stop = CancellationToken::new();
        let (book, task) = SecretBook::follow(store.clone(), key, stop.clone())
            .await
            .unwrap();
        let view = book.worker("w");
        assert_eq!(view.get("BEFORE").as_deref(), Some("listed-at-start"));
        assert_eq!(book.worker("other").names(), Vec::<String>::new());

        repo.set("w", "AFTER", "watched-value", 2).await.unwrap();
        // A record sealed for another worker, copied here, does not open.
        let foreign = store.get(&secret_key("w", "AFTER")).await.unwrap().entry.unwrap();
        let write = AtomicWrite::new().set(secret_key("w", "MOVED"), foreign.value);
        store.commit(write).await.unwrap();
        repo.delete("w", "BEFORE").await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while view.names() != ["AFTER"] {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", view.names());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(view.get("AFTER").as_deref(), Some("watched-value"));
        assert_eq!(view.values(), ["watched-value"]);
        assert_eq!(view.mask("x watched-value y"), "x *** y");
        stop.cancel();
        task.await.unwrap();
    }
}
