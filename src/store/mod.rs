//! The key-value store under every node: worker records, leader leases, sessions and
//! the scripts' own data live here.
//!
//! [`Store`] is the only interface the layers above use. It is shaped after what both the
//! embedded backend ([`fjall`](crate::store::fjall)) and etcd can do natively: point reads,
//! ordered prefix scans, one atomic commit of *checks + mutations*, and a watch of a prefix.
//!
//! Hard limits: a key is at most [`MAX_KEY_BYTES`] encoded bytes and a value at most
//! [`MAX_VALUE_BYTES`] bytes of JSON (W-T-2, S-20).

pub mod fjall;
mod key;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures_util::Stream;
use serde_json::Value;

pub use key::{Key, KeyPart};

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

impl fmt::Display for Versionstamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
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

/// One stored entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: Key,
    pub value: Value,
    pub versionstamp: Versionstamp,
}

/// A precondition of an atomic commit.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// The key currently holds exactly this versionstamp; `None` means "the key is absent".
    Versionstamp {
        key: Key,
        expected: Option<Versionstamp>,
    },
}

/// A change made by an atomic commit.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Store `value` under `key`; with `expire_in_ms`, the entry reads as absent after that time.
    Set {
        key: Key,
        value: Value,
        expire_in_ms: Option<u64>,
    },
    /// Remove `key` (a no-op when absent).
    Delete { key: Key },
}

/// Checks and mutations applied all-or-nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AtomicWrite {
    pub checks: Vec<Check>,
    pub mutations: Vec<Mutation>,
}

impl AtomicWrite {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `key` to hold `expected` (`None`: absent) at commit time.
    pub fn check(mut self, key: Key, expected: Option<Versionstamp>) -> Self {
        self.checks.push(Check::Versionstamp { key, expected });
        self
    }

    pub fn set(mut self, key: Key, value: Value) -> Self {
        self.mutations.push(Mutation::Set {
            key,
            value,
            expire_in_ms: None,
        });
        self
    }

    pub fn set_expiring(mut self, key: Key, value: Value, expire_in_ms: u64) -> Self {
        self.mutations.push(Mutation::Set {
            key,
            value,
            expire_in_ms: Some(expire_in_ms),
        });
        self
    }

    pub fn delete(mut self, key: Key) -> Self {
        self.mutations.push(Mutation::Delete { key });
        self
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

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// `entry.key` was set.
    Put(Entry),
    /// `key` was deleted by the commit with this versionstamp.
    Delete { key: Key, versionstamp: Versionstamp },
    /// The watcher fell behind and changes were lost: re-read the prefix (list) to resync.
    Resync,
}

/// A prefix watch: changes in commit order, starting after the watch was created.
pub type WatchStream = Pin<Box<dyn Stream<Item = WatchEvent> + Send>>;

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

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key exceeds {MAX_KEY_BYTES} bytes")]
    KeyTooLarge,
    #[error("value exceeds {} KiB", MAX_VALUE_BYTES / 1024)]
    ValueTooLarge,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The store interface. Implementations: [`fjall::FjallStore`] (embedded) and etcd (cluster).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The entry under `key`, if present and not expired.
    async fn get(&self, key: &Key) -> StoreResult<Option<Entry>>;

    /// Entries whose key starts with `prefix` (all parts equal, then more parts), in key order.
    async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Vec<Entry>>;

    /// Applies `write` atomically; acknowledged only once durable per the store's settings.
    async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome>;

    /// Changes under `prefix` committed after this call, in commit order.
    fn watch(&self, prefix: &Key) -> WatchStream;

    /// Flushes everything to stable storage (graceful shutdown).
    async fn flush(&self) -> StoreResult<()>;

    /// Deletes up to `max` entries whose expiry has passed, in one commit whose deletes
    /// watchers see; a key re-set since it was due is kept. Backends that expire entries
    /// themselves (etcd leases) keep this default, which does nothing.
    async fn reap_expired(&self, max: usize) -> StoreResult<Reaped> {
        let _ = max;
        Ok(Reaped {
            deleted: 0,
            done: true,
        })
    }
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
