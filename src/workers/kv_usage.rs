//! How many bytes each worker holds in a script KV: the usage records `["kq", sid]` = `{bytes}`
//! that the script SDK keeps exact with every write (`runtime::sdk::kv_quota`), read here by
//! `getWorkerStats`.

use crate::store::{Key, Store, StoreResult};

/// First key part of usage records.
const USAGE_PREFIX: &str = "kq";

/// `["kq", sid]`.
pub fn usage_key(sid: &str) -> Key {
    Key::of(&[USAGE_PREFIX, sid])
}

/// Bytes `sid` holds in `store`.
pub async fn usage_bytes(store: &dyn Store, sid: &str) -> StoreResult<u64> {
    Ok(store
        .get(&usage_key(sid))
        .await?
        .entry
        .and_then(|e| e.value.parse().ok()?.get("bytes")?.as_u64())
        .unwrap_or(0))
}
