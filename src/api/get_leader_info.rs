//! `getLeaderInfo` (W-LEAD-1, W-LEAD-2): the lease of a leader-mode worker, read from the store.

use serde_json::{Map, Value, json};

use crate::node::NodeState;
use crate::store::Key;
use crate::webfix::{ApiError, Reply};
use crate::workers::model::now_ms;

pub async fn apply(node: &NodeState, body: &Map<String, Value>) -> Reply {
    let worker_id = match body.get("workerId") {
        Some(Value::String(s)) if uuid::Uuid::try_parse(s).is_ok() => s.as_str(),
        _ => return Err(ApiError::bad_request("Invalid workerId")),
    };
    let lease = node
        .store
        .get(&Key::of(&["ami", "leader", worker_id]))
        .await
        .map_err(ApiError::storage)?
        .entry;
    let Some(lease) = lease else {
        return Ok((
            200,
            json!({"workerId": worker_id, "hasLeader": false, "message": "No leader elected yet"}),
        ));
    };
    let field = |name: &str| lease.value.get(name).and_then(Value::as_i64).unwrap_or(0);
    let expires_at = field("expiresAt");
    let now = now_ms();
    let is_expired = expires_at <= now;
    Ok((
        200,
        json!({
            "workerId": worker_id,
            "hasLeader": !is_expired,
            "leader": lease.value.get("leader").cloned().unwrap_or(Value::Null),
            "timestamp": field("timestamp"),
            "expiresAt": expires_at,
            "renewedAt": field("renewedAt"),
            // Beyond the seed: the fencing number (W-LE-4), so a person can see a new term begin.
            "epoch": lease.value.get("epoch").and_then(Value::as_u64),
            "expiresIn": (expires_at - now).max(0),
            "isExpired": is_expired,
        }),
    ))
}
