//! Workers run from the store: start on activation, stop on deactivation (a long
//! `Stels.sleep` ends at once), hot reload on a script change, `loop` and `single` modes,
//! workers already active when a node starts (W-UPD-6, W-RUN-1, W-RUN-2, W-RUN-7, W-STATS-1..3).

mod common;

use std::time::{Duration, Instant};

use common::{TestNode, eventually, quick_runtime, sid};
use serde_json::json;
use sha2::Digest;

#[tokio::test]
async fn activation_runs_a_loop_worker_and_deactivation_stops_it_at_once() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({
            "scriptContent": "logger.info('tick', Stels.config.sid);\nif (shouldStop()) return;\nawait Stels.sleep(60000);",
            "priority": "critical",
        }))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, &format!("[INFO] tick {sid}")).await;
    let stats = eventually(10, "the worker reported running", || async {
        node.worker_stats(&sid).await.filter(|w| w["isRunning"] == true)
    })
    .await;
    let script = entry["value"]["raw"]["script"].as_str().unwrap();
    let expected_hash = hex::encode(&sha2::Sha256::digest(script.as_bytes())[..4]);
    assert_eq!(stats["scriptHash"], expected_hash);

    // The run is inside a 60 s sleep: deactivation must end it at once, not after the sleep.
    let stopped_at = Instant::now();
    node.set_active(&entry, false).await;
    eventually(5, "the worker stopped", || async {
        node.worker_stats(&sid).await.filter(|w| w["isRunning"] == false)
    })
    .await;
    assert!(stopped_at.elapsed() < Duration::from_secs(5));
    let lines = node.wait_for_log(&sid, "Worker stopped").await;
    assert!(
        !lines.iter().any(|l| l.contains("[ERROR]")),
        "a stop is not an error: {lines:?}"
    );
    let (_, stats) = node.call("getWorkerStats", json!({})).await;
    assert_eq!(stats["runningWorkers"], 0);
    assert_eq!(
        stats["totalWorkers"], 1,
        "a worker that ran since start stays listed"
    );
}

#[tokio::test]
async fn loop_mode_repeats_and_counts_executions() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"scriptContent": "logger.debug('run');", "priority": "high"}))
        .await;
    let sid = sid(&entry);
    let stats = eventually(10, "five executions", || async {
        node.worker_stats(&sid)
            .await
            .filter(|w| w["executions"].as_u64().unwrap() >= 5)
    })
    .await;
    assert_eq!(stats["errors"], 0);
    assert_eq!(
        stats["errorRate"], "0.00%",
        "two decimals once there are executions"
    );
    assert_eq!(stats["consecutiveErrors"], 0);
    assert!(stats["lastRun"].as_i64().unwrap() > 0);
    assert!(stats["uptime"].as_i64().unwrap() >= 0);
    let lines = node.log_lines(&sid);
    assert!(
        lines.iter().filter(|l| l.contains("[DEBUG] run")).count() >= 5,
        "{lines:?}"
    );
}

#[tokio::test]
async fn low_priority_loops_wait_a_second_between_runs() {
    let node = TestNode::start_with(quick_runtime).await;
    let low = sid(&node
        .start_worker(json!({"scriptContent": "logger.info('low');", "priority": "low"}))
        .await);
    let high = sid(&node
        .start_worker(json!({"scriptContent": "logger.info('high');", "priority": "high"}))
        .await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let low_runs = node.worker_stats(&low).await.unwrap()["executions"]
        .as_u64()
        .unwrap();
    let high_runs = node.worker_stats(&high).await.unwrap()["executions"]
        .as_u64()
        .unwrap();
    // low: a 1 s gap allows at most 2 runs in 1.5 s; high: a 10 ms gap allows many.
    assert!((1..=2).contains(&low_runs), "low ran {low_runs} times");
    assert!(high_runs >= 10, "high ran only {high_runs} times");
}

#[tokio::test]
async fn single_mode_runs_once() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"scriptContent": "logger.info('once');", "mode": "single"}))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "Worker finished").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = node.worker_stats(&sid).await.unwrap();
    assert_eq!(stats["executions"], 1);
    assert_eq!(stats["isRunning"], false);
    assert_eq!(
        node.log_lines(&sid)
            .iter()
            .filter(|l| l.contains("[INFO] once"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_script_change_hot_reloads_and_a_resend_of_the_same_script_does_not() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(
            json!({"scriptContent": "logger.info('v1');\nawait Stels.sleep(60000);", "priority": "high"}),
        )
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "[INFO] v1").await;
    let first_hash = node.worker_stats(&sid).await.unwrap()["scriptHash"].clone();

    // The existing client sends the stored script back with every start/stop: no reload.
    let resent = node
        .set_script(&entry, entry["value"]["raw"]["script"].as_str().unwrap())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let starts = node
        .log_lines(&sid)
        .iter()
        .filter(|l| l.contains("Worker started"))
        .count();
    assert_eq!(starts, 1, "an unchanged script restarted the worker");

    node.set_script(&resent, "logger.info('v2');\nawait Stels.sleep(60000);")
        .await;
    let lines = node.wait_for_log(&sid, "[INFO] v2").await;
    let stopped = lines
        .iter()
        .position(|l| l.contains("Worker stopped"))
        .expect("old run stopped");
    let v2 = lines.iter().position(|l| l.contains("[INFO] v2")).unwrap();
    assert!(
        stopped < v2,
        "the old run must end before the new code starts: {lines:?}"
    );
    let hash = node.worker_stats(&sid).await.unwrap()["scriptHash"].clone();
    assert_ne!(hash, first_hash);
}

#[tokio::test]
async fn workers_active_when_a_node_starts_are_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = |d: &std::path::Path| {
        let mut c = common::test_config(d);
        quick_runtime(&mut c);
        c
    };
    let node = heterogen::start(config(dir.path())).await.unwrap();
    let url = format!("http://{}/", node.local_addr());
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(&url)
        .json(&json!({"webfix":"1.0","method":"setWorker","body":{"scriptContent":"logger.info('alive');"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut raw = created["value"]["raw"].clone();
    raw["active"] = json!(true);
    let response = client
        .post(&url)
        .json(&json!({"webfix":"1.0","method":"updateWorker","body":{"channel":created["value"]["channel"],"raw":raw}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    node.shutdown().await.unwrap();

    let node = heterogen::start(config(dir.path())).await.unwrap();
    let sid = created["value"]["raw"]["sid"].as_str().unwrap().to_string();
    let logs = node.logs().clone();
    eventually(10, "the worker ran after the restart", || async {
        logs.recent(&sid)
            .iter()
            .any(|l| l.content.contains("[INFO] alive"))
            .then_some(())
    })
    .await;
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_run_that_ignores_the_stop_is_interrupted_after_the_grace_period() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.stop_grace = Duration::from_millis(500);
        // After a stop every yield point returns at once, so an ignoring script spins: keep
        // the CPU limit out of the way to see the grace period act.
        c.runtime.cpu_limit = Duration::from_secs(5);
    })
    .await;
    // Never looks at shouldStop(); yields often, so only the grace period can end it.
    let stubborn = "logger.info('stubborn');\nwhile (true) { const t = Date.now(); while (Date.now() - t < 5) {} await null; }";
    let entry = node
        .start_worker(json!({"scriptContent": stubborn, "mode": "single"}))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "stubborn").await;
    let asked = Instant::now();
    node.set_active(&entry, false).await;
    eventually(10, "the run to be interrupted", || async {
        node.worker_stats(&sid).await.filter(|w| w["isRunning"] == false)
    })
    .await;
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "interrupted before its grace period: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "not interrupted after its grace period: {took:?}"
    );
    let stats = node.worker_stats(&sid).await.unwrap();
    assert_eq!(stats["errors"], 0, "a stop is not the script's error");
}

#[tokio::test]
async fn statistics_show_each_workers_memory_and_cpu_time() {
    let node = TestNode::start_with(quick_runtime).await;
    // A worker that holds about 2 MB and computes for a while in each run, and an idle one.
    let busy = sid(&node
        .start_worker(json!({
            "scriptContent": "globalThis.keep ??= new Array(250000).fill(1.5);\nlet x = 0; const until = Date.now() + 30; while (Date.now() < until) x++;",
            "priority": "high",
        }))
        .await);
    let idle = sid(&node
        .start_worker(json!({"scriptContent": "await Stels.sleep(60000);", "priority": "high"}))
        .await);
    let busy_stats = eventually(20, "the busy worker's figures", || async {
        node.worker_stats(&busy)
            .await
            .filter(|w| w["cpuMs"].as_u64().unwrap_or(0) >= 100)
    })
    .await;
    let idle_stats = eventually(10, "the idle worker's figures", || async {
        node.worker_stats(&idle)
            .await
            .filter(|w| w["memoryBytes"].is_u64())
    })
    .await;
    let busy_memory = busy_stats["memoryBytes"].as_u64().unwrap();
    let idle_memory = idle_stats["memoryBytes"].as_u64().unwrap();
    assert!(busy_memory > 2_000_000, "busy: {busy_stats}");
    assert!((10_000..1_000_000).contains(&idle_memory), "idle: {idle_stats}");
    // Sleeping costs no CPU time.
    assert!(idle_stats["cpuMs"].as_u64().unwrap() < 100, "idle: {idle_stats}");
}
