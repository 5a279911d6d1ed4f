//! Issue #9, defect 2: a signed login buys one session whatever way it is spelled. The replay
//! mark is the digest the node computes over the signed data, so the same login with the hash
//! in upper case, the signature as high-S or in upper-case hex, the JSON re-ordered and
//! re-spaced, or another outer `publicKey` encoding is refused the second time.

mod common;

use common::TestNode;
use heterogen::auth::gliesereum::{Wallet, login_request_body};
use k256::ecdsa::Signature;
use serde_json::{Value, json};

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A `connectionNode` envelope signed at `timestamp` (distinct timestamps: distinct logins).
fn login_envelope(wallet: &Wallet, timestamp: i64) -> Value {
    login_request_body(
        wallet,
        "LOGIN_REQUEST",
        "testnet",
        timestamp,
        "http://x",
        "ws://x",
    )
}

fn tx(envelope: &mut Value) -> &mut Value {
    &mut envelope["body"]["payload"]["body"]["transaction"]
}

/// The same signature with `s` replaced by `n − s` (the other valid signature of the data).
fn high_s(signature_hex: &str) -> String {
    let signature = Signature::from_der(&hex::decode(signature_hex).unwrap()).unwrap();
    let (r, s) = signature.split_scalars();
    let flipped = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    assert_ne!(flipped, signature);
    hex::encode(flipped.to_der().as_bytes())
}

/// `value` as JSON text with every object's keys in reverse order and extra white space.
fn respaced_reordered(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .rev()
                .map(|(k, v)| format!("\n  {} :  {}", Value::from(k.as_str()), respaced_reordered(v)))
                .collect();
            format!("{{ {} \n}}", fields.join(" ,"))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(respaced_reordered).collect();
            format!("[ {} ]", items.join(" , "))
        }
        other => other.to_string(),
    }
}

async fn login_raw(node: &TestNode, bytes: Vec<u8>) -> (u16, Value) {
    node.post_raw(bytes).await
}

async fn login(node: &TestNode, envelope: &Value) -> (u16, Value) {
    login_raw(node, serde_json::to_vec(envelope).unwrap()).await
}

async fn assert_replay_refused(what: &str, reply: (u16, Value)) {
    let (status, body) = reply;
    assert_eq!(status, 401, "{what}: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("already used"),
        "{what}: {body}"
    );
    assert!(body.get("raw").is_none(), "{what}: {body}");
}

#[tokio::test]
async fn the_same_signed_login_in_any_spelling_buys_one_session() {
    let owner = Wallet::generate();
    let address = owner.address();
    let node = TestNode::start_with(move |c| {
        c.open = false;
        c.owners = vec![address];
        c.login_max_failures = 1000;
    })
    .await;
    let base = now();

    // Upper-case hash after the original.
    let original = login_envelope(&owner, base - 1);
    assert_eq!(login(&node, &original).await.0, 200);
    let mut upper = original.clone();
    let hash = tx(&mut upper)["hash"].as_str().unwrap().to_uppercase();
    tx(&mut upper)["hash"] = json!(hash);
    assert_replay_refused("upper-case hash", login(&node, &upper).await).await;

    // The verifier accepts a high-S signature (as the web client's library does): used first,
    // it buys the session, and the low-S original is then a replay; and the other way round.
    let original = login_envelope(&owner, base - 2);
    let mut flipped = original.clone();
    let signature = high_s(tx(&mut flipped)["signature"].as_str().unwrap());
    tx(&mut flipped)["signature"] = json!(signature);
    let (status, reply) = login(&node, &flipped).await;
    assert_eq!(status, 200, "high-S is accepted: {reply}");
    assert_replay_refused("low-S after high-S", login(&node, &original).await).await;
    let original = login_envelope(&owner, base - 3);
    assert_eq!(login(&node, &original).await.0, 200);
    let mut flipped = original.clone();
    let signature = high_s(tx(&mut flipped)["signature"].as_str().unwrap());
    tx(&mut flipped)["signature"] = json!(signature);
    assert_replay_refused("high-S after low-S", login(&node, &flipped).await).await;

    // Signature and hash in upper-case hex, the outer publicKey compressed, the JSON
    // re-ordered and re-spaced: each is the same signed data.
    let original = login_envelope(&owner, base - 4);
    assert_eq!(login(&node, &original).await.0, 200);
    let mut shouting = original.clone();
    for field in ["signature", "hash"] {
        let text = tx(&mut shouting)[field].as_str().unwrap().to_uppercase();
        tx(&mut shouting)[field] = json!(text);
    }
    assert_replay_refused("upper-case signature", login(&node, &shouting).await).await;
    let mut compressed = original.clone();
    compressed["body"]["payload"]["body"]["publicKey"] = json!(owner.public_compressed_hex());
    assert_replay_refused("compressed publicKey", login(&node, &compressed).await).await;
    let text = respaced_reordered(&original);
    assert_ne!(text.as_bytes(), serde_json::to_vec(&original).unwrap());
    assert_replay_refused("re-ordered JSON", login_raw(&node, text.into_bytes()).await).await;

    // A fresh signature of new data still works.
    let (status, reply) = login(&node, &login_envelope(&owner, base - 5)).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["raw"]["session"].is_string());
}
