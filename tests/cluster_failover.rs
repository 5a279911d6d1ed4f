//! `kill -9` of the node holding a leader lease, with real node processes on a real etcd:
//! another node runs the worker within one lease duration plus one renewal interval (W-LE-2),
//! and never two at once.
#![cfg(feature = "etcd")]

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::eventually;
use serde_json::json;

/// `--lease-ms` and `--lease-renew-ms` of [`common::cluster::QUICK`].
const LEASE: Duration = Duration::from_millis(2000);
const RENEW: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_takes_over_a_leader_worker_after_its_holder_is_killed() {
    let mut cluster = Cluster::start(3).await;
    let sid = cluster
        .start_worker(
            0,
            json!({"scriptContent": "await Stels.sleep(20);", "executionMode": "leader"}),
        )
        .await;
    let holder = cluster.single_runner(&sid, 15).await;

    cluster.kill(holder).await;
    let killed = Instant::now();
    let survivor = eventually(15, "another node to take over", || async {
        match cluster.runners(&sid).await.as_slice() {
            [one] => Some(*one),
            [] => None,
            many => panic!("leader worker on {many:?} at once"),
        }
    })
    .await;
    let took = killed.elapsed();
    assert_ne!(survivor, holder);
    // One lease plus one renewal interval, and room for process scheduling on a loaded machine
    // (etcd also ends leases on its own 500 ms tick).
    let bound = LEASE + RENEW + Duration::from_millis(2500);
    assert!(took <= bound, "takeover took {took:?} (bound {bound:?})");
    let (_, info) = cluster
        .call(survivor, "getLeaderInfo", json!({"workerId": sid}))
        .await;
    assert_eq!(info["leader"], format!("n{}", survivor + 1), "{info}");
    for _ in 0..10 {
        assert_eq!(cluster.runners(&sid).await, [survivor]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
