//! Issue #9, defect 1: a node limited to 1,024 descriptors, flooded with 1,200 half-open
//! connections from 127.0.0.2 (more than it has descriptors), still answers HTTP and upgrades
//! WebSockets from 127.0.0.1 within a second, and closes every half-open socket itself within
//! the header timeout.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use common::process::spawn_node_with_fd_limit;
use common::{Ws, ws_call};
use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const NODE_FD_LIMIT: u64 = 1024;
const FLOOD: usize = 1200;
const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
/// Scheduling slack on a loaded machine, on top of the header timeout.
const CLOSE_MARGIN: Duration = Duration::from_millis(1500);
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// A connection from `FLOODER` that sends half a request line (or nothing) and then waits.
async fn half_open(node: SocketAddr, index: usize) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(FLOODER), 0)).unwrap();
    let mut stream = socket.connect(node).await.unwrap();
    if index.is_multiple_of(2) {
        // The node may already have closed it; the write may then fail, which is fine.
        let _ = stream.write_all(b"GET / HT").await;
    }
    stream
}

/// True when the node closed the socket (EOF or reset) before `deadline`.
async fn closed_by(mut stream: TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn websocket_from_client(node: SocketAddr) -> Ws {
    let request = format!("ws://{node}/").into_client_request().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(CLIENT), 0)).unwrap();
    let tcp = socket.connect(node).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
        .await
        .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_from_one_address_starve_no_one_and_are_closed() {
    let own_limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        own_limit >= FLOOD as u64 + 256,
        "the test itself needs descriptors: {own_limit}"
    );
    let dir = tempfile::tempdir().unwrap();
    let header_ms = HEADER_TIMEOUT.as_millis().to_string();
    let node = spawn_node_with_fd_limit(
        NODE_FD_LIMIT,
        dir.path(),
        &["--http-header-timeout-ms", &header_ms],
        Stdio::inherit(),
    )
    .await;

    let mut flood = Vec::with_capacity(FLOOD);
    for index in 0..FLOOD {
        flood.push(half_open(node.addr, index).await);
    }
    let flooded = Instant::now();

    let http = reqwest::Client::builder()
        .local_address(IpAddr::V4(CLIENT))
        .timeout(ANSWER_WITHIN)
        .build()
        .unwrap();
    let asked = Instant::now();
    let response =
        http.get(node.url()).send().await.unwrap_or_else(|e| {
            panic!("no answer to 127.0.0.1 within {ANSWER_WITHIN:?} during the flood: {e}")
        });
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "heterogen", "{body}");
    assert!(
        asked.elapsed() < ANSWER_WITHIN,
        "answered after {:?}",
        asked.elapsed()
    );

    let mut ws = timeout(ANSWER_WITHIN, websocket_from_client(node.addr))
        .await
        .expect("no WebSocket upgrade for 127.0.0.1 within 1 s during the flood");
    let frame = timeout(
        ANSWER_WITHIN,
        ws_call(&mut ws, json!(1), "listWorkers", json!({})),
    )
    .await
    .expect("no WebFIX answer on the WebSocket within 1 s");
    assert_eq!(frame["status"], 200, "{frame}");

    let deadline = flooded + HEADER_TIMEOUT + CLOSE_MARGIN;
    let closed = join_all(flood.into_iter().map(|stream| closed_by(stream, deadline))).await;
    let still_open = closed.iter().filter(|closed| !**closed).count();
    assert_eq!(
        still_open,
        0,
        "{still_open} of {FLOOD} half-open sockets still open {:?} after the flood",
        flooded.elapsed()
    );

    // The node is none the worse: it still serves and still shuts down cleanly.
    let again = http.get(node.url()).send().await.unwrap();
    assert_eq!(again.status(), 200);
    drop(ws);
    node.terminate();
    let mut child = node.child;
    let status = timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
