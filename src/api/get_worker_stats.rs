//! `getWorkerStats` (W-STATS-1): what this node runs or has run since it started, and what
//! each of those workers holds in the script KVs.

use serde_json::Value;

use crate::store::Store;
use crate::streams::stats::StatsBoard;
use crate::webfix::Reply;
use crate::workers::kv_usage::usage_bytes;

/// Where the workers' KV usage is read, and their quota.
pub struct KvUsage<'a> {
    pub net: &'a dyn Store,
    pub local: &'a dyn Store,
    pub quota: u64,
}

/// The board's snapshot, each worker with `kvNetBytes` and `kvLocalBytes` (bytes of keys and
/// values it last wrote in `Stels.net` and in this node's `Stels.local`) and `kvQuotaBytes`
/// (the limit of each). The statistics are this node's own, so they are answered even when a
/// store cannot be read: the usage it could not read is `null`, and `kvUsageError` says why
/// (a store that failed is asked no more in that request).
pub async fn apply(stats: &StatsBoard, kv: KvUsage<'_>) -> Reply {
    let mut snapshot = stats.snapshot();
    let (mut net_failure, mut local_failure): (Option<String>, Option<String>) = (None, None);
    if let Some(workers) = snapshot.get_mut("workers").and_then(Value::as_array_mut) {
        for worker in workers {
            let Some(sid) = worker.get("sid").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            let net = usage_or_null(kv.net, &sid, &mut net_failure).await;
            let local = usage_or_null(kv.local, &sid, &mut local_failure).await;
            if let Some(fields) = worker.as_object_mut() {
                fields.insert("kvNetBytes".into(), net);
                fields.insert("kvLocalBytes".into(), local);
                fields.insert("kvQuotaBytes".into(), kv.quota.into());
            }
        }
    }
    let failures: Vec<String> = net_failure.into_iter().chain(local_failure).collect();
    if let (false, Some(fields)) = (failures.is_empty(), snapshot.as_object_mut()) {
        fields.insert("kvUsageError".into(), failures.join("; ").into());
    }
    Ok((200, snapshot.into()))
}

async fn usage_or_null(store: &dyn Store, sid: &str, failure: &mut Option<String>) -> Value {
    if failure.is_some() {
        return Value::Null;
    }
    match usage_bytes(store, sid).await {
        Ok(bytes) => bytes.into(),
        Err(e) => {
            tracing::warn!(error = %e, "getWorkerStats: KV usage unavailable");
            *failure = Some(format!("KV usage could not be read: {e}"));
            Value::Null
        }
    }
}
