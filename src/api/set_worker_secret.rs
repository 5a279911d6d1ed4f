//! `setWorkerSecret {sid, name, value}` (beyond the seed): stores one secret of a worker,
//! sealed with the node key, beside (never inside) the worker record. The answer is
//! `{sid, name, updatedAt, created}`: the value is never sent back, by this method or any other.
//! The worker's scripts see it at their next read of `Stels.secrets`, on every node.

use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::secrets::{SecretRepo, check_name, check_value};
use crate::webfix::{ApiError, Reply};

/// Longest sid accepted (a UUID is 36).
const MAX_SID_BYTES: usize = 128;

/// `setWorkerSecret {sid, name, value}`, checked. Deliberately not `Debug`: it holds the value.
pub struct SetWorkerSecret {
    sid: String,
    name: String,
    value: String,
}

impl SetWorkerSecret {
    pub fn parse(body: &Map<String, Value>) -> Result<SetWorkerSecret, ApiError> {
        let sid = parse_sid(body)?;
        let name = parse_name(body)?;
        let value = match body.get("value") {
            Some(Value::String(value)) => value.clone(),
            _ => return Err(ApiError::invalid_body("value must be a string")),
        };
        check_value(&value).map_err(ApiError::secret)?;
        Ok(SetWorkerSecret { sid, name, value })
    }

    /// Stores it; 404 when the worker does not exist.
    pub async fn apply(self, secrets: &SecretRepo, clock: &Clock) -> Reply {
        let SetWorkerSecret { sid, name, value } = self;
        let set = secrets
            .set(&sid, &name, &value, clock.wall_ms())
            .await
            .map_err(ApiError::secret)?;
        tracing::info!(%sid, secret = %name, created = set.created, "worker secret set");
        Ok((
            200,
            json!({"sid": sid, "name": name, "updatedAt": set.updated_at, "created": set.created}).into(),
        ))
    }
}

/// The body's `sid`: a string of 1 to [`MAX_SID_BYTES`] bytes.
pub(super) fn parse_sid(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("sid").and_then(Value::as_str) {
        Some(sid) if !sid.is_empty() && sid.len() <= MAX_SID_BYTES => Ok(sid.to_owned()),
        _ => Err(ApiError::invalid_body(format!(
            "sid must be a worker id (a string of 1 to {MAX_SID_BYTES} bytes)"
        ))),
    }
}

/// The body's `name`: a secret name (`[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes).
pub(super) fn parse_name(body: &Map<String, Value>) -> Result<String, ApiError> {
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return Err(ApiError::invalid_body("name must be a string"));
    };
    check_name(name).map_err(ApiError::secret)?;
    Ok(name.to_owned())
}
