//! W-T-1 and W-T-3 with a real process: every acknowledged write survives `kill -9`, and
//! versionstamps keep increasing after the restart.

mod common;

use common::call_url;
use common::process::spawn_node;
use serde_json::json;

async fn survives_kill9(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut node = spawn_node(dir.path(), extra).await;
    let url = node.url();
    let mut acknowledged = Vec::new();
    for i in 0..30 {
        let (status, entry) = call_url(&client, &url, "setWorker", json!({"note": format!("w{i}")})).await;
        assert_eq!(status, 200);
        acknowledged.push(entry);
    }
    // Update one so the newest write is an update.
    let mut raw = acknowledged[0]["value"]["raw"].clone();
    raw["active"] = json!(true);
    let (status, updated) = call_url(
        &client,
        &url,
        "updateWorker",
        json!({"channel": acknowledged[0]["value"]["channel"], "raw": raw}),
    )
    .await;
    assert_eq!(status, 200);
    acknowledged[0] = updated;
    let last_stamp = acknowledged
        .iter()
        .map(|e| e["versionstamp"].as_str().unwrap().to_string())
        .max()
        .unwrap();

    node.child.start_kill().unwrap(); // SIGKILL
    node.child.wait().await.unwrap();

    let node = spawn_node(dir.path(), extra).await;
    let url = node.url();
    let (status, list) = call_url(&client, &url, "listWorkers", json!({})).await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), acknowledged.len());
    for entry in &acknowledged {
        assert!(list.contains(entry), "lost after kill -9: {entry}");
    }
    let (_, fresh) = call_url(&client, &url, "setWorker", json!({})).await;
    assert!(
        fresh["versionstamp"].as_str().unwrap() > last_stamp.as_str(),
        "versionstamp went back after restart"
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_kill9_with_fsync() {
    survives_kill9(&[]).await;
}

#[tokio::test]
async fn acknowledged_writes_survive_kill9_without_fsync() {
    survives_kill9(&["--fsync", "false"]).await;
}
