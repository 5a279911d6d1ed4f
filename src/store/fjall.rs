//! The embedded store: [`FjallStore`], a [`Store`] on one local fjall 3 database.
//!
//! Layout: keyspace `data` maps an encoded [`Key`] to a stored value (header + JSON, see
//! `StoredValue`); keyspace `meta` holds the commit counter and the last lease id; keyspaces
//! `leases` and `lease_keys` hold the leases and which keys are attached to each (see
//! [`leases`]). Every commit writes its mutations, their lease index changes *and* the new
//! counter in one fjall write batch, so after a crash the counter, the data and the index agree
//! and versionstamps keep increasing.
//!
//! Commits are serialised by one mutex held across "evaluate checks → write batch → persist →
//! publish to watchers", which makes every check exact and keeps watch order equal to commit order.
//! Reads go through a fjall snapshot, in which the counter and the data agree, so a read's
//! revision is exact. Published commits are kept in a bounded in-memory history; a watch replays
//! it from the revision asked for and then follows new commits, and a watch that asks for (or
//! falls behind to) revisions the history no longer holds gets [`StoreError::Compacted`]. The
//! history starts empty at each open: a watch from before it is compacted.
//!
//! Leases count wall-clock time, so they keep running while the store is closed. An entry whose
//! lease has ended reads as absent at once; [`Store::reap_expired`] then deletes the keys of
//! ended leases for good, in commits that watchers see as deletes, as etcd does by itself. What
//! it is *not*: replicated (that is the etcd backend).
#![deny(missing_docs)]

mod leases;

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use tokio::sync::watch;

use super::prepared::{PreparedCheck, PreparedMutation, encode_key, prepare};
use super::{
    AtomicWrite, CommitOutcome, Entry, Got, Key, Lease, LeaseId, Limit, Limits, ListOptions, ListedJson,
    MAX_LEASE_TTL, Page, PrefixedKeyJson, REAP_BATCH, RawJson, Reaped, Revision, Store, StoreError,
    StoreResult, Versionstamp, WatchEvent, WatchStream, write_entry_json,
};
use leases::{LeaseState, LeaseTable, MAX_LEASES, lease_key_index};

/// Name of the keyspace holding user entries.
const DATA_KEYSPACE: &str = "data";
/// Name of the keyspace holding store bookkeeping.
const META_KEYSPACE: &str = "meta";
/// Name of the keyspace holding leases: id → expiry and TTL.
const LEASES_KEYSPACE: &str = "leases";
/// Name of the keyspace indexing the keys attached to each lease.
const LEASE_KEYS_KEYSPACE: &str = "lease_keys";
/// Name of the keyspace that indexed per-entry expiry times before leases existed.
const LEGACY_EXPIRY_KEYSPACE: &str = "expiry";
/// Key (in `meta`) of the last committed commit counter, 8 bytes big-endian.
const COUNTER_KEY: &[u8] = b"commit_counter";
/// Key (in `meta`) of the last lease id handed out, 8 bytes big-endian.
const LEASE_COUNTER_KEY: &[u8] = b"lease_counter";
/// Key (in `meta`) present once entries with a per-entry expiry (older stores) are attached to
/// leases.
const LEASES_READY_KEY: &[u8] = b"leases_ready";
/// Commits a watch takes from the history at a time, so the history lock is held briefly.
const WATCH_STEP_BATCHES: usize = 64;

/// First header byte of a stored value without a lease.
const FORMAT_PLAIN: u8 = 0;
/// First header byte of a stored value followed by an 8-byte expiry time (older stores only:
/// such values are attached to leases when the store is opened).
const FORMAT_LEGACY_EXPIRING: u8 = 1;
/// First header byte of a stored value followed by the 8-byte id of its lease.
const FORMAT_LEASED: u8 = 2;
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
    /// A previous commit panicked while holding the commit lock.
    #[error("commit lock poisoned by an earlier panic")]
    LockPoisoned,
    /// Bytes on disk that this backend never writes.
    #[error("{0}")]
    Corrupt(String),
    /// A request the contract refuses (an ended lease, too many leases).
    #[error(transparent)]
    Refused(StoreError),
    /// The call waited past its deadline before its work could start; nothing was done.
    #[error("store call timed out")]
    Timeout(Duration),
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
            FjallError::Refused(error) => error,
            FjallError::Timeout(after) => StoreError::Timeout(after),
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
    /// How long a call may take, queueing for a disk thread included; past it the caller gets
    /// [`StoreError::Timeout`]. Work that had not started by then is skipped; work already
    /// under way (a stalled disk) may still complete after the caller got `Timeout`, as with any
    /// remote store. `None`: no deadline — only for tests on tokio's paused clock, which would
    /// jump to the deadline while a disk thread works (it cannot see blocking tasks).
    pub call_timeout: Option<Duration>,
}

impl Default for FjallOptions {
    fn default() -> Self {
        FjallOptions {
            fsync: true,
            limits: Limits::DEFAULT,
            history_commits: 10_000,
            history_bytes: 64 * 1024 * 1024,
            call_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// The embedded [`Store`]: one fjall database in a directory, exclusively locked by this process.
///
/// Cheap to share behind an `Arc`; dropping it ends every [`watch`](Store::watch) stream and makes
/// fjall persist its journal (`SyncAll`). Its calls carry deadlines, so they need a tokio runtime
/// with timers enabled.
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
    /// Lease id → [`LeaseState`], as kept in `leases`.
    lease_states: Keyspace,
    /// `lease id ‖ encoded key` of every key attached to a lease.
    lease_keys: Keyspace,
    /// Serialises commits and lease changes; holds the counter of the last commit (the next one
    /// gets +1).
    commit_lock: Mutex<u64>,
    /// Every lease, read by every read of a leased entry; written only under `commit_lock`.
    leases: RwLock<LeaseTable>,
    /// How the store was opened (durability, limits, history bounds).
    options: FjallOptions,
    /// Recent commits for watchers, appended under `commit_lock` so that order = commit order.
    history: Arc<Mutex<History>>,
    /// The revision of the newest commit in `history`; watchers wait on it. Dropped with the
    /// store, which ends every watch with an error.
    latest: watch::Sender<u64>,
    /// Group commit: with `fsync`, batches are written to the journal unsynced and one sync
    /// covers every batch written before it started.
    durability: GroupSync,
}

/// Group commit with `fsync`: a batch is written to the journal without a sync under the commit
/// lock (so commits are not held up by each other's syncs); each call then waits until a sync
/// that started after its batch was written has finished. One caller at a time runs the sync
/// (`Database::persist`), for everything written so far; the others wait and are covered by it
/// or by the next. Commits are published to watchers only once synced, in commit order, so a
/// watcher never sees a change that a crash could take back.
#[derive(Default)]
struct GroupSync {
    /// Batches written to the journal so far (a sequence number per batch).
    written: std::sync::atomic::AtomicU64,
    state: Mutex<SyncState>,
    /// Bumped after every sync, failed or not: waiting callers are tasks woken by it, not
    /// threads parked on the blocking pool.
    synced: watch::Sender<()>,
    /// Journal syncs run so far.
    syncs: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct SyncState {
    /// Every batch up to this sequence number is on disk.
    durable: u64,
    /// A caller is running a sync now.
    syncing: bool,
    /// Commits written but not yet synced, in commit order, with their batch's sequence number.
    unpublished: VecDeque<(u64, Arc<CommittedBatch>, u64)>,
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
    value: Option<RawJson>,
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

/// What a stored value's life depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attachment {
    /// Nothing: it lives until overwritten or deleted.
    None,
    /// The lease with this id.
    Lease(u64),
    /// A per-entry expiry time in ms (older stores, converted to leases when opened).
    LegacyExpiry(u64),
}

/// The decoded header of a stored value, borrowing the JSON bytes.
///
/// On disk: `[format: u8][versionstamp: 10][lease id or expiry: u64 BE, if format ≠ 0][JSON]`.
struct StoredValue<'a> {
    /// Commit that wrote the value.
    versionstamp: Versionstamp,
    /// What ends the value.
    attachment: Attachment,
    /// The serialised JSON value.
    json: &'a [u8],
}

impl<'a> StoredValue<'a> {
    /// Encodes a value for the `data` keyspace.
    fn encode(versionstamp: Versionstamp, lease: Option<LeaseId>, json: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + 8 + json.len());
        out.push(if lease.is_some() {
            FORMAT_LEASED
        } else {
            FORMAT_PLAIN
        });
        out.extend_from_slice(&versionstamp.0);
        if let Some(lease) = lease {
            out.extend_from_slice(&lease.0.to_be_bytes());
        }
        out.extend_from_slice(json);
        out
    }

    /// Decodes the header; the JSON is not parsed.
    fn decode(raw: &'a [u8]) -> Result<Self, FjallError> {
        let corrupt = || FjallError::Corrupt(format!("stored value of {} bytes has a bad header", raw.len()));
        let (&format, rest) = raw.split_first().ok_or_else(corrupt)?;
        let (stamp, rest) = rest.split_first_chunk::<10>().ok_or_else(corrupt)?;
        let (attachment, json) = match format {
            FORMAT_PLAIN => (Attachment::None, rest),
            FORMAT_LEASED | FORMAT_LEGACY_EXPIRING => {
                let (word, json) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
                let word = u64::from_be_bytes(*word);
                let attachment = if format == FORMAT_LEASED {
                    Attachment::Lease(word)
                } else {
                    Attachment::LegacyExpiry(word)
                };
                (attachment, json)
            }
            _ => return Err(corrupt()),
        };
        Ok(StoredValue {
            versionstamp: Versionstamp(*stamp),
            attachment,
            json,
        })
    }

    /// Whether the value reads as present at `now_ms`.
    fn is_live(&self, leases: &LeaseTable, now_ms: u64) -> bool {
        match self.attachment {
            Attachment::None => true,
            Attachment::Lease(id) => leases.alive(id, now_ms),
            Attachment::LegacyExpiry(at) => at > now_ms,
        }
    }

    /// The lease the value is attached to.
    fn lease(&self) -> Option<u64> {
        match self.attachment {
            Attachment::Lease(id) => Some(id),
            _ => None,
        }
    }

    /// The [`Entry`] under `key`, its JSON taken as written (this backend wrote it, and fjall
    /// checksums what it keeps).
    fn into_entry(self, key: Key) -> Result<Entry, FjallError> {
        let value = RawJson::from_trusted(self.json)
            .map_err(|e| FjallError::Corrupt(format!("stored value of {key} is not UTF-8: {e}")))?;
        Ok(Entry {
            key,
            value,
            versionstamp: self.versionstamp,
        })
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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

/// Reads a big-endian u64 kept in `meta` (0 when absent).
fn read_meta_u64(meta: &Keyspace, key: &[u8]) -> Result<u64, FjallError> {
    read_counter(meta.get(key)?)
}

/// Loads every lease and the last id handed out.
fn load_leases(meta: &Keyspace, lease_states: &Keyspace) -> Result<LeaseTable, FjallError> {
    let mut table = LeaseTable::default();
    for guard in lease_states.iter() {
        let (raw_id, raw_state) = guard.into_inner()?;
        let id: [u8; 8] = raw_id
            .as_ref()
            .try_into()
            .map_err(|_| FjallError::Corrupt(format!("lease id {} is not 8 bytes", hex::encode(&raw_id))))?;
        let state = LeaseState::decode(&raw_state)
            .ok_or_else(|| FjallError::Corrupt(format!("lease {} has a bad record", hex::encode(id))))?;
        table.put(u64::from_be_bytes(id), state);
    }
    table.last_id = read_meta_u64(meta, LEASE_COUNTER_KEY)?;
    Ok(table)
}

/// Attaches the entries of an older store that carry their own expiry time to leases, one
/// lease per second of expiry, once; then drops the old expiry index.
fn attach_legacy_expiries(db: &Database, data: &Keyspace, meta: &Keyspace) -> Result<(), FjallError> {
    let mut last_id = read_meta_u64(meta, LEASE_COUNTER_KEY)?;
    let lease_states = db.keyspace(LEASES_KEYSPACE, KeyspaceCreateOptions::default)?;
    let lease_keys = db.keyspace(LEASE_KEYS_KEYSPACE, KeyspaceCreateOptions::default)?;
    let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
    let mut by_second: BTreeMap<u64, u64> = BTreeMap::new();
    let mut attached = 0usize;
    for guard in data.iter() {
        let (raw_key, raw_value) = guard.into_inner()?;
        let stored = StoredValue::decode(&raw_value)?;
        let Attachment::LegacyExpiry(at) = stored.attachment else {
            continue;
        };
        let second = at.div_ceil(1000).saturating_mul(1000);
        let id = *by_second.entry(second).or_insert_with(|| {
            last_id += 1;
            last_id
        });
        let value = StoredValue::encode(stored.versionstamp, Some(LeaseId(id)), stored.json);
        batch.insert(data, raw_key.as_ref(), value);
        batch.insert(&lease_keys, lease_key_index(id, &raw_key), [].as_slice());
        attached += 1;
    }
    for (&second, &id) in &by_second {
        let state = LeaseState {
            expires_at_ms: second,
            ttl_ms: 1000,
        };
        batch.insert(
            &lease_states,
            id.to_be_bytes().as_slice(),
            state.encode().as_slice(),
        );
    }
    batch.insert(meta, LEASE_COUNTER_KEY, last_id.to_be_bytes().as_slice());
    batch.insert(meta, LEASES_READY_KEY, [1u8].as_slice());
    batch.commit()?;
    if db.keyspace_exists(LEGACY_EXPIRY_KEYSPACE) {
        let legacy = db.keyspace(LEGACY_EXPIRY_KEYSPACE, KeyspaceCreateOptions::default)?;
        db.delete_keyspace(legacy)?;
    }
    if attached > 0 {
        tracing::info!(
            attached,
            leases = by_second.len(),
            "attached the expiring entries of an older store to leases"
        );
    }
    Ok(())
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
        if meta.get(LEASES_READY_KEY)?.is_none() {
            attach_legacy_expiries(&db, &data, &meta)?;
        }
        let lease_states = db.keyspace(LEASES_KEYSPACE, KeyspaceCreateOptions::default)?;
        let lease_keys = db.keyspace(LEASE_KEYS_KEYSPACE, KeyspaceCreateOptions::default)?;
        let leases = load_leases(&meta, &lease_states)?;
        let counter = read_counter(meta.get(COUNTER_KEY)?)?;
        tracing::info!(
            dir = %dir.display(), fsync, last_commit = counter, leases = leases.len(),
            "fjall store opened"
        );
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
                lease_states,
                lease_keys,
                commit_lock: Mutex::new(counter),
                leases: RwLock::new(leases),
                options,
                history: Arc::new(Mutex::new(history)),
                latest: watch::Sender::new(counter),
                durability: GroupSync::default(),
            }),
        })
    }

    /// Journal syncs run so far: with fsync, commits that arrive while one runs share the next
    /// (group commit), so this grows slower than the number of commits under load.
    pub fn journal_syncs(&self) -> u64 {
        self.shared
            .durability
            .syncs
            .load(std::sync::atomic::Ordering::Relaxed)
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

    /// Runs the writing `operation` on the blocking pool and answers once what it wrote is on
    /// disk (with fsync): commits that arrive while a sync runs share the next one, and their
    /// callers wait as tasks, not as blocked threads.
    async fn durably<T, F>(&self, operation: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, FjallError> + Send + 'static,
    {
        let started = tokio::time::Instant::now();
        let (result, target) = self.blocking(move |shared| shared.writing(operation)).await?;
        if let Some(target) = target {
            // The same deadline as the write's: the whole call waits at most `call_timeout`.
            self.by_deadline(started, self.wait_durable(target)).await??;
        }
        Ok(result)
    }

    /// Returns once batch `target` is on disk, running the sync when none is under way.
    async fn wait_durable(&self, target: u64) -> StoreResult<()> {
        let mut synced = self.shared.durability.synced.subscribe();
        loop {
            let (durable, syncing) = self.shared.sync_state(target)?;
            if durable {
                return Ok(());
            }
            if syncing {
                if synced.changed().await.is_err() {
                    return Err(StoreError::Unavailable("the store was closed".into()));
                }
                continue;
            }
            // On the blocking pool, so the sync finishes (and wakes everyone) even if this
            // caller goes away; it returns at once if another caller began one meanwhile.
            self.blocking(|shared| shared.sync_journal()).await?;
        }
    }

    /// Runs `work` on tokio's blocking pool, so disk I/O and fsync never stall network threads,
    /// within [`FjallOptions::call_timeout`]: the caller waits no longer, and work still queued
    /// at the deadline (measured on the real clock by the disk thread) is skipped.
    async fn blocking<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, FjallError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let deadline = shared.options.call_timeout;
        let sent = Instant::now();
        let task = tokio::task::spawn_blocking(move || {
            if let Some(limit) = deadline
                && sent.elapsed() >= limit
            {
                return Err(FjallError::Timeout(limit));
            }
            work(&shared)
        });
        let joined = self.by_deadline(tokio::time::Instant::now(), task).await?;
        Ok(joined.map_err(FjallError::from)??)
    }

    /// What `work` gives, or [`StoreError::Timeout`] once [`FjallOptions::call_timeout`] has
    /// passed since `started`.
    async fn by_deadline<T>(
        &self,
        started: tokio::time::Instant,
        work: impl std::future::Future<Output = T>,
    ) -> StoreResult<T> {
        match self.shared.options.call_timeout {
            Some(limit) => tokio::time::timeout_at(started + limit, work)
                .await
                .map_err(|_| StoreError::Timeout(limit)),
            None => Ok(work.await),
        }
    }
}

impl Shared {
    /// The live stored value under `encoded`, with its raw bytes kept alive by the caller.
    fn read(&self, encoded: &[u8]) -> Result<Option<fjall::Slice>, FjallError> {
        Ok(self.data.get(encoded)?)
    }

    /// The lease table for reading.
    fn leases(&self) -> Result<RwLockReadGuard<'_, LeaseTable>, FjallError> {
        self.leases.read().map_err(|_| FjallError::LockPoisoned)
    }

    /// The versionstamp under `encoded`, `None` if absent or its lease has ended.
    fn current_versionstamp(
        &self,
        encoded: &[u8],
        leases: &LeaseTable,
        now_ms: u64,
    ) -> Result<Option<Versionstamp>, FjallError> {
        let Some(raw) = self.read(encoded)? else {
            return Ok(None);
        };
        let stored = StoredValue::decode(&raw)?;
        Ok(stored.is_live(leases, now_ms).then_some(stored.versionstamp))
    }

    /// Evaluates the checks and writes the mutations, their lease index entries and the
    /// counter in one batch.
    fn commit(
        &self,
        checks: Vec<PreparedCheck>,
        mutations: Vec<PreparedMutation>,
    ) -> Result<CommitOutcome, FjallError> {
        let mut last = self.commit_lock.lock().map_err(|_| FjallError::LockPoisoned)?;
        let now = now_ms();
        let leases = self.leases()?;
        for m in &mutations {
            if let Some((_, Some(lease))) = &m.set
                && !leases.alive(lease.0, now)
            {
                return Err(FjallError::Refused(StoreError::LeaseNotFound(*lease)));
            }
        }
        for (encoded, expected) in &checks {
            if self.current_versionstamp(encoded, &leases, now)? != *expected {
                return Ok(CommitOutcome::CheckFailed);
            }
        }
        drop(leases);

        let versionstamp = Versionstamp::from_counter(*last + 1);
        let mut batch = self.batch();
        for m in &mutations {
            let lease = m.set.as_ref().and_then(|(_, lease)| lease.map(|l| l.0));
            // The index follows the key: it holds exactly the keys each lease will delete.
            if let Some(old) = self.read(&m.encoded)?
                && let Some(old_lease) = StoredValue::decode(&old)?.lease()
                && Some(old_lease) != lease
            {
                batch.remove(&self.lease_keys, lease_key_index(old_lease, &m.encoded));
            }
            match &m.set {
                Some((value, _)) => {
                    let stored =
                        StoredValue::encode(versionstamp, lease.map(LeaseId), value.as_str().as_bytes());
                    batch.insert(&self.data, m.encoded.as_slice(), stored);
                    if let Some(id) = lease {
                        batch.insert(&self.lease_keys, lease_key_index(id, &m.encoded), [].as_slice());
                    }
                }
                None => batch.remove(&self.data, m.encoded.as_slice()),
            }
        }
        self.seal(&mut last, batch, || {
            mutations
                .into_iter()
                .map(|m| Change {
                    bytes: m.encoded.len() + m.set.as_ref().map_or(0, |(value, _)| value.len()),
                    key: m.key,
                    value: m.set.map(|(value, _)| value),
                })
                .collect()
        })?;
        Ok(CommitOutcome::Committed(versionstamp))
    }

    /// Grants a lease of `ttl_ms` with the next id.
    fn grant(&self, ttl_ms: u64) -> Result<Lease, FjallError> {
        let _commits = self.commit_lock.lock().map_err(|_| FjallError::LockPoisoned)?;
        let mut leases = self.leases.write().map_err(|_| FjallError::LockPoisoned)?;
        if leases.len() >= MAX_LEASES {
            return Err(FjallError::Refused(StoreError::TooLarge {
                limit: Limit::Leases,
                size: leases.len() + 1,
                max: MAX_LEASES,
            }));
        }
        let id = leases.last_id + 1;
        let state = LeaseState {
            expires_at_ms: now_ms().saturating_add(ttl_ms),
            ttl_ms,
        };
        let mut batch = self.batch();
        batch.insert(
            &self.lease_states,
            id.to_be_bytes().as_slice(),
            state.encode().as_slice(),
        );
        batch.insert(&self.meta, LEASE_COUNTER_KEY, id.to_be_bytes().as_slice());
        // Never handed out again, even if the batch fails after reaching the journal.
        leases.last_id = id;
        self.write(batch)?;
        leases.put(id, state);
        Ok(Lease {
            id: LeaseId(id),
            ttl: Duration::from_millis(ttl_ms),
        })
    }

    /// Restarts the TTL of a live lease.
    fn keep_alive(&self, id: u64) -> Result<Duration, FjallError> {
        let _commits = self.commit_lock.lock().map_err(|_| FjallError::LockPoisoned)?;
        let mut leases = self.leases.write().map_err(|_| FjallError::LockPoisoned)?;
        let now = now_ms();
        let Some(state) = leases.get(id).filter(|_| leases.alive(id, now)) else {
            return Err(FjallError::Refused(StoreError::LeaseNotFound(LeaseId(id))));
        };
        let renewed = LeaseState {
            expires_at_ms: now.saturating_add(state.ttl_ms),
            ..state
        };
        let mut batch = self.batch();
        batch.insert(
            &self.lease_states,
            id.to_be_bytes().as_slice(),
            renewed.encode().as_slice(),
        );
        self.write(batch)?;
        leases.put(id, renewed);
        Ok(Duration::from_millis(state.ttl_ms))
    }

    /// Ends lease `id` now and deletes its keys, in commits of at most [`REAP_BATCH`] keys.
    fn revoke(&self, id: u64) -> Result<(), FjallError> {
        let mut last = self.commit_lock.lock().map_err(|_| FjallError::LockPoisoned)?;
        let Some(state) = self.leases()?.get(id) else {
            return Ok(());
        };
        if state.expires_at_ms > 0 {
            let ended = LeaseState {
                expires_at_ms: 0,
                ..state
            };
            let mut batch = self.batch();
            batch.insert(
                &self.lease_states,
                id.to_be_bytes().as_slice(),
                ended.encode().as_slice(),
            );
            self.write(batch)?;
            self.leases
                .write()
                .map_err(|_| FjallError::LockPoisoned)?
                .put(id, ended);
        }
        while !self.reap_leases(&mut last, &[id], REAP_BATCH)?.done {}
        Ok(())
    }

    /// Deletes up to `max` keys of the ended leases `ids`, in one commit that watchers see as
    /// deletes, and forgets the leases left without keys. A key re-set since without the lease
    /// only loses its index entry.
    fn reap_leases(&self, last: &mut u64, ids: &[u64], max: usize) -> Result<Reaped, FjallError> {
        let mut batch = self.batch();
        let mut deleted = Vec::new();
        let mut finished = Vec::new();
        let mut budget = max;
        for &id in ids {
            let prefix = id.to_be_bytes();
            let mut exhausted = true;
            for guard in self.lease_keys.prefix(prefix) {
                if budget == 0 {
                    exhausted = false;
                    break;
                }
                budget -= 1;
                let index_key = guard.key()?;
                batch.remove(&self.lease_keys, index_key.clone());
                let encoded = index_key.get(8..).unwrap_or_default();
                let Some(raw) = self.read(encoded)? else {
                    continue;
                };
                if StoredValue::decode(&raw)?.lease() != Some(id) {
                    continue;
                }
                let key = Key::decode(encoded).ok_or_else(|| {
                    FjallError::Corrupt(format!("undecodable key {}", hex::encode(encoded)))
                })?;
                batch.remove(&self.data, encoded);
                deleted.push((key, encoded.len()));
            }
            if !exhausted {
                break;
            }
            batch.remove(&self.lease_states, prefix.as_slice());
            finished.push(id);
        }
        let done = finished.len() == ids.len();
        let count = deleted.len();
        if deleted.is_empty() {
            self.write(batch)?;
        } else {
            self.seal(last, batch, || {
                deleted
                    .into_iter()
                    .map(|(key, bytes)| Change {
                        key,
                        value: None,
                        bytes,
                    })
                    .collect()
            })?;
        }
        let mut leases = self.leases.write().map_err(|_| FjallError::LockPoisoned)?;
        for id in finished {
            leases.remove(id);
        }
        Ok(Reaped { deleted: count, done })
    }

    /// A write batch written to the journal without a sync; with fsync the caller waits in
    /// [`Shared::wait_durable`] before it answers (group commit).
    fn batch(&self) -> fjall::OwnedWriteBatch {
        self.db.batch().durability(Some(PersistMode::Buffer))
    }

    /// Commits `batch` to the journal and numbers it for [`Shared::wait_durable`].
    fn write(&self, batch: fjall::OwnedWriteBatch) -> Result<u64, FjallError> {
        batch.commit()?;
        Ok(self
            .durability
            .written
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1)
    }

    /// Whether every batch up to `target` is on disk, and whether a sync is under way.
    fn sync_state(&self, target: u64) -> Result<(bool, bool), FjallError> {
        let state = self
            .durability
            .state
            .lock()
            .map_err(|_| FjallError::LockPoisoned)?;
        Ok((state.durable >= target, state.syncing))
    }

    /// Syncs the journal for every batch written so far and publishes the commits it covers,
    /// unless a sync is already under way (whose end wakes the waiters); then returns at once.
    fn sync_journal(&self) -> Result<(), FjallError> {
        let covered = {
            let mut state = self
                .durability
                .state
                .lock()
                .map_err(|_| FjallError::LockPoisoned)?;
            if state.syncing {
                return Ok(());
            }
            state.syncing = true;
            self.durability.written.load(std::sync::atomic::Ordering::SeqCst)
        };
        let synced = self.db.persist(PersistMode::SyncData);
        self.durability
            .syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut state = self
            .durability
            .state
            .lock()
            .map_err(|_| FjallError::LockPoisoned)?;
        state.syncing = false;
        let published = match synced {
            Err(e) => {
                tracing::error!(error = %e, "fjall journal sync failed");
                Err(e.into())
            }
            Ok(()) => {
                state.durable = state.durable.max(covered);
                let mut published = Ok(());
                while state
                    .unpublished
                    .front()
                    .is_some_and(|(seq, _, _)| *seq <= covered)
                {
                    if let Some((_, commit, counter)) = state.unpublished.pop_front() {
                        published = published.and(self.publish(commit, counter));
                    }
                }
                published
            }
        };
        drop(state);
        self.durability.synced.send_replace(());
        published
    }

    /// Runs `operation`; with fsync, also says which batch must be on disk before it may be
    /// acknowledged (`None`: it wrote nothing, or nothing needs syncing).
    fn writing<T>(
        &self,
        operation: impl FnOnce(&Shared) -> Result<T, FjallError>,
    ) -> Result<(T, Option<u64>), FjallError> {
        let before = self.durability.written.load(std::sync::atomic::Ordering::SeqCst);
        let result = operation(self)?;
        let after = self.durability.written.load(std::sync::atomic::Ordering::SeqCst);
        Ok((result, (self.options.fsync && after != before).then_some(after)))
    }

    /// Hands a commit to watchers.
    fn publish(&self, commit: Arc<CommittedBatch>, counter: u64) -> Result<(), FjallError> {
        self.history
            .lock()
            .map_err(|_| FjallError::LockPoisoned)?
            .push(commit, &self.options);
        self.latest.send_replace(counter);
        Ok(())
    }

    /// Writes `batch` as the next commit (number `*last + 1`, counter in the same batch), then
    /// tells watchers what it `changed` — at once without fsync, once synced with it. Called
    /// with the commit lock held (`last` is its guard), so the watch order is the commit order.
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
        let seq = self
            .write(batch)
            .inspect_err(|e| tracing::error!(error = %e, counter, "fjall commit failed"))?;
        let changes = changed();
        let bytes = changes.iter().map(|c| c.bytes).sum();
        let commit = Arc::new(CommittedBatch {
            versionstamp,
            changes,
            bytes,
        });
        if self.options.fsync {
            // Published by the sync that covers it (under the commit lock: commit order).
            self.durability
                .state
                .lock()
                .map_err(|_| FjallError::LockPoisoned)?
                .unpublished
                .push_back((seq, commit, counter));
        } else {
            self.publish(commit, counter)?;
        }
        Ok(versionstamp)
    }

    /// Deletes up to `max` keys of leases that have ended.
    fn reap_expired(&self, max: usize) -> Result<Reaped, FjallError> {
        let mut last = self.commit_lock.lock().map_err(|_| FjallError::LockPoisoned)?;
        let ended = self.leases()?.ended(now_ms(), max);
        if ended.is_empty() {
            return Ok(Reaped {
                deleted: 0,
                done: true,
            });
        }
        let all = ended.len() < max;
        let reaped = self.reap_leases(&mut last, &ended, max)?;
        Ok(Reaped {
            done: reaped.done && all,
            ..reaped
        })
    }

    /// The live entry under `key` and the revision of the read.
    fn get(&self, key: &Key) -> Result<Got, FjallError> {
        let snapshot = self.db.snapshot();
        let revision = self.revision_in(&snapshot)?;
        // A key too large to be stored reads as absent.
        let raw = match encode_key(key) {
            Ok(encoded) => snapshot.get(&self.data, encoded)?,
            Err(_) => None,
        };
        let entry = match raw {
            None => None,
            Some(raw) => {
                let stored = StoredValue::decode(&raw)?;
                if stored.is_live(&*self.leases()?, now_ms()) {
                    Some(stored.into_entry(key.clone())?)
                } else {
                    None
                }
            }
        };
        Ok(Got { entry, revision })
    }

    /// The revision `snapshot` reflects.
    fn revision_in(&self, snapshot: &fjall::Snapshot) -> Result<Revision, FjallError> {
        Ok(Revision(read_counter(snapshot.get(&self.meta, COUNTER_KEY)?)?))
    }

    /// Entries strictly under `prefix` in `snapshot` (at `revision`), live only, in key order
    /// (or reverse), at most `limit` — or fewer when `budget` entries were read first; the
    /// second value says whether the budget cut the read short.
    fn list_in(
        &self,
        snapshot: &fjall::Snapshot,
        revision: Revision,
        prefix: &Key,
        options: &ListOptions,
        budget: usize,
    ) -> Result<(Page, bool), FjallError> {
        let mut entries =
            Vec::with_capacity(options.limit.unwrap_or(usize::MAX).min(budget).min(LIST_RESERVE));
        let scan = self.scan_in(snapshot, prefix, options, budget, |raw_key, stored| {
            entries.push(stored.into_entry(decode_key(raw_key)?)?);
            Ok(())
        })?;
        let page = Page {
            entries,
            revision,
            more: scan.more,
        };
        Ok((page, scan.cut))
    }

    /// Appends the live entries of `range` (encoded keys) in `snapshot`, in key order, to `out`
    /// as JSON objects (read straight from the stored bytes), stopping after `budget` entries;
    /// says whether the budget cut the read short.
    fn list_json_in(
        &self,
        snapshot: &fjall::Snapshot,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        budget: usize,
        out: &mut JsonListWriter,
    ) -> Result<bool, FjallError> {
        let scan = self.scan_range(snapshot, range, false, usize::MAX, budget, |raw_key, stored| {
            out.push(raw_key, &stored)
        })?;
        Ok(scan.cut)
    }

    /// Calls `visit` with the raw key and decoded value of every live entry strictly under
    /// `prefix` in `snapshot`, in key order (or reverse), at most `limit` of them — or fewer
    /// when `budget` were visited first.
    fn scan_in(
        &self,
        snapshot: &fjall::Snapshot,
        prefix: &Key,
        options: &ListOptions,
        budget: usize,
        visit: impl FnMut(&[u8], StoredValue<'_>) -> Result<(), FjallError>,
    ) -> Result<Scan, FjallError> {
        let limit = options.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Scan::default());
        }
        let (lo, hi) = Key::child_bounds(prefix);
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
            return Ok(Scan::default());
        }
        self.scan_range(snapshot, (lo, hi), options.reverse, limit, budget, visit)
    }

    /// [`Shared::scan_in`] over a range of encoded keys.
    fn scan_range(
        &self,
        snapshot: &fjall::Snapshot,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        reverse: bool,
        limit: usize,
        budget: usize,
        mut visit: impl FnMut(&[u8], StoredValue<'_>) -> Result<(), FjallError>,
    ) -> Result<Scan, FjallError> {
        let mut scan = Scan::default();
        let now = now_ms();
        let leases = self.leases()?;
        let iter = snapshot.range(&self.data, range);
        let iter: Box<dyn Iterator<Item = fjall::Guard>> = if reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        let mut seen = 0;
        for guard in iter {
            if seen >= budget && seen < limit {
                scan.cut = true;
                break;
            }
            let (raw_key, raw_value) = guard.into_inner()?;
            let stored = StoredValue::decode(&raw_value)?;
            if !stored.is_live(&leases, now) {
                continue;
            }
            if seen >= limit {
                scan.more = true;
                break;
            }
            visit(&raw_key, stored)?;
            seen += 1;
        }
        Ok(scan)
    }
}

/// How a scan ended.
#[derive(Default)]
struct Scan {
    /// Live entries remain beyond the limit.
    more: bool,
    /// The budget ended the scan before the limit or the range did.
    cut: bool,
}

/// A JSON array of entries being written from stored bytes, and where it has got to.
struct JsonListWriter {
    keys: Arc<PrefixedKeyJson>,
    json: String,
    entries: usize,
    /// The encoded key of the last entry written, to continue after it.
    last_key: Vec<u8>,
}

impl JsonListWriter {
    fn new(keys: Arc<PrefixedKeyJson>, reserve: usize) -> Self {
        JsonListWriter {
            keys,
            json: {
                let mut json = String::with_capacity(reserve.max(2));
                json.push('[');
                json
            },
            entries: 0,
            last_key: Vec::new(),
        }
    }

    /// Appends one entry as [`Entry::write_json`] would write it.
    fn push(&mut self, raw_key: &[u8], stored: &StoredValue<'_>) -> Result<(), FjallError> {
        let value = simdutf8::basic::from_utf8(stored.json).map_err(|e| {
            FjallError::Corrupt(format!(
                "stored value under {} is not UTF-8: {e}",
                hex::encode(raw_key)
            ))
        })?;
        if self.entries > 0 {
            self.json.push(',');
        }
        let keys = &self.keys;
        let write_key = |out: &mut String| {
            keys.write(raw_key, out)
                .ok_or_else(|| FjallError::Corrupt(format!("undecodable key {}", hex::encode(raw_key))))
        };
        write_entry_json(&mut self.json, write_key, value, stored.versionstamp)?;
        self.entries += 1;
        self.last_key.clear();
        self.last_key.extend_from_slice(raw_key);
        Ok(())
    }

    /// Appends the entries `tail` holds, which come after this writer's.
    fn append(&mut self, tail: JsonListWriter) {
        if tail.entries == 0 {
            return;
        }
        if self.entries > 0 {
            self.json.push(',');
        }
        // Past the `[` every writer starts with.
        self.json.push_str(&tail.json[1..]);
        self.entries += tail.entries;
        self.last_key = tail.last_key;
    }

    fn finish(mut self, revision: Revision) -> ListedJson {
        self.json.push(']');
        ListedJson {
            json: self.json,
            entries: self.entries,
            revision,
        }
    }
}

/// Entries a list makes room for before it knows how many it will find.
const LIST_RESERVE: usize = 256;

/// Entries a list reads on the calling thread before it moves to the blocking pool. Reads of a
/// few entries come from the memtable or the block cache in microseconds, less than the two
/// thread hops of the pool (BENCHMARKS.md, issue 13); a long list does not hold a network
/// thread for long.
const INLINE_LIST_ENTRIES: usize = 256;

/// An encoded position strictly between `low` and `high` that halves the keys between them
/// when those are spread evenly (random identifiers); `None` when the two are too close.
fn key_between(low: &[u8], high: &[u8]) -> Option<Vec<u8>> {
    let common = low.iter().zip(high).take_while(|(a, b)| a == b).count();
    let word = |bytes: &[u8]| {
        let mut word = [0u8; 8];
        for (slot, byte) in word.iter_mut().zip(bytes.iter().skip(common)) {
            *slot = *byte;
        }
        u64::from_be_bytes(word)
    };
    let (from, to) = (word(low), word(high));
    let middle = from + to.checked_sub(from)? / 2;
    let mut key = high.get(..common)?.to_vec();
    key.extend_from_slice(&middle.to_be_bytes());
    (low < key.as_slice() && key.as_slice() < high).then_some(key)
}

/// Decodes a key of the `data` keyspace.
fn decode_key(raw_key: &[u8]) -> Result<Key, FjallError> {
    Key::decode(raw_key)
        .ok_or_else(|| FjallError::Corrupt(format!("undecodable key {}", hex::encode(raw_key))))
}

#[async_trait]
impl Store for FjallStore {
    async fn get(&self, key: &Key) -> StoreResult<Got> {
        // A point read is read here, like the first entries of a list (INLINE_LIST_ENTRIES).
        Ok(self.shared.get(key)?)
    }

    async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page> {
        let snapshot = self.shared.db.snapshot();
        let revision = self.shared.revision_in(&snapshot)?;
        let (mut page, cut) =
            self.shared
                .list_in(&snapshot, revision, prefix, &options, INLINE_LIST_ENTRIES)?;
        if !cut {
            return Ok(page);
        }
        // The rest from the same snapshot, so the page is one consistent read.
        let rest_options = ListOptions {
            limit: options.limit.map(|limit| limit - page.entries.len()),
            reverse: options.reverse,
            start_after: page.entries.last().map(|e| e.key.clone()),
        };
        let prefix = prefix.clone();
        let rest = self
            .blocking(move |shared| {
                let (rest, _) = shared.list_in(&snapshot, revision, &prefix, &rest_options, usize::MAX)?;
                Ok(rest)
            })
            .await?;
        page.entries.extend(rest.entries);
        page.more = rest.more;
        Ok(page)
    }

    async fn list_all_json(&self, prefix: &Key, reserve: usize) -> StoreResult<ListedJson> {
        let snapshot = self.shared.db.snapshot();
        let revision = self.shared.revision_in(&snapshot)?;
        let keys = Arc::new(PrefixedKeyJson::new(prefix));
        let mut out = JsonListWriter::new(Arc::clone(&keys), reserve);
        let (lo, hi) = Key::child_bounds(prefix);
        let all = (Bound::Included(lo), Bound::Excluded(hi.clone()));
        let cut = self
            .shared
            .list_json_in(&snapshot, all, INLINE_LIST_ENTRIES, &mut out)?;
        if !cut {
            return Ok(out.finish(revision));
        }
        // The rest from the same snapshot, so the list is one consistent read. Reading a long
        // list is a chase of pointers through memory that two threads do in about half the
        // time, so the rest is split in two halves read side by side.
        let after = out.last_key.clone();
        let last = snapshot
            .range(
                &self.shared.data,
                (Bound::Excluded(after.clone()), Bound::Excluded(hi.clone())),
            )
            .next_back()
            .map(|guard| guard.key())
            .transpose()
            .map_err(FjallError::from)?;
        let Some(middle) = last.and_then(|last| key_between(&after, &last)) else {
            return self
                .blocking(move |shared| {
                    let rest = (Bound::Excluded(after), Bound::Excluded(hi));
                    shared.list_json_in(&snapshot, rest, usize::MAX, &mut out)?;
                    Ok(out.finish(revision))
                })
                .await;
        };
        let first_half = (Bound::Excluded(after), Bound::Included(middle.clone()));
        let second_half = (Bound::Excluded(middle), Bound::Excluded(hi));
        let second_snapshot = snapshot.clone();
        let first = self.blocking(move |shared| {
            shared.list_json_in(&snapshot, first_half, usize::MAX, &mut out)?;
            Ok(out)
        });
        let second = self.blocking(move |shared| {
            let mut tail = JsonListWriter::new(keys, reserve / 2);
            shared.list_json_in(&second_snapshot, second_half, usize::MAX, &mut tail)?;
            Ok(tail)
        });
        let (mut out, tail) = tokio::try_join!(first, second)?;
        out.append(tail);
        Ok(out.finish(revision))
    }

    async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome> {
        let (checks, mutations) = prepare(write, &self.shared.options.limits)?;
        self.durably(move |shared| shared.commit(checks, mutations)).await
    }

    fn limits(&self) -> Limits {
        self.shared.options.limits
    }

    fn journal_syncs(&self) -> Option<u64> {
        Some(FjallStore::journal_syncs(self))
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

    async fn grant(&self, ttl: Duration) -> StoreResult<Lease> {
        let ttl_ms = u64::try_from(ttl.min(MAX_LEASE_TTL).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.durably(move |shared| shared.grant(ttl_ms)).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
        self.durably(move |shared| shared.keep_alive(lease.0)).await
    }

    async fn revoke(&self, lease: LeaseId) -> StoreResult<()> {
        self.durably(move |shared| shared.revoke(lease.0)).await
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
        self.durably(move |shared| shared.reap_expired(max)).await
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

    async fn put(store: &FjallStore, key: &Key, value: serde_json::Value) -> Versionstamp {
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
        assert_eq!((entry.value, entry.versionstamp), (json!(2).into(), last));
    }

    async fn leased(store: &FjallStore, key: &Key, value: serde_json::Value, lease: LeaseId) -> Versionstamp {
        match store
            .commit(AtomicWrite::new().set_with_lease(key.clone(), value, lease))
            .await
            .unwrap()
        {
            CommitOutcome::Committed(vs) => vs,
            CommitOutcome::CheckFailed => panic!("unconditional commit failed"),
        }
    }

    #[tokio::test]
    async fn leased_entries_read_as_absent_once_the_lease_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let key = Key::of(&["session", "s1"]);
        let keep = Key::of(&["session", "s2"]);
        let lease = store.grant(Duration::from_millis(150)).await.unwrap();
        leased(&store, &key, json!("tok"), lease.id).await;
        put(&store, &keep, json!(1)).await;
        assert_eq!(store.get(&key).await.unwrap().entry.unwrap().value, json!("tok"));
        let session = Key::of(&["session"]);
        assert_eq!(
            store
                .list(&session, ListOptions::default())
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
        // Ended, not yet reaped: absent to reads and checks alike.
        assert!(physically_present(&store, &key));
        assert_eq!(store.get(&key).await.unwrap().entry, None);
        let listed = store
            .list(&session, ListOptions::default())
            .await
            .unwrap()
            .entries;
        assert_eq!(keys(&listed), [keep]);
        let write = AtomicWrite::new()
            .check(key.clone(), None)
            .set(key.clone(), json!("new"));
        assert!(matches!(
            store.commit(write).await.unwrap(),
            CommitOutcome::Committed(_)
        ));
        // The new set has no lease: it leaves the ended lease's index.
        assert_eq!(store.get(&key).await.unwrap().entry.unwrap().value, json!("new"));
        assert!(lease_index(&store).is_empty());
    }

    /// The raw `lease_keys` index, as (lease id, key) pairs.
    fn lease_index(store: &FjallStore) -> Vec<(u64, Key)> {
        store
            .shared
            .lease_keys
            .iter()
            .map(|guard| {
                let raw = guard.key().unwrap();
                let (id, encoded) = raw.split_first_chunk::<8>().unwrap();
                (u64::from_be_bytes(*id), Key::decode(encoded).unwrap())
            })
            .collect()
    }

    fn physically_present(store: &FjallStore, key: &Key) -> bool {
        store.shared.data.get(key.encode()).unwrap().is_some()
    }

    #[tokio::test]
    async fn the_lease_index_follows_overwrites_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let key = Key::of(&["s", "1"]);
        let a = store.grant(Duration::from_secs(60)).await.unwrap().id;
        let b = store.grant(Duration::from_secs(60)).await.unwrap().id;
        for _ in 0..3 {
            leased(&store, &key, json!(1), a).await;
        }
        assert_eq!(lease_index(&store), [(a.0, key.clone())]);
        leased(&store, &key, json!(2), b).await;
        assert_eq!(lease_index(&store), [(b.0, key.clone())]);
        put(&store, &key, json!("no lease")).await;
        assert!(lease_index(&store).is_empty());
        leased(&store, &key, json!(3), a).await;
        store
            .commit(AtomicWrite::new().delete(key.clone()))
            .await
            .unwrap();
        assert!(lease_index(&store).is_empty());
        // Revoking leases whose keys went elsewhere deletes nothing.
        put(&store, &key, json!(4)).await;
        store.revoke(a).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().entry.unwrap().value, json!(4));
    }

    #[tokio::test]
    async fn reaping_deletes_the_keys_of_ended_leases_for_watchers_and_keeps_moved_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let (due, re_set, moved, plain) = (
            Key::of(&["x", "due"]),
            Key::of(&["x", "re-set"]),
            Key::of(&["x", "moved"]),
            Key::of(&["x", "plain"]),
        );
        let short = store.grant(Duration::from_millis(50)).await.unwrap().id;
        let long = store.grant(Duration::from_secs(60)).await.unwrap().id;
        for key in [&due, &re_set, &moved] {
            leased(&store, key, json!(1), short).await;
        }
        put(&store, &plain, json!(4)).await;
        put(&store, &re_set, json!("kept")).await;
        leased(&store, &moved, json!("later"), long).await;
        // Even an index entry left behind for a key (by a crash, say) must not delete it.
        store
            .shared
            .lease_keys
            .insert(lease_key_index(short.0, &re_set.encode()), [])
            .unwrap();
        let mut watch = watch_now(&store, &Key::of(&["x"])).await;
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(physically_present(&store, &due), "ended but not yet reaped");
        let reaped = store.reap_expired(REAP_MAX).await.unwrap();
        assert_eq!(
            reaped,
            Reaped {
                deleted: 1,
                done: true
            }
        );
        assert!(!physically_present(&store, &due));
        for key in [&re_set, &moved, &plain] {
            assert!(store.get(key).await.unwrap().entry.is_some(), "{key}");
        }
        assert_eq!(lease_index(&store), [(long.0, moved.clone())]);
        // The ended lease is gone for good; the other one lives on.
        assert!(
            store
                .shared
                .lease_states
                .get(short.0.to_be_bytes())
                .unwrap()
                .is_none()
        );
        assert!(matches!(store.keep_alive(short).await, Err(StoreError::LeaseNotFound(id)) if id == short));
        store.keep_alive(long).await.unwrap();
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
        let lease = store.grant(Duration::from_millis(200)).await.unwrap().id;
        for i in 0..5 {
            leased(&store, &Key::of(&["e", &i.to_string()]), json!(i), lease).await;
        }
        let mut watch = watch_now(&store, &Key::of(&["e"])).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
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
        assert!(lease_index(&store).is_empty());
        assert_eq!(store.shared.leases().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn leases_survive_reopen_and_their_ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::of(&["k"]);
        let (kept, revoked) = {
            let store = open(&dir);
            let kept = store.grant(Duration::from_secs(60)).await.unwrap().id;
            let revoked = store.grant(Duration::from_secs(60)).await.unwrap().id;
            leased(&store, &key, json!(1), kept).await;
            store.revoke(revoked).await.unwrap();
            (kept, revoked)
        };
        let store = open(&dir);
        assert_eq!(store.get(&key).await.unwrap().entry.unwrap().value, json!(1));
        assert!(store.keep_alive(kept).await.is_ok());
        assert!(store.keep_alive(revoked).await.is_err());
        let next = store.grant(Duration::from_secs(1)).await.unwrap().id;
        assert!(next > revoked && next > kept, "{next} after {kept}, {revoked}");
        store.revoke(kept).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().entry, None);
        assert!(!physically_present(&store, &key));
    }

    #[tokio::test]
    async fn entries_of_an_older_store_with_their_own_expiry_move_to_leases() {
        let dir = tempfile::tempdir().unwrap();
        let (soon, later) = (Key::of(&["old", "soon"]), Key::of(&["old", "later"]));
        {
            let store = open(&dir);
            // As an older version wrote them: format 1, expiry time inline, no marker.
            for (key, at) in [(&soon, now_ms() + 100), (&later, now_ms() + 3_600_000)] {
                let mut raw = vec![FORMAT_LEGACY_EXPIRING];
                raw.extend_from_slice(&Versionstamp::from_counter(1).0);
                raw.extend_from_slice(&at.to_be_bytes());
                raw.extend_from_slice(b"\"v\"");
                store.shared.data.insert(key.encode(), raw).unwrap();
            }
            store.shared.meta.remove(LEASES_READY_KEY).unwrap();
        }
        let store = open(&dir);
        assert_eq!(lease_index(&store).len(), 2);
        assert_eq!(store.shared.leases().unwrap().len(), 2);
        assert!(store.get(&later).await.unwrap().entry.is_some());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(store.get(&soon).await.unwrap().entry, None);
        assert_eq!(store.reap_expired(REAP_MAX).await.unwrap().deleted, 1);
        assert!(!physically_present(&store, &soon) && physically_present(&store, &later));
    }

    #[tokio::test]
    async fn a_call_still_queued_at_its_deadline_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::of(&["late"]);
        {
            let options = FjallOptions {
                fsync: false,
                call_timeout: Some(Duration::ZERO),
                ..FjallOptions::default()
            };
            let store = FjallStore::open_with(dir.path(), options).unwrap();
            let write = AtomicWrite::new().set(key.clone(), json!(1));
            assert!(matches!(store.commit(write).await, Err(StoreError::Timeout(_))));
            // Reads run on the calling thread: they never queue, so the deadline is not theirs.
            assert_eq!(store.get(&key).await.unwrap().entry, None);
            assert!(store.commit(AtomicWrite::new()).await.unwrap_err().is_transient());
        }
        assert_eq!(open(&dir).get(&key).await.unwrap().entry, None);
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
        // Far past the entries a list reads inline; its speed is in benches/requests.rs.
        let entries = store.list(&prefix, ListOptions::default()).await.unwrap().entries;
        assert_eq!(entries.len(), 10_000);
        assert!(serde_json::to_vec(&entries[0].value).unwrap().len() > 2000);
        assert!(entries.windows(2).all(|w| w[0].key.encode() < w[1].key.encode()));
        assert_eq!(
            entries[9_999].key.last_str(),
            Some("00009999-0000-4000-8000-000000000000")
        );
        // The same list as one JSON text, its rest read in two halves side by side.
        let listed = store.list_all_json(&prefix, 0).await.unwrap();
        assert_eq!(listed.entries, 10_000);
        assert_eq!(listed.json, Entry::json_array(&entries));
    }

    #[test]
    fn a_key_between_two_splits_their_range() {
        let low = Key::of(&["ami", "worker", "00000255"]).encode();
        let high = Key::of(&["ami", "worker", "99999999"]).encode();
        let middle = key_between(&low, &high).unwrap();
        assert!(low < middle && middle < high);
        let shared = Key::of(&["ami", "worker"]).encode().len() + 1;
        assert_eq!(&middle[..shared], &low[..shared]);
        // Halfway between '0' and '9' in the first byte that differs.
        assert_eq!(middle[shared], b'0' + (b'9' - b'0') / 2);
        // Neighbours have nothing between them that this finds; a key and its extension neither.
        assert_eq!(key_between(b"ab", b"ab"), None);
        assert_eq!(key_between(b"ab", b"ab\0"), None);
        assert_eq!(key_between(b"b", b"a"), None);
        assert!(key_between(b"a", b"a\xff").is_some_and(|m| m.as_slice() > b"a".as_slice()));
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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
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
