//! A node whose watch of the worker records fails lists them again and watches from the list's
//! revision: changes made while it was not watching still take effect, none is lost, and the
//! console is told to resync.
//!
//! The cluster store is the real fjall store behind a wrapper that can end every watch with an
//! error (a lost connection to etcd, say) and hold new watches until the test lets them go.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{TestNode, Ws, eventually, quick_runtime, sid, ws_call, ws_next};
use futures_util::StreamExt;
use heterogen::store::fjall::FjallStore;
use heterogen::store::{
    AtomicWrite, CommitOutcome, Got, Key, Lease, LeaseId, ListOptions, Page, Reaped, Revision, Store,
    StoreError, StoreResult, WatchStream,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct FaultyWatches {
    inner: FjallStore,
    /// Cancelled to end every open watch with an error.
    kill: std::sync::Mutex<CancellationToken>,
    /// New watches wait while this is false.
    open: tokio::sync::watch::Sender<bool>,
    /// Watch calls of the worker records waiting for `open` (other parts of the node, such as
    /// its secrets, watch their own prefixes).
    waiting: AtomicUsize,
}

impl FaultyWatches {
    fn fail_open_watches(&self) {
        let mut kill = self.kill.lock().unwrap();
        kill.cancel();
        *kill = CancellationToken::new();
    }
}

#[async_trait]
impl Store for FaultyWatches {
    async fn get(&self, key: &Key) -> StoreResult<Got> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page> {
        self.inner.list(prefix, options).await
    }
    async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome> {
        self.inner.commit(write).await
    }
    async fn watch(&self, prefix: &Key, after: Revision) -> StoreResult<WatchStream> {
        let workers = *prefix == Key::of(&["ami", "worker"]);
        if workers {
            self.waiting.fetch_add(1, Ordering::SeqCst);
        }
        let _ = self.open.subscribe().wait_for(|open| *open).await;
        if workers {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        let inner = self.inner.watch(prefix, after).await?;
        let kill = self.kill.lock().unwrap().clone();
        let injected = futures_util::stream::once(async {
            Err(StoreError::Unavailable(
                "connection to the store lost (injected)".into(),
            ))
        });
        Ok(Box::pin(inner.take_until(kill.cancelled_owned()).chain(injected)))
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

/// The next `events` push: (type, sid).
async fn next_event(ws: &mut Ws) -> (String, String) {
    let frame = ws_next(ws).await;
    let raw = &frame["value"]["raw"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (text(&raw["type"]), text(&raw["sid"]))
}

#[tokio::test]
async fn changes_made_while_the_watch_was_down_take_effect_after_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FaultyWatches {
        inner: FjallStore::open(dir.path(), false).unwrap(),
        kill: std::sync::Mutex::new(CancellationToken::new()),
        open: tokio::sync::watch::Sender::new(true),
        waiting: AtomicUsize::new(0),
    });
    let node = TestNode::start_on(store.clone(), quick_runtime).await;
    let mut ws = node.ws("/").await;
    let subscribed = ws_call(&mut ws, json!(1), "subscribe", json!({"stream": "events"})).await;
    assert!(subscribed.get("error").is_none(), "{subscribed}");
    let a = node
        .start_worker(json!({"scriptContent": "logger.info('a alive'); await Stels.sleep(60000);"}))
        .await;
    let a_sid = sid(&a);
    node.wait_for_log(&a_sid, "a alive").await;

    // The watch breaks; the node lists again and asks for a new watch, which the test holds
    // until the changes below are stored: they exist only after the list's revision.
    store.open.send_replace(false);
    store.fail_open_watches();
    eventually(10, "the node to list again and ask for a new watch", || async {
        (store.waiting.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    node.set_active(&a, false).await;
    let b = node
        .start_worker(json!({"scriptContent": "logger.info('b alive'); await Stels.sleep(60000);"}))
        .await;
    let b_sid = sid(&b);
    store.open.send_replace(true);

    node.wait_for_log(&b_sid, "b alive").await;
    let mut seen = Vec::new();
    let wanted = [
        ("resync".to_string(), String::new()),
        ("stopped".to_string(), a_sid.clone()),
        ("started".to_string(), b_sid.clone()),
    ];
    tokio::time::timeout(Duration::from_secs(15), async {
        while !wanted.iter().all(|w| seen.contains(w)) {
            seen.push(next_event(&mut ws).await);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("events seen: {seen:?}"));
    let running = |sid: &str| {
        let sid = sid.to_string();
        let node = &node;
        async move {
            node.worker_stats(&sid)
                .await
                .is_some_and(|w| w["isRunning"] == true)
        }
    };
    assert!(running(&b_sid).await);
    assert!(!running(&a_sid).await);
}
