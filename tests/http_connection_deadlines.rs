//! Issue #9, defect 1: an HTTP connection has two deadlines. A request head is due within
//! `--http-header-timeout-ms` of accept (or of the first byte of a later request, however slowly
//! the rest drips in); a kept-alive connection may wait `--http-idle-timeout-ms` between requests.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

const HEADER_TIMEOUT: Duration = Duration::from_millis(300);
const IDLE_TIMEOUT: Duration = Duration::from_millis(1200);
/// Timer and scheduling slack on a loaded machine.
const SLACK: Duration = Duration::from_millis(700);

async fn node() -> TestNode {
    TestNode::start_with(|config| {
        config.http.header_timeout = HEADER_TIMEOUT;
        config.http.idle_timeout = IDLE_TIMEOUT;
    })
    .await
}

/// Sends a plain `GET /` on a kept-alive connection and reads the whole answer.
async fn get(stream: &mut TcpStream, addr: SocketAddr) -> String {
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .expect("content-length")
                .trim()
                .parse()
                .unwrap();
            if body.len() >= length {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return text;
            }
        }
    }
}

/// How long after `since` the node closed the connection (EOF or reset); panics past `limit`.
async fn closed_after(stream: &mut TcpStream, since: Instant, limit: Duration) -> Duration {
    let mut buf = [0u8; 64];
    loop {
        match timeout(limit.saturating_sub(since.elapsed()), stream.read(&mut buf)).await {
            Err(_) => panic!("still open {:?} later", since.elapsed()),
            Ok(Ok(0)) | Ok(Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    let node = node().await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    let opened = Instant::now();
    let after = closed_after(&mut stream, opened, HEADER_TIMEOUT + SLACK).await;
    assert!(
        after + Duration::from_millis(50) >= HEADER_TIMEOUT,
        "closed after only {after:?}"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_waits_the_idle_timeout_not_the_header_timeout() {
    let node = node().await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    get(&mut stream, node.addr).await;
    tokio::time::sleep(HEADER_TIMEOUT * 2).await;
    get(&mut stream, node.addr).await;
    let answered = Instant::now();
    let after = closed_after(&mut stream, answered, IDLE_TIMEOUT + SLACK).await;
    assert!(
        after + Duration::from_millis(50) >= IDLE_TIMEOUT,
        "closed after only {after:?}"
    );
}

#[tokio::test]
async fn a_dripping_request_head_is_closed_at_the_header_timeout_from_its_first_byte() {
    let node = node().await;
    let mut stream = TcpStream::connect(node.addr).await.unwrap();
    get(&mut stream, node.addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let drip = async {
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = timeout(HEADER_TIMEOUT + SLACK, drip).await;
    let after = closed_after(&mut stream, started, HEADER_TIMEOUT + SLACK).await;
    assert!(
        after + Duration::from_millis(50) >= HEADER_TIMEOUT,
        "closed after only {after:?}"
    );
    assert!(
        after < IDLE_TIMEOUT,
        "a head in progress got the idle timeout: {after:?}"
    );
}
