//! A worker's KV usage is limited per store (`--kv-quota-mb`, issue #9 defect 6): a write over
//! the quota throws `QuotaExceeded` and changes nothing, usage shows in `getWorkerStats`,
//! deleting (or another worker overwriting) the data frees it.

mod common;

use common::{TestNode, quick_runtime, sid};
use serde_json::json;

const QUOTA: u64 = 64 * 1024;

/// Runs `script` once; returns its sid and log lines once it logged `done`.
async fn run(node: &TestNode, script: &str) -> (String, Vec<String>) {
    let entry = node
        .start_worker(json!({"scriptContent": script, "mode": "single", "priority": "high"}))
        .await;
    let sid = sid(&entry);
    let lines = node.wait_for_log(&sid, "] done").await;
    (sid, lines)
}

fn line<'a>(lines: &'a [String], label: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(&format!("] {label} ")))
        .unwrap_or_else(|| panic!("no line for {label}: {lines:?}"))
}

/// `(kvNetBytes, kvLocalBytes, kvQuotaBytes)` of `sid` in `getWorkerStats`.
async fn usage(node: &TestNode, sid: &str) -> (u64, u64, u64) {
    let stats = node
        .worker_stats(sid)
        .await
        .expect("the worker is in getWorkerStats");
    let field = |name: &str| {
        stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} missing: {stats}"))
    };
    (field("kvNetBytes"), field("kvLocalBytes"), field("kvQuotaBytes"))
}

#[tokio::test]
async fn writes_past_the_quota_throw_and_deleting_frees_it() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.kv_quota_bytes = QUOTA;
    })
    .await;
    // 10 KiB values: the seventh does not fit into 64 KiB.
    let (writer, lines) = run(
        &node,
        r#"const chunk = "x".repeat(10 * 1024);
           let written = 0;
           try {
             for (let i = 0; i < 100; i++) { await Stels.local.set(["blob", i], chunk); written++; }
           } catch (e) {
             logger.info("refused", e.name, e instanceof Error, written, e.message);
           }
           const failed = await Stels.local.get(["blob", written]);
           logger.info("nothing written", failed.value === null, failed.versionstamp === null);
           await Stels.net.set(["shared"], chunk);
           logger.info("net is separate", true);
           logger.info("done");"#,
    )
    .await;
    let refused = line(&lines, "refused");
    assert!(
        refused.contains("refused QuotaExceeded true 6 Stels.local.set: quota exceeded: this worker holds "),
        "{refused}"
    );
    assert!(refused.contains(&format!("of its {QUOTA} bytes")), "{refused}");
    assert!(line(&lines, "nothing written").contains("nothing written true true"));
    assert!(line(&lines, "net is separate").contains("true"));
    let (net, local, quota) = usage(&node, &writer).await;
    assert_eq!(quota, QUOTA);
    assert!(local > 6 * 10 * 1024 && local <= QUOTA, "{local}");
    assert!(net > 10 * 1024 && net < 11 * 1024, "{net}");

    // Another worker overwriting the shared key takes its bytes over.
    let (other, _) = run(
        &node,
        r#"await Stels.net.set(["shared"], "small"); logger.info("done");"#,
    )
    .await;
    let (net_after, _, _) = usage(&node, &writer).await;
    assert_eq!(net_after, 0);
    assert!(usage(&node, &other).await.0 > 0);

    // Deleting the data frees the quota; the writer can write again.
    let entry = node
        .start_worker(json!({"mode": "single", "priority": "high", "scriptContent": r#"
            for await (const e of Stels.local.list({prefix: ["blob"]})) await Stels.local.delete(e.key);
            await Stels.local.set(["again"], "x".repeat(30 * 1024));
            logger.info("done");"#}))
        .await;
    let cleaner = sid(&entry);
    node.wait_for_log(&cleaner, "] done").await;
    // The cleaner deleted the writer's entries: the writer's usage is gone.
    assert_eq!(usage(&node, &writer).await.1, 0);
    assert!(usage(&node, &cleaner).await.1 > 30 * 1024);
}
