//! `getLeaderInfo` (W-LEAD-1, W-LEAD-2): who leads a leader-mode worker, from the coordinator.

use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::cluster::coordinator::Coordinator;
use crate::webfix::{ApiError, Reply};

/// `getLeaderInfo {workerId}`, checked.
pub struct GetLeaderInfo {
    worker_id: String,
}

impl GetLeaderInfo {
    pub fn parse(body: &Map<String, Value>) -> Result<GetLeaderInfo, ApiError> {
        match body.get("workerId") {
            Some(Value::String(s)) if uuid::Uuid::try_parse(s).is_ok() => {
                Ok(GetLeaderInfo { worker_id: s.clone() })
            }
            _ => Err(ApiError::bad_request("Invalid workerId")),
        }
    }

    pub async fn apply(self, coordinator: &dyn Coordinator, clock: &Clock) -> Reply {
        let worker_id = self.worker_id.as_str();
        let record = coordinator.leader(worker_id).await.map_err(ApiError::storage)?;
        let Some(record) = record else {
            return Ok((
                200,
                json!({"workerId": worker_id, "hasLeader": false, "message": "No leader elected yet"}).into(),
            ));
        };
        let now = clock.wall_ms();
        let is_expired = record.expires_at <= now;
        Ok((
            200,
            json!({
                "workerId": worker_id,
                "hasLeader": !is_expired,
                "leader": record.leader,
                "timestamp": record.timestamp,
                "expiresAt": record.expires_at,
                "renewedAt": record.renewed_at,
                // Beyond the seed: the fencing number (W-LE-4), so a person can see a new term begin.
                "epoch": record.epoch,
                "expiresIn": (record.expires_at - now).max(0),
                "isExpired": is_expired,
            })
            .into(),
        ))
    }
}
