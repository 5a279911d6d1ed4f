//! W-WS-7 (protocol pings; a peer that misses pongs is closed) and W-WS-6 (shutdown closes
//! WebSockets with 1001 and a reason free of the words that log the existing client out).

mod common;

use std::time::Duration;

use common::{TestNode, ws_call};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

fn quick_pings(c: &mut heterogen::NodeConfig) {
    c.ws_ping_interval = Duration::from_millis(150);
}

#[tokio::test]
async fn a_responsive_client_gets_pings_and_stays_connected() {
    let node = TestNode::start_with(quick_pings).await;
    let mut ws = node.ws("/").await;
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1200);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Ping(_) = message.unwrap() {
            pings += 1;
        }
    }
    assert!(pings >= 3, "only {pings} pings in 1.2 s at a 150 ms interval");
    let frame = ws_call(&mut ws, json!(1), "listWorkers", json!({})).await;
    assert_eq!(frame["status"], 200);
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_closed() {
    let node = TestNode::start_with(quick_pings).await;
    let mut tcp = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let handshake = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        node.addr
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    // Read whatever comes (101, pings, a close) without ever answering, until the node hangs up.
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the node kept a silent peer open for 5 s");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let mut open = usize::MAX;
    for _ in 0..100 {
        open = node.running().net().connections.open();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open, 0, "the closed peer still holds a connection slot");
}

#[tokio::test]
async fn shutdown_closes_websockets_with_1001_and_a_neutral_reason() {
    let mut node = TestNode::start().await;
    let mut a = node.ws("/").await;
    let mut b = node.ws("/ws").await;
    node.shutdown().await;
    for ws in [&mut a, &mut b] {
        let frame = loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(u16::from(frame.code), 1001);
        let reason = frame.reason.to_lowercase();
        for word in ["session", "expired", "invalid", "unauthorized"] {
            assert!(
                !reason.contains(word),
                "close reason {reason:?} contains {word:?}"
            );
        }
    }
    // The listener is gone.
    assert!(tokio::net::TcpStream::connect(node.addr).await.is_err());
}
