//! `stopAllWorkers` (W-STOP-1..3): deactivates every worker, each with its own atomic update.

use serde_json::json;

use crate::clock::Clock;
use crate::store::{Entry, StoreError};
use crate::webfix::{ApiError, Reply};
use crate::workers::{WorkerData, WorkerRecord, WorkerRepo};

/// Attempts per worker before it counts as `failed` (a lost race is retried once).
const ATTEMPTS: usize = 2;

enum Outcome {
    AlreadyStopped,
    Stopped,
    Failed(String),
    Error(String),
}

pub async fn apply(repo: &WorkerRepo, clock: &Clock) -> Reply {
    let entries = repo.all().await.map_err(ApiError::storage)?.entries;
    if entries.is_empty() {
        return Ok((
            200,
            json!({"message":"No workers found","total":0,"stopped":0,"failed":0,"workers":[]}).into(),
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
        let (status, error) = match stop_one(repo, clock, entry).await {
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
        json!({"total": total, "stopped": stopped, "failed": failed, "errors": errors, "workers": workers})
            .into(),
    ))
}

async fn stop_one(workers: &WorkerRepo, clock: &Clock, mut entry: Entry) -> Outcome {
    for attempt in 0..ATTEMPTS {
        let Some(mut data) =
            WorkerData::from_entry(&entry).filter(|d| entry.key.last_str() == Some(d.raw.sid.as_str()))
        else {
            return Outcome::Error("stored record is not a worker".into());
        };
        if !data.raw.active {
            return Outcome::AlreadyStopped;
        }
        data.raw.active = false;
        data.raw.timestamp = clock.wall_ms();
        data.timestamp = data.raw.timestamp;
        let sid = data.raw.sid.clone();
        let record = match WorkerRecord::new(data) {
            Ok(record) => record,
            Err(e) => return Outcome::Error(e.to_string()),
        };
        match workers.put(record, Some(entry.versionstamp)).await {
            Ok(Some(_)) => return Outcome::Stopped,
            Ok(None) if attempt + 1 < ATTEMPTS => match workers.get(&sid).await {
                Ok(Some(current)) => entry = current,
                Ok(None) => return Outcome::Error("worker disappeared while stopping".into()),
                Err(e) => return Outcome::Error(store_error(e)),
            },
            Ok(None) => break,
            Err(e) => return Outcome::Error(store_error(e)),
        }
    }
    Outcome::Failed("version mismatch: the worker kept changing while stopping".into())
}

fn store_error(e: StoreError) -> String {
    tracing::error!(error = %e, "stopAllWorkers store failure");
    e.to_string()
}
