//! A 3-member etcd under two node processes: losing one member (a follower) changes nothing
//! (every write works, the leader-mode worker keeps its one runner); losing a second (no quorum)
//! gives clear errors and stops leader-mode runs; restarting both brings full service back.
//! (Losing the raft leader costs an election, during which a write may time out and is retried
//! by its client: etcd's behaviour, not a node's.)
#![cfg(feature = "etcd")]

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::etcd::EtcdCluster;
use common::eventually;
use serde_json::json;

const SCRIPT: &str = "await Stels.sleep(20);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lost_member_changes_nothing_and_two_give_clear_errors_until_they_return() {
    let etcd = EtcdCluster::start(3).await;
    let mut cluster = Cluster::start_on(etcd, 2, true, &[]).await;
    let leader = cluster
        .start_worker(0, json!({"scriptContent": SCRIPT, "executionMode": "leader"}))
        .await;
    eventually(15, "the leader worker on one node", || async {
        (cluster.runners(&leader).await.len() == 1).then_some(())
    })
    .await;

    let leader_member = cluster.etcd.leader_index();
    let (first, second) = match leader_member {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    cluster.etcd.members[first].kill();
    for round in 0..3 {
        let (status, reply) = cluster
            .call(round % 2, "setWorker", json!({"scriptContent": SCRIPT}))
            .await;
        assert_eq!(status, 200, "with one member down: {reply}");
    }
    eventually(
        10,
        "one runner of the leader worker with a member down",
        || async { (cluster.runners(&leader).await.len() == 1).then_some(()) },
    )
    .await;

    cluster.etcd.members[second].kill();
    eventually(15, "a clear error without quorum", || async {
        let (status, reply) = cluster
            .call(1, "setWorker", json!({"scriptContent": SCRIPT}))
            .await;
        let message = reply["error"].as_str().unwrap_or_default().to_string();
        (status == 503 && message.contains("Storage")).then_some(())
    })
    .await;
    eventually(10, "leader-mode runs to stop without quorum", || async {
        cluster.runners(&leader).await.is_empty().then_some(())
    })
    .await;

    cluster.etcd.members[first].restart();
    cluster.etcd.members[second].restart();
    cluster.etcd.wait_ready().await;
    eventually(20, "writes through both nodes again", || async {
        let (a, _) = cluster
            .call(0, "setWorker", json!({"scriptContent": SCRIPT}))
            .await;
        let (b, _) = cluster
            .call(1, "setWorker", json!({"scriptContent": SCRIPT}))
            .await;
        (a == 200 && b == 200).then_some(())
    })
    .await;
    eventually(20, "the leader worker on one node again", || async {
        (cluster.runners(&leader).await.len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.runners(&leader).await.len(), 1);
}
