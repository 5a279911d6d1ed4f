//! Catching up on a long log costs what it returns: reading ~10,000 stored lines over the SSE
//! endpoint (`follow=false`) and over a `logs` subscription lists each stored line about once,
//! not the whole history again for every batch.
//!
//! The node's local store (where log history lives) is the real fjall store behind a wrapper
//! that counts the entries `list` returns.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{TestNode, Ws, eventually, quick_runtime, sid, ws_call, ws_next};
use heterogen::store::fjall::FjallStore;
use heterogen::store::{
    AtomicWrite, CommitOutcome, Got, Key, KeyPart, Lease, LeaseId, ListOptions, Page, Reaped, Revision,
    Store, StoreResult, WatchStream,
};
use serde_json::{Value, json};

const LINES: usize = 10_000;

/// Counts the log entries listed.
struct CountingStore {
    inner: FjallStore,
    listed: AtomicUsize,
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &Key) -> StoreResult<Got> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page> {
        let page = self.inner.list(prefix, options).await?;
        if prefix.0.first() == Some(&KeyPart::Str("log".into())) {
            self.listed.fetch_add(page.entries.len(), Ordering::SeqCst);
        }
        Ok(page)
    }
    async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome> {
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

/// The `log` events of a `follow=false` stream, until `complete`.
async fn sse_cursors(node: &TestNode, sid: &str) -> Vec<u64> {
    let url = format!(
        "http://{}/api/worker/logs/stream?sid={sid}&follow=false",
        node.addr
    );
    let response = node.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .expect("the stream did not end")
        .unwrap();
    let mut cursors = Vec::new();
    let mut completed = false;
    for data in body
        .split("\n\n")
        .filter_map(|block| block.strip_prefix("data: "))
    {
        let event: Value = serde_json::from_str(data).unwrap();
        match event["type"].as_str().unwrap() {
            "log" => cursors.extend(event["cursor"].as_u64()),
            "complete" => completed = true,
            _ => {}
        }
    }
    assert!(completed, "no complete event");
    cursors
}

/// The cursors pushed to a `logs` subscription from 0 until `last`.
async fn subscription_cursors(ws: &mut Ws, sid: &str, last: u64) -> Vec<u64> {
    let frame = ws_call(
        ws,
        json!(1),
        "subscribe",
        json!({"stream": "logs", "sid": sid, "since": 0}),
    )
    .await;
    assert_eq!(frame["status"], 200, "{frame}");
    let mut cursors = Vec::new();
    while cursors.last() != Some(&last) {
        let frame = ws_next(ws).await;
        if let Some(cursor) = frame["value"]["raw"]["cursor"].as_u64() {
            cursors.push(cursor);
        }
    }
    cursors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_lists_each_stored_line_about_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    quick_runtime(&mut config);
    // The script writes its lines in one go without yielding: on a loaded machine (a debug
    // build on 2 busy cores) that takes longer than quick_runtime's 300 ms slice, and an
    // interrupted run would start again and write the lines twice.
    config.runtime.cpu_limit = Duration::from_secs(60);
    config.runtime.log_rate = 1_000_000;
    config.runtime.log_history_lines = 2 * LINES;
    let cluster = Arc::new(FjallStore::open(&dir.path().join("cluster"), false).unwrap());
    let local = Arc::new(CountingStore {
        inner: FjallStore::open(&dir.path().join("local"), false).unwrap(),
        listed: AtomicUsize::new(0),
    });
    let node = heterogen::start_with_stores(config, cluster, local.clone())
        .await
        .unwrap();
    let node = TestNode {
        addr: node.local_addr(),
        node: Some(node),
        dir,
        http: reqwest::Client::new(),
    };
    let script = format!("for (let i = 0; i < {LINES}; i++) logger.info('line', i); logger.info('done');");
    let entry = node
        .start_worker(json!({"scriptContent": script, "mode": "single"}))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "Worker finished").await;
    let logs = node.running().logs().clone();
    let last = logs.ring(&sid).next_cursor() - 1;
    assert!(last as usize > LINES, "{last}");
    let prefix = Key::of(&["log", &sid]);
    eventually(20, "every line in the stored history", || async {
        let stored = local.inner.list(&prefix, ListOptions::default()).await.unwrap();
        (stored.entries.len() as u64 == last).then_some(())
    })
    .await;
    let kept_in_memory = logs.ring(&sid).since(0).len();
    assert!(kept_in_memory < LINES / 5, "most lines must come from the store");

    // Every line once, in order, for fewer stored entries listed than twice the lines.
    let catch_up = |reader: &str, cursors: Vec<u64>| {
        assert_eq!(
            cursors,
            (1..=last).collect::<Vec<_>>(),
            "{reader}: every line once, in order"
        );
        let listed = local.listed.swap(0, Ordering::SeqCst);
        assert!(
            listed < 2 * last as usize,
            "{reader} catch-up of {last} lines listed {listed} stored entries"
        );
    };
    local.listed.store(0, Ordering::SeqCst);
    catch_up("SSE", sse_cursors(&node, &sid).await);
    let mut ws = node.ws("/").await;
    catch_up("subscription", subscription_cursors(&mut ws, &sid, last).await);
}
