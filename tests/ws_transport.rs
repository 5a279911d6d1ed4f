//! W-WS-1..3, W-WS-5: the WebSocket endpoint, the `webfix` subprotocol, response frames,
//! pipelining, broken frames, the existing client's subscribe frames, and the size limit.

mod common;

use std::collections::HashSet;

use common::{TestNode, ws_call, ws_next, ws_send};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn both_paths_upgrade_and_select_webfix() {
    let node = TestNode::start().await;
    for path in ["/", "/ws"] {
        let mut ws = node.ws(path).await;
        let frame = ws_call(&mut ws, json!(1), "listWorkers", json!({})).await;
        assert_eq!(frame, json!({"webfix":"1.0","id":1,"status":200,"result":[]}));
    }
    // A client that offers no subprotocol still connects, with none selected.
    let (ws, response) = tokio_tungstenite::connect_async(format!("ws://{}/ws", node.addr))
        .await
        .unwrap();
    assert!(response.headers().get("sec-websocket-protocol").is_none());
    drop(ws);
}

#[tokio::test]
async fn session_query_parameter_is_accepted() {
    let node = TestNode::start().await;
    let request = format!("ws://{}/?session=abc123", node.addr)
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let frame = ws_call(&mut ws, json!("q"), "listWorkers", json!({})).await;
    assert_eq!(frame["status"], 200);
}

#[tokio::test]
async fn frames_carry_exactly_the_http_results_and_errors() {
    let node = TestNode::start().await;
    let created = node.create_worker(json!({"note": "n"})).await;
    let mut ws = node.ws("/").await;
    let (http_status, http_body) = node.call("listWorkers", json!({})).await;
    let frame = ws_call(&mut ws, json!("list"), "listWorkers", json!({})).await;
    assert_eq!(frame["status"], http_status);
    assert_eq!(frame["result"], http_body);
    assert_eq!(frame["result"][0], created);

    let frame = ws_call(&mut ws, json!(2), "setWorker", json!({"priority": "urgent"})).await;
    assert_eq!(frame["status"], 400);
    let (_, http_error) = node.call("setWorker", json!({"priority": "urgent"})).await;
    assert_eq!(frame["error"], http_error["error"]);

    let frame = ws_call(&mut ws, json!(3), "noSuchMethod", json!({})).await;
    assert_eq!(frame["status"], 404);
    assert_eq!(frame["error"], "WebFIX method not found");
    assert_eq!(frame["code"], 13);
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_by_id() {
    let node = TestNode::start().await;
    let mut ws = node.ws("/").await;
    let mut expected = HashSet::new();
    for i in 0..40 {
        let id = if i % 2 == 0 {
            json!(i)
        } else {
            json!(format!("r{i}"))
        };
        expected.insert(id.to_string());
        let method = if i % 3 == 0 { "setWorker" } else { "listWorkers" };
        ws_send(&mut ws, id, method, json!({})).await;
    }
    let mut seen = HashSet::new();
    for _ in 0..40 {
        let frame = ws_next(&mut ws).await;
        assert_eq!(frame["status"], 200, "{frame}");
        assert!(seen.insert(frame["id"].to_string()), "duplicate answer {frame}");
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_broken_frame_gets_a_400_frame_and_the_connection_stays_open() {
    let node = TestNode::start().await;
    let mut ws = node.ws("/").await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let frame = ws_next(&mut ws).await;
    assert_eq!(frame["status"], 400);
    assert_eq!(frame["id"], Value::Null);
    assert_eq!(frame["error"], "Invalid WebFIX request structure");
    // A structurally wrong request keeps its id in the answer.
    ws.send(Message::Text(r#"{"id":5,"method":"listWorkers"}"#.into()))
        .await
        .unwrap();
    let frame = ws_next(&mut ws).await;
    assert_eq!(
        (frame["id"].clone(), frame["status"].clone()),
        (json!(5), json!(400))
    );
    // Binary frames carrying JSON are requests too.
    ws.send(Message::Binary(
        br#"{"webfix":"1.0","method":"listWorkers","id":6}"#.to_vec().into(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_next(&mut ws).await["status"], 200);
    let frame = ws_call(&mut ws, json!(7), "listWorkers", json!({})).await;
    assert_eq!(frame["status"], 200);
}

#[tokio::test]
async fn the_existing_clients_subscribe_frames_are_accepted_silently() {
    let node = TestNode::start().await;
    let mut ws = node.ws("/").await;
    for channel in ["sonar", "runtime"] {
        let frame = json!({"webfix": "testnet", "method": "subscribe", "channel": channel});
        ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }
    // No answer to them: every frame before this request's answer is a push (`value`), never
    // a status or an error (which would log the existing client out).
    ws_send(&mut ws, json!("after"), "listWorkers", json!({})).await;
    loop {
        let frame = ws_next(&mut ws).await;
        if frame["id"] == "after" {
            assert_eq!(frame["status"], 200);
            break;
        }
        assert!(
            frame.get("value").is_some(),
            "an answer to a channel subscription: {frame}"
        );
        assert!(
            frame.get("status").is_none() && frame.get("error").is_none(),
            "{frame}"
        );
    }
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let node = TestNode::start_with(|c| c.max_request_bytes = 4096).await;
    let mut ws = node.ws("/").await;
    let big = json!({"webfix":"1.0","method":"setWorker","id":1,"body":{"scriptContent":"x".repeat(8000)}});
    ws.send(Message::Text(big.to_string().into())).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1009);
                assert!(frame.reason.contains("4096"), "{}", frame.reason);
                break;
            }
            Some(Ok(Message::Ping(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn upgrades_above_max_connections_get_503() {
    let node = TestNode::start_with(|c| c.max_connections = 2).await;
    let _a = node.ws("/").await;
    let mut b = node.ws("/").await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/", node.addr))
        .await
        .unwrap_err();
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status().as_u16(), 503);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert!(
                body["error"]["message"].as_str().unwrap().contains("limit of 2"),
                "{body}"
            );
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    // Closing one frees its slot.
    b.close(None).await.unwrap();
    while b.next().await.is_some() {}
    let mut again = None;
    for _ in 0..50 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(format!("ws://{}/", node.addr)).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a freed slot was not reused");
}

#[tokio::test]
async fn a_fast_request_is_answered_before_a_slow_one_sent_earlier() {
    let node = TestNode::start().await;
    // 500 active workers make stopAllWorkers do 500 sequential atomic commits.
    let template = node.create_worker(json!({})).await;
    seed_workers(&node, &template, 500, true).await;

    let mut ws = node.ws("/").await;
    ws_send(&mut ws, json!("slow"), "stopAllWorkers", json!({})).await;
    ws_send(&mut ws, json!("fast"), "getWorkerStats", json!({})).await;
    let first = ws_next(&mut ws).await;
    let second = ws_next(&mut ws).await;
    assert_eq!(first["id"], "fast", "answers must leave as they finish");
    assert_eq!(second["id"], "slow");
    assert_eq!(second["result"]["stopped"], 500);
}

/// Stores `count` copies of the worker `template` (active or not) straight into the store, in
/// commits within the store's operation limit.
async fn seed_workers(node: &TestNode, template: &serde_json::Value, count: usize, active: bool) {
    let store = node.running().store();
    let per_commit = store.limits().max_operations;
    let mut left = count;
    while left > 0 {
        let mut write = heterogen::store::AtomicWrite::new();
        for _ in 0..left.min(per_commit) {
            let sid = uuid::Uuid::new_v4().to_string();
            let mut value = template["value"].clone();
            value["raw"]["sid"] = json!(sid);
            value["raw"]["active"] = json!(active);
            value["channel"] = json!(format!("ami.worker.{sid}"));
            write = write.set(heterogen::store::Key::of(&["ami", "worker", &sid]), value);
        }
        left -= left.min(per_commit);
        store.commit(write).await.unwrap();
    }
}

#[tokio::test]
async fn an_answer_far_larger_than_any_request_is_delivered() {
    let node = TestNode::start_with(|c| c.max_request_bytes = 4096).await;
    let template = node.create_worker(json!({})).await;
    seed_workers(&node, &template, 4000, false).await;
    let mut ws = node.ws("/").await;
    let frame = ws_call(&mut ws, json!(1), "listWorkers", json!({})).await;
    assert_eq!(frame["status"], 200);
    assert_eq!(frame["result"].as_array().unwrap().len(), 4001);
    assert!(frame.to_string().len() > 2 * 1024 * 1024);
}
