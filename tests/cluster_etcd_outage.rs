//! Losing etcd under a running cluster of real node processes: leader-mode runs stop before
//! their lease deadline (no second leader can appear meanwhile), runs that need no store go on,
//! requests that need the store get 503 naming the cause instead of hanging, and once etcd is
//! back the nodes elect a leader again and changes reach every node (their watches resumed).
#![cfg(feature = "etcd")]

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::eventually;
use serde_json::json;

const SCRIPT: &str = "await Stels.sleep(20);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_rides_out_an_etcd_outage_and_recovers() {
    let mut cluster = Cluster::start(2).await;
    let parallel = cluster
        .start_worker(0, json!({"scriptContent": SCRIPT, "executionMode": "parallel"}))
        .await;
    let leader = cluster
        .start_worker(1, json!({"scriptContent": SCRIPT, "executionMode": "leader"}))
        .await;
    eventually(
        15,
        "parallel on both nodes and the leader worker on one",
        || async {
            let both = cluster.runners(&parallel).await == [0, 1];
            (both && cluster.runners(&leader).await.len() == 1).then_some(())
        },
    )
    .await;

    assert_eq!(probe(&cluster, "readyz").await, (200, "ready\n".to_string()));
    cluster.etcd.members[0].kill();
    let lost = Instant::now();
    eventually(10, "the leader-mode run to stop without etcd", || async {
        cluster.runners(&leader).await.is_empty().then_some(())
    })
    .await;
    // It must stop before its lease (2 s) could have ended, or another node could lead meanwhile.
    assert!(
        lost.elapsed() < Duration::from_millis(2000) + Duration::from_millis(1500),
        "stopped after {:?}",
        lost.elapsed()
    );
    assert_eq!(
        cluster.runners(&parallel).await,
        [0, 1],
        "runs that need no store go on"
    );
    let asked = Instant::now();
    let (status, reply) = cluster.call(0, "listWorkers", json!({})).await;
    assert_eq!(status, 503, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("etcd"), "{reply}");
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "the request hung for {:?}",
        asked.elapsed()
    );
    eventually(
        10,
        "/readyz to say the node is not ready without etcd",
        || async { (probe(&cluster, "readyz").await == (503, "not ready\n".to_string())).then_some(()) },
    )
    .await;
    assert_eq!(
        probe(&cluster, "healthz").await,
        (200, "ok\n".to_string()),
        "alive all the same"
    );
    for _ in 0..5 {
        assert!(
            cluster.runners(&leader).await.is_empty(),
            "a leader ran without etcd"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.etcd.members[0].restart();
    cluster.etcd.wait_ready().await;
    eventually(20, "/readyz ready again", || async {
        (probe(&cluster, "readyz").await.0 == 200).then_some(())
    })
    .await;
    eventually(20, "a leader again, on one node", || async {
        (cluster.runners(&leader).await.len() == 1).then_some(())
    })
    .await;
    cluster
        .update(1, &parallel, |raw| raw["active"] = json!(false))
        .await;
    eventually(10, "the change to reach both nodes", || async {
        cluster.runners(&parallel).await.is_empty().then_some(())
    })
    .await;
    for index in 0..2 {
        eventually(10, "both nodes listed again", || async {
            let (_, nodes) = cluster.call(index, "listNodes", json!({})).await;
            (nodes["total"] == 2).then_some(())
        })
        .await;
    }
}

/// `GET /{path}` on node 0: the status and the text.
async fn probe(cluster: &Cluster, path: &str) -> (u16, String) {
    let url = format!("{}{path}", cluster.node(0).url());
    let response = cluster.http.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}
