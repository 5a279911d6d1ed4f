//! `listWorkers`: W-LIST-1 (every worker, active or not, in key order). The speed goal of
//! W-LIST-2 is measured in `benches/requests.rs`, not asserted here.

mod common;

use common::{TestNode, raw};
use serde_json::json;

#[tokio::test]
async fn every_worker_in_key_order() {
    let node = TestNode::start().await;
    let mut sids = Vec::new();
    for i in 0..60 {
        let entry = node.create_worker(json!({"note": format!("w{i}")})).await;
        if i % 3 == 0 {
            let mut r = raw(&entry);
            r["active"] = json!(true);
            let (status, _) = node
                .call(
                    "updateWorker",
                    json!({"channel": entry["value"]["channel"], "raw": r}),
                )
                .await;
            assert_eq!(status, 200);
        }
        sids.push(raw(&entry)["sid"].as_str().unwrap().to_string());
    }
    sids.sort();
    let (status, list) = node.call("listWorkers", json!({})).await;
    assert_eq!(status, 200);
    let listed: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"]["raw"]["sid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, sids);
    let active = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["value"]["raw"]["active"] == true)
        .count();
    assert_eq!(active, 20);
}

#[tokio::test]
async fn other_keys_in_the_store_are_not_listed() {
    let node = TestNode::start().await;
    let entry = node.create_worker(json!({})).await;
    let store = node.running().store().clone();
    use heterogen::store::{AtomicWrite, Key};
    let write = AtomicWrite::new()
        .set(Key::of(&["ami", "leader", "x"]), json!({"leader": "s-1"}))
        .set(Key::of(&["ami", "workerz", "y"]), json!(1))
        .set(Key::of(&["ami"]), json!(2));
    store.commit(write).await.unwrap();
    let (_, list) = node.call("listWorkers", json!({})).await;
    assert_eq!(list, json!([entry]));
}
