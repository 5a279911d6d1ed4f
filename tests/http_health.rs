//! `/healthz` and `/readyz` on a node that asks for logins: answered without a session, with
//! the verdict only. (Readiness without a store: `cluster_etcd_outage.rs`.)

mod common;

use common::TestNode;

#[tokio::test]
async fn health_and_readiness_need_no_session_and_tell_nothing_else() {
    let node = TestNode::start_with(|c| c.open = false).await;
    for (path, text) in [("healthz", "ok\n"), ("readyz", "ready\n")] {
        let response = node
            .http
            .get(format!("{}{path}", node.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(response.text().await.unwrap(), text, "{path}");
    }
    // Anything else still needs a session.
    let (status, reply) = node.call("listWorkers", serde_json::json!({})).await;
    assert_eq!(status, 401, "{reply}");
    let posted = node
        .http
        .post(format!("{}healthz", node.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 405);
}
