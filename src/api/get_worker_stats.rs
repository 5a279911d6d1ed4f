//! `getWorkerStats` (W-STATS-1): what this node runs or has run since it started, and what
//! each of those workers holds in the script KVs.

use serde_json::Value;

use crate::node::NodeState;
use crate::runtime::sdk::kv_quota::usage_bytes;
use crate::webfix::{ApiError, Reply};

/// The board's snapshot, each worker with `kvNetBytes` and `kvLocalBytes` (bytes of keys and
/// values it last wrote in `Stels.net` and in this node's `Stels.local`) and `kvQuotaBytes`
/// (the limit of each).
pub async fn apply(node: &NodeState) -> Reply {
    let mut snapshot = node.stats.snapshot();
    let quota = node.config.runtime.kv_quota_bytes;
    if let Some(workers) = snapshot.get_mut("workers").and_then(Value::as_array_mut) {
        for worker in workers {
            let Some(sid) = worker.get("sid").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            let net = usage_bytes(node.store.as_ref(), &sid)
                .await
                .map_err(ApiError::storage)?;
            let local = usage_bytes(node.local_store.as_ref(), &sid)
                .await
                .map_err(ApiError::storage)?;
            if let Some(fields) = worker.as_object_mut() {
                fields.insert("kvNetBytes".into(), net.into());
                fields.insert("kvLocalBytes".into(), local.into());
                fields.insert("kvQuotaBytes".into(), quota.into());
            }
        }
    }
    Ok((200, snapshot))
}
