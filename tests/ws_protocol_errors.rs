//! A frame that breaks the WebSocket protocol gets a close frame with the matching code and a
//! reason before the socket closes — never a bare TCP close, which a browser reports as 1006
//! and the existing client takes for an expired session (it then wipes the stored wallet).

mod common;

use std::time::Duration;

use common::TestNode;
use common::raw_ws::{self, ServerFrame};
use tokio::io::AsyncWriteExt;

/// Sends `bytes` on a fresh connection and returns the close frame the node answers with.
async fn close_after(node: &TestNode, bytes: &[u8]) -> (u16, String) {
    let mut tcp = raw_ws::connect(node.addr, "/").await;
    tcp.write_all(bytes).await.unwrap();
    let frames = raw_ws::read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    let close = frames.iter().find_map(ServerFrame::close);
    close.unwrap_or_else(|| panic!("the node closed without a close frame; it sent {frames:?}"))
}

#[tokio::test]
async fn text_that_is_not_utf8_is_closed_with_1007() {
    let node = TestNode::start().await;
    let (code, reason) = close_after(&node, &raw_ws::text(b"{\"webfix\":\"1.0\",\"x\":\"\xff\xfe\"}")).await;
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("UTF-8"), "{reason}");
}

#[tokio::test]
async fn protocol_violations_are_closed_with_1002() {
    let node = TestNode::start().await;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "an unmasked client frame",
            raw_ws::frame(0x81, b"{}", false),
            "masked",
        ),
        (
            "a reserved data opcode",
            raw_ws::frame(0x83, b"{}", true),
            "opcode",
        ),
        (
            "a reserved control opcode",
            raw_ws::frame(0x8B, b"", true),
            "opcode",
        ),
        (
            "a reserved bit without an extension",
            raw_ws::frame(0xC1, b"{}", true),
            "reserved bits",
        ),
    ];
    for (what, bytes, word) in cases {
        let (code, reason) = close_after(&node, &bytes).await;
        assert_eq!(code, 1002, "{what}: {reason}");
        assert!(reason.contains(word), "{what}: {reason}");
    }
}

#[tokio::test]
async fn a_frame_over_the_size_limit_is_closed_with_1009() {
    let node = TestNode::start_with(|c| c.max_request_bytes = 4096).await;
    // The header alone announces too much; the node need not read the payload to refuse it.
    let mut header = raw_ws::frame(0x81, &vec![b'x'; 8000], true);
    header.truncate(8);
    let (code, reason) = close_after(&node, &header).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("4096"), "{reason}");
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    let node = TestNode::start().await;
    let (code, reason) = close_after(&node, &raw_ws::frame(0x88, &1000u16.to_be_bytes(), true)).await;
    assert_eq!((code, reason.as_str()), (1000, ""));
}
