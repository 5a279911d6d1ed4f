//! W-ENV-1..4 and W-HTTP-2 over HTTP: optional params/body, structure errors, unknown
//! methods, and the request size limit.

mod common;

use common::TestNode;
use serde_json::json;

#[tokio::test]
async fn params_and_body_are_optional() {
    let node = TestNode::start().await;
    for envelope in [
        json!({"webfix": "1.0", "method": "listWorkers"}),
        json!({"webfix": "1.0", "method": "listWorkers", "params": []}),
        json!({"webfix": "1.0", "method": "listWorkers", "body": {}}),
        json!({"webfix": "1.0", "method": "listWorkers", "params": null, "body": null}),
    ] {
        let (status, body) = node.post(&envelope).await;
        assert_eq!((status, body), (200, json!([])), "{envelope}");
    }
}

#[tokio::test]
async fn bad_structure_is_400_with_the_webfix_error() {
    let node = TestNode::start().await;
    let expected = json!({"webfix":"1.0","error":{"code":400,"message":"Invalid WebFIX request structure"}});
    for raw in [
        "not json at all",
        "",
        "[1,2]",
        "\"listWorkers\"",
        r#"{"method":"listWorkers"}"#,
        r#"{"webfix":"1.0"}"#,
        r#"{"webfix":1.0,"method":"listWorkers"}"#,
        r#"{"webfix":"1.0","method":["listWorkers"]}"#,
        r#"{"webfix":"1.0","method":"listWorkers","params":"x"}"#,
        r#"{"webfix":"1.0","method":"listWorkers","body":"x"}"#,
    ] {
        let (status, body) = node.post_raw(raw.as_bytes().to_vec()).await;
        assert_eq!(status, 400, "{raw}");
        assert_eq!(body, expected, "{raw}");
    }
}

#[tokio::test]
async fn unknown_method_is_404_code_13() {
    let node = TestNode::start().await;
    let (status, body) = node.call("deleteEverything", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"webfix":"1.0","error":{"code":13,"message":"WebFIX method not found"}})
    );
}

#[tokio::test]
async fn oversized_body_is_413_by_declared_length() {
    let node = TestNode::start_with(|c| c.max_request_bytes = 4096).await;
    let big = json!({"webfix":"1.0","method":"setWorker","body":{"scriptContent": "x".repeat(5000)}});
    let (status, body) = node.post(&big).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], 413);
    assert_eq!(
        body["error"]["message"],
        "Request body exceeds the limit of 4096 bytes"
    );
    // Just under the limit still works.
    let small = json!({"webfix":"1.0","method":"setWorker","body":{"scriptContent": format!("let a = '{}';", "x".repeat(3000))}});
    assert_eq!(node.post(&small).await.0, 200);
}

#[tokio::test]
async fn oversized_chunked_body_is_413_without_reading_it_whole() {
    let node = TestNode::start_with(|c| c.max_request_bytes = 4096).await;
    // A chunked body announces no length: the limit must hold while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..64).map(|_| Ok(vec![b' '; 1024])).collect();
    let response = node
        .http
        .post(node.url())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 413);
}

#[tokio::test]
async fn every_failure_is_non_2xx_with_a_json_body() {
    let node = TestNode::start().await;
    let cases = [
        ("setWorker", json!({"scriptContent": 42}), 400),
        ("updateWorker", json!({}), 400),
        ("getLeaderInfo", json!({"workerId": "nope"}), 400),
    ];
    for (method, body, expected) in cases {
        let (status, reply) = node.call(method, body).await;
        assert_eq!(status, expected, "{method}");
        assert!(reply["error"].is_string(), "{method}: {reply}");
    }
}
