//! `deleteWorker`: a running worker is stopped, its record, log and stats are gone, the
//! `events` stream says `deleted`, and the answer is the entry that was deleted; a second
//! delete is 404.

mod common;

use common::{TestNode, eventually, quick_runtime, sid, ws_call, ws_next_event};
use serde_json::{Value, json};

#[tokio::test]
async fn a_running_worker_is_deleted_with_everything_the_node_kept() {
    let node = TestNode::start_with(quick_runtime).await;
    let mut ws = node.ws("/ws").await;
    let reply = ws_call(&mut ws, json!(1), "subscribe", json!({"stream": "events"})).await;
    assert_eq!(reply["status"], 200, "{reply}");
    let entry = node
        .start_worker(
            json!({"scriptContent": "logger.info('tick'); await Stels.sleep(10);", "priority": "high"}),
        )
        .await;
    let id = sid(&entry);
    node.wait_for_log(&id, "tick").await;
    let (_, listed) = node.call("listWorkers", json!({})).await;
    let current = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| sid(e) == id)
        .cloned()
        .unwrap();

    let (status, deleted) = node.call("deleteWorker", json!({"sid": id})).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted, current, "the entry as it was when deleted");

    ws_next_event(&mut ws, "deleted", &id).await;
    eventually(10, "the run stopped and its stats gone", || async {
        let (_, stats) = node.call("getWorkerStats", json!({})).await;
        let gone = stats["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["sid"] != id.as_str());
        (gone && stats["runningWorkers"] == 0).then_some(())
    })
    .await;
    let (_, listed) = node.call("listWorkers", json!({})).await;
    assert_eq!(listed, json!([]));
    let (status, _) = node.call("getWorkerLogs", json!({"sid": id})).await;
    assert_eq!(status, 404);
    // Stays gone: nothing the stopping run did brings its stats back.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, stats) = node.call("getWorkerStats", json!({})).await;
    assert_eq!(stats["workers"], json!([]), "{stats}");

    let (status, again) = node.call("deleteWorker", json!({"sid": id})).await;
    assert_eq!((status, again), (404, json!({"error": "Worker not found"})));
}

#[tokio::test]
async fn a_delete_needs_a_sid_and_an_owner() {
    let open = TestNode::start().await;
    for body in [
        json!({}),
        json!({"sid": ""}),
        json!({"sid": 7}),
        json!({"sid": "x".repeat(129)}),
    ] {
        let (status, reply) = open.call("deleteWorker", body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
    }
    let locked = TestNode::start_with(|c| c.open = false).await;
    let (status, reply): (u16, Value) = locked.call("deleteWorker", json!({"sid": "s"})).await;
    assert_eq!(status, 401, "{reply}");
}
