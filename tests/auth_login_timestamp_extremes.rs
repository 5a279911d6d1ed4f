//! Issue #9, defect 10 (login part): login timestamps at the integer extremes, or not whole
//! milliseconds, get a clear 400/401 and no session; the node keeps serving.

mod common;

use common::TestNode;
use heterogen::auth::gliesereum::{Wallet, create_signed_transaction};
use serde_json::json;

#[tokio::test]
async fn extreme_login_timestamps_are_refused_cleanly() {
    let owner = Wallet::generate();
    let node = TestNode::start_with(|c| {
        c.open = false;
        c.login_max_failures = 1000;
    })
    .await;
    let now = chrono::Utc::now().timestamp_millis();
    for (timestamp, status, needle) in [
        ("-9223372036854775808", 401, "sign a new one"),
        ("-9223372036854775807", 401, "sign a new one"),
        ("9223372036854775807", 401, "future"),
        ("18446744073709551615", 401, "future"),
        ("1e308", 400, "whole milliseconds"),
        ("1700000000000.25", 400, "whole milliseconds"),
    ] {
        let data = format!(
            "{{\"action\":\"LOGIN_REQUEST\",\"timestamp\":{timestamp},\"network\":\"testnet\",\"walletAddress\":\"{}\"}}",
            owner.address()
        );
        let tx = create_signed_transaction(&owner, &owner.address(), 0, 1, Some(&data), now);
        let body = json!({"transaction": tx, "walletAddress": owner.address()});
        let (got, reply) = node.call("connectionNode", body).await;
        assert_eq!(got, status, "{timestamp}: {reply}");
        let message = reply["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{timestamp}: {message}");
    }
    // Still serving, and a normal login works.
    node.login(&owner).await;
}
