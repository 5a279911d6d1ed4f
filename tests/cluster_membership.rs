//! Membership of real node processes on a real etcd: `listNodes` and the `sonar` channel show
//! every live node, a second node with a live node's nid is refused at start (exit 2), a node
//! that is killed leaves the list within its membership TTL, and a node whose etcd does not
//! answer refuses to start naming the endpoints (exit 2).
#![cfg(feature = "etcd")]

mod common;

use std::time::Duration;

use common::cluster::{Cluster, QUICK};
use common::eventually;
use common::process::refused_start;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn nids(cluster: &Cluster, index: usize) -> Vec<String> {
    let (status, reply) = cluster.call(index, "listNodes", json!({})).await;
    assert_eq!(status, 200, "{reply}");
    reply["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["nid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_list_each_other_refuse_a_taken_nid_and_drop_a_dead_node() {
    let mut cluster = Cluster::start(3).await;
    for index in 0..3 {
        eventually(10, "every node lists all three", || async {
            (nids(&cluster, index).await == ["n1", "n2", "n3"]).then_some(())
        })
        .await;
    }
    let (_, reply) = cluster.call(1, "listNodes", json!({})).await;
    let n2 = reply["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nid"] == "n2")
        .unwrap()
        .clone();
    assert_eq!(n2["current"], true);
    assert_eq!(n2["apiUrl"], format!("http://{}", cluster.node(1).addr));
    assert!(n2["startedAt"].as_i64().unwrap() > 0);
    assert!(n2.get("boot").is_none(), "{n2}");

    // A second n2 is refused while the first one lives.
    let dir = tempfile::tempdir().unwrap();
    let store = cluster.etcd.store_url();
    let mut args = vec!["--store", store.as_str(), "--nid", "n2"];
    args.extend_from_slice(QUICK);
    let (code, stderr) = refused_start(dir.path(), &args, &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("\"n2\" is taken") && stderr.contains("--nid"),
        "{stderr}"
    );
    assert_eq!(
        nids(&cluster, 0).await,
        ["n1", "n2", "n3"],
        "the refused node must not join"
    );

    // The sonar summary counts every node.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", cluster.node(0).addr))
        .await
        .unwrap();
    let subscribe = json!({"webfix": "testnet", "method": "subscribe", "channel": "sonar"});
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let frame: Value = loop {
        let frame = common::ws_next(&mut ws).await;
        if frame["value"]["raw"]["totalNodes"] == 3 {
            break frame;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no sonar frame with three nodes: {frame}"
        );
    };
    let nodes = frame["value"]["raw"]["nodes"].as_object().unwrap();
    assert_eq!(nodes.keys().collect::<Vec<_>>(), ["n1", "n2", "n3"]);

    // A killed node leaves the list within its membership TTL (1 s here).
    cluster.kill(2).await;
    eventually(10, "n3 to leave the list", || async {
        (nids(&cluster, 0).await == ["n1", "n2"]).then_some(())
    })
    .await;
    // A node killed and started again at once on its own data directory takes its nid back
    // at once (its previous run is dead: this process holds the directory).
    cluster.kill(1).await;
    let again = cluster.spawn("n2", &[]).await;
    cluster.nodes[1] = Some(again);
    assert!(nids(&cluster, 0).await.contains(&"n2".to_string()));
    let again = cluster.spawn("n3", &[]).await;
    cluster.nodes[2] = Some(again);
    eventually(10, "all three back in the list", || async {
        (nids(&cluster, 2).await == ["n1", "n2", "n3"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_etcd_does_not_answer_refuses_to_start_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("etcd://127.0.0.1:{port}");
    let (code, stderr) =
        refused_start(dir.path(), &["--store", &store, "--etcd-timeout-ms", "500"], &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}
