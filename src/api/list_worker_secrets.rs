//! `listWorkerSecrets {sid}` (beyond the seed): the names of a worker's secrets and when each
//! was set, `{sid, secrets: [{name, updatedAt}]}` in name order. Never a value.

use serde_json::{Map, Value, json};

use super::set_worker_secret::parse_sid;
use crate::secrets::SecretRepo;
use crate::webfix::{ApiError, Reply};

/// `listWorkerSecrets {sid}`, checked.
pub struct ListWorkerSecrets {
    sid: String,
}

impl ListWorkerSecrets {
    pub fn parse(body: &Map<String, Value>) -> Result<ListWorkerSecrets, ApiError> {
        Ok(ListWorkerSecrets {
            sid: parse_sid(body)?,
        })
    }

    /// The names; 404 when the worker does not exist.
    pub async fn apply(self, secrets: &SecretRepo) -> Reply {
        let listed = secrets.list(&self.sid).await.map_err(ApiError::secret)?;
        Ok((200, json!({"sid": self.sid, "secrets": listed}).into()))
    }
}
