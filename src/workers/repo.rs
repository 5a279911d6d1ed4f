//! [`WorkerRepo`]: the worker records in the store, and the one place their keys are built
//! (`["ami","worker",sid]`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::WorkerData;
use crate::store::{
    AtomicWrite, CommitOutcome, Entry, Key, ListedJson, MAX_VALUE_BYTES, Page, RawJson, Revision, Store,
    StoreError, StoreResult, Versionstamp, WatchStream, list_all,
};

/// The key prefix of every worker record.
pub fn workers_prefix() -> Key {
    Key::of(&["ami", "worker"])
}

/// The key of worker `sid`.
pub fn worker_key(sid: &str) -> Key {
    workers_prefix().child(sid)
}

/// A worker record too large to store (W-SET-8).
#[derive(Debug, thiserror::Error)]
#[error("Worker entry exceeds 64 KiB limit")]
pub struct RecordTooLarge {
    /// The serialised size.
    pub size: usize,
}

/// A record ready to store: the value, checked against the entry limit.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRecord {
    /// The worker.
    pub sid: String,
    value: Value,
}

impl WorkerRecord {
    /// `data` as a store value, refused when it exceeds the entry limit.
    pub fn new(data: WorkerData) -> Result<WorkerRecord, RecordTooLarge> {
        let sid = data.raw.sid.clone();
        let value = data.to_value();
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_VALUE_BYTES {
            return Err(RecordTooLarge { size });
        }
        Ok(WorkerRecord { sid, value })
    }
}

/// Reads and conditional deletes a `delete` tries before it reports a conflict.
const DELETE_ATTEMPTS: usize = 5;

/// The worker records of one store.
#[derive(Clone)]
pub struct WorkerRepo {
    store: Arc<dyn Store>,
    /// Bytes of the last full list, the room the next one reserves.
    last_list_bytes: Arc<AtomicUsize>,
}

impl WorkerRepo {
    /// The worker records of `store`.
    pub fn new(store: Arc<dyn Store>) -> WorkerRepo {
        WorkerRepo {
            store,
            last_list_bytes: Arc::default(),
        }
    }

    /// Every record, in sid order, with the revision they were read at.
    pub async fn all(&self) -> StoreResult<Page> {
        list_all(self.store.as_ref(), &workers_prefix()).await
    }

    /// Every record as one JSON array of entries, written from the stored text.
    pub async fn all_json(&self) -> StoreResult<ListedJson> {
        let last = self.last_list_bytes.load(Ordering::Relaxed);
        // A little more than last time, for records added since.
        let listed = self
            .store
            .list_all_json(&workers_prefix(), last + last / 16)
            .await?;
        self.last_list_bytes.store(listed.json.len(), Ordering::Relaxed);
        Ok(listed)
    }

    /// Whether the store answers: one point read (of the records' prefix, never a record).
    pub async fn probe(&self) -> StoreResult<()> {
        self.store.get(&workers_prefix()).await.map(drop)
    }

    /// The record of `sid`, if any.
    pub async fn get(&self, sid: &str) -> StoreResult<Option<Entry>> {
        Ok(self.store.get(&worker_key(sid)).await?.entry)
    }

    /// Stores `record` if the current record of its worker still has versionstamp `expected`
    /// (`None`: no record yet); `None` when it did not.
    pub async fn put(
        &self,
        record: WorkerRecord,
        expected: Option<Versionstamp>,
    ) -> StoreResult<Option<Entry>> {
        let key = worker_key(&record.sid);
        let value = RawJson::from(record.value);
        let write = AtomicWrite::new()
            .check(key.clone(), expected)
            .set(key.clone(), value.clone());
        Ok(match self.store.commit(write).await? {
            CommitOutcome::Committed(versionstamp) => Some(Entry {
                key,
                value,
                versionstamp,
            }),
            CommitOutcome::CheckFailed => None,
        })
    }

    /// Deletes the record of `sid` as it is now and returns it; `None` when there is none. A
    /// record changed between the read and the delete is read again (a few times at most, so
    /// a record rewritten without pause cannot hold the call forever).
    pub async fn delete(&self, sid: &str) -> StoreResult<Option<Entry>> {
        let key = worker_key(sid);
        for _ in 0..DELETE_ATTEMPTS {
            let Some(entry) = self.store.get(&key).await?.entry else {
                return Ok(None);
            };
            let write = AtomicWrite::new()
                .check(key.clone(), Some(entry.versionstamp))
                .delete(key.clone());
            if let CommitOutcome::Committed(_) = self.store.commit(write).await? {
                return Ok(Some(entry));
            }
        }
        Err(StoreError::Conflict(format!(
            "the record of {sid} changed {DELETE_ATTEMPTS} times while it was being deleted"
        )))
    }

    /// Changes of any record after `after`.
    pub async fn watch(&self, after: Revision) -> StoreResult<WatchStream> {
        self.store.watch(&workers_prefix(), after).await
    }
}
