//! `deleteWorkerSecret {sid, name}` (beyond the seed): removes one secret of a worker; its
//! scripts read `undefined` from then on. `{sid, name}`; 404 when the worker or the secret does
//! not exist.

use serde_json::{Map, Value, json};

use super::set_worker_secret::{parse_name, parse_sid};
use crate::secrets::SecretRepo;
use crate::webfix::{ApiError, Reply};

/// `deleteWorkerSecret {sid, name}`, checked.
pub struct DeleteWorkerSecret {
    sid: String,
    name: String,
}

impl DeleteWorkerSecret {
    pub fn parse(body: &Map<String, Value>) -> Result<DeleteWorkerSecret, ApiError> {
        Ok(DeleteWorkerSecret {
            sid: parse_sid(body)?,
            name: parse_name(body)?,
        })
    }

    /// Deletes it.
    pub async fn apply(self, secrets: &SecretRepo) -> Reply {
        let DeleteWorkerSecret { sid, name } = self;
        secrets.delete(&sid, &name).await.map_err(ApiError::secret)?;
        tracing::info!(%sid, secret = %name, "worker secret deleted");
        Ok((200, json!({"sid": sid, "name": name}).into()))
    }
}
