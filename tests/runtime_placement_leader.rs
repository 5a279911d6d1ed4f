//! Placement across two in-process nodes sharing one store: `parallel` runs on both,
//! `exclusive` only on its assigned node, `leader` on exactly one — the lease holder — with
//! `getLeaderInfo` telling which (W-LE-1..3, W-LEAD-1..2). Failover after a crash of the leader
//! happens within one lease duration.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, quick_runtime};
use heterogen::RunningNode;
use heterogen::store::Store;
use heterogen::store::fjall::FjallStore;
use serde_json::{Value, json};

struct Pair {
    a: Option<RunningNode>,
    b: Option<RunningNode>,
    _dirs: (tempfile::TempDir, tempfile::TempDir, tempfile::TempDir),
    client: reqwest::Client,
}

async fn node(nid: &str, dir: &std::path::Path, store: Arc<dyn Store>) -> RunningNode {
    let mut config = common::test_config(dir);
    config.nid = nid.into();
    quick_runtime(&mut config);
    heterogen::start_with_store(config, store).await.unwrap()
}

async fn pair() -> Pair {
    let shared = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(FjallStore::open(shared.path(), false).unwrap());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node("s-000a", da.path(), store.clone()).await;
    let b = node("s-000b", db.path(), store).await;
    Pair {
        a: Some(a),
        b: Some(b),
        _dirs: (shared, da, db),
        client: reqwest::Client::new(),
    }
}

async fn call(client: &reqwest::Client, node: &RunningNode, method: &str, body: Value) -> (u16, Value) {
    let url = format!("http://{}/", node.local_addr());
    let response = client
        .post(url)
        .json(&json!({"webfix":"1.0","method":method,"body":body}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn running_here(client: &reqwest::Client, node: &RunningNode, sid: &str) -> bool {
    let (_, stats) = call(client, node, "getWorkerStats", json!({})).await;
    stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["sid"] == sid && w["isRunning"] == true)
}

async fn start_worker(p: &Pair, body: Value) -> String {
    let a = p.a.as_ref().unwrap();
    let (_, entry) = call(&p.client, a, "setWorker", body).await;
    let mut raw = entry["value"]["raw"].clone();
    raw["active"] = json!(true);
    let (status, _) = call(
        &p.client,
        a,
        "updateWorker",
        json!({"channel": entry["value"]["channel"], "raw": raw}),
    )
    .await;
    assert_eq!(status, 200);
    raw["sid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn parallel_runs_everywhere_and_exclusive_only_on_its_node() {
    let p = pair().await;
    let (a, b) = (p.a.as_ref().unwrap(), p.b.as_ref().unwrap());
    let parallel = start_worker(&p, json!({"scriptContent": "await Stels.sleep(50);"})).await;
    let exclusive = start_worker(
        &p,
        json!({"scriptContent": "await Stels.sleep(50);", "executionMode": "exclusive", "assignedNode": "s-000b"}),
    )
    .await;
    eventually(10, "parallel on both nodes, exclusive on s-000b", || async {
        (running_here(&p.client, a, &parallel).await
            && running_here(&p.client, b, &parallel).await
            && running_here(&p.client, b, &exclusive).await)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !running_here(&p.client, a, &exclusive).await,
        "exclusive ran on the wrong node"
    );
}

#[tokio::test]
async fn a_leader_worker_runs_on_exactly_one_node_and_fails_over_when_the_leader_dies() {
    let mut p = pair().await;
    let sid = start_worker(
        &p,
        json!({"scriptContent": "await Stels.sleep(20);", "executionMode": "leader"}),
    )
    .await;
    let client = p.client.clone();
    let (leader_nid, info) = eventually(10, "a leader to be elected and running", || async {
        let (a, b) = (p.a.as_ref().unwrap(), p.b.as_ref().unwrap());
        let (_, info) = call(&client, a, "getLeaderInfo", json!({"workerId": sid})).await;
        let on_a = running_here(&client, a, &sid).await;
        let on_b = running_here(&client, b, &sid).await;
        (info["hasLeader"] == true && (on_a || on_b))
            .then(|| (info["leader"].as_str().unwrap().to_string(), info))
    })
    .await;
    assert_eq!(info["isExpired"], false);
    assert!(info["expiresIn"].as_i64().unwrap() > 0);
    // Exactly one runs it, and it is the lease holder, for a while.
    for _ in 0..10 {
        let on_a = running_here(&client, p.a.as_ref().unwrap(), &sid).await;
        let on_b = running_here(&client, p.b.as_ref().unwrap(), &sid).await;
        assert!(
            on_a != on_b,
            "leader worker running on {} nodes",
            on_a as u8 + on_b as u8
        );
        assert_eq!(on_a, leader_nid == "s-000a");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The leader dies without releasing its lease; the other takes over within a lease duration.
    let (dead, survivor) = if leader_nid == "s-000a" {
        (p.a.take(), p.b.take())
    } else {
        (p.b.take(), p.a.take())
    };
    let died_at = Instant::now();
    dead.unwrap().kill();
    let survivor = survivor.unwrap();
    eventually(10, "the surviving node to take over", || async {
        running_here(&client, &survivor, &sid).await.then_some(())
    })
    .await;
    let took = died_at.elapsed();
    assert!(
        took < Duration::from_millis(1500 + 700),
        "takeover took {took:?} with a 1.5 s lease"
    );
    let (_, info) = call(&client, &survivor, "getLeaderInfo", json!({"workerId": sid})).await;
    assert_ne!(info["leader"], leader_nid.as_str());
    assert_eq!(info["hasLeader"], true);
    survivor.shutdown().await.unwrap();
}

#[tokio::test]
async fn deactivating_a_leader_worker_releases_its_lease() {
    let p = pair().await;
    let a = p.a.as_ref().unwrap();
    let (_, entry) = call(
        &p.client,
        a,
        "setWorker",
        json!({"executionMode": "leader", "scriptContent": "await Stels.sleep(20);"}),
    )
    .await;
    let mut raw = entry["value"]["raw"].clone();
    let sid = raw["sid"].as_str().unwrap().to_string();
    raw["active"] = json!(true);
    let (_, active) = call(
        &p.client,
        a,
        "updateWorker",
        json!({"channel": entry["value"]["channel"], "raw": raw}),
    )
    .await;
    eventually(10, "a leader", || async {
        let (_, info) = call(&p.client, a, "getLeaderInfo", json!({"workerId": sid})).await;
        (info["hasLeader"] == true).then_some(())
    })
    .await;
    let mut raw = active["value"]["raw"].clone();
    raw["active"] = json!(false);
    call(
        &p.client,
        a,
        "updateWorker",
        json!({"channel": entry["value"]["channel"], "raw": raw}),
    )
    .await;
    eventually(10, "the lease to be released", || async {
        let (_, info) = call(&p.client, a, "getLeaderInfo", json!({"workerId": sid})).await;
        (info["message"] == "No leader elected yet").then_some(())
    })
    .await;
}
