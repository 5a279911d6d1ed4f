//! `getWorkerStats` (W-STATS-1 on a node that runs nothing yet) and `getLeaderInfo`
//! (W-LEAD-1, W-LEAD-2) answered from the lease record in the store.

mod common;

use common::TestNode;
use heterogen::store::{AtomicWrite, Key};
use serde_json::json;

#[tokio::test]
async fn stats_of_a_node_that_runs_nothing() {
    let node = TestNode::start().await;
    node.create_worker(json!({})).await;
    let (status, stats) = node.call("getWorkerStats", json!({})).await;
    assert_eq!(status, 200);
    for field in [
        "totalWorkers",
        "runningWorkers",
        "stoppedWorkers",
        "totalExecutions",
        "totalErrors",
        "totalNetworkErrors",
        "totalCriticalErrors",
    ] {
        assert_eq!(stats[field], 0, "{field}");
    }
    assert_eq!(stats["workers"], json!([]));
    let ts = stats["timestamp"].as_i64().unwrap();
    assert!((chrono::Utc::now().timestamp_millis() - ts).abs() < 60_000);
}

#[tokio::test]
async fn leader_info_validates_the_worker_id() {
    let node = TestNode::start().await;
    for body in [
        json!({}),
        json!({"workerId": 5}),
        json!({"workerId": "abc"}),
        json!({"workerId": ""}),
    ] {
        assert_eq!(
            node.call("getLeaderInfo", body.clone()).await,
            (400, json!({"error": "Invalid workerId"})),
            "{body}"
        );
    }
}

#[tokio::test]
async fn no_lease_yet() {
    let node = TestNode::start().await;
    let sid = uuid::Uuid::new_v4().to_string();
    let (status, body) = node.call("getLeaderInfo", json!({"workerId": sid})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"workerId": sid, "hasLeader": false, "message": "No leader elected yet"})
    );
}

#[tokio::test]
async fn a_live_lease_and_an_expired_one() {
    let node = TestNode::start().await;
    let store = node.running().store().clone();
    let now = chrono::Utc::now().timestamp_millis();
    let live = uuid::Uuid::new_v4().to_string();
    let dead = uuid::Uuid::new_v4().to_string();
    let lease = |expires: i64| json!({"leader": "s-0002", "timestamp": now - 1000, "expiresAt": expires, "renewedAt": now - 500, "epoch": 7});
    let write = AtomicWrite::new()
        .set(Key::of(&["ami", "leader", &live]), lease(now + 60_000))
        .set(Key::of(&["ami", "leader", &dead]), lease(now - 1));
    store.commit(write).await.unwrap();

    let (status, body) = node.call("getLeaderInfo", json!({"workerId": live})).await;
    assert_eq!(status, 200);
    assert_eq!(body["hasLeader"], true);
    assert_eq!(body["isExpired"], false);
    assert_eq!(body["leader"], "s-0002");
    assert_eq!(body["expiresAt"], now + 60_000);
    assert_eq!(body["renewedAt"], now - 500);
    assert_eq!(body["timestamp"], now - 1000);
    assert_eq!(
        body["epoch"], 7,
        "the lease's fencing number (W-LE-4), for the console"
    );
    let expires_in = body["expiresIn"].as_i64().unwrap();
    assert!(expires_in > 0 && expires_in <= 60_000, "{expires_in}");

    let (_, body) = node.call("getLeaderInfo", json!({"workerId": dead})).await;
    assert_eq!(body["hasLeader"], false);
    assert_eq!(body["isExpired"], true);
    assert_eq!(body["expiresIn"], 0);
}
