//! Answers the existing STELS client expects at start-up (`stels-client.md` §6.2–6.3).
//! This node holds no assets and no exchange accounts, so both lists are truthfully empty.

use serde_json::{Value, json};

use crate::node::NodeState;
use crate::webfix::Reply;
use crate::workers::model::now_ms;

pub fn asset_list(node: &NodeState) -> Reply {
    Ok((
        200,
        json!({"webfix":"1.0","result":{"success":true,"assets":[],"total":0,"network":node.config.network,"timestamp":now_ms()}}),
    ))
}

pub fn list_accounts() -> Reply {
    Ok((200, Value::Array(Vec::new())))
}
