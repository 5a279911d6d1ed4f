//! When a worker's record is deleted, every node frees its log ring and deletes its stored
//! log history; its log is then 404 like any unknown worker's.

mod common;

use common::{TestNode, eventually, quick_runtime, sid};
use heterogen::store::{AtomicWrite, Key, ListOptions};
use heterogen::workers::model::worker_key;
use serde_json::json;

#[tokio::test]
async fn a_deleted_workers_ring_and_history_are_freed() {
    let node = TestNode::start_with(quick_runtime).await;
    let (store, local_store, logs) = (
        node.running().store().clone(),
        node.running().local_store().clone(),
        node.running().logs().clone(),
    );
    let entry = node
        .start_worker(
            json!({"scriptContent": "logger.info('tick'); await Stels.sleep(10);", "priority": "high"}),
        )
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "tick").await;
    let history = Key::of(&["log", &sid]);
    eventually(10, "some stored history", || async {
        let stored = local_store.list(&history, ListOptions::default()).await.unwrap();
        (!stored.entries.is_empty()).then_some(())
    })
    .await;
    assert_eq!(logs.open_rings(), 1);

    store
        .commit(AtomicWrite::new().delete(worker_key(&sid)))
        .await
        .unwrap();
    eventually(10, "the ring and the stored history freed", || async {
        let stored = local_store.list(&history, ListOptions::default()).await.unwrap();
        (logs.open_rings() == 0 && stored.entries.is_empty()).then_some(())
    })
    .await;
    // The run has stopped by now; nothing it wrote while stopping stays behind.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stored = local_store.list(&history, ListOptions::default()).await.unwrap();
    assert_eq!((logs.open_rings(), stored.entries.len()), (0, 0));
    let (status, _) = node.call("getWorkerLogs", json!({"sid": sid})).await;
    assert_eq!(status, 404);
}
