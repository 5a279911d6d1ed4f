//! `listNodes`: every live node of the cluster, from the membership records each node keeps
//! under a lease (a node that dies leaves the list within its membership TTL).

use serde_json::{Value, json};

use crate::cluster::membership::NodeList;
use crate::webfix::{ApiError, Reply};

pub async fn apply(nodes: &NodeList, own_nid: &str) -> Reply {
    let records = nodes.live().await.map_err(ApiError::storage)?;
    let nodes: Vec<Value> = records
        .into_iter()
        .filter_map(|record| {
            let current = record.nid == own_nid;
            let mut value = serde_json::to_value(record).ok()?;
            if let Some(fields) = value.as_object_mut() {
                fields.remove("boot");
                fields.insert("current".into(), Value::Bool(current));
            }
            Some(value)
        })
        .collect();
    Ok((200, json!({"total": nodes.len(), "nodes": nodes}).into()))
}
