//! `stopAllWorkers`: W-STOP-1..3.

mod common;

use common::{TestNode, raw};
use serde_json::{Value, json};

async fn activate(node: &TestNode, entry: &Value) -> Value {
    let mut r = raw(entry);
    r["active"] = json!(true);
    let (status, updated) = node
        .call(
            "updateWorker",
            json!({"channel": entry["value"]["channel"], "raw": r}),
        )
        .await;
    assert_eq!(status, 200);
    updated
}

#[tokio::test]
async fn no_workers() {
    let node = TestNode::start().await;
    let (status, body) = node.call("stopAllWorkers", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"message":"No workers found","total":0,"stopped":0,"failed":0,"workers":[]})
    );
}

#[tokio::test]
async fn active_workers_are_stopped_and_inactive_ones_reported() {
    let node = TestNode::start().await;
    let idle = node.create_worker(json!({})).await;
    let a = activate(&node, &node.create_worker(json!({})).await).await;
    let b = activate(&node, &node.create_worker(json!({"priority": "low"})).await).await;
    let (status, body) = node.call("stopAllWorkers", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(body["stopped"], 2);
    assert_eq!(body["failed"], 0);
    assert_eq!(body["errors"], json!([]));
    let statuses: std::collections::HashMap<String, String> = body["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["channel"].as_str().unwrap().to_string(),
                w["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses[idle["value"]["channel"].as_str().unwrap()],
        "already_stopped"
    );
    assert_eq!(statuses[a["value"]["channel"].as_str().unwrap()], "stopped");
    assert_eq!(statuses[b["value"]["channel"].as_str().unwrap()], "stopped");

    let (_, list) = node.call("listWorkers", json!({})).await;
    for entry in list.as_array().unwrap() {
        assert_eq!(entry["value"]["raw"]["active"], false);
    }
    // Each stopped worker got its own new versionstamp; everything else is unchanged.
    let stopped = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == a["key"])
        .unwrap();
    assert!(stopped["versionstamp"].as_str().unwrap() > a["versionstamp"].as_str().unwrap());
    assert_eq!(stopped["value"]["raw"]["script"], a["value"]["raw"]["script"]);
    assert_eq!(stopped["value"]["raw"]["note"], a["value"]["raw"]["note"]);

    // A second call finds nothing to stop.
    let (status, body) = node.call("stopAllWorkers", json!({})).await;
    assert_eq!(
        (status, body["stopped"].clone(), body["total"].clone()),
        (200, json!(0), json!(3))
    );
}

#[tokio::test]
async fn stop_all_races_with_updates_without_losing_them() {
    // Each worker is atomic on its own (W-STOP-3): concurrent updates either land before the
    // stop (and are kept, with active:false) or fail with 409; none is silently overwritten.
    let node = std::sync::Arc::new(TestNode::start().await);
    let mut entries = Vec::new();
    for _ in 0..20 {
        entries.push(activate(&node, &node.create_worker(json!({})).await).await);
    }
    let updater = {
        let node = node.clone();
        let entries = entries.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for entry in entries {
                let mut r = raw(&entry);
                r["note"] = json!("edited");
                let body = json!({"channel": entry["value"]["channel"], "raw": r, "versionstamp": entry["versionstamp"]});
                let (status, reply) = node.call("updateWorker", body).await;
                if status == 200 {
                    acknowledged.push(reply);
                }
            }
            acknowledged
        })
    };
    let (status, body) = node.call("stopAllWorkers", json!({})).await;
    assert!(status == 200 || status == 207, "{body}");
    let acknowledged = updater.await.unwrap();
    let (_, list) = node.call("listWorkers", json!({})).await;
    for entry in acknowledged {
        let stored = list
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == entry["key"])
            .unwrap();
        assert_eq!(
            stored["value"]["raw"]["note"], "edited",
            "an acknowledged update was lost"
        );
    }
    let total: u64 = body["workers"].as_array().unwrap().len() as u64;
    assert_eq!(total, 20);
}
