//! A client that pipelines requests with large answers and never reads: its connection is
//! closed after the write timeout, and while the node's send to it is blocked, shutdown and the
//! pong timeout still close it promptly and other clients are served as usual.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestNode, raw_ws, ws_call};
use heterogen::net::NetState;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const SCRIPT_BYTES: usize = 16_000;
const WORKERS: usize = 16;

/// A node holding workers whose `listWorkers` answer is ~256 KB.
async fn node_with_large_answers(change: impl FnOnce(&mut heterogen::NodeConfig)) -> TestNode {
    let node = TestNode::start_with(|c| {
        c.ws.outbound_bytes = 256 * 1024;
        change(c);
    })
    .await;
    for i in 0..WORKERS {
        let script = format!("const pad{i} = \"{}\";", "x".repeat(SCRIPT_BYTES));
        node.create_worker(json!({"scriptContent": script})).await;
    }
    node
}

/// Opens a raw connection, pipelines 32 `listWorkers` requests (~8 MB of answers, more than
/// the socket buffers of both sides hold) and never
/// reads; returns once the node is known to be stuck writing to it.
async fn stalled_client(node: &TestNode) -> TcpStream {
    let mut tcp = raw_ws::connect(node.addr, "/").await;
    let mut requests = Vec::new();
    for id in 0..32 {
        let frame = json!({"webfix": "1.0", "id": id, "method": "listWorkers", "body": {}});
        requests.extend(raw_ws::text(frame.to_string().as_bytes()));
    }
    tcp.write_all(&requests).await.unwrap();
    // Enough for the answers to fill the socket buffers on both sides.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tcp
}

fn state(node: &TestNode) -> Arc<NetState> {
    node.running().net().clone()
}

/// Waits until the node holds `open` WebSockets; returns how long that took.
async fn until_open(state: &NetState, open: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    while state.connections.open() != open {
        assert!(
            started.elapsed() < limit,
            "still {} WebSockets open after {limit:?}, expected {open}",
            state.connections.open()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_after_the_write_timeout_and_delays_nobody() {
    let node = node_with_large_answers(|c| c.ws.write_timeout = Duration::from_millis(1000)).await;
    let state = state(&node);
    let mut other = node.ws("/").await;
    let _stalled = stalled_client(&node).await;
    let started = Instant::now();
    // Meanwhile another client is served.
    for id in 0..3 {
        let frame = ws_call(&mut other, json!(id), "getWorkerStats", json!({})).await;
        assert_eq!(frame["status"], 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Write timeout (1 s) plus the wait for a close frame that cannot go out (capped at it),
    // counted from when the node has built the answers and got stuck.
    until_open(&state, 1, Duration::from_secs(8)).await;
    let frame = ws_call(&mut other, json!(9), "listWorkers", json!({})).await;
    assert_eq!(frame["status"], 200);
    assert!(frame.to_string().len() > WORKERS * SCRIPT_BYTES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_a_connection_whose_send_is_blocked() {
    let mut node = node_with_large_answers(|c| c.ws.write_timeout = Duration::from_secs(60)).await;
    let state = state(&node);
    let _stalled = stalled_client(&node).await;
    assert_eq!(state.connections.open(), 1);
    let started = Instant::now();
    let ((), closed_after) = tokio::join!(node.shutdown(), until_open(&state, 0, Duration::from_secs(6)));
    // Shutdown is seen at once; the close frame then waits at most 2 s behind the blocked send.
    assert!(closed_after < Duration::from_secs(4), "{closed_after:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pong_timeout_still_closes_a_connection_whose_send_is_blocked() {
    let node = node_with_large_answers(|c| {
        c.ws.write_timeout = Duration::from_secs(60);
        c.ws_ping_interval = Duration::from_millis(200);
    })
    .await;
    let state = state(&node);
    let _stalled = stalled_client(&node).await;
    assert_eq!(state.connections.open(), 1);
    // Two ping intervals without a pong, then at most 2 s for the close frame.
    until_open(&state, 0, Duration::from_secs(5)).await;
}
