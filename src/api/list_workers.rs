//! `listWorkers` (W-LIST-1, W-LIST-2): every worker record in key order.

use serde_json::Value;

use crate::node::NodeState;
use crate::store::list_all;
use crate::webfix::{ApiError, Reply};
use crate::workers::model::{entry_json, workers_prefix};

pub async fn apply(node: &NodeState) -> Reply {
    let entries = list_all(node.store.as_ref(), &workers_prefix())
        .await
        .map_err(ApiError::storage)?
        .entries;
    Ok((200, Value::Array(entries.into_iter().map(entry_json).collect())))
}
