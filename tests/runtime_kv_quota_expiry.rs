//! Expired KV entries give their bytes back to the worker's quota within one reaper interval
//! (issue #9 defect 6), whether or not the store has deleted them yet.

mod common;

use std::time::Duration;

use common::{TestNode, eventually, quick_runtime, sid};
use serde_json::json;

#[tokio::test]
async fn expired_entries_stop_counting_against_the_quota() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.kv_quota_bytes = 64 * 1024;
        c.reaper_interval = Duration::from_millis(50);
    })
    .await;
    // 40 KiB that expire, then 40 KiB more: only fits once the first have been released.
    let entry = node
        .start_worker(json!({"mode": "single", "priority": "high", "scriptContent": r#"
            const chunk = "x".repeat(40 * 1024);
            await Stels.local.set(["temp"], chunk, {expireIn: 100});
            try { await Stels.local.set(["next"], chunk); logger.info("early", "accepted"); }
            catch (e) { logger.info("early", e.name); }
            logger.info("phase one");
            while (true) {
              await Stels.sleep(50);
              try { await Stels.local.set(["next"], chunk); break; } catch (e) {}
            }
            logger.info("done");"#}))
        .await;
    let sid = sid(&entry);
    let lines = node.wait_for_log(&sid, "phase one").await;
    assert!(
        lines.iter().any(|l| l.contains("] early QuotaExceeded")),
        "{lines:?}"
    );
    let started = std::time::Instant::now();
    node.wait_for_log(&sid, "] done").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let stats = eventually(5, "usage of the second chunk only", || async {
        node.worker_stats(&sid)
            .await
            .filter(|w| w["kvLocalBytes"].as_u64().is_some_and(|b| b < 41 * 1024))
    })
    .await;
    assert!(stats["kvLocalBytes"].as_u64().unwrap() > 40 * 1024, "{stats}");
}
