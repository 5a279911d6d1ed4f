//! Issue #9: every wait on a peer has a deadline, the request body's too. A client that sends a
//! request head and then drips (or withholds) its body gets 408 after `--http-body-timeout-ms`,
//! instead of holding the connection and its buffer for as long as it likes.

mod common;

use std::time::Duration;

use common::TestNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

const BODY_TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let node = TestNode::start_with(|config| config.http.body_timeout = BODY_TIMEOUT).await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        node.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // A few bytes now and then: never the whole body.
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let _ = stream.write_all(b" ").await;
        match timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&answer).contains("Request body not received") {
                    break;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no answer while the body dripped for 5 s"
        );
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("Request body not received within 300 ms"),
        "{answer}"
    );
    assert!(started.elapsed() >= BODY_TIMEOUT);

    // The node still serves others.
    let (status, _) = node.call("listWorkers", serde_json::json!({})).await;
    assert_eq!(status, 200);
}
