//! A cursor at the top of its range (`since=18446744073709551615`) is answered, not an
//! arithmetic overflow: no lines after it, over `getWorkerLogs`, the SSE endpoint and a `logs`
//! subscription.

mod common;

use common::{TestNode, quick_runtime, sid, ws_call};
use serde_json::{Value, json};

#[tokio::test]
async fn the_largest_cursor_reads_nothing_after_it() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"scriptContent": "logger.info('hello');", "mode": "single"}))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "hello").await;

    let (status, page) = node
        .call(
            "getWorkerLogs",
            json!({"sid": sid, "since": u64::MAX, "limit": 10_000}),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["lines"], json!([]));
    assert_eq!(page["next"], json!(u64::MAX));
    assert_eq!(page["dropped"], 0);

    let url = format!(
        "http://{}/api/worker/logs/stream?sid={sid}&follow=false&since=18446744073709551615",
        node.addr
    );
    let response = node.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let types: Vec<String> = body
        .split("\n\n")
        .filter_map(|block| block.strip_prefix("data: "))
        .map(|data| {
            serde_json::from_str::<Value>(data).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, ["connected", "complete"], "{body}");

    // One past the range is refused, not wrapped.
    let url = format!(
        "http://{}/api/worker/logs/stream?sid={sid}&follow=false&since=18446744073709551616",
        node.addr
    );
    assert_eq!(node.http.get(url).send().await.unwrap().status(), 400);

    let mut ws = node.ws("/").await;
    let frame = ws_call(
        &mut ws,
        json!(1),
        "subscribe",
        json!({"stream": "logs", "sid": sid, "since": u64::MAX}),
    )
    .await;
    assert_eq!(frame["status"], 200, "{frame}");
    let (status, page) = node.call("getWorkerLogs", json!({"sid": sid})).await;
    assert_eq!(status, 200);
    assert!(!page["lines"].as_array().unwrap().is_empty());
}
