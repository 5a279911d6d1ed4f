//! `listWorkers` (W-LIST-1, W-LIST-2): every worker record in key order.

use serde_json::Value;

use crate::node::NodeState;
use crate::store::ListOptions;
use crate::webfix::{ApiError, Reply};
use crate::workers::model::{entry_json, workers_prefix};

pub async fn apply(node: &NodeState) -> Reply {
    let entries = node
        .store
        .list(&workers_prefix(), ListOptions::default())
        .await
        .map_err(ApiError::storage)?;
    Ok((200, Value::Array(entries.into_iter().map(entry_json).collect())))
}
