//! `listWorkers` (W-LIST-1, W-LIST-2): every worker record in key order.

use crate::store::Entry;
use crate::webfix::{ApiError, JsonBody, Reply};
use crate::workers::WorkerRepo;

/// The answer is assembled from the records' stored text: nothing is parsed or re-serialised.
pub async fn apply(workers: &WorkerRepo) -> Reply {
    let entries = workers.all().await.map_err(ApiError::storage)?.entries;
    Ok((200, JsonBody::assembled(Entry::json_array(&entries))))
}
