//! Answers the existing STELS client expects at start-up (`stels-client.md` §6.2–6.3).
//! This node holds no assets and no exchange accounts, so both lists are truthfully empty.

use serde_json::{Value, json};

use crate::clock::Clock;
use crate::webfix::Reply;

pub fn asset_list(network: &str, clock: &Clock) -> Reply {
    Ok((
        200,
        json!({"webfix":"1.0","result":{"success":true,"assets":[],"total":0,"network":network,"timestamp":clock.wall_ms()}}).into(),
    ))
}

pub fn list_accounts() -> Reply {
    Ok((200, Value::Array(Vec::new()).into()))
}
