//! Per-worker quotas of the script KVs (`Stels.net`, `Stels.local`): how many bytes of keys and
//! values each worker holds in each store, kept exact by the same atomic commit that writes.
//!
//! Attribution: an entry's bytes (its encoded key as stored plus its JSON value) count against
//! the worker that wrote it last. Beside every user entry `["kv", ...k]` the store keeps an
//! owner record `["ko", ...k]` = `{sid, bytes, expiresAt}`, and per worker a usage record
//! `["kq", sid]` = `{bytes}`. A commit reads the owner records of the keys it changes and the
//! usage records of the workers involved, then writes the entries, the new owner records and
//! the new usage totals at once, checking that none of those records moved since they were
//! read; if one did, it reads again and retries (at most [`MAX_ATTEMPTS`] times). So
//! overwriting another worker's key moves its bytes to the writer, deleting frees them, and the
//! totals never drift from the entries.
//!
//! A write that would raise its worker's total above the quota fails with `QuotaExceeded` and
//! writes nothing; writes that lower or keep the total always pass (also over the quota, after
//! the quota was lowered).
//!
//! Expiring entries (`expireIn`) also get an index record `["kx", expiresAt, h]` (`h` a hash
//! of the key). [`sweep_expired`], run every `--reaper-interval` on each store, frees the bytes
//! of entries whose time has passed, whether or not the store has physically deleted them yet;
//! so an expired entry holds quota for at most one reaper interval (plus [`EXPIRY_GRACE`]).
//!
//! A worker's usage record disappears when its total reaches zero. Deleting a worker does not
//! delete its KV data (entries in `Stels.net` are shared with other workers): its bytes stay
//! attributed to its sid until the entries are deleted, overwritten or expire.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::coordinator::Fence;
use crate::store::{
    AtomicWrite, CommitOutcome, ExpiryLease, ExpiryLeases, Key, KeyPart, ListOptions, RawJson, Store,
    StoreError, StoreResult, Versionstamp,
};
pub use crate::workers::kv_usage::usage_bytes;
use crate::workers::kv_usage::usage_key;

/// First key part of owner records.
const OWNER_PREFIX: &str = "ko";
/// First key part of the expiry index.
const EXPIRY_PREFIX: &str = "kx";
/// Commits tried before giving up on records that keep moving.
pub const MAX_ATTEMPTS: u32 = 16;
/// How long after its deadline an entry is freed: the store computes its own deadline a little
/// later than ours, and it must read as absent before its bytes are released.
pub const EXPIRY_GRACE: Duration = Duration::from_millis(200);
/// Expired index records handled per store call of a sweep.
const SWEEP_PAGE: usize = 500;

/// Why a quota-checked commit failed.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The write would take the worker over its quota; nothing was written.
    #[error(
        "quota exceeded: this worker holds {usage} of its {limit} bytes here and the write needs {more} more"
    )]
    Exceeded {
        /// Bytes the worker holds in this store now.
        usage: u64,
        /// Bytes the write would add.
        more: u64,
        /// The quota.
        limit: u64,
    },
    /// A leader-mode run wrote after another node's term began; nothing was written (S-22).
    #[error(
        "this run's leader term (epoch {epoch}) is over: another node leads now, and the write was refused"
    )]
    StaleLeader {
        /// The run's epoch.
        epoch: u64,
    },
    #[error("the KV records kept changing under concurrent writes ({MAX_ATTEMPTS} attempts); try again")]
    /// Other writers kept changing the same records.
    Contended,
    #[error(transparent)]
    /// The store failed.
    Store(#[from] StoreError),
}

/// One change a script asked for, on a stored key (`["kv", ...k]`).
#[derive(Clone, Debug)]
pub enum UserMutation {
    /// Store `value` under `key`.
    Set {
        /// The stored key (`["kv", ...k]`).
        key: Key,
        /// The script's value, as the JSON text it sent.
        value: RawJson,
        /// What the entry counts: encoded key plus JSON value.
        bytes: u64,
        /// `expireIn`: the entry vanishes after this long.
        expire_in_ms: Option<u64>,
    },
    /// Remove `key`.
    Delete {
        /// The stored key (`["kv", ...k]`).
        key: Key,
    },
}

impl UserMutation {
    fn key(&self) -> &Key {
        match self {
            UserMutation::Set { key, .. } | UserMutation::Delete { key } => key,
        }
    }
}

/// Who holds an entry's bytes.
#[derive(Clone, Debug, PartialEq)]
struct Owner {
    sid: String,
    bytes: u64,
    /// Deadline of an expiring entry (ms since epoch).
    expires_at: Option<u64>,
}

impl Owner {
    fn from_json(value: &Value) -> Option<Owner> {
        Some(Owner {
            sid: value.get("sid")?.as_str()?.to_string(),
            bytes: value.get("bytes")?.as_u64()?,
            expires_at: value.get("expiresAt").and_then(Value::as_u64),
        })
    }

    fn to_json(&self) -> Value {
        json!({ "sid": self.sid, "bytes": self.bytes, "expiresAt": self.expires_at })
    }
}

/// `["ko", ...k]` for the stored key `["kv", ...k]`.
fn owner_key(stored: &Key) -> Key {
    let mut parts = Vec::with_capacity(stored.0.len());
    parts.push(KeyPart::Str(OWNER_PREFIX.into()));
    parts.extend(stored.0.iter().skip(1).cloned());
    Key(parts)
}

/// `["kx", expiresAt, h]`, where `h` names the stored key in a fixed, short form (a full key
/// after two more parts could pass the key size limit).
fn expiry_key(expires_at: u64, stored: &Key) -> Key {
    use sha2::Digest;
    let hash = hex::encode(
        sha2::Sha256::digest(stored.encode())
            .get(..12)
            .unwrap_or_default(),
    );
    Key(vec![
        KeyPart::Str(EXPIRY_PREFIX.into()),
        KeyPart::Num(expires_at as f64),
        KeyPart::Str(hash),
    ])
}

/// A record as read: its value and versionstamp, or absent.
type Read<T> = Option<(T, Versionstamp)>;

async fn read_owner(store: &dyn Store, stored: &Key) -> StoreResult<Read<Owner>> {
    let key = owner_key(stored);
    match store.get(&key).await?.entry {
        None => Ok(None),
        Some(entry) => match entry.value.parse().ok().as_ref().and_then(Owner::from_json) {
            Some(owner) => Ok(Some((owner, entry.versionstamp))),
            None => Err(StoreError::Corrupt(format!("owner record {key}"))),
        },
    }
}

async fn read_usage(store: &dyn Store, sid: &str) -> StoreResult<Read<u64>> {
    Ok(store.get(&usage_key(sid)).await?.entry.map(|entry| {
        let bytes = entry
            .value
            .parse()
            .ok()
            .and_then(|v| v.get("bytes")?.as_u64())
            .unwrap_or(0);
        (bytes, entry.versionstamp)
    }))
}

/// Writes `mutations` for worker `sid` under the script's `checks`, keeping every worker's
/// usage exact and `sid` within `limit`. `CheckFailed` only when a script check failed.
pub async fn commit_with_quota(
    store: &dyn Store,
    expiry: &ExpiryLeases,
    fence: Option<&Fence>,
    sid: &str,
    limit: u64,
    checks: &[(Key, Option<Versionstamp>)],
    mutations: &[UserMutation],
) -> Result<CommitOutcome, QuotaError> {
    let mut leases = Vec::with_capacity(mutations.len());
    for mutation in mutations {
        leases.push(match mutation {
            UserMutation::Set {
                expire_in_ms: Some(ms),
                ..
            } => Some(expiry.lease_for(*ms).await?),
            _ => None,
        });
    }
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            // Other writers moved the same records: give them a moment, longer each time.
            let millis = 1u64 << attempt.min(5);
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        let write = match plan(store, sid, limit, checks, mutations, &leases).await? {
            Some(write) => match fence {
                Some(fence) => {
                    let (key, versionstamp) = fence.check();
                    write.check(key, Some(versionstamp))
                }
                None => write,
            },
            None => return Ok(CommitOutcome::CheckFailed),
        };
        match store.commit(write).await? {
            CommitOutcome::Committed(stamp) => return Ok(CommitOutcome::Committed(stamp)),
            CommitOutcome::CheckFailed => {
                if let Some(fence) = fence
                    && fence.is_stale(store).await?
                {
                    return Err(QuotaError::StaleLeader { epoch: fence.epoch });
                }
                if !script_checks_hold(store, checks).await? {
                    return Ok(CommitOutcome::CheckFailed);
                }
            }
        }
    }
    Err(QuotaError::Contended)
}

async fn script_checks_hold(store: &dyn Store, checks: &[(Key, Option<Versionstamp>)]) -> StoreResult<bool> {
    for (key, expected) in checks {
        if store.get(key).await?.entry.map(|e| e.versionstamp) != *expected {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The commit that applies `mutations` (each with its expiry lease, if any) with their
/// bookkeeping, from the records as they are now; `None` when a script check already fails.
async fn plan(
    store: &dyn Store,
    sid: &str,
    limit: u64,
    checks: &[(Key, Option<Versionstamp>)],
    mutations: &[UserMutation],
    leases: &[Option<ExpiryLease>],
) -> Result<Option<AtomicWrite>, QuotaError> {
    if !script_checks_hold(store, checks).await? {
        return Ok(None);
    }
    let mut write = AtomicWrite::new();
    for (key, expected) in checks {
        write = write.check(key.clone(), *expected);
    }
    // The last mutation of a key decides its final state; bookkeeping follows that.
    let mut last: BTreeMap<Vec<u8>, (&UserMutation, Option<ExpiryLease>)> = BTreeMap::new();
    for (mutation, lease) in mutations.iter().zip(leases) {
        last.insert(mutation.key().encode(), (mutation, *lease));
        write = match (mutation, lease) {
            (UserMutation::Set { key, value, .. }, Some(lease)) => {
                write.set_with_lease(key.clone(), value.clone(), lease.id)
            }
            (UserMutation::Set { key, value, .. }, None) => write.set(key.clone(), value.clone()),
            (UserMutation::Delete { key }, _) => write.delete(key.clone()),
        };
    }
    let mut delta: HashMap<String, i128> = HashMap::new();
    for (mutation, lease) in last.values() {
        let stored = mutation.key();
        let owner_at = owner_key(stored);
        let previous = read_owner(store, stored).await?;
        write = write.check(owner_at.clone(), previous.as_ref().map(|(_, stamp)| *stamp));
        if let Some((old, _)) = &previous {
            *delta.entry(old.sid.clone()).or_default() -= i128::from(old.bytes);
            if let Some(at) = old.expires_at {
                write = write.delete(expiry_key(at, stored));
            }
        }
        write = match mutation {
            UserMutation::Set { key, bytes, .. } => {
                *delta.entry(sid.to_string()).or_default() += i128::from(*bytes);
                let expires_at = lease.map(|lease| lease.expires_at_ms);
                let owner = Owner {
                    sid: sid.to_string(),
                    bytes: *bytes,
                    expires_at,
                };
                let write = write.set(owner_at, owner.to_json());
                match expires_at {
                    Some(at) => write.set(expiry_key(at, key), json!({ "key": hex::encode(key.encode()) })),
                    None => write,
                }
            }
            UserMutation::Delete { .. } => match previous {
                Some(_) => write.delete(owner_at),
                None => write,
            },
        };
    }
    for (owner, change) in delta {
        if change == 0 {
            continue;
        }
        let current = read_usage(store, &owner).await?;
        let before = current.as_ref().map_or(0, |(bytes, _)| *bytes);
        let after = u64::try_from((i128::from(before) + change).max(0)).unwrap_or(u64::MAX);
        if owner == sid && change > 0 && after > limit {
            return Err(QuotaError::Exceeded {
                usage: before,
                more: u64::try_from(change).unwrap_or(u64::MAX),
                limit,
            });
        }
        let at = usage_key(&owner);
        write = write.check(at.clone(), current.map(|(_, stamp)| stamp));
        write = if after == 0 {
            write.delete(at)
        } else {
            write.set(at, json!({ "bytes": after }))
        };
    }
    Ok(Some(write))
}

/// Frees the bytes of expiring entries whose deadline (plus `grace`) has passed at `now_ms`.
/// Returns how many entries were released. Safe to run on several nodes at once: each release
/// checks the records it changes.
pub async fn sweep_expired(store: &dyn Store, grace: Duration, now_ms: i64) -> StoreResult<usize> {
    let now = u64::try_from(now_ms).unwrap_or(0);
    let due = now.saturating_sub(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX));
    let prefix = Key::of(&[EXPIRY_PREFIX]);
    let mut released = 0;
    let mut start_after = None;
    loop {
        let page = store
            .list(
                &prefix,
                ListOptions {
                    limit: Some(SWEEP_PAGE),
                    reverse: false,
                    start_after: start_after.clone(),
                },
            )
            .await?;
        let full = page.more;
        for index in page.entries {
            let deadline = match index.key.0.get(1) {
                Some(KeyPart::Num(n)) if n.is_finite() && *n >= 0.0 => *n as u64,
                _ => 0,
            };
            if deadline > due {
                return Ok(released);
            }
            start_after = Some(index.key.clone());
            if release_expired(
                store,
                &index.key,
                &index.value.parse().unwrap_or_default(),
                index.versionstamp,
            )
            .await?
            {
                released += 1;
            }
        }
        if !full {
            return Ok(released);
        }
    }
}

/// Releases the entry an expiry index record points at, if that record is still current.
async fn release_expired(
    store: &dyn Store,
    index_key: &Key,
    index_value: &Value,
    index_stamp: Versionstamp,
) -> StoreResult<bool> {
    let stale = AtomicWrite::new()
        .check(index_key.clone(), Some(index_stamp))
        .delete(index_key.clone());
    let stored = index_value
        .get("key")
        .and_then(Value::as_str)
        .and_then(|text| hex::decode(text).ok())
        .and_then(|bytes| Key::decode(&bytes));
    let stored = match stored {
        Some(key) => key,
        None => {
            store.commit(stale).await?;
            return Ok(false);
        }
    };
    for _ in 0..MAX_ATTEMPTS {
        let owner = read_owner(store, &stored).await?;
        let Some((owner, owner_stamp)) = owner.filter(|(o, _)| {
            o.expires_at
                .is_some_and(|at| expiry_key(at, &stored) == *index_key)
        }) else {
            // Overwritten or deleted since: the index record is left over.
            store.commit(stale.clone()).await?;
            return Ok(false);
        };
        let usage = read_usage(store, &owner.sid).await?;
        let before = usage.as_ref().map_or(0, |(bytes, _)| *bytes);
        let after = before.saturating_sub(owner.bytes);
        let at = usage_key(&owner.sid);
        let mut write = stale
            .clone()
            .check(owner_key(&stored), Some(owner_stamp))
            .check(at.clone(), usage.map(|(_, stamp)| stamp))
            .delete(owner_key(&stored));
        write = if after == 0 {
            write.delete(at)
        } else {
            write.set(at, json!({ "bytes": after }))
        };
        // The entry itself is the store's to delete (it already reads as absent).
        if let CommitOutcome::Committed(_) = store.commit(write).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One round of [`sweep_expired`] on `store` with the usual grace; a failure is logged and the
/// next round retries.
pub async fn sweep_round(store: &dyn Store, now_ms: i64) {
    match sweep_expired(store, EXPIRY_GRACE, now_ms).await {
        Ok(0) => {}
        Ok(released) => tracing::debug!(released, "expired KV entries released from quotas"),
        Err(error) => tracing::warn!(%error, "KV quota sweep failed"),
    }
}
