//! A WebSocket client on a bare TCP socket, for tests that must misbehave in ways a real
//! client library refuses to: frames that break the protocol, or never reading at all.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects and completes the upgrade on `path_and_query`; reads nothing after the 101.
pub async fn connect(addr: SocketAddr, path_and_query: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let handshake = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: webfix\r\n\r\n"
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    // Byte by byte, so that nothing after the response head is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(Duration::from_secs(5), tcp.read_u8())
            .await
            .expect("no upgrade response")
            .expect("connection closed during the upgrade");
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// One frame as a client would send it: `first` is FIN/RSV/opcode, masked unless told not to.
pub fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked, final text frame.
pub fn text(payload: &[u8]) -> Vec<u8> {
    frame(0x81, payload, true)
}

/// A frame the server sent.
#[derive(Debug)]
pub struct ServerFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// Code and reason of a close frame.
    pub fn close(&self) -> Option<(u16, String)> {
        (self.opcode == 0x8 && self.payload.len() >= 2).then(|| {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                String::from_utf8_lossy(&self.payload[2..]).into_owned(),
            )
        })
    }
}

/// Reads until the node closes the TCP connection (or `limit` passes) and splits what came
/// into frames.
pub async fn read_until_closed(tcp: &mut TcpStream, limit: Duration) -> Vec<ServerFrame> {
    let mut bytes = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the node kept the connection open for {limit:?}");
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let (len, header) = match rest[1] & 0x7f {
            126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 => (u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize, 10),
            n => (n as usize, 2),
        };
        if rest.len() < header + len {
            break;
        }
        frames.push(ServerFrame {
            opcode,
            payload: rest[header..header + len].to_vec(),
        });
        rest = &rest[header + len..];
    }
    frames
}
