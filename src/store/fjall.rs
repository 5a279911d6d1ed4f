//! The embedded store: [`FjallStore`], a [`Store`] on one local fjall 3 database.
//!
//! Layout: keyspace `data` maps an encoded [`Key`] to a stored value (header + JSON, see
//! `StoredValue`); keyspace `meta` holds the commit counter; keyspace `expiry` indexes every
//! expiring entry as `expires_at_ms (u64 BE) ‖ encoded key → versionstamp`. Every commit writes
//! its mutations, their index changes *and* the new counter in one fjall write batch, so after a
//! crash the counter, the data and the index agree and versionstamps keep increasing.
//!
//! Commits are serialised by one mutex held across "evaluate checks → write batch → persist →
//! publish to watchers", which makes every check exact and keeps watch order equal to commit order.
//! Reads go through a fjall snapshot, in which the counter and the data agree, so a read's
//! revision is exact. Published commits are kept in a bounded in-memory history; a watch replays
//! it from the revision asked for and then follows new commits, and a watch that asks for (or
//! falls behind to) revisions the history no longer holds gets [`StoreError::Compacted`]. The
//! history starts empty at each open: a watch from before it is compacted.
//!
//! Expired entries read as absent at once; [`Store::reap_expired`] then deletes them for good,
//! walking the index in expiry order, in commits that watchers see as deletes. What it is *not*:
//! replicated (that is the etcd backend).
#![deny(missing_docs)]

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use serde_json::Value;
use tokio::sync::watch;

use super::{
    AtomicWrite, Check, CommitOutcome, Entry, Got, Key, Limit, Limits, ListOptions, MAX_KEY_BYTES,
    MAX_VALUE_BYTES, Mutation, Page, Reaped, Revision, Store, StoreError, StoreResult, Versionstamp,
    WatchEvent, WatchStream,
};

/// Name of the keyspace holding user entries.
const DATA_KEYSPACE: &str = "data";
/// Name of the keyspace holding store bookkeeping.
const META_KEYSPACE: &str = "meta";
/// Name of the keyspace indexing expiring entries by expiry time.
const EXPIRY_KEYSPACE: &str = "expiry";
/// Key (in `meta`) of the last committed commit counter, 8 bytes big-endian.
const COUNTER_KEY: &[u8] = b"commit_counter";
/// Key (in `meta`) present once `expiry` indexes every expiring entry (stores written before the
/// index existed are indexed once, when opened).
const EXPIRY_INDEXED_KEY: &[u8] = b"expiry_indexed";
/// Commits a watch takes from the history at a time, so the history lock is held briefly.
const WATCH_STEP_BATCHES: usize = 64;

/// First header byte of a stored value without expiry.
const FORMAT_PLAIN: u8 = 0;
/// First header byte of a stored value followed by an 8-byte expiry time.
const FORMAT_EXPIRING: u8 = 1;
/// Header length: format byte + versionstamp.
const HEADER_BYTES: usize = 1 + 10;

/// Failures inside this backend, before they are reduced to a [`StoreError`].
#[derive(Debug, thiserror::Error)]
enum FjallError {
    /// fjall (or the LSM tree under it) failed.
    #[error("fjall: {0}")]
    Fjall(#[from] fjall::Error),
    /// The blocking task doing the fjall work panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A thread parsing part of a list panicked.
    #[error("list parser thread panicked")]
    ThreadPanicked,
    /// A previous commit panicked while holding the commit lock.
    #[error("commit lock poisoned by an earlier panic")]
    LockPoisoned,
    /// Bytes on disk that this backend never writes.
    #[error("{0}")]
    Corrupt(String),
}

impl From<FjallError> for StoreError {
    fn from(err: FjallError) -> Self {
        let backend = |message: String| StoreError::Backend {
            backend: "fjall",
            message,
        };
        match err {
            FjallError::Fjall(inner) => match inner {
                fjall::Error::JournalRecovery(_)
                | fjall::Error::InvalidVersion(_)
                | fjall::Error::Decompress(_)
                | fjall::Error::InvalidTrailer
                | fjall::Error::InvalidTag(_)
                | fjall::Error::Unrecoverable => StoreError::Corrupt(inner.to_string()),
                fjall::Error::Storage(ref lsm) => match lsm {
                    fjall::LsmError::Io(_) => StoreError::Unavailable(inner.to_string()),
                    _ => StoreError::Corrupt(inner.to_string()),
                },
                fjall::Error::Io(_) | fjall::Error::Locked => StoreError::Unavailable(inner.to_string()),
                _ => backend(inner.to_string()),
            },
            FjallError::Corrupt(msg) => StoreError::Corrupt(msg),
            other => backend(other.to_string()),
        }
    }
}

/// How a [`FjallStore`] is opened.
#[derive(Clone, Copy, Debug)]
pub struct FjallOptions {
    /// fdatasync every commit before it is acknowledged (W-T-3).
    pub fsync: bool,
    /// The contract's request limits, enforced as etcd would.
    pub limits: Limits,
    /// Most commits the watch history keeps.
    pub history_commits: usize,
    /// Most bytes (keys and serialised values) the watch history keeps.
    pub history_bytes: usize,
}

impl Default for FjallOptions {
    fn default() -> Self {
        FjallOptions {
            fsync: true,
            limits: Limits::DEFAULT,
            history_commits: 10_000,
            history_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The embedded [`Store`]: one fjall database in a directory, exclusively locked by this process.
///
/// Cheap to share behind an `Arc`; dropping it ends every [`watch`](Store::watch) stream and makes
/// fjall persist its journal (`SyncAll`).
pub struct FjallStore {
    /// State shared with the blocking tasks that do the fjall work.
    shared: Arc<Shared>,
}

/// Everything a blocking fjall task needs.
struct Shared {
    /// The database; `persist` and write batches go through it.
    db: Database,
    /// User entries: encoded key → [`StoredValue`] bytes.
    data: Keyspace,
    /// Bookkeeping written in the same batches as `data` (the commit counter).
    meta: Keyspace,
    /// `expires_at_ms BE ‖ encoded key → versionstamp` of every expiring entry in `data`.
    expiry: Keyspace,
    /// Serialises commits; holds the counter of the last commit (the next one gets +1).
    commit_lock: Mutex<u64>,
    /// How the store was opened (durability, limits, history bounds).
    options: FjallOptions,
    /// Recent commits for watchers, appended under `commit_lock` so that order = commit order.
    history: Arc<Mutex<History>>,
    /// The revision of the newest commit in `history`; watchers wait on it. Dropped with the
    /// store, which ends every watch with an error.
    latest: watch::Sender<u64>,
}

/// What one commit changed, as seen by watchers.
struct CommittedBatch {
    /// The versionstamp of the commit.
    versionstamp: Versionstamp,
    /// The effective changes, one per key.
    changes: Vec<Change>,
    /// Keys and serialised values of the changes, counted against the history's byte bound.
    bytes: usize,
}

/// One key's change within a commit.
struct Change {
    /// The changed key.
    key: Key,
    /// The new value, `None` for a delete.
    value: Option<Value>,
    /// The encoded key plus the serialised value, counted against the history's byte bound.
    bytes: usize,
}

/// The commits a watch can still be served from: every commit after `base`, oldest first.
struct History {
    /// The revision before the oldest kept commit; a watch from before it is compacted.
    base: u64,
    /// Kept commits, in revision order.
    commits: VecDeque<Arc<CommittedBatch>>,
    /// Sum of the kept commits' `bytes`.
    bytes: usize,
}

impl History {
    /// Appends `commit`, dropping the oldest ones past the bounds.
    fn push(&mut self, commit: Arc<CommittedBatch>, options: &FjallOptions) {
        self.bytes += commit.bytes;
        self.commits.push_back(commit);
        while self.commits.len() > options.history_commits.max(1)
            || (self.bytes > options.history_bytes && self.commits.len() > 1)
        {
            self.drop_oldest();
        }
    }

    /// Forgets the oldest kept commit; watches from before it are compacted from now on.
    fn drop_oldest(&mut self) {
        if let Some(old) = self.commits.pop_front() {
            self.bytes -= old.bytes;
            self.base = old.versionstamp.counter();
        }
    }

    /// Up to `max` commits after revision `after`, or `Compacted` if some are no longer kept.
    fn after(&self, after: u64, max: usize) -> StoreResult<Vec<Arc<CommittedBatch>>> {
        if after < self.base {
            return Err(StoreError::Compacted {
                requested: Revision(after),
                oldest: Revision(self.base),
            });
        }
        let start = self
            .commits
            .partition_point(|c| c.versionstamp.counter() <= after);
        Ok(self.commits.range(start..).take(max).cloned().collect())
    }
}

/// The decoded header of a stored value, borrowing the JSON bytes.
///
/// On disk: `[format: u8][versionstamp: 10][expires_at_ms: u64 BE, only if format = 1][JSON]`.
struct StoredValue<'a> {
    /// Commit that wrote the value.
    versionstamp: Versionstamp,
    /// Milliseconds since the Unix epoch after which the value reads as absent.
    expires_at_ms: Option<u64>,
    /// The serialised JSON value.
    json: &'a [u8],
}

impl<'a> StoredValue<'a> {
    /// Encodes a value for the `data` keyspace.
    fn encode(versionstamp: Versionstamp, expires_at_ms: Option<u64>, json: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + 8 + json.len());
        out.push(if expires_at_ms.is_some() {
            FORMAT_EXPIRING
        } else {
            FORMAT_PLAIN
        });
        out.extend_from_slice(&versionstamp.0);
        if let Some(at) = expires_at_ms {
            out.extend_from_slice(&at.to_be_bytes());
        }
        out.extend_from_slice(json);
        out
    }

    /// Decodes the header; the JSON is not parsed.
    fn decode(raw: &'a [u8]) -> Result<Self, FjallError> {
        let corrupt = || FjallError::Corrupt(format!("stored value of {} bytes has a bad header", raw.len()));
        let (&format, rest) = raw.split_first().ok_or_else(corrupt)?;
        let stamp: [u8; 10] = rest
            .get(..10)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(corrupt)?;
        let rest = &rest[10..];
        let (expires_at_ms, json) = match format {
            FORMAT_PLAIN => (None, rest),
            FORMAT_EXPIRING => {
                let at: [u8; 8] = rest
                    .get(..8)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(corrupt)?;
                (Some(u64::from_be_bytes(at)), &rest[8..])
            }
            _ => return Err(corrupt()),
        };
        Ok(StoredValue {
            versionstamp: Versionstamp(stamp),
            expires_at_ms,
            json,
        })
    }

    /// Whether the value reads as absent at `now_ms`.
    fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// Parses the JSON into an [`Entry`] under `key`.
    fn into_entry(self, key: Key) -> Result<Entry, FjallError> {
        let value = serde_json::from_slice(self.json)
            .map_err(|e| FjallError::Corrupt(format!("stored value of {key} is not JSON: {e}")))?;
        Ok(Entry {
            key,
            value,
            versionstamp: self.versionstamp,
        })
    }
}

/// A mutation validated and serialised outside the commit lock.
struct PreparedMutation {
    /// The key, for watchers.
    key: Key,
    /// [`Key::encode`] of `key`.
    encoded: Vec<u8>,
    /// `Some((value, json, expire_in_ms))` for a set, `None` for a delete.
    set: Option<(Value, Vec<u8>, Option<u64>)>,
}

/// A check validated outside the commit lock: encoded key and expected versionstamp.
type PreparedCheck = (Vec<u8>, Option<Versionstamp>);

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Encodes `key`, refusing keys over [`MAX_KEY_BYTES`].
fn encode_key(key: &Key) -> StoreResult<Vec<u8>> {
    let encoded = key.encode();
    if encoded.len() > MAX_KEY_BYTES {
        return Err(StoreError::key_too_large(encoded.len()));
    }
    Ok(encoded)
}

/// Validates and serialises a write within `limits`; for duplicate keys only the last
/// mutation counts.
fn prepare(write: AtomicWrite, limits: &Limits) -> StoreResult<(Vec<PreparedCheck>, Vec<PreparedMutation>)> {
    let operations = write.operations();
    if operations > limits.max_operations {
        return Err(StoreError::TooLarge {
            limit: Limit::Operations,
            size: operations,
            max: limits.max_operations,
        });
    }
    let mut request_bytes = 0usize;
    let mut checks = Vec::with_capacity(write.checks.len());
    for Check::Versionstamp { key, expected } in write.checks {
        let encoded = encode_key(&key)?;
        request_bytes += encoded.len();
        checks.push((encoded, expected));
    }
    let mut mutations: Vec<PreparedMutation> = Vec::with_capacity(write.mutations.len());
    let mut position: HashMap<Vec<u8>, usize> = HashMap::with_capacity(write.mutations.len());
    for mutation in write.mutations {
        let prepared = match mutation {
            Mutation::Set {
                key,
                value,
                expire_in_ms,
            } => {
                let json = serde_json::to_vec(&value).map_err(|e| StoreError::Backend {
                    backend: "fjall",
                    message: format!("value does not serialise: {e}"),
                })?;
                if json.len() > MAX_VALUE_BYTES {
                    return Err(StoreError::value_too_large(json.len()));
                }
                PreparedMutation {
                    encoded: encode_key(&key)?,
                    key,
                    set: Some((value, json, expire_in_ms)),
                }
            }
            Mutation::Delete { key } => PreparedMutation {
                encoded: encode_key(&key)?,
                key,
                set: None,
            },
        };
        request_bytes += prepared.encoded.len() + prepared.set.as_ref().map_or(0, |(_, json, _)| json.len());
        match position.get(&prepared.encoded) {
            Some(&i) => mutations[i] = prepared,
            None => {
                position.insert(prepared.encoded.clone(), mutations.len());
                mutations.push(prepared);
            }
        }
    }
    if request_bytes > limits.max_request_bytes {
        return Err(StoreError::TooLarge {
            limit: Limit::RequestBytes,
            size: request_bytes,
            max: limits.max_request_bytes,
        });
    }
    Ok((checks, mutations))
}

/// The commit counter as stored in `meta` (0 for a new store).
fn read_counter(raw: Option<fjall::Slice>) -> Result<u64, FjallError> {
    match raw {
        None => Ok(0),
        Some(raw) => {
            let bytes: [u8; 8] = raw
                .as_ref()
                .try_into()
                .map_err(|_| FjallError::Corrupt(format!("commit counter has {} bytes, not 8", raw.len())))?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

/// The `expiry` keyspace key of an entry under `encoded` expiring at `expires_at_ms`: expiry
/// first, so a range scan from the start yields the entries due soonest.
fn expiry_index_key(expires_at_ms: u64, encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + encoded.len());
    out.extend_from_slice(&expires_at_ms.to_be_bytes());
    out.extend_from_slice(encoded);
    out
}

/// Splits an `expiry` keyspace key into expiry time and encoded data key.
fn split_expiry_index_key(raw: &[u8]) -> Result<(u64, &[u8]), FjallError> {
    match raw.split_first_chunk::<8>() {
        Some((at, encoded)) if !encoded.is_empty() => Ok((u64::from_be_bytes(*at), encoded)),
        _ => Err(FjallError::Corrupt(format!(
            "expiry index key {} is too short",
            hex::encode(raw)
        ))),
    }
}

/// Indexes the expiring entries of a store written before the `expiry` keyspace existed, once.
fn index_existing_expiries(
    db: &Database,
    data: &Keyspace,
    meta: &Keyspace,
    expiry: &Keyspace,
) -> Result<(), FjallError> {
    let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
    let mut indexed = 0usize;
    for guard in data.iter() {
        let (raw_key, raw_value) = guard.into_inner()?;
        let stored = StoredValue::decode(&raw_value)?;
        if let Some(at) = stored.expires_at_ms {
            batch.insert(
                expiry,
                expiry_index_key(at, &raw_key),
                stored.versionstamp.0.as_slice(),
            );
            indexed += 1;
        }
    }
    batch.insert(meta, EXPIRY_INDEXED_KEY, [1u8].as_slice());
    batch.commit()?;
    if indexed > 0 {
        tracing::info!(indexed, "indexed the expiring entries of an older store");
    }
    Ok(())
}

/// The scan bounds of the keys strictly under `prefix`.
///
/// Every part encoding starts with a tag byte in `0x02..=0x27`, so `[p ++ 0x01, p ++ 0xff)` holds
/// exactly the longer keys: it excludes `p` itself and `p ++ 0xff …`, which is a string part of
/// `p` continuing with an escaped NUL (`["a\0"]` is not under `["a"]`).
fn prefix_bounds(prefix: &Key) -> (Vec<u8>, Vec<u8>) {
    let mut lo = prefix.encode();
    let mut hi = lo.clone();
    lo.push(0x01);
    hi.push(0xff);
    (lo, hi)
}

impl FjallStore {
    /// Opens (or creates) the store in `dir`, recovering the journal after a crash.
    ///
    /// With `fsync`, every commit is fdatasync'ed before it is acknowledged (survives power
    /// loss); without, it is written to the OS before it is acknowledged (survives a crash of
    /// this process, not of the machine). Blocks on disk I/O: call it at start or in
    /// `spawn_blocking`. Fails with [`StoreError::Backend`] if another process holds the store.
    pub fn open(dir: &Path, fsync: bool) -> StoreResult<FjallStore> {
        Self::open_with(
            dir,
            FjallOptions {
                fsync,
                ..FjallOptions::default()
            },
        )
    }

    /// [`FjallStore::open`] with every option.
    pub fn open_with(dir: &Path, options: FjallOptions) -> StoreResult<FjallStore> {
        Self::open_inner(dir, options).map_err(StoreError::from)
    }

    /// [`FjallStore::open_with`] with the backend's own error type.
    fn open_inner(dir: &Path, options: FjallOptions) -> Result<FjallStore, FjallError> {
        let fsync = options.fsync;
        let db = Database::builder(dir).open()?;
        let data = db.keyspace(DATA_KEYSPACE, KeyspaceCreateOptions::default)?;
        let meta = db.keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)?;
        let expiry = db.keyspace(EXPIRY_KEYSPACE, KeyspaceCreateOptions::default)?;
        if meta.get(EXPIRY_INDEXED_KEY)?.is_none() {
            index_existing_expiries(&db, &data, &meta, &expiry)?;
        }
        let counter = read_counter(meta.get(COUNTER_KEY)?)?;
        tracing::info!(dir = %dir.display(), fsync, last_commit = counter, "fjall store opened");
        let history = History {
            base: counter,
            commits: VecDeque::new(),
            bytes: 0,
        };
        Ok(FjallStore {
            shared: Arc::new(Shared {
                db,
                data,
                meta,
                expiry,
                commit_lock: Mutex::new(counter),
                options,
                history: Arc::new(Mutex::new(history)),
                latest: watch::Sender::new(counter),
            }),
        })
    }

    /// Forgets the watch history up to and including `revision` (etcd's `compact`): a watch
    /// from before it gets [`StoreError::Compacted`]. A revision past the newest commit compacts
    /// up to that commit only, so a watch from a fresh read is always served. The history also
    /// compacts itself at its bounds ([`FjallOptions::history_commits`],
    /// [`FjallOptions::history_bytes`]).
    pub fn compact_history(&self, revision: Revision) {
        let revision = revision.0.min(*self.shared.latest.borrow());
        let mut history = match self.shared.history.lock() {
            Ok(history) => history,
            Err(poisoned) => poisoned.into_inner(),
        };
        while history
            .commits
            .front()
            .is_some_and(|c| c.versionstamp.counter() <= revision)
        {
            history.drop_oldest();
        }
        history.base = history.base.max(revision);
    }

    /// Runs `work` on tokio's blocking pool, so disk I/O and fsync never stall network threads.
    async fn blocking<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, FjallError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let result = tokio::task::spawn_blocking(move || work(&shared))
            .await
            .map_err(FjallError::from)?;
        Ok(result?)
    }
}

impl Shared {
    /// The live stored value under `encoded`, with its raw bytes kept alive by the caller.
    fn read(&self, encoded: &[u8]) -> Result<Option<fjall::Slice>, FjallError> {
        Ok(self.data.get(encoded)?)
    }

    /// The versionstamp under `encoded`, `None` if absent or expired.
    fn current_versionstamp(&self, encoded: &[u8], now_ms: u64) -> Result<Option<Versionstamp>, FjallError> {
        let Some(raw) = self.read(encoded)? else {
            return Ok(None);
        };
        let stored = StoredValue::decode(&raw)?;
        Ok((!stored.is_expired(now_ms)).then_some(stored.versionstamp))
    }

    /// Evaluates the checks and writes the mutations and the counter in one batch.
    fn commit(
        &self,
        checks: Vec<PreparedCheck>,
        mutations: Vec<PreparedMutation>,
    ) -> Result<CommitOutcome, FjallError> {
        let mut last = self.commit_lock.lock().map_err(|_| FjallError::LockPoisoned)?;
        let now = now_ms();
        for (encoded, expected) in &checks {
            if self.current_versionstamp(encoded, now)? != *expected {
                return Ok(CommitOutcome::CheckFailed);
            }
        }

        let versionstamp = Versionstamp::from_counter(*last + 1);
        let mut batch = self.batch();
        for m in &mutations {
            let expires_at = match &m.set {
                Some((_, _, expire_in_ms)) => expire_in_ms.map(|ms| now.saturating_add(ms)),
                None => None,
            };
            // The old value's index entry goes with it (overwritten or deleted), so the index
            // holds exactly the entries that will expire.
            if let Some(old) = self.read(&m.encoded)?
                && let Some(old_at) = StoredValue::decode(&old)?.expires_at_ms
                && Some(old_at) != expires_at
            {
                batch.remove(&self.expiry, expiry_index_key(old_at, &m.encoded));
            }
            match &m.set {
                Some((_, json, _)) => {
                    let stored = StoredValue::encode(versionstamp, expires_at, json);
                    batch.insert(&self.data, m.encoded.as_slice(), stored);
                    if let Some(at) = expires_at {
                        batch.insert(
                            &self.expiry,
                            expiry_index_key(at, &m.encoded),
                            versionstamp.0.as_slice(),
                        );
                    }
                }
                None => batch.remove(&self.data, m.encoded.as_slice()),
            }
        }
        self.seal(&mut last, batch, || {
            mutations
                .into_iter()
                .map(|m| Change {
                    bytes: m.encoded.len() + m.set.as_ref().map_or(0, |(_, json, _)| json.len()),
                    key: m.key,
                    value: m.set.map(|(value, _, _)| value),
                })
                .collect()
        })?;
        Ok(CommitOutcome::Committed(versionstamp))
    }

    /// A write batch with the store's durability (`SyncData` with fsync, `Buffer` without).
    fn batch(&self) -> fjall::OwnedWriteBatch {
        let mode = if self.options.fsync {
            PersistMode::SyncData
        } else {
            PersistMode::Buffer
        };
        self.db.batch().durability(Some(mode))
    }

    /// Writes `batch` as the next commit (number `*last + 1`, counter in the same batch), then
    /// tells watchers what it `changed`. Called with the commit lock held (`last` is its
    /// guard), so the watch order is the commit order.
    fn seal(
        &self,
        last: &mut u64,
        mut batch: fjall::OwnedWriteBatch,
        changed: impl FnOnce() -> Vec<Change>,
    ) -> Result<Versionstamp, FjallError> {
        let counter = *last + 1;
        let versionstamp = Versionstamp::from_counter(counter);
        batch.insert(&self.meta, COUNTER_KEY, counter.to_be_bytes().as_slice());
        // Whatever happens below, this counter is never handed out again: after a failed
        // persist the batch may still be in the journal (and fjall refuses further writes).
        *last = counter;
        batch
            .commit()
            .inspect_err(|e| tracing::error!(error = %e, counter, "fjall commit failed"))?;
        let changes = changed();
        let bytes = changes.iter().map(|c| c.bytes).sum();
        let commit = Arc::new(CommittedBatch {
            versionstamp,
            changes,
            bytes,
        });
        self.history
            .lock()
            .map_err(|_| FjallError::LockPoisoned)?
            .push(commit, &self.options);
        self.latest.send_replace(counter);
        Ok(versionstamp)
    }

    /// Deletes up to `max` entries whose expiry has passed, in one commit that watchers see as
    /// deletes. An index entry whose key was re-set since (another versionstamp) only loses
    /// its index entry; the key stays.
    fn reap_expired(&self, max: usize) -> Result<Reaped, FjallError> {
        let mut last = self.commit_lock.lock().map_err(|_| FjallError::LockPoisoned)?;
        let now = now_ms();
        let due_before = now.saturating_add(1).to_be_bytes();
        let mut due = Vec::new();
        for guard in self.expiry.range(..due_before.as_slice()).take(max) {
            due.push(guard.into_inner()?);
        }
        if due.is_empty() {
            return Ok(Reaped {
                deleted: 0,
                done: true,
            });
        }
        let done = due.len() < max;
        let mut batch = self.batch();
        let mut deleted = Vec::new();
        for (index_key, indexed_stamp) in &due {
            batch.remove(&self.expiry, index_key.clone());
            let (at, encoded) = split_expiry_index_key(index_key)?;
            let Some(raw) = self.read(encoded)? else {
                continue;
            };
            let stored = StoredValue::decode(&raw)?;
            if stored.versionstamp.0.as_slice() != indexed_stamp.as_ref()
                || stored.expires_at_ms != Some(at)
                || !stored.is_expired(now)
            {
                continue;
            }
            let key = Key::decode(encoded)
                .ok_or_else(|| FjallError::Corrupt(format!("undecodable key {}", hex::encode(encoded))))?;
            batch.remove(&self.data, encoded);
            deleted.push((key, encoded.len()));
        }
        if deleted.is_empty() {
            batch.commit()?;
            return Ok(Reaped { deleted: 0, done });
        }
        let count = deleted.len();
        self.seal(&mut last, batch, || {
            deleted
                .into_iter()
                .map(|(key, bytes)| Change {
                    key,
                    value: None,
                    bytes,
                })
                .collect()
        })?;
        Ok(Reaped { deleted: count, done })
    }

    /// Entries strictly under `prefix`, live only, in key order (or reverse), at most `limit`,
    /// read from one snapshot together with its revision.
    fn list(&self, prefix: &Key, options: ListOptions) -> Result<Page, FjallError> {
        let snapshot = self.db.snapshot();
        let revision = Revision(read_counter(snapshot.get(&self.meta, COUNTER_KEY)?)?);
        let empty = Page {
            entries: Vec::new(),
            revision,
            more: false,
        };
        let limit = options.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(empty);
        }
        let now = now_ms();
        let (lo, hi) = prefix_bounds(prefix);
        let (lo, hi) = match &options.start_after {
            None => (Bound::Included(lo), Bound::Excluded(hi)),
            Some(after) => {
                let after = after.encode();
                if options.reverse {
                    (Bound::Included(lo), Bound::Excluded(after.min(hi)))
                } else {
                    (Bound::Excluded(after.max(lo.clone())), Bound::Excluded(hi))
                }
            }
        };
        if matches!((&lo, &hi), (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(h)) if l >= h) {
            return Ok(empty);
        }
        let iter = snapshot.range(&self.data, (lo, hi));
        let iter: Box<dyn Iterator<Item = fjall::Guard>> = if options.reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        // Collect the raw pairs first (cheap: reference-counted slices), parse them after.
        let mut live = Vec::new();
        let mut live_bytes = 0;
        let mut more = false;
        for guard in iter {
            let (raw_key, raw_value) = guard.into_inner()?;
            if StoredValue::decode(&raw_value)?.is_expired(now) {
                continue;
            }
            if live.len() >= limit {
                more = true;
                break;
            }
            live_bytes += raw_value.len();
            live.push((raw_key, raw_value));
        }
        Ok(Page {
            entries: parse_entries(&live, live_bytes)?,
            revision,
            more,
        })
    }
}

/// Below this many bytes of values, a list is parsed on the calling thread only.
const PARALLEL_PARSE_BYTES: usize = 1 << 20;

/// Decodes raw `(key, value)` pairs into entries, in order.
///
/// Parsing JSON into [`Value`]s dominates a large list (~40 ms for 10,000 values of 2 KiB on
/// one core), so big lists are parsed in chunks on scoped threads, one per core.
fn parse_entries(raw: &[(fjall::Slice, fjall::Slice)], total_bytes: usize) -> Result<Vec<Entry>, FjallError> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores
        .min(total_bytes / PARALLEL_PARSE_BYTES + 1)
        .min(raw.len())
        .max(1);
    if threads == 1 {
        return raw.iter().map(parse_entry).collect();
    }
    let chunk_len = raw.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = raw.chunks(chunk_len);
        let first = chunks.next().unwrap_or_default();
        let helpers: Vec<_> = chunks
            .map(|chunk| scope.spawn(move || chunk.iter().map(parse_entry).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut entries = Vec::with_capacity(raw.len());
        for entry in first {
            entries.push(parse_entry(entry)?);
        }
        for helper in helpers {
            let part = helper.join().map_err(|_| FjallError::ThreadPanicked)?;
            entries.extend(part?);
        }
        Ok(entries)
    })
}

/// Decodes one raw `(key, value)` pair of the `data` keyspace.
fn parse_entry((raw_key, raw_value): &(fjall::Slice, fjall::Slice)) -> Result<Entry, FjallError> {
    let key = Key::decode(raw_key)
        .ok_or_else(|| FjallError::Corrupt(format!("undecodable key {}", hex::encode(raw_key))))?;
    StoredValue::decode(raw_value)?.into_entry(key)
}

#[async_trait]
impl Store for FjallStore {
    async fn get(&self, key: &Key) -> StoreResult<Got> {
        // A key too large to be stored reads as absent.
        let encoded = encode_key(key).ok();
        let key = key.clone();
        self.blocking(move |shared| {
            let snapshot = shared.db.snapshot();
            let revision = Revision(read_counter(snapshot.get(&shared.meta, COUNTER_KEY)?)?);
            let raw = match &encoded {
                Some(encoded) => snapshot.get(&shared.data, encoded)?,
                None => None,
            };
            let entry = match raw {
                None => None,
                Some(raw) => {
                    let stored = StoredValue::decode(&raw)?;
                    if stored.is_expired(now_ms()) {
                        None
                    } else {
                        Some(stored.into_entry(key)?)
                    }
                }
            };
            Ok(Got { entry, revision })
        })
        .await
    }

    async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page> {
        let prefix = prefix.clone();
        self.blocking(move |shared| shared.list(&prefix, options)).await
    }

    async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome> {
        let (checks, mutations) = prepare(write, &self.shared.options.limits)?;
        self.blocking(move |shared| shared.commit(checks, mutations))
            .await
    }

    fn limits(&self) -> Limits {
        self.shared.options.limits
    }

    async fn watch(&self, prefix: &Key, after: Revision) -> StoreResult<WatchStream> {
        struct WatchState {
            history: Arc<Mutex<History>>,
            latest: watch::Receiver<u64>,
            prefix: Key,
            /// The revision of the last commit looked at.
            cursor: u64,
            pending: VecDeque<WatchEvent>,
            ended: bool,
        }
        let state = WatchState {
            history: Arc::clone(&self.shared.history),
            latest: self.shared.latest.subscribe(),
            prefix: prefix.clone(),
            cursor: after.0,
            pending: VecDeque::new(),
            ended: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                loop {
                    if let Some(event) = state.pending.pop_front() {
                        return Some((Ok(event), state));
                    }
                    if state.ended {
                        return None;
                    }
                    // Seen before reading the history: a commit after this wakes `changed` below.
                    state.latest.borrow_and_update();
                    let commits = match state.history.lock() {
                        Ok(history) => history.after(state.cursor, WATCH_STEP_BATCHES),
                        Err(_) => Err(StoreError::from(FjallError::LockPoisoned)),
                    };
                    match commits {
                        Err(error) => {
                            state.ended = true;
                            return Some((Err(error), state));
                        }
                        Ok(commits) if !commits.is_empty() => {
                            for commit in commits {
                                state.cursor = commit.versionstamp.counter();
                                let versionstamp = commit.versionstamp;
                                for change in
                                    commit.changes.iter().filter(|c| c.key.has_prefix(&state.prefix))
                                {
                                    state.pending.push_back(match &change.value {
                                        Some(value) => WatchEvent::Put(Entry {
                                            key: change.key.clone(),
                                            value: value.clone(),
                                            versionstamp,
                                        }),
                                        None => WatchEvent::Delete {
                                            key: change.key.clone(),
                                            versionstamp,
                                        },
                                    });
                                }
                            }
                        }
                        Ok(_) => {
                            if state.latest.changed().await.is_err() {
                                state.ended = true;
                                let closed = StoreError::Unavailable("the store was closed".into());
                                return Some((Err(closed), state));
                            }
                        }
                    }
                }
            },
        )))
    }

    async fn flush(&self) -> StoreResult<()> {
        self.blocking(|shared| Ok(shared.db.persist(PersistMode::SyncAll)?))
            .await
    }

    async fn reap_expired(&self, max: usize) -> StoreResult<Reaped> {
        if max == 0 {
            return Ok(Reaped {
                deleted: 0,
                done: false,
            });
        }
        self.blocking(move |shared| shared.reap_expired(max)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;
    use serde_json::json;

    use super::*;

    fn open(dir: &tempfile::TempDir) -> FjallStore {
        FjallStore::open(dir.path(), false).unwrap()
    }

    async fn put(store: &FjallStore, key: &Key, value: Value) -> Versionstamp {
        match store
            .commit(AtomicWrite::new().set(key.clone(), value))
            .await
            .unwrap()
        {
            CommitOutcome::Committed(vs) => vs,
            CommitOutcome::CheckFailed => panic!("unconditional commit failed its checks"),
        }
    }

    /// The changes under `prefix` from now on (a failed watch fails the test).
    async fn watch_now(
        store: &FjallStore,
        prefix: &Key,
    ) -> impl futures_util::Stream<Item = WatchEvent> + Unpin + use<> {
        let only_the_revision = ListOptions {
            limit: Some(0),
            ..ListOptions::default()
        };
        let now = store.list(prefix, only_the_revision).await.unwrap().revision;
        store.watch(prefix, now).await.unwrap().map(Result::unwrap)
    }

    fn keys(entries: &[Entry]) -> Vec<Key> {
        entries.iter().map(|e| e.key.clone()).collect()
    }

    #[tokio::test]
    async fn versionstamps_increase_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut last = Versionstamp::default();
        for round in 0..3 {
            let store = open(&dir);
            for i in 0..5 {
                let vs = put(&store, &Key::of(&["k", &i.to_string()]), json!(round)).await;
                assert!(vs > last, "{vs} > {last}");
                assert!(vs.to_string() > last.to_string());
                assert_eq!(vs.counter(), last.counter() + 1);
                last = vs;
            }
            drop(store);
        }
        let store = open(&dir);
        let entry = store.get(&Key::of(&["k", "4"])).await.unwrap().entry.unwrap();
        assert_eq!((entry.value, entry.versionstamp), (json!(2), last));
    }

    #[tokio::test]
    async fn expired_entries_read_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let key = Key::of(&["session", "s1"]);
        let keep = Key::of(&["session", "s2"]);
        let write = AtomicWrite::new()
            .set_expiring(key.clone(), json!("tok"), 150)
            .set(keep.clone(), json!(1));
        store.commit(write).await.unwrap();
        let entry = store.get(&key).await.unwrap().entry.unwrap();
        assert_eq!(entry.value, json!("tok"));
        assert_eq!(
            store
                .list(&Key::of(&["session"]), ListOptions::default())
                .await
                .unwrap()
                .entries
                .len(),
            2
        );
        // A versionstamp check sees the live entry.
        let write = AtomicWrite::new()
            .check(key.clone(), None)
            .set(key.clone(), json!("x"));
        assert_eq!(store.commit(write).await.unwrap(), CommitOutcome::CheckFailed);

        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(store.get(&key).await.unwrap().entry, None);
        assert_eq!(
            keys(
                &store
                    .list(&Key::of(&["session"]), ListOptions::default())
                    .await
                    .unwrap()
                    .entries
            ),
            [keep]
        );
        let write = AtomicWrite::new()
            .check(key.clone(), None)
            .set(key.clone(), json!("new"));
        assert!(matches!(
            store.commit(write).await.unwrap(),
            CommitOutcome::Committed(_)
        ));
        // The new set has no expiry.
        assert_eq!(store.get(&key).await.unwrap().entry.unwrap().value, json!("new"));
    }

    #[tokio::test]
    async fn the_watch_history_is_bounded_and_starts_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let options = FjallOptions {
            fsync: false,
            history_commits: 3,
            ..FjallOptions::default()
        };
        let store = FjallStore::open_with(dir.path(), options).unwrap();
        let mut stamps = Vec::new();
        for i in 0..5 {
            stamps.push(put(&store, &Key::of(&["h", &i.to_string()]), json!(i)).await);
        }
        let prefix = Key::of(&["h"]);
        // The last three commits are kept: a watch after the second replays them...
        let mut kept = store.watch(&prefix, stamps[1].into()).await.unwrap();
        let first = kept.next().await.unwrap().unwrap();
        assert_eq!(first.revision(), stamps[2].into());
        // ...one from before is told so.
        let mut lost = store.watch(&prefix, stamps[0].into()).await.unwrap();
        assert!(matches!(
            lost.next().await,
            Some(Err(StoreError::Compacted { .. }))
        ));
        // Compacting past the newest commit leaves a watch from a fresh read served.
        store.compact_history(Revision(u64::MAX));
        let now = store
            .list(&prefix, ListOptions::default())
            .await
            .unwrap()
            .revision;
        let mut current = store.watch(&prefix, now).await.unwrap();
        let later = put(&store, &prefix.child("later"), json!(0)).await;
        assert_eq!(current.next().await.unwrap().unwrap().revision(), later.into());
        drop((kept, lost, current, store));
        // A reopened store keeps no history: a watch from before the open is compacted.
        let store = open(&dir);
        let mut stale = store.watch(&prefix, stamps[3].into()).await.unwrap();
        assert!(matches!(
            stale.next().await,
            Some(Err(StoreError::Compacted { .. }))
        ));
        let mut fresh = store.watch(&prefix, later.into()).await.unwrap();
        let next = put(&store, &prefix.child("5"), json!(5)).await;
        assert_eq!(fresh.next().await.unwrap().unwrap().revision(), next.into());
    }

    /// The raw `expiry` index, as (expires_at, key) pairs.
    fn expiry_index(store: &FjallStore) -> Vec<(u64, Key)> {
        store
            .shared
            .expiry
            .iter()
            .map(|guard| {
                let (raw, _) = guard.into_inner().unwrap();
                let (at, encoded) = split_expiry_index_key(&raw).unwrap();
                (at, Key::decode(encoded).unwrap())
            })
            .collect()
    }

    fn physically_present(store: &FjallStore, key: &Key) -> bool {
        store.shared.data.get(key.encode()).unwrap().is_some()
    }

    #[tokio::test]
    async fn the_expiry_index_follows_overwrites_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let key = Key::of(&["s", "1"]);
        for i in 0..10 {
            let write = AtomicWrite::new().set_expiring(key.clone(), json!(i), 60_000 + i * 1000);
            store.commit(write).await.unwrap();
        }
        let index = expiry_index(&store);
        assert_eq!(index.len(), 1);
        assert_eq!(index[0].1, key);
        put(&store, &key, json!("no expiry")).await;
        assert!(expiry_index(&store).is_empty());
        let write = AtomicWrite::new().set_expiring(key.clone(), json!(1), 60_000);
        store.commit(write).await.unwrap();
        store
            .commit(AtomicWrite::new().delete(key.clone()))
            .await
            .unwrap();
        assert!(expiry_index(&store).is_empty());
    }

    #[tokio::test]
    async fn reaping_deletes_due_entries_for_watchers_and_keeps_re_set_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let (due, re_set, extended, plain) = (
            Key::of(&["x", "due"]),
            Key::of(&["x", "re-set"]),
            Key::of(&["x", "extended"]),
            Key::of(&["x", "plain"]),
        );
        let write = AtomicWrite::new()
            .set_expiring(due.clone(), json!(1), 50)
            .set_expiring(re_set.clone(), json!(2), 50)
            .set_expiring(extended.clone(), json!(3), 50)
            .set(plain.clone(), json!(4));
        store.commit(write).await.unwrap();
        put(&store, &re_set, json!("kept")).await;
        // Even an index entry left behind for it (by an older index, say) must not delete it.
        store
            .shared
            .expiry
            .insert(
                expiry_index_key(1, &re_set.encode()),
                Versionstamp::from_counter(1).0,
            )
            .unwrap();
        let write = AtomicWrite::new().set_expiring(extended.clone(), json!("later"), 60_000);
        store.commit(write).await.unwrap();
        // Nothing is due yet for the reaper.
        let mut watch = watch_now(&store, &Key::of(&["x"])).await;
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(physically_present(&store, &due), "expired but not yet reaped");
        let reaped = store.reap_expired(REAP_MAX).await.unwrap();
        assert_eq!(
            reaped,
            Reaped {
                deleted: 1,
                done: true
            }
        );
        assert!(!physically_present(&store, &due));
        for key in [&re_set, &extended, &plain] {
            assert!(store.get(key).await.unwrap().entry.is_some(), "{key}");
        }
        assert_eq!(
            expiry_index(&store)
                .into_iter()
                .map(|(_, k)| k)
                .collect::<Vec<_>>(),
            [extended]
        );
        let event = watch.next().await.unwrap();
        let WatchEvent::Delete { key, versionstamp } = event else {
            panic!("{event:?}")
        };
        assert_eq!(key, due);
        // The delete is a commit of its own: versionstamps keep increasing after it.
        assert!(put(&store, &plain, json!(5)).await > versionstamp);
        assert_eq!(
            store.reap_expired(REAP_MAX).await.unwrap(),
            Reaped {
                deleted: 0,
                done: true
            }
        );
    }

    const REAP_MAX: usize = 100;

    #[tokio::test]
    async fn reaping_goes_in_bounded_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let mut write = AtomicWrite::new();
        for i in 0..5 {
            write = write.set_expiring(Key::of(&["e", &i.to_string()]), json!(i), 1);
        }
        store.commit(write).await.unwrap();
        let mut watch = watch_now(&store, &Key::of(&["e"])).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut rounds = Vec::new();
        loop {
            let reaped = store.reap_expired(2).await.unwrap();
            rounds.push(reaped.deleted);
            if reaped.done {
                break;
            }
        }
        assert_eq!(rounds, [2, 2, 1]);
        let events: Vec<_> = (&mut watch).take(5).collect().await;
        let stamps: std::collections::BTreeSet<_> = events
            .iter()
            .map(|e| match e {
                WatchEvent::Delete { versionstamp, .. } => *versionstamp,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(stamps.len(), 3, "one commit per round");
        assert!(
            store
                .list(&Key::of(&["e"]), ListOptions::default())
                .await
                .unwrap()
                .entries
                .is_empty()
        );
        assert!(expiry_index(&store).is_empty());
    }

    #[tokio::test]
    async fn a_store_from_before_the_index_is_indexed_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::of(&["old"]);
        {
            let store = open(&dir);
            let write = AtomicWrite::new().set_expiring(key.clone(), json!(1), 1);
            store.commit(write).await.unwrap();
            // As an older version left it: no index, no marker.
            let (at, _) = expiry_index(&store)[0].clone();
            store
                .shared
                .expiry
                .remove(expiry_index_key(at, &key.encode()))
                .unwrap();
            store.shared.meta.remove(EXPIRY_INDEXED_KEY).unwrap();
            assert!(expiry_index(&store).is_empty());
        }
        let store = open(&dir);
        assert_eq!(expiry_index(&store).len(), 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(store.reap_expired(REAP_MAX).await.unwrap().deleted, 1);
        assert!(!physically_present(&store, &key));
    }

    #[tokio::test]
    async fn lists_ten_thousand_large_entries_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let prefix = Key::of(&["ami", "worker"]);
        let script = "logger.info(\"Worker script initialized!\");".repeat(45);
        for chunk in 0..100 {
            let mut write = AtomicWrite::new();
            for i in 0..100 {
                let sid = format!("{:08}-0000-4000-8000-000000000000", chunk * 100 + i);
                let value = json!({"channel": format!("ami.worker.{sid}"), "module": "worker",
                    "raw": {"sid": sid, "active": true, "script": script, "dependencies": ["gliesereum"],
                    "timestamp": 1_700_000_000_000u64}});
                write = write.set(prefix.child(&sid), value);
            }
            store.commit(write).await.unwrap();
        }
        // Large enough to take the parallel parsing path; its speed is in benches/requests.rs.
        let entries = store.list(&prefix, ListOptions::default()).await.unwrap().entries;
        assert_eq!(entries.len(), 10_000);
        assert!(serde_json::to_vec(&entries[0].value).unwrap().len() > 2000);
        assert!(entries.windows(2).all(|w| w[0].key.encode() < w[1].key.encode()));
        assert_eq!(
            entries[9_999].key.last_str(),
            Some("00009999-0000-4000-8000-000000000000")
        );
    }

    /// Environment variable naming the directory [`crash_child`] writes to.
    const CRASH_DIR_ENV: &str = "FJALL_STORE_CRASH_DIR";
    /// Commits the crashing child makes before it aborts.
    const CRASH_COMMITS: u64 = 50;

    /// Child half of [`acknowledged_writes_survive_abort`]: commits without fsync, then aborts
    /// (no destructors, no fjall shutdown flush — like kill -9).
    #[test]
    #[ignore = "run by acknowledged_writes_survive_abort in a child process"]
    fn crash_child() {
        let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let store = FjallStore::open(Path::new(&dir), false).unwrap();
            for i in 0..CRASH_COMMITS {
                put(&store, &Key::of(&["crash", &format!("{i:03}")]), json!(i)).await;
            }
            std::process::abort();
        });
    }

    #[tokio::test]
    async fn acknowledged_writes_survive_abort() {
        let dir = tempfile::tempdir().unwrap();
        let (_, test_path) = module_path!().split_once("::").unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &format!("{test_path}::crash_child"),
                "--ignored",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child must have aborted");

        let store = open(&dir);
        let entries = store
            .list(&Key::of(&["crash"]), ListOptions::default())
            .await
            .unwrap()
            .entries;
        assert_eq!(entries.len() as u64, CRASH_COMMITS);
        assert_eq!(entries.last().unwrap().versionstamp.counter(), CRASH_COMMITS);
        let vs = put(&store, &Key::of(&["after"]), json!(true)).await;
        assert_eq!(vs.counter(), CRASH_COMMITS + 1);
    }
}
