//! Issue #9, defect 7: successful logins are limited per wallet and per source address
//! (`--logins-per-wallet`, `--logins-per-ip`, shrunk here); the excess gets 429 with a retry hint.

mod common;

use common::TestNode;
use heterogen::auth::gliesereum::{Wallet, login_request_body};
use heterogen::store::Key;
use serde_json::Value;

async fn login(node: &TestNode, wallet: &Wallet, timestamp: i64) -> (u16, Value) {
    let envelope = login_request_body(wallet, "LOGIN_REQUEST", "testnet", timestamp, "", "");
    node.post(&envelope).await
}

fn assert_limited(reply: &(u16, Value), needle: &str) {
    let (status, body) = reply;
    assert_eq!(*status, 429, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains(needle) && message.contains("retry in"),
        "{message}"
    );
    let retry = body["retryAfter"].as_u64().unwrap();
    assert!((1..=60).contains(&retry), "{body}");
    assert!(body.get("raw").is_none());
}

#[tokio::test]
async fn successful_logins_are_limited_per_wallet_and_per_source() {
    let node = TestNode::start_with(|c| {
        c.open = false;
        c.logins_per_wallet = 2;
        c.logins_per_ip = 3;
    })
    .await;
    let (a, b, c) = (Wallet::generate(), Wallet::generate(), Wallet::generate());
    let now = chrono::Utc::now().timestamp_millis();

    assert_eq!(login(&node, &a, now - 1).await.0, 200);
    assert_eq!(login(&node, &a, now - 2).await.0, 200);
    let refused = login(&node, &a, now - 3).await;
    assert_limited(&refused, &format!("wallet {}", a.address()));

    // Another wallet still logs in from this address, until the address's own limit.
    assert_eq!(login(&node, &b, now - 1).await.0, 200);
    let refused = login(&node, &c, now - 1).await;
    assert_limited(&refused, "from 127.0.0.1");

    // A login refused for the rate is not spent: no replay mark was written for it, so it can
    // be sent again once the minute has passed.
    let envelope = login_request_body(&c, "LOGIN_REQUEST", "testnet", now - 1, "", "");
    let digest = envelope["body"]["payload"]["body"]["transaction"]["hash"]
        .as_str()
        .unwrap();
    let store = node.running().store();
    let mark = |d: &str| Key::of(&["ami", "login", d]);
    assert!(store.get(&mark(digest)).await.unwrap().entry.is_none());
    // (The marks of the accepted logins are there.)
    let accepted = login_request_body(&b, "LOGIN_REQUEST", "testnet", now - 1, "", "");
    let accepted = accepted["body"]["payload"]["body"]["transaction"]["hash"]
        .as_str()
        .unwrap();
    assert!(store.get(&mark(accepted)).await.unwrap().entry.is_some());
}
