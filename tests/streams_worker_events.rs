//! The `events` stream carries worker records as they are saved (with the record, as
//! `listWorkers` gives it) so a live view needs no polling; a worker a person stopped has no
//! `haltedReason` in the stats, and every run's duration is reported.

mod common;

use common::{TestNode, quick_runtime, raw, sid, ws_call, ws_next_event};
use serde_json::{Value, json};

#[tokio::test]
async fn saves_from_any_client_arrive_with_the_record() {
    let node = TestNode::start_with(quick_runtime).await;
    let mut ws = node.ws("/ws").await;
    let reply = ws_call(&mut ws, json!(1), "subscribe", json!({"stream": "events"})).await;
    assert_eq!(reply["status"], 200, "{reply}");

    let created = node.create_worker(json!({"note": "first"})).await;
    let id = sid(&created);
    let saved = ws_next_event(&mut ws, "saved", &id).await;
    assert_eq!(
        saved["entry"], created,
        "the record exactly as setWorker answered it"
    );

    let updated = node.update_field(&created, "note", json!("second")).await;
    let saved = ws_next_event(&mut ws, "saved", &id).await;
    assert_eq!(saved["entry"]["versionstamp"], updated["versionstamp"]);
    assert_eq!(raw(&saved["entry"])["note"], "second");
}

#[tokio::test]
async fn a_worker_stopped_by_a_person_is_not_halted_and_runs_have_durations() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"scriptContent": "await Stels.sleep(30); logger.info('ran');"}))
        .await;
    let id = sid(&entry);
    node.wait_for_log(&id, "[INFO] ran").await;
    let stats = common::eventually(5, "a finished run", || async {
        node.worker_stats(&id)
            .await
            .filter(|w| w["executions"].as_u64() >= Some(1))
    })
    .await;
    let duration = stats["lastDurationMs"].as_u64().expect("a duration");
    assert!(duration >= 30, "the run slept 30 ms: {duration}");

    let current = node
        .call("listWorkers", json!({}))
        .await
        .1
        .as_array()
        .unwrap()
        .iter()
        .find(|e| sid(e) == id)
        .cloned()
        .unwrap();
    node.set_active(&current, false).await;
    let stats = common::eventually(5, "the run stopped", || async {
        node.worker_stats(&id).await.filter(|w| w["isRunning"] == false)
    })
    .await;
    assert_eq!(stats["haltedReason"], Value::Null);
}
