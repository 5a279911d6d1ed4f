//! Failed runs: classification (W-RUN-3), backoff, pause and auto-stop (W-RUN-4), CPU and
//! memory limits that never take the node down or stall the API (W-RUN-6), and the stats of
//! all of it (W-STATS-1..2).

mod common;

use std::time::{Duration, Instant};

use common::{TestNode, eventually, quick_runtime, sid};
use serde_json::json;

#[tokio::test]
async fn critical_errors_back_off_then_stop_the_worker_until_its_script_changes() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.errors.critical_stop_after = 3;
    })
    .await;
    let entry = node
        .start_worker(json!({"scriptContent": "throw new TypeError('boom');", "priority": "high"}))
        .await;
    let sid = sid(&entry);
    let lines = node
        .wait_for_log(&sid, "Worker stopped on this node after 3 critical errors")
        .await;
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("[ERROR] critical error: TypeError: boom"))
            .count(),
        3
    );
    let stats = node.worker_stats(&sid).await.unwrap();
    assert_eq!(stats["isRunning"], false);
    assert_eq!(stats["executions"], 3);
    assert_eq!(stats["errors"], 3);
    assert_eq!(stats["criticalErrors"], 3);
    assert_eq!(stats["networkErrors"], 0);
    assert_eq!(stats["consecutiveErrors"], 3);
    assert_eq!(stats["errorRate"], "100.00%");
    assert_eq!(stats["lastError"], "TypeError: boom");
    assert_eq!(stats["lastErrorType"], "critical");
    let halted = stats["haltedReason"].as_str().expect("why the rules stopped it");
    assert!(halted.contains("3 critical errors"), "{halted}");
    assert!(stats["lastDurationMs"].is_u64());
    // It stays stopped while nothing changes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.worker_stats(&sid).await.unwrap()["executions"], 3);

    // A new script starts it again.
    node.set_script(&entry, "logger.info('fixed');").await;
    node.wait_for_log(&sid, "[INFO] fixed").await;
    let stats = eventually(5, "a success resets consecutive errors", || async {
        node.worker_stats(&sid)
            .await
            .filter(|w| w["consecutiveErrors"] == 0 && w["isRunning"] == true)
    })
    .await;
    assert_eq!(
        stats["criticalErrors"], 3,
        "counters are kept since the node started"
    );
    assert_eq!(stats["haltedReason"], serde_json::Value::Null, "running again");
}

#[tokio::test]
async fn reactivation_restarts_a_stopped_worker() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.errors.critical_stop_after = 2;
    })
    .await;
    let entry = node.start_worker(json!({"scriptContent": "null.x;"})).await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "after 2 critical errors").await;
    let off = node.set_active(&entry, false).await;
    node.set_active(&off, true).await;
    eventually(10, "a second auto-stop after re-activation", || async {
        let lines = node.log_lines(&sid);
        (lines
            .iter()
            .filter(|l| l.contains("after 2 critical errors"))
            .count()
            == 2)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn network_errors_back_off_pause_and_stop_after_too_many_in_a_row() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.errors.network_pause_after = 3;
        c.runtime.errors.consecutive_stop_after = 7;
    })
    .await;
    let script = "const e = new Error('exchange down'); e.name = 'NetworkError'; throw e;";
    let entry = node
        .start_worker(json!({"scriptContent": script, "priority": "critical"}))
        .await;
    let sid = sid(&entry);
    let lines = node.wait_for_log(&sid, "after 7 consecutive errors").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[WARN] 3 network errors in a row: pausing")),
        "{lines:?}"
    );
    let stats = node.worker_stats(&sid).await.unwrap();
    assert_eq!(stats["networkErrors"], 7);
    assert_eq!(stats["criticalErrors"], 0);
    assert_eq!(stats["lastErrorType"], "network");
    assert_eq!(stats["lastError"], "NetworkError: exchange down");
    assert_eq!(stats["isRunning"], false);
}

/// Latency of one HTTP request to the node.
async fn api_latency(node: &TestNode) -> Duration {
    let started = Instant::now();
    let (status, _) = node.call("listWorkers", json!({})).await;
    assert_eq!(status, 200);
    started.elapsed()
}

#[tokio::test]
async fn a_runaway_loop_is_interrupted_and_never_stalls_the_api() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.js_threads = 1;
        c.runtime.cpu_limit = Duration::from_millis(400);
    })
    .await;
    let entry = node
        .start_worker(json!({"scriptContent": "while (true) {}", "priority": "critical"}))
        .await;
    let sid = sid(&entry);
    // While the only JS thread spins, the API keeps answering.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        worst = worst.max(api_latency(&node).await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        worst < Duration::from_secs(1),
        "API stalled for {worst:?} while JS was busy"
    );
    let stats = eventually(10, "the CPU limit to trip", || async {
        node.worker_stats(&sid)
            .await
            .filter(|w| w["errors"].as_u64().unwrap() >= 1)
    })
    .await;
    assert_eq!(stats["lastError"], "CPU time limit exceeded");
    assert_eq!(stats["lastErrorType"], "critical");
    // Another worker still runs on the same (only) thread.
    let other = common::sid(
        &node
            .start_worker(json!({"scriptContent": "logger.info('still here');"}))
            .await,
    );
    node.wait_for_log(&other, "still here").await;
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_and_the_node_survives() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.memory_limit_bytes = 16 * 1024 * 1024;
    })
    .await;
    let bomb = "const hoard = []; while (true) { hoard.push('x'.repeat(100000) + hoard.length); }";
    let entry = node
        .start_worker(json!({"scriptContent": bomb, "priority": "critical"}))
        .await;
    let sid = sid(&entry);
    for _ in 0..10 {
        assert!(api_latency(&node).await < Duration::from_secs(1));
    }
    let stats = eventually(10, "the memory limit to trip", || async {
        node.worker_stats(&sid)
            .await
            .filter(|w| w["errors"].as_u64().unwrap() >= 1)
    })
    .await;
    assert_eq!(stats["lastError"], "Memory limit exceeded");
    // A fresh runtime replaces the exhausted one: the fixed script runs.
    node.set_script(&entry, "logger.info('recovered');").await;
    node.wait_for_log(&sid, "recovered").await;
}
