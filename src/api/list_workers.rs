//! `listWorkers` (W-LIST-1, W-LIST-2): every worker record in key order.

use serde_json::Value;

use crate::webfix::{ApiError, Reply};
use crate::workers::WorkerRepo;
use crate::workers::model::entry_json;

pub async fn apply(workers: &WorkerRepo) -> Reply {
    let entries = workers.all().await.map_err(ApiError::storage)?.entries;
    Ok((200, Value::Array(entries.into_iter().map(entry_json).collect())))
}
