//! `getWorkerStats` (W-STATS-1): what this node runs or has run since it started, and what
//! each of those workers holds in the script KVs.

use serde_json::Value;

use crate::store::Store;
use crate::streams::stats::StatsBoard;
use crate::webfix::{ApiError, Reply};
use crate::workers::kv_usage::usage_bytes;

/// Where the workers' KV usage is read, and their quota.
pub struct KvUsage<'a> {
    pub net: &'a dyn Store,
    pub local: &'a dyn Store,
    pub quota: u64,
}

/// The board's snapshot, each worker with `kvNetBytes` and `kvLocalBytes` (bytes of keys and
/// values it last wrote in `Stels.net` and in this node's `Stels.local`) and `kvQuotaBytes`
/// (the limit of each).
pub async fn apply(stats: &StatsBoard, kv: KvUsage<'_>) -> Reply {
    let mut snapshot = stats.snapshot();
    if let Some(workers) = snapshot.get_mut("workers").and_then(Value::as_array_mut) {
        for worker in workers {
            let Some(sid) = worker.get("sid").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            let net = usage_bytes(kv.net, &sid).await.map_err(ApiError::storage)?;
            let local = usage_bytes(kv.local, &sid).await.map_err(ApiError::storage)?;
            if let Some(fields) = worker.as_object_mut() {
                fields.insert("kvNetBytes".into(), net.into());
                fields.insert("kvLocalBytes".into(), local.into());
                fields.insert("kvQuotaBytes".into(), kv.quota.into());
            }
        }
    }
    Ok((200, snapshot))
}
