//! `listWorkers` (W-LIST-1, W-LIST-2): every worker record in key order.

use crate::webfix::{ApiError, JsonBody, Reply};
use crate::workers::WorkerRepo;

/// The answer is written from the records' stored text: nothing is parsed or re-serialised,
/// and no entry is decoded into a [`crate::store::Entry`] on the way.
pub async fn apply(workers: &WorkerRepo) -> Reply {
    let listed = workers.all_json().await.map_err(ApiError::storage)?;
    Ok((200, JsonBody::assembled(listed.json)))
}
