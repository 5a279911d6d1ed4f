//! W-STOP-1/W-STOP-2 under contention: a worker whose record changes between every read and
//! every conditional write of `stopAllWorkers` ends as `failed`, and the reply is 207.
//!
//! The store is the real fjall store; a wrapper plays a competing writer that commits a real
//! change to one worker just before each of `stopAllWorkers`' conditional writes to it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use async_trait::async_trait;
use common::call_url;
use heterogen::store::fjall::FjallStore;
use heterogen::store::{
    AtomicWrite, Check, CommitOutcome, Got, Key, Lease, LeaseId, ListOptions, Mutation, Page, Reaped,
    Revision, Store, StoreResult, WatchStream,
};
use serde_json::json;

/// Commits a competing edit of `contended` before every checked write to it.
struct CompetingWriter {
    inner: FjallStore,
    contended: std::sync::Mutex<Option<Key>>,
    interferences: AtomicUsize,
}

#[async_trait]
impl Store for CompetingWriter {
    async fn get(&self, key: &Key) -> StoreResult<Got> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page> {
        self.inner.list(prefix, options).await
    }
    async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome> {
        let contended = self.contended.lock().unwrap().clone();
        if let Some(key) = contended
            && write
                .checks
                .iter()
                .any(|Check::Versionstamp { key: k, .. }| *k == key)
            && write
                .mutations
                .iter()
                .any(|m| matches!(m, Mutation::Set { key: k, .. } if *k == key))
            && let Some(current) = self.inner.get(&key).await?.entry
        {
            let mut value = current.value.parse().unwrap();
            let n = self.interferences.fetch_add(1, Ordering::SeqCst);
            value["raw"]["note"] = json!(format!("edited by the competitor {n}"));
            self.inner.commit(AtomicWrite::new().set(key, value)).await?;
        }
        self.inner.commit(write).await
    }
    async fn watch(&self, prefix: &Key, after: Revision) -> StoreResult<WatchStream> {
        self.inner.watch(prefix, after).await
    }
    async fn grant(&self, ttl: Duration) -> StoreResult<Lease> {
        self.inner.grant(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
        self.inner.keep_alive(lease).await
    }
    async fn revoke(&self, lease: LeaseId) -> StoreResult<()> {
        self.inner.revoke(lease).await
    }
    async fn flush(&self) -> StoreResult<()> {
        self.inner.flush().await
    }
    async fn reap_expired(&self, max: usize) -> StoreResult<Reaped> {
        self.inner.reap_expired(max).await
    }
}

#[tokio::test]
async fn a_worker_that_keeps_changing_is_reported_failed_with_207() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CompetingWriter {
        inner: FjallStore::open(dir.path(), false).unwrap(),
        contended: std::sync::Mutex::new(None),
        interferences: AtomicUsize::new(0),
    });
    let mut config = heterogen::NodeConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.open = true;
    let node = heterogen::start_with_store(config, store.clone()).await.unwrap();
    let url = format!("http://{}/", node.local_addr());
    let client = reqwest::Client::new();

    let mut channels = Vec::new();
    for _ in 0..3 {
        let (_, entry) = call_url(&client, &url, "setWorker", json!({})).await;
        let mut raw = entry["value"]["raw"].clone();
        raw["active"] = json!(true);
        let (status, _) = call_url(
            &client,
            &url,
            "updateWorker",
            json!({"channel": entry["value"]["channel"], "raw": raw}),
        )
        .await;
        assert_eq!(status, 200);
        channels.push((
            entry["value"]["channel"].as_str().unwrap().to_string(),
            entry["key"].clone(),
        ));
    }
    let (contended_channel, contended_key) = channels[1].clone();
    *store.contended.lock().unwrap() = Some(Key::from_json(&contended_key).unwrap());

    let (status, body) = call_url(&client, &url, "stopAllWorkers", json!({})).await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(body["stopped"], 2);
    assert_eq!(body["failed"], 1);
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(body["errors"][0]["channel"], contended_channel);
    for worker in body["workers"].as_array().unwrap() {
        let expected = if worker["channel"] == contended_channel.as_str() {
            "failed"
        } else {
            "stopped"
        };
        assert_eq!(worker["status"], expected, "{worker}");
    }
    assert_eq!(
        store.interferences.load(Ordering::SeqCst),
        2,
        "two attempts, each lost"
    );

    // The competitor's edits were kept, and the worker is still active: nothing was overwritten.
    *store.contended.lock().unwrap() = None;
    let (_, list) = call_url(&client, &url, "listWorkers", json!({})).await;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == contended_key)
        .unwrap();
    assert_eq!(entry["value"]["raw"]["active"], true);
    assert_eq!(entry["value"]["raw"]["note"], "edited by the competitor 1");
    node.shutdown().await.unwrap();
}
