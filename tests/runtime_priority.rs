//! W-RUN-5 over a real node: with the JS pool saturated, ready workers are served
//! critical > high > normal > low, and the lowest class still gets its minimum share.

mod common;

use std::time::Duration;

use common::{TestNode, quick_runtime, sid};
use serde_json::json;

/// Busy for 3 ms, then yield; log the iteration count every 10 iterations.
const HUNGRY: &str = r#"let n = 0;
while (!shouldStop()) {
  const t = Date.now(); while (Date.now() - t < 3) {}
  await Stels.sleep(0);
  n++;
  if (n % 10 === 0) logger.info("n", n);
}"#;

fn last_count(node: &TestNode, sid: &str) -> u64 {
    node.log_lines(sid)
        .iter()
        .filter_map(|l| l.split("[INFO] n ").nth(1).and_then(|n| n.trim().parse().ok()))
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_saturated_pool_serves_by_priority_without_starving_low() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.js_threads = 1;
    })
    .await;
    let mut sids = Vec::new();
    // Two workers per class, so every class always has one ready while the other sleeps.
    for priority in ["low", "normal", "high", "critical"] {
        let mut class = Vec::new();
        for _ in 0..2 {
            let entry = node
                .start_worker(json!({"scriptContent": HUNGRY, "mode": "single", "priority": priority}))
                .await;
            class.push(sid(&entry));
        }
        sids.push((priority, class));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts: Vec<(&str, u64)> = sids
        .iter()
        .map(|(p, class)| (*p, class.iter().map(|s| last_count(&node, s)).sum()))
        .collect();
    eprintln!("iterations by class: {counts:?}");
    let [low, normal, high, critical] = [counts[0].1, counts[1].1, counts[2].1, counts[3].1];
    assert!(
        critical > high && high > normal && normal > low,
        "not served by priority: {counts:?}"
    );
    assert!(low >= 10, "low starved: {counts:?}");
    // The API answers while the only JS thread is saturated.
    let (status, _) = node.call("getWorkerStats", json!({})).await;
    assert_eq!(status, 200);
}
