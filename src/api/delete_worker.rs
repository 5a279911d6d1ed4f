//! `deleteWorker` (beyond the seed): removes a worker everywhere. Deleting the record is the
//! whole act: every node's supervisor sees the delete, stops its run, releases its leader lease
//! and forgets its log lines and stats, and the `events` stream says `deleted`. The worker's
//! secrets are deleted right after its record (a secret is written only beside an existing
//! record, so none can be added once it is gone); a delete of an unknown sid still removes any
//! secrets an interrupted delete left behind.

use serde_json::{Map, Value};

use crate::secrets::SecretRepo;
use crate::store::StoreError;
use crate::webfix::{ApiError, JsonBody, Reply};
use crate::workers::WorkerRepo;

/// Longest sid accepted (a UUID is 36).
const MAX_SID_BYTES: usize = 128;

/// `deleteWorker {sid}`, checked.
pub struct DeleteWorker {
    sid: String,
}

impl DeleteWorker {
    pub fn parse(body: &Map<String, Value>) -> Result<DeleteWorker, ApiError> {
        match body.get("sid").and_then(Value::as_str) {
            Some(sid) if !sid.is_empty() && sid.len() <= MAX_SID_BYTES => {
                Ok(DeleteWorker { sid: sid.to_owned() })
            }
            _ => Err(ApiError::invalid_body(format!(
                "sid must be a worker id (a string of 1 to {MAX_SID_BYTES} bytes)"
            ))),
        }
    }

    /// The deleted entry as `listWorkers` showed it; 404 when there was none.
    pub async fn apply(self, workers: &WorkerRepo, secrets: &SecretRepo) -> Reply {
        let deleted = workers.delete(&self.sid).await;
        if deleted.is_ok() {
            match secrets.delete_all(&self.sid).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(sid = %self.sid, count, "worker secrets deleted"),
                Err(e) => {
                    tracing::error!(sid = %self.sid, error = %e, "worker secrets not deleted");
                    return Err(ApiError::new(
                        503,
                        format!(
                            "The worker's secrets could not all be deleted ({e}); call deleteWorker again to delete them"
                        ),
                    ));
                }
            }
        }
        match deleted {
            Ok(Some(entry)) => {
                tracing::info!(sid = %self.sid, "worker deleted");
                Ok((200, JsonBody::assembled(entry.to_json_text())))
            }
            Ok(None) => Err(ApiError::new(404, "Worker not found")),
            Err(StoreError::Conflict(_)) => Err(ApiError::new(
                409,
                "The worker changed again and again while it was being deleted; try again",
            )),
            Err(e) => Err(ApiError::storage(e)),
        }
    }
}
