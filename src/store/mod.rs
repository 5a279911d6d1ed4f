//! The key-value store under every node: worker records, leader leases, sessions and
//! the scripts' own data live here.
//!
//! [`Store`] is the only interface the layers above use. It is shaped after what both the
//! embedded backend ([`fjall`](crate::store::fjall)) and etcd can do natively: point reads,
//! ordered prefix scans, one atomic commit of *checks + mutations*, and a watch of a prefix.
//!
//! Hard limits: a key is at most [`MAX_KEY_BYTES`] encoded bytes and a value at most
//! [`MAX_VALUE_BYTES`] bytes of JSON (W-T-2, S-20).

#[cfg(feature = "etcd")]
pub mod etcd;
mod expiry;
pub mod fjall;
mod json;
mod key;
mod metered;
mod prepared;

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
pub use expiry::{ExpiryLease, ExpiryLeases, bucket_end};
use futures_util::Stream;
pub use json::RawJson;
pub use key::{Key, KeyPart, PrefixedKeyJson};
pub use metered::MeteredStore;

/// Largest encoded key the store accepts.
pub const MAX_KEY_BYTES: usize = 2048;
/// Largest serialised value the store accepts (64 KiB, W-T-2).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The commit position of a write: an 8-byte commit counter and a 2-byte index, shown as 20
/// lowercase hex digits so that string order is commit order (W-T-1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Versionstamp(pub [u8; 10]);

impl Versionstamp {
    /// The versionstamp of commit number `counter` (index 0).
    pub fn from_counter(counter: u64) -> Self {
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&counter.to_be_bytes());
        Versionstamp(bytes)
    }

    /// The commit counter part.
    pub fn counter(&self) -> u64 {
        let mut c = [0u8; 8];
        c.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(c)
    }

    /// Parses the 20-hex-digit form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 20 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 10];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Versionstamp(bytes))
    }
}

impl Versionstamp {
    /// Appends the 20-hex-digit form to `out` (what `Display` writes, without its machinery:
    /// lists write one per entry).
    pub fn write_hex(&self, out: &mut String) {
        let mut digits = [0u8; 20];
        out.push_str(self.hex(&mut digits));
    }

    /// The 20 hex digits, written into `digits`.
    fn hex<'a>(&self, digits: &'a mut [u8; 20]) -> &'a str {
        // Ten bytes always fill twenty digits, and hex digits are ASCII.
        let _ = hex::encode_to_slice(self.0, digits);
        std::str::from_utf8(digits).unwrap_or_default()
    }
}

impl fmt::Display for Versionstamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex(&mut [0u8; 20]))
    }
}

impl fmt::Debug for Versionstamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Versionstamp({self})")
    }
}

impl serde::Serialize for Versionstamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A store revision: the number of the last commit that a read reflects or a change made.
/// Revisions rise by one per commit; a [`Versionstamp`] is the same number in 10-byte form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Revision(pub u64);

impl Revision {
    /// The versionstamp of the commit with this revision.
    pub fn versionstamp(self) -> Versionstamp {
        Versionstamp::from_counter(self.0)
    }
}

impl From<Versionstamp> for Revision {
    fn from(stamp: Versionstamp) -> Self {
        Revision(stamp.counter())
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One stored entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Where it is stored.
    pub key: Key,
    /// The stored JSON, as the text it was written as.
    pub value: RawJson,
    /// The commit that wrote it.
    pub versionstamp: Versionstamp,
}

impl Entry {
    /// Appends the entry as `{"key":…,"value":…,"versionstamp":"…"}` (a `WorkerKVEntry`, and
    /// Deno KV's entry shape), the value as its stored text.
    pub fn write_json(&self, out: &mut String) {
        let written = write_entry_json(
            out,
            |out| {
                self.key.write_json(out);
                Ok::<(), std::convert::Infallible>(())
            },
            self.value.as_str(),
            self.versionstamp,
        );
        let Ok(()) = written;
    }

    /// The entry as JSON text (see [`Entry::write_json`]).
    pub fn to_json_text(&self) -> String {
        let mut out = String::with_capacity(self.value.len() + ENTRY_JSON_OVERHEAD);
        self.write_json(&mut out);
        out
    }

    /// Entries as a JSON array of [`Entry::write_json`] objects, assembled in one buffer.
    pub fn json_array(entries: &[Entry]) -> String {
        let bytes: usize = entries.iter().map(|e| e.value.len() + ENTRY_JSON_OVERHEAD).sum();
        let mut out = String::with_capacity(bytes + 2);
        out.push('[');
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            entry.write_json(&mut out);
        }
        out.push(']');
        out
    }
}

/// Appends an entry as `{"key":…,"value":…,"versionstamp":"…"}`, its key written by
/// `write_key` (which may find it cannot) and its value as the text given.
pub(crate) fn write_entry_json<E>(
    out: &mut String,
    write_key: impl FnOnce(&mut String) -> Result<(), E>,
    value: &str,
    versionstamp: Versionstamp,
) -> Result<(), E> {
    out.push_str(r#"{"key":"#);
    write_key(out)?;
    out.push_str(r#","value":"#);
    out.push_str(value);
    out.push_str(r#","versionstamp":""#);
    versionstamp.write_hex(out);
    out.push_str(r#""}"#);
    Ok(())
}

/// Every entry under a prefix as one JSON array, assembled from the stored text
/// ([`Store::list_all_json`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ListedJson {
    /// A JSON array of [`Entry::write_json`] objects, in key order.
    pub json: String,
    /// How many entries the array holds.
    pub entries: usize,
    /// The store revision the list reflects.
    pub revision: Revision,
}

/// Room for an entry's key, versionstamp and field names beside its value (about 110 bytes for
/// a worker record), with some to spare for an answer frame around a list.
const ENTRY_JSON_OVERHEAD: usize = 128;

/// What a point read saw, and at which revision.
#[derive(Clone, Debug, PartialEq)]
pub struct Got {
    /// The live entry, `None` if absent or expired.
    pub entry: Option<Entry>,
    /// The store revision the read reflects.
    pub revision: Revision,
}

/// One page of a prefix scan.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Page {
    /// Entries in scan order.
    pub entries: Vec<Entry>,
    /// The store revision the page reflects. A consumer that lists and then watches from this
    /// revision misses no change (a change already in a later page may be seen again).
    pub revision: Revision,
    /// More entries remain after the last one (ask again with `start_after`).
    pub more: bool,
}

/// A precondition of an atomic commit.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// The key currently holds exactly this versionstamp; `None` means "the key is absent".
    Versionstamp {
        /// The key checked.
        key: Key,
        /// Its versionstamp at commit time; `None`: absent.
        expected: Option<Versionstamp>,
    },
}

/// A change made by an atomic commit.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Store `value` under `key`; with a `lease`, the entry is deleted when the lease ends.
    Set {
        /// Where to store it.
        key: Key,
        /// What to store.
        value: RawJson,
        /// The lease the entry lives as long as, if any.
        lease: Option<LeaseId>,
    },
    /// Remove `key` (a no-op when absent).
    Delete {
        /// The key removed.
        key: Key,
    },
}

/// Checks and mutations applied all-or-nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AtomicWrite {
    /// Preconditions, all of which must hold.
    pub checks: Vec<Check>,
    /// Changes, applied in order (the last one of a key wins).
    pub mutations: Vec<Mutation>,
}

impl AtomicWrite {
    /// A write with no checks and no changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `key` to hold `expected` (`None`: absent) at commit time.
    pub fn check(mut self, key: Key, expected: Option<Versionstamp>) -> Self {
        self.checks.push(Check::Versionstamp { key, expected });
        self
    }

    /// Stores `value` under `key`.
    pub fn set(mut self, key: Key, value: impl Into<RawJson>) -> Self {
        self.mutations.push(Mutation::Set {
            key,
            value: value.into(),
            lease: None,
        });
        self
    }

    /// Stores `value` under `key` attached to `lease`: the entry is deleted (and watchers see
    /// the delete) when the lease expires or is revoked. The commit fails with
    /// [`StoreError::LeaseNotFound`] if the lease has already ended.
    pub fn set_with_lease(mut self, key: Key, value: impl Into<RawJson>, lease: LeaseId) -> Self {
        self.mutations.push(Mutation::Set {
            key,
            value: value.into(),
            lease: Some(lease),
        });
        self
    }

    /// Removes `key` (a no-op when absent).
    pub fn delete(mut self, key: Key) -> Self {
        self.mutations.push(Mutation::Delete { key });
        self
    }

    /// Checks plus mutations: what a backend counts against [`Limits::max_operations`].
    pub fn operations(&self) -> usize {
        self.checks.len() + self.mutations.len()
    }
}

/// What an atomic commit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Everything was written; every mutated key now has this versionstamp.
    Committed(Versionstamp),
    /// A check failed; nothing was written.
    CheckFailed,
}

/// Options of a prefix scan.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// At most this many entries (`None`: all).
    pub limit: Option<usize>,
    /// Descending key order instead of ascending.
    pub reverse: bool,
    /// Resume a scan: only keys after this one in scan order (before it when `reverse`). A page
    /// then costs time proportional to the entries it returns, wherever it starts.
    pub start_after: Option<Key>,
}

/// The name of a lease: keys attached to it live as long as it does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LeaseId(pub u64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A granted lease.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Lease {
    /// Its name, for [`Store::keep_alive`], [`Store::revoke`] and [`AtomicWrite::set_with_lease`].
    pub id: LeaseId,
    /// How long it lives unless kept alive: the TTL asked for, or more where a backend rounds up
    /// (etcd counts whole seconds).
    pub ttl: Duration,
}

/// Longest lease a backend grants (etcd's own maximum is about 285 years).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// One change seen by a watch; its revision is its versionstamp's.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// `entry.key` was set.
    Put(Entry),
    /// `key` was deleted by the commit with this versionstamp.
    Delete {
        /// The key removed.
        key: Key,
        /// The commit that removed it.
        versionstamp: Versionstamp,
    },
}

impl WatchEvent {
    /// The key that changed.
    pub fn key(&self) -> &Key {
        match self {
            WatchEvent::Put(entry) => &entry.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }

    /// The revision of the commit that made the change.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put(entry) => entry.versionstamp.into(),
            WatchEvent::Delete { versionstamp, .. } => (*versionstamp).into(),
        }
    }
}

/// A prefix watch: changes in commit order, then (never silently) an error. After an error the
/// stream ends; the consumer lists again and watches from the list's revision.
pub type WatchStream = Pin<Box<dyn Stream<Item = StoreResult<WatchEvent>> + Send>>;

/// What one [`Store::reap_expired`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaped {
    /// Expired entries deleted.
    pub deleted: usize,
    /// Nothing more was due when it ran (otherwise call again).
    pub done: bool,
}

/// Entries one reaper commit deletes at most, so other commits wait briefly behind it.
pub const REAP_BATCH: usize = 1000;

/// Size limits of one request, part of the contract: a write over them fails with
/// [`StoreError::TooLarge`] on every backend, so code that fits on fjall fits on etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Checks plus mutations in one atomic commit (etcd's `--max-txn-ops`, 128 by default).
    pub max_operations: usize,
    /// Encoded keys plus serialised values of one commit (etcd's `--max-request-bytes`,
    /// 1.5 MiB by default).
    pub max_request_bytes: usize,
}

impl Limits {
    /// etcd's defaults, which every backend enforces unless configured otherwise.
    pub const DEFAULT: Limits = Limits {
        max_operations: 128,
        max_request_bytes: 1536 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Which limit a [`StoreError::TooLarge`] request went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`MAX_KEY_BYTES`] of one encoded key.
    KeyBytes,
    /// [`MAX_VALUE_BYTES`] of one serialised value.
    ValueBytes,
    /// [`Limits::max_operations`].
    Operations,
    /// [`Limits::max_request_bytes`].
    RequestBytes,
    /// Leases alive at once on a backend that keeps them in memory.
    Leases,
}

/// Errors of the store layer. Every backend reports the same kinds, so callers can decide
/// (retry, re-list, refuse) without knowing which store is underneath.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A write lost to a concurrent writer in a way its caller required not to happen (a fenced
    /// write whose epoch moved on). Plain commits report a failed check as
    /// [`CommitOutcome::CheckFailed`] instead.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store cannot be reached or cannot write now (a full disk, a lost cluster quorum, a
    /// closed store); nothing was written by the failing call.
    #[error("storage backend failed: {0}")]
    Unavailable(String),
    /// The call did not finish within its deadline; a write may or may not have been applied.
    #[error("store call timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A watch asked for changes the store no longer keeps: list again, then watch from the
    /// list's revision.
    #[error("revision {requested} is compacted (history starts after {oldest})")]
    Compacted {
        /// The revision asked to watch after.
        requested: Revision,
        /// The revision before the oldest change still kept.
        oldest: Revision,
    },
    /// The request is over a limit of the contract; nothing was written.
    #[error("{}", too_large_message(*limit, *size, *max))]
    TooLarge {
        /// Which limit.
        limit: Limit,
        /// How much the request had.
        size: usize,
        /// How much the limit allows.
        max: usize,
    },
    /// The lease a write or keep-alive names has expired or was revoked (or never existed).
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    /// Stored bytes this backend never writes.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Any other failure of the backend.
    #[error("{backend} failed: {message}")]
    Backend {
        /// Which backend (`fjall`, `etcd`).
        backend: &'static str,
        /// What it said.
        message: String,
    },
}

fn too_large_message(limit: Limit, size: usize, max: usize) -> String {
    match limit {
        Limit::KeyBytes => format!("key exceeds {max} bytes"),
        Limit::ValueBytes => format!("value exceeds {} KiB", max / 1024),
        Limit::Operations => format!("{size} operations in one commit (at most {max})"),
        Limit::RequestBytes => format!("a commit of {size} bytes (at most {max})"),
        Limit::Leases => format!("{size} leases alive (at most {max})"),
    }
}

impl StoreError {
    /// A key over [`MAX_KEY_BYTES`].
    pub fn key_too_large(size: usize) -> Self {
        StoreError::TooLarge {
            limit: Limit::KeyBytes,
            size,
            max: MAX_KEY_BYTES,
        }
    }

    /// A value over [`MAX_VALUE_BYTES`].
    pub fn value_too_large(size: usize) -> Self {
        StoreError::TooLarge {
            limit: Limit::ValueBytes,
            size,
            max: MAX_VALUE_BYTES,
        }
    }

    /// Whether the caller may retry the same call later (the store, not the request, failed).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Timeout(_))
    }
}

/// The result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The store interface. Implementations: [`fjall::FjallStore`] (embedded) and etcd (cluster).
/// Every backend passes the same contract suite (`tests/store_contract/`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The entry under `key`, if present and not expired, with the revision of the read.
    async fn get(&self, key: &Key) -> StoreResult<Got>;

    /// One page of the entries whose key starts with `prefix` (all parts equal, then more
    /// parts), in key order, with the revision of the read and whether more remain.
    async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page>;

    /// Every entry under `prefix`, as [`list_all`] reads them, written as one JSON array
    /// (`[{"key":…,"value":…,"versionstamp":…},…]`) without parsing any value: the form an
    /// answer that lists a whole prefix sends. Backends may write it straight from their
    /// stored bytes; this default assembles it from the entries. `reserve` is the room to
    /// make for the text up front (e.g. the size of the last such list): growing a
    /// megabytes-long text step by step costs more than the scan.
    async fn list_all_json(&self, prefix: &Key, reserve: usize) -> StoreResult<ListedJson> {
        let _ = reserve;
        let page = list_all(self, prefix).await?;
        Ok(ListedJson {
            json: Entry::json_array(&page.entries),
            entries: page.entries.len(),
            revision: page.revision,
        })
    }

    /// Applies `write` atomically; acknowledged only once durable per the store's settings.
    /// A write over [`Store::limits`] fails with [`StoreError::TooLarge`] and writes nothing.
    async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome>;

    /// Changes under `prefix` committed after revision `after`, in commit order. With `after`
    /// older than the history the store keeps, the stream's first item is
    /// [`StoreError::Compacted`].
    async fn watch(&self, prefix: &Key, after: Revision) -> StoreResult<WatchStream>;

    /// The size limits this store enforces on one commit.
    fn limits(&self) -> Limits {
        Limits::DEFAULT
    }

    /// Grants a lease that lives `ttl` (at most [`MAX_LEASE_TTL`]) unless kept alive.
    async fn grant(&self, ttl: Duration) -> StoreResult<Lease>;

    /// Restarts the lease's TTL from now and returns it; [`StoreError::LeaseNotFound`] once it
    /// has expired or was revoked.
    async fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration>;

    /// Ends the lease now and deletes every key attached to it (watchers see the deletes).
    /// Revoking a lease that has already ended does nothing.
    async fn revoke(&self, lease: LeaseId) -> StoreResult<()>;

    /// Syncs of its own journal to disk since the store was opened, for a backend that keeps
    /// one (the embedded store); `None` for one that does not (etcd syncs on its members).
    fn journal_syncs(&self) -> Option<u64> {
        None
    }

    /// Flushes everything to stable storage (graceful shutdown).
    async fn flush(&self) -> StoreResult<()>;

    /// Deletes up to `max` keys of leases that have expired, in one commit whose deletes
    /// watchers see, and forgets the leases whose keys are all gone. Backends that end leases
    /// themselves (etcd) keep this default, which does nothing.
    async fn reap_expired(&self, max: usize) -> StoreResult<Reaped> {
        let _ = max;
        Ok(Reaped {
            deleted: 0,
            done: true,
        })
    }
}

/// Every entry under `prefix`, page by page, and the revision of the first page: watching from
/// it misses nothing (changes already seen in later pages may come again, in order).
pub async fn list_all<S: Store + ?Sized>(store: &S, prefix: &Key) -> StoreResult<Page> {
    let mut all = store.list(prefix, ListOptions::default()).await?;
    while all.more {
        let options = ListOptions {
            start_after: all.entries.last().map(|e| e.key.clone()),
            ..ListOptions::default()
        };
        let page = store.list(prefix, options).await?;
        all.entries.extend(page.entries);
        all.more = page.more;
    }
    Ok(all)
}

/// Deletes every due entry of `store`, in commits of at most [`REAP_BATCH`], until none is
/// left or `stop` is cancelled. A failure is logged; the next round retries.
pub async fn reap_all_expired(store: &dyn Store, stop: &tokio_util::sync::CancellationToken) {
    let mut deleted = 0;
    while !stop.is_cancelled() {
        match store.reap_expired(REAP_BATCH).await {
            Ok(reaped) => {
                deleted += reaped.deleted;
                if reaped.done {
                    break;
                }
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "deleting expired entries failed; retrying next round");
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::debug!(deleted, "expired entries deleted");
    }
}
