//! `stopAllWorkers` (W-STOP-1..3): deactivates every worker, each with its own atomic update.

use serde_json::json;

use crate::node::NodeState;
use crate::store::{AtomicWrite, CommitOutcome, Entry, StoreError, list_all};
use crate::webfix::{ApiError, Reply};
use crate::workers::WorkerData;
use crate::workers::model::{now_ms, worker_key, workers_prefix};

/// Attempts per worker before it counts as `failed` (a lost race is retried once).
const ATTEMPTS: usize = 2;

enum Outcome {
    AlreadyStopped,
    Stopped,
    Failed(String),
    Error(String),
}

pub async fn apply(node: &NodeState) -> Reply {
    let entries = list_all(node.store.as_ref(), &workers_prefix())
        .await
        .map_err(ApiError::storage)?
        .entries;
    if entries.is_empty() {
        return Ok((
            200,
            json!({"message":"No workers found","total":0,"stopped":0,"failed":0,"workers":[]}),
        ));
    }
    let total = entries.len();
    let (mut stopped, mut failed) = (0usize, 0usize);
    let mut errors = Vec::new();
    let mut workers = Vec::with_capacity(total);
    for entry in entries {
        let channel = entry
            .key
            .last_str()
            .map(crate::workers::model::worker_channel)
            .unwrap_or_default();
        let (status, error) = match stop_one(node, entry).await {
            Outcome::AlreadyStopped => ("already_stopped", None),
            Outcome::Stopped => {
                stopped += 1;
                ("stopped", None)
            }
            Outcome::Failed(e) => ("failed", Some(e)),
            Outcome::Error(e) => ("error", Some(e)),
        };
        if let Some(error) = error {
            failed += 1;
            errors.push(json!({"channel": channel, "error": error}));
        }
        workers.push(json!({"channel": channel, "status": status}));
    }
    let status = if failed > 0 { 207 } else { 200 };
    Ok((
        status,
        json!({"total": total, "stopped": stopped, "failed": failed, "errors": errors, "workers": workers}),
    ))
}

async fn stop_one(node: &NodeState, mut entry: Entry) -> Outcome {
    for attempt in 0..ATTEMPTS {
        let Some(mut data) = WorkerData::from_entry(&entry) else {
            return Outcome::Error("stored record is not a worker".into());
        };
        if !data.raw.active {
            return Outcome::AlreadyStopped;
        }
        data.raw.active = false;
        data.raw.timestamp = now_ms();
        data.timestamp = data.raw.timestamp;
        let key = entry.key.clone();
        let write = AtomicWrite::new()
            .check(key.clone(), Some(entry.versionstamp))
            .set(key.clone(), data.to_value());
        match node.store.commit(write).await {
            Ok(CommitOutcome::Committed(_)) => return Outcome::Stopped,
            Ok(CommitOutcome::CheckFailed) if attempt + 1 < ATTEMPTS => {
                match node
                    .store
                    .get(&worker_key(key.last_str().unwrap_or_default()))
                    .await
                    .map(|got| got.entry)
                {
                    Ok(Some(current)) => entry = current,
                    Ok(None) => return Outcome::Error("worker disappeared while stopping".into()),
                    Err(e) => return Outcome::Error(store_error(e)),
                }
            }
            Ok(CommitOutcome::CheckFailed) => break,
            Err(e) => return Outcome::Error(store_error(e)),
        }
    }
    Outcome::Failed("version mismatch: the worker kept changing while stopping".into())
}

fn store_error(e: StoreError) -> String {
    tracing::error!(error = %e, "stopAllWorkers store failure");
    e.to_string()
}
