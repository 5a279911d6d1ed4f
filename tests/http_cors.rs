//! W-HTTP-1 and W-HTTP-3: POST / with the session header, CORS preflights on every route,
//! and Access-Control-Allow-Origin on every reply, errors included.

mod common;

use common::TestNode;
use serde_json::json;

#[tokio::test]
async fn preflight_is_answered_on_every_route() {
    let node = TestNode::start().await;
    for path in ["/", "/ws", "/api/worker/logs/stream", "/no/such/route"] {
        let response = node
            .http
            .request(reqwest::Method::OPTIONS, format!("http://{}{path}", node.addr))
            .header("origin", "https://live.stels.io")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,stels-session")
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        let methods = headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .to_ascii_uppercase();
        for m in ["POST", "GET", "OPTIONS"] {
            assert!(methods.contains(m), "{path}: {methods}");
        }
        let allowed = headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        for h in ["content-type", "stels-session", "authorization"] {
            assert!(allowed.contains(h), "{path}: {allowed}");
        }
    }
}

#[tokio::test]
async fn allow_origin_is_on_successes_and_errors() {
    let node = TestNode::start().await;
    let bodies = [
        json!({"webfix":"1.0","method":"listWorkers"}),
        json!({"webfix":"1.0","method":"nope"}),
        json!({"webfix":"1.0","method":"setWorker","body":{"priority":"urgent"}}),
    ];
    for body in bodies {
        let response = node
            .http
            .post(node.url())
            .header("origin", "https://live.stels.io")
            .header("Stels-Session", "whatever")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["access-control-allow-origin"], "*", "{body}");
    }
    let response = node
        .http
        .get(format!("http://{}/missing", node.addr))
        .header("origin", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn plain_get_describes_the_node_and_wrong_methods_are_405() {
    let node = TestNode::start_with(|c| c.nid = "s-0042".into()).await;
    let info: serde_json::Value = node
        .http
        .get(node.url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["nid"], "s-0042");
    assert_eq!(info["webfix"], "1.0");
    assert_eq!(info["websocket"], format!("ws://{}", node.addr));
    let response = node.http.put(node.url()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("use POST"));
}
