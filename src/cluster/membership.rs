//! Which nodes are alive: each node keeps a record under `["ami","node",nid]` attached to a
//! lease it keeps alive, so a node that dies leaves the list within the lease's TTL and a second
//! node cannot take a nid that a live node holds.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{AtomicWrite, CommitOutcome, Key, LeaseId, Store, StoreError, StoreResult, list_all};

/// What a node says about itself in the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// The node's id (`--nid`).
    pub nid: String,
    /// Where clients reach it over HTTP.
    pub api_url: String,
    /// Where clients reach it over WebSocket.
    pub ws_url: String,
    /// The heterogen version it runs.
    pub version: String,
    /// When it started (ms since the epoch).
    pub started_at: i64,
    /// When it last wrote this record (ms since the epoch).
    pub updated_at: i64,
    /// Distinguishes this run of the node from an earlier one with the same nid.
    pub boot: String,
    /// What changes while it runs: connections, running workers, run counters.
    pub load: NodeLoad,
}

/// The changing part of a [`NodeRecord`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLoad {
    /// WebSocket connections open.
    pub connections: u64,
    /// Workers running on the node.
    pub running_workers: u64,
    /// Runs finished since the node started.
    pub executions: u64,
    /// Failed runs since the node started.
    pub errors: u64,
    /// Of those, network errors.
    pub network_errors: u64,
    /// Of those, critical errors.
    pub critical_errors: u64,
    /// Per-worker statistics of this node (`getWorkerStats` items, trimmed), as many as fit in
    /// [`WORKER_STATS_BYTES`].
    pub workers: Vec<Value>,
    /// Workers left out of `workers` for room.
    pub workers_omitted: u64,
}

/// Room for per-worker statistics in a node record, well under the store's 64 KiB a value.
pub const WORKER_STATS_BYTES: usize = 48 * 1024;

/// The fields of a `getWorkerStats` item a node publishes for the cluster view.
const PUBLISHED_FIELDS: [&str; 9] = [
    "sid",
    "isRunning",
    "executions",
    "errors",
    "networkErrors",
    "criticalErrors",
    "lastRun",
    "scriptHash",
    "lastError",
];

/// Longest `lastError` published, in characters.
const MAX_PUBLISHED_ERROR_CHARS: usize = 200;

impl NodeLoad {
    /// Fills `workers` from `getWorkerStats` items, in order, trimmed to the published fields,
    /// until [`WORKER_STATS_BYTES`] is used; the rest are counted in `workers_omitted`.
    pub fn with_workers<'a>(mut self, items: impl IntoIterator<Item = &'a Value>) -> NodeLoad {
        let mut room = WORKER_STATS_BYTES;
        for item in items {
            let mut published = serde_json::Map::new();
            for field in PUBLISHED_FIELDS {
                let mut value = item.get(field).cloned().unwrap_or(Value::Null);
                if let Value::String(text) = &value
                    && text.chars().count() > MAX_PUBLISHED_ERROR_CHARS
                {
                    value = Value::String(text.chars().take(MAX_PUBLISHED_ERROR_CHARS).collect());
                }
                published.insert(field.into(), value);
            }
            let published = Value::Object(published);
            let size = published.to_string().len() + 1;
            if size > room {
                self.workers_omitted += 1;
                continue;
            }
            room -= size;
            self.workers.push(published);
        }
        self
    }
}

/// Why a node could not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// A live node holds the nid.
    #[error(
        "node {nid} at {api_url} (started {started_at} ms since the epoch) is alive with it; it leaves the list within {ttl:?} of stopping"
    )]
    Taken {
        /// The nid.
        nid: String,
        /// Where the live node is.
        api_url: String,
        /// When it started.
        started_at: i64,
        /// The membership TTL.
        ttl: Duration,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which existing record of its nid a joining node may replace.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Any: the store is this process's alone (the embedded one), so a record there can only be
    /// left from an earlier run.
    Exclusive,
    /// On a store the cluster shares: only a record written by this node's own previous run
    /// (its `boot` id, kept in the node's data directory), which must be dead since this
    /// process holds that directory; a live node's record refuses the join.
    Shared {
        /// The `boot` id of this node's previous run, if known.
        previous_boot: Option<String>,
    },
}

fn taken(nid: &str, holder: Option<&NodeRecord>, ttl: Duration) -> JoinError {
    JoinError::Taken {
        nid: nid.to_string(),
        api_url: holder.map_or_else(|| "?".into(), |h| h.api_url.clone()),
        started_at: holder.map_or(0, |h| h.started_at),
        ttl,
    }
}

/// The record key of node `nid`.
fn node_key(nid: &str) -> Key {
    nodes_prefix().child(nid)
}

fn nodes_prefix() -> Key {
    Key::of(&["ami", "node"])
}

/// This node's place in the cluster's node list.
pub struct Membership {
    store: std::sync::Arc<dyn Store>,
    ttl: Duration,
    /// The lease the record hangs on (replaced when it was lost and the node joins again).
    lease: Mutex<LeaseId>,
    record: Mutex<NodeRecord>,
}

impl Membership {
    /// Writes `record` under a new lease of `ttl`, as `claim` allows.
    pub async fn join(
        store: std::sync::Arc<dyn Store>,
        record: NodeRecord,
        ttl: Duration,
        claim: Claim,
    ) -> Result<Membership, JoinError> {
        let key = node_key(&record.nid);
        let lease = store.grant(ttl).await?;
        let value = serde_json::to_value(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut write = AtomicWrite::new();
        if let Claim::Shared { previous_boot } = &claim {
            let current = match store.get(&key).await {
                Ok(got) => got.entry,
                Err(e) => {
                    let _ = store.revoke(lease.id).await;
                    return Err(e.into());
                }
            };
            let holder = current
                .as_ref()
                .and_then(|e| e.value.deserialize::<NodeRecord>().ok());
            let replaceable = match &holder {
                None => true,
                Some(holder) => previous_boot.as_deref() == Some(holder.boot.as_str()),
            };
            if !replaceable {
                let _ = store.revoke(lease.id).await;
                return Err(taken(&record.nid, holder.as_ref(), ttl));
            }
            write = write.check(key.clone(), current.map(|e| e.versionstamp));
        }
        match store
            .commit(write.set_with_lease(key.clone(), value, lease.id))
            .await
        {
            Ok(CommitOutcome::Committed(_)) => {}
            Ok(CommitOutcome::CheckFailed) => {
                // Another node wrote the record between the read and the commit.
                let _ = store.revoke(lease.id).await;
                let holder = store
                    .get(&key)
                    .await?
                    .entry
                    .and_then(|e| e.value.deserialize::<NodeRecord>().ok());
                return Err(taken(&record.nid, holder.as_ref(), ttl));
            }
            Err(e) => {
                let _ = store.revoke(lease.id).await;
                return Err(e.into());
            }
        }
        Ok(Membership {
            store,
            ttl,
            lease: Mutex::new(lease.id),
            record: Mutex::new(record),
        })
    }

    /// How often [`Membership::refresh`] should run: three times per TTL.
    pub fn refresh_interval(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(100))
    }

    /// Keeps the lease alive and rewrites the record when `load` changed. A lease lost while
    /// the node could not reach the store (a freeze, a partition) is replaced: the node joins
    /// again unless another live node took its nid meanwhile.
    pub async fn refresh(&self, load: NodeLoad, now_ms: i64) -> Result<(), JoinError> {
        let lease = *self.lease.lock().unwrap_or_else(|p| p.into_inner());
        let (record, changed) = {
            let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
            let changed = record.load != load;
            if changed {
                record.load = load;
                record.updated_at = now_ms;
            }
            (record.clone(), changed)
        };
        let key = node_key(&record.nid);
        match self.store.keep_alive(lease).await {
            Ok(_) => {
                if changed {
                    let value =
                        serde_json::to_value(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    match self
                        .store
                        .commit(AtomicWrite::new().set_with_lease(key, value, lease))
                        .await
                    {
                        Ok(_) | Err(StoreError::LeaseNotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }
            Err(StoreError::LeaseNotFound(_)) => {
                tracing::warn!(nid = %record.nid, "membership lease lost (the node could not renew it in time); joining again");
                let claim = Claim::Shared {
                    previous_boot: Some(record.boot.clone()),
                };
                let again = Membership::join(self.store.clone(), record, self.ttl, claim).await?;
                let new_lease = *again.lease.lock().unwrap_or_else(|p| p.into_inner());
                *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = new_lease;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Leaves the list at once (graceful shutdown).
    pub async fn leave(&self) {
        let lease = *self.lease.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.store.revoke(lease).await {
            tracing::warn!(error = %e, "could not leave the node list; this node drops out when its lease ends");
        }
    }
}

/// Reads the cluster's node list (`listNodes`, `sonar`).
#[derive(Clone)]
pub struct NodeList(std::sync::Arc<dyn Store>);

impl NodeList {
    /// The node list kept in `store`.
    pub fn new(store: std::sync::Arc<dyn Store>) -> NodeList {
        NodeList(store)
    }

    /// Every live node's record, in nid order.
    pub async fn live(&self) -> StoreResult<Vec<NodeRecord>> {
        let page = list_all(self.0.as_ref(), &nodes_prefix()).await?;
        Ok(page
            .entries
            .into_iter()
            .filter_map(|e| e.value.deserialize().ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn published_worker_stats_are_trimmed_and_bounded() {
        let long_error = "x".repeat(1000);
        let items: Vec<Value> = (0..2000)
            .map(|i| json!({"sid": format!("w{i:05}"), "isRunning": true, "executions": i, "lastError": long_error, "uptime": 5}))
            .collect();
        let load = NodeLoad::default().with_workers(&items);
        let size = serde_json::to_string(&load).unwrap().len();
        assert!(size <= WORKER_STATS_BYTES + 1024, "{size}");
        assert_eq!(load.workers.len() as u64 + load.workers_omitted, 2000);
        assert!(load.workers_omitted > 0);
        let first = &load.workers[0];
        assert_eq!(first["sid"], "w00000");
        assert_eq!(
            first["lastError"].as_str().unwrap().len(),
            MAX_PUBLISHED_ERROR_CHARS
        );
        assert!(first.get("uptime").is_none());
    }
}
