//! Three real node processes on a real etcd: `parallel` runs on every node, `exclusive` only on
//! its assigned node, `leader` on exactly one (the lease holder); a change made through any
//! node reaches every node, and `stopAllWorkers` on one node stops runs on all (W-LE-1..3,
//! W-UPD-6, W-STOP-1).
#![cfg(feature = "etcd")]

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::eventually;
use serde_json::json;

const SCRIPT: &str = "await Stels.sleep(20);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_placed_across_processes_and_changes_reach_every_node() {
    let cluster = Cluster::start(3).await;
    let parallel = cluster
        .start_worker(0, json!({"scriptContent": SCRIPT, "executionMode": "parallel"}))
        .await;
    let exclusive = cluster
        .start_worker(
            2,
            json!({"scriptContent": SCRIPT, "executionMode": "exclusive", "assignedNode": "n2"}),
        )
        .await;
    let leader = cluster
        .start_worker(1, json!({"scriptContent": SCRIPT, "executionMode": "leader"}))
        .await;

    eventually(15, "parallel on every node", || async {
        (cluster.runners(&parallel).await == [0, 1, 2]).then_some(())
    })
    .await;
    eventually(15, "exclusive on n2", || async {
        (cluster.runners(&exclusive).await == [1]).then_some(())
    })
    .await;
    let holder = eventually(15, "the leader worker on one node, the lease holder", || async {
        let runners = cluster.runners(&leader).await;
        let (_, info) = cluster
            .call(0, "getLeaderInfo", json!({"workerId": leader}))
            .await;
        match runners.as_slice() {
            [one] if info["leader"] == format!("n{}", one + 1) => Some(*one),
            _ => None,
        }
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            cluster.runners(&leader).await,
            [holder],
            "leader-mode ran on more than one node"
        );
        assert_eq!(
            cluster.runners(&exclusive).await,
            [1],
            "exclusive ran off its node"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A change through n3 reaches n1 and n2: the new script runs everywhere.
    let script_hash = |index: usize| {
        let cluster = &cluster;
        let parallel = &parallel;
        async move {
            let (_, stats) = cluster.call(index, "getWorkerStats", json!({})).await;
            let item = stats["workers"]
                .as_array()?
                .iter()
                .find(|w| w["sid"] == *parallel)?
                .clone();
            (item["isRunning"] == true).then(|| item["scriptHash"].as_str().unwrap().to_string())
        }
    };
    let old_hashes = [script_hash(0).await, script_hash(1).await, script_hash(2).await];
    assert!(
        old_hashes.iter().all(|h| h.is_some() && *h == old_hashes[0]),
        "{old_hashes:?}"
    );
    cluster
        .update(2, &parallel, |raw| {
            raw["script"] = json!("await Stels.sleep(25);")
        })
        .await;
    for index in 0..3 {
        eventually(10, &format!("node {index} runs the new script"), || async {
            let hash = script_hash(index).await?;
            (Some(&hash) != old_hashes[0].as_ref()).then_some(())
        })
        .await;
    }

    // deleteWorker through n1 removes the leader-mode worker from every node: no run, no
    // stats, and its lease released (the others keep running).
    let (status, deleted) = cluster.call(0, "deleteWorker", json!({"sid": leader})).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["key"][2], leader.as_str());
    for index in 0..3 {
        eventually(
            10,
            &format!("node {index} forgets the deleted worker"),
            || async {
                let (_, stats) = cluster.call(index, "getWorkerStats", json!({})).await;
                let workers = stats["workers"].as_array()?;
                workers.iter().all(|w| w["sid"] != leader.as_str()).then_some(())
            },
        )
        .await;
    }
    assert_eq!(cluster.runners(&parallel).await, [0, 1, 2]);

    // stopAllWorkers through n2 stops every run on every node.
    let (status, reply) = cluster.call(1, "stopAllWorkers", json!({})).await;
    assert_eq!(status, 200, "{reply}");
    eventually(10, "no run left on any node", || async {
        for sid in [&parallel, &exclusive, &leader] {
            if !cluster.runners(sid).await.is_empty() {
                return None;
            }
        }
        Some(())
    })
    .await;
}
