//! Fencing with real processes (W-LE-4, S-22): the node running a leader-mode worker is frozen
//! (SIGSTOP) past its lease, another node takes over, and when the frozen node resumes
//! (SIGCONT) its `Stels.net` writes are refused, it notices, and it stops its run.
#![cfg(feature = "etcd")]

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::eventually;
use futures_util::StreamExt;
use heterogen::store::etcd::EtcdStore;
use heterogen::store::{Key, Store, WatchEvent};
use serde_json::{Value, json};

/// Each run writes this node's nid to `Stels.net` key `["owner"]`.
const SCRIPT: &str = "await Stels.net.set(['owner'], Stels.config.nid); await Stels.sleep(20);";

fn signal(cluster: &Cluster, index: usize, name: &str) {
    let pid = cluster.node(index).child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args([name, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn owner(store: &EtcdStore) -> Option<Value> {
    store
        .get(&Key::of(&["kv", "owner"]))
        .await
        .unwrap()
        .entry
        .map(|e| e.value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_cannot_write_after_a_takeover_and_stops_its_run() {
    let cluster = Cluster::start(2).await;
    let store = EtcdStore::connect(cluster.etcd.options("/heterogen/testnet/"))
        .await
        .unwrap();
    let sid = cluster
        .start_worker(0, json!({"scriptContent": SCRIPT, "executionMode": "leader"}))
        .await;
    let holder = cluster.single_runner(&sid, 15).await;
    let other = 1 - holder;
    let holder_nid = format!("n{}", holder + 1);
    let other_nid = format!("n{}", other + 1);
    eventually(10, "the holder's writes", || async {
        (owner(&store).await == Some(json!(holder_nid))).then_some(())
    })
    .await;

    signal(&cluster, holder, "-STOP");
    eventually(15, "the other node to take over and write", || async {
        let runs = cluster.runs(other, &sid).await;
        (runs && owner(&store).await == Some(json!(other_nid))).then_some(())
    })
    .await;
    let now = store.get(&Key::of(&["kv", "owner"])).await.unwrap().revision;
    let mut writes = store.watch(&Key::of(&["kv"]), now).await.unwrap();
    signal(&cluster, holder, "-CONT");

    // The resumed node finds its term gone: it stops its run, and nothing it writes lands.
    eventually(10, "the resumed node to stop its run", || async {
        (!cluster.runs(holder, &sid).await).then_some(())
    })
    .await;
    for _ in 0..10 {
        assert_eq!(cluster.runners(&sid).await, [other]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every write since the resume, up to the new leader's 20th: none is the deposed one's.
    let mut seen = 0;
    while seen < 20 {
        let Ok(Some(change)) = tokio::time::timeout(Duration::from_secs(2), writes.next()).await else {
            break;
        };
        let WatchEvent::Put(entry) = change.unwrap() else {
            continue;
        };
        assert_eq!(
            entry.value,
            json!(other_nid),
            "a write of the deposed leader landed"
        );
        seen += 1;
    }
    assert!(seen > 0, "the new leader kept writing");
}
