//! A sid with no worker record is 404 `{"error": …}` on every log reader — `getWorkerLogs`,
//! the SSE endpoint (following or not) and a `logs` subscription — and no log ring is
//! allocated for it.

mod common;

use common::{TestNode, ws_call};
use serde_json::json;

#[tokio::test]
async fn an_unknown_worker_is_404_and_allocates_nothing() {
    let node = TestNode::start().await;
    let logs = node.running().logs().clone();
    let mut ws = node.ws("/").await;
    for _ in 0..20 {
        let sid = uuid::Uuid::new_v4().to_string();
        let (status, reply) = node.call("getWorkerLogs", json!({"sid": sid, "since": 0})).await;
        assert_eq!((status, reply), (404, json!({"error": "Worker not found"})));

        for follow in ["true", "false"] {
            let url = format!(
                "http://{}/api/worker/logs/stream?sid={sid}&follow={follow}",
                node.addr
            );
            let response = node.http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 404, "follow={follow}");
            let reply: serde_json::Value = response.json().await.unwrap();
            assert_eq!(reply, json!({"error": "Worker not found"}));
        }

        let frame = ws_call(
            &mut ws,
            json!(1),
            "subscribe",
            json!({"stream": "logs", "sid": sid}),
        )
        .await;
        assert_eq!(frame["status"], 404, "{frame}");
        assert_eq!(frame["error"], "Worker not found", "{frame}");
    }
    assert_eq!(logs.open_rings(), 0, "rings were allocated for unknown workers");
}
