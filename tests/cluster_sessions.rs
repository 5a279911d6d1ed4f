//! Sessions are cluster-wide on etcd: a session from a login on one node process works on the
//! others, and a replayed signed login is refused on every node (W-AUTH-4, W-AUTH-5).
#![cfg(feature = "etcd")]

mod common;

use common::cluster::Cluster;
use heterogen::auth::gliesereum::{Wallet, login_request_body};
use serde_json::{Value, json};

async fn post(cluster: &Cluster, index: usize, session: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = cluster.http.post(cluster.node(index).url()).json(body);
    if let Some(session) = session {
        request = request.header("Stels-Session", session);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_from_one_node_works_on_the_others_and_a_replay_is_refused_everywhere() {
    let owner = Wallet::generate();
    let address = owner.address();
    let cluster = Cluster::start_with(3, false, &["--owners", &address]).await;
    let login = login_request_body(
        &owner,
        "LOGIN_REQUEST",
        "testnet",
        chrono::Utc::now().timestamp_millis(),
        "",
        "",
    );
    let (status, reply) = post(&cluster, 0, None, &login).await;
    assert_eq!(status, 200, "{reply}");
    let session = reply["raw"]["session"].as_str().unwrap().to_string();

    let list = json!({"webfix": "1.0", "method": "listWorkers", "body": {}});
    for index in 0..3 {
        let (status, reply) = post(&cluster, index, Some(&session), &list).await;
        assert_eq!(status, 200, "node {index}: {reply}");
    }
    let (status, _) = post(&cluster, 1, Some("not-a-session-of-this-cluster"), &list).await;
    assert_eq!(status, 401);

    for index in 0..3 {
        let (status, reply) = post(&cluster, index, None, &login).await;
        assert_ne!(status, 200, "node {index} accepted a replayed login: {reply}");
        assert!(reply["raw"].get("session").is_none(), "{reply}");
    }
}
