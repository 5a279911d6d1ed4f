//! A leader-mode run's `Stels.net` writes carry its term's fence (S-22, W-LE-4): once another
//! node's election has begun a newer term, the old leader's writes are refused with
//! `StaleLeader` and nothing of them is stored, while `Stels.local` (this node's own store) is
//! not fenced.
//!
//! The newer term is made by writing the worker's epoch record directly, as another node's
//! election would, while this node still believes it leads.

mod common;

use common::{TestNode, eventually, quick_runtime, sid};
use heterogen::store::{AtomicWrite, CommitOutcome, Key};
use serde_json::json;

#[tokio::test]
async fn a_stale_leaders_net_writes_are_refused() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(
            json!({"executionMode": "leader", "mode": "single", "priority": "high", "scriptContent": r#"
            for (let i = 0; i < 100000 && !shouldStop(); i++) {
              try { await Stels.net.set(["fenced"], i); logger.info("wrote", i); }
              catch (e) { logger.info("refused", e.name, e.message); }
              await Stels.local.set(["unfenced"], i);
              await Stels.sleep(20);
            }"#}),
        )
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "] wrote").await;

    let store = node.running().store().clone();
    let epoch_key = Key::of(&["ami", "leader-epoch", &sid]);
    let current = store
        .get(&epoch_key)
        .await
        .unwrap()
        .entry
        .expect("an elected term");
    assert_eq!(current.value, json!({"epoch": 1}));
    let newer = AtomicWrite::new()
        .check(epoch_key.clone(), Some(current.versionstamp))
        .set(epoch_key, json!({"epoch": 2}));
    assert!(matches!(
        store.commit(newer).await.unwrap(),
        CommitOutcome::Committed(_)
    ));

    let lines = node.wait_for_log(&sid, "] refused").await;
    let refusal = lines.iter().find(|l| l.contains("] refused")).unwrap();
    assert!(
        refusal.contains("StaleLeader") && refusal.contains("epoch 1"),
        "{refusal}"
    );
    let fenced = Key::of(&["kv", "fenced"]);
    let last = store.get(&fenced).await.unwrap().entry.unwrap();
    // The run goes on (its own lease record still stands) and every later write is refused.
    eventually(10, "two more refusals", || async {
        let refusals = node
            .log_lines(&sid)
            .iter()
            .filter(|l| l.contains("] refused"))
            .count();
        (refusals >= 3).then_some(())
    })
    .await;
    let after = store.get(&fenced).await.unwrap().entry.unwrap();
    assert_eq!(after.versionstamp, last.versionstamp, "a refused write landed");
    let wrote_after_refusal = node
        .log_lines(&sid)
        .iter()
        .skip_while(|l| !l.contains("] refused"))
        .any(|l| l.contains("] wrote"));
    assert!(!wrote_after_refusal);
    // This node's own store is not the cluster's: its writes go on.
    let local = node
        .running()
        .local_store()
        .get(&Key::of(&["kv", "unfenced"]))
        .await
        .unwrap();
    assert!(local.entry.unwrap().value.deserialize::<u64>().unwrap() > 0);
}
