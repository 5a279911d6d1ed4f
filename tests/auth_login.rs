//! Wallet login and roles (W-AUTH-1..5, W-WS-6): `connectionNode` with wallets generated here,
//! sessions on HTTP and WebSocket, the Owner role, every malformed login, replays, the rate
//! limit, and sessions surviving a restart.

mod common;

use common::TestNode;
use heterogen::auth::gliesereum::{Wallet, create_signed_transaction, login_request_body};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn closed_node(owner: &Wallet) -> impl FnOnce(&mut heterogen::NodeConfig) + use<> {
    let owner = owner.address();
    move |c| {
        c.open = false;
        c.owners = vec![owner];
        c.public_url = Some("https://node.example:8443".into());
        c.title = "test node".into();
    }
}

/// The `body` of the existing client's `connectionNode` request.
fn login_body(wallet: &Wallet) -> Value {
    login_request_body(wallet, "LOGIN_REQUEST", "testnet", now(), "http://x", "ws://x")["body"].clone()
}

async fn login(node: &TestNode, body: Value) -> (u16, Value) {
    node.post(&json!({"webfix":"1.0","method":"connectionNode","params":["gliesereum"],"body":body}))
        .await
}

async fn call_as(node: &TestNode, session: Option<&str>, method: &str, body: Value) -> (u16, Value) {
    let mut request = node
        .http
        .post(node.url())
        .json(&json!({"webfix":"1.0","method":method,"params":[],"body":body}));
    if let Some(session) = session {
        request = request.header("Stels-Session", session);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_owner_logs_in_and_manages_workers() {
    let owner = Wallet::generate();
    let node = TestNode::start_with(closed_node(&owner)).await;
    let (status, reply) = login(&node, login_body(&owner)).await;
    assert_eq!(status, 200, "{reply}");
    let raw = &reply["raw"];
    let session = raw["session"].as_str().unwrap();
    assert!(
        session.len() >= 32 && session.bytes().all(|b| b.is_ascii_alphanumeric()),
        "URL-safe: {session}"
    );
    assert!(!raw["token"].as_str().unwrap().is_empty());
    let info = &raw["info"];
    assert_eq!(info["network"], "testnet");
    assert_eq!(info["title"], "test node");
    assert_eq!(info["nid"], "s-0001");
    assert_eq!(info["api"], "https://node.example:8443");
    assert_eq!(info["connector"]["socket"], "wss://node.example:8443");
    assert_eq!(info["developer"], true);

    let (status, list) = call_as(&node, Some(session), "listWorkers", json!({})).await;
    assert_eq!((status, list), (200, json!([])));
    let (status, _) = call_as(&node, Some(session), "setWorker", json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn no_unknown_or_non_owner_sessions_are_refused() {
    let owner = Wallet::generate();
    let stranger = Wallet::generate();
    let node = TestNode::start_with(closed_node(&owner)).await;
    let unauthorized = json!({"error": "Unauthorized"});
    for method in [
        "listWorkers",
        "setWorker",
        "updateWorker",
        "stopAllWorkers",
        "getWorkerStats",
        "getLeaderInfo",
    ] {
        assert_eq!(
            call_as(&node, None, method, json!({})).await,
            (401, unauthorized.clone()),
            "{method}"
        );
        assert_eq!(
            call_as(&node, Some("deadbeef"), method, json!({})).await,
            (401, unauthorized.clone()),
            "{method}"
        );
    }
    let (status, reply) = login(&node, login_body(&stranger)).await;
    assert_eq!(status, 200);
    assert_eq!(reply["raw"]["info"]["developer"], false);
    let session = reply["raw"]["session"].as_str().unwrap();
    assert_eq!(
        call_as(&node, Some(session), "listWorkers", json!({})).await,
        (403, json!({"error": "Forbidden"}))
    );
    // Public start-up calls of the existing client need no session.
    assert_eq!(call_as(&node, None, "assetList", json!({})).await.0, 200);
}

#[tokio::test]
async fn developer_access_is_refused_to_non_owners_and_granted_to_owners() {
    let owner = Wallet::generate();
    let stranger = Wallet::generate();
    let node = TestNode::start_with(closed_node(&owner)).await;
    let request = |wallet: &Wallet| {
        let data = json!({"action":"DEVELOPER_REQUEST","timestamp":now(),"network":"testnet","walletAddress":wallet.address()}).to_string();
        let tx = create_signed_transaction(wallet, &wallet.address(), 0, 1, Some(&data), now());
        json!({"transaction": tx, "walletAddress": wallet.address(), "publicKey": wallet.public_compressed_hex()})
    };
    let stranger_session = node.login(&stranger).await;
    let (status, reply) = call_as(
        &node,
        Some(&stranger_session),
        "requestDeveloperAccess",
        request(&stranger),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        reply["error"].as_str().unwrap().contains(&stranger.address()),
        "{reply}"
    );
    assert_eq!(
        call_as(&node, None, "requestDeveloperAccess", request(&stranger))
            .await
            .0,
        401
    );

    let owner_session = node.login(&owner).await;
    let (status, reply) = call_as(
        &node,
        Some(&owner_session),
        "requestDeveloperAccess",
        request(&owner),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["raw"]["info"]["developer"], true);
    assert_ne!(reply["raw"]["session"], owner_session.as_str());
}

async fn ws_connect(node: &TestNode, query: &str) -> Result<common::Ws, u16> {
    let mut request = format!("ws://{}/{query}", node.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "webfix".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn websockets_need_a_live_session() {
    let owner = Wallet::generate();
    let stranger = Wallet::generate();
    let node = TestNode::start_with(closed_node(&owner)).await;
    assert_eq!(ws_connect(&node, "").await.err(), Some(401));
    assert_eq!(
        ws_connect(&node, "?session=0123456789abcdef").await.err(),
        Some(401)
    );
    let session = node.login(&owner).await;
    let mut ws = ws_connect(&node, &format!("?session={session}")).await.unwrap();
    let frame = common::ws_call(&mut ws, json!(1), "listWorkers", json!({})).await;
    assert_eq!(frame["status"], 200);
    // A logged-in non-owner connects (the web client needs its socket) but may not manage workers.
    let other = node.login(&stranger).await;
    let mut ws = ws_connect(&node, &format!("?session={other}")).await.unwrap();
    let frame = common::ws_call(&mut ws, json!(2), "listWorkers", json!({})).await;
    assert_eq!(
        (frame["status"].clone(), frame["error"].clone()),
        (json!(403), json!("Forbidden"))
    );
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let owner = Wallet::generate();
    let mut node = TestNode::start_with(closed_node(&owner)).await;
    let session = node.login(&owner).await;
    node.shutdown().await;
    let dir = node.dir.path().to_path_buf();
    let mut config = common::test_config(&dir);
    closed_node(&owner)(&mut config);
    let restarted = heterogen::start(config).await.unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://{}/", restarted.local_addr()))
        .header("stels-session", &session)
        .json(&json!({"webfix":"1.0","method":"listWorkers"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    restarted.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_malformed_login_gets_a_specific_error_and_no_session() {
    let owner = Wallet::generate();
    let other = Wallet::generate();
    let node = TestNode::start_with(|c| {
        closed_node(&owner)(c);
        c.login_window = std::time::Duration::from_secs(60);
        c.login_max_failures = 1000;
    })
    .await;
    let good = login_body(&owner);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = good.clone();
        change(&mut body);
        body
    };
    let resign = |data: Value, wallet: &Wallet, to: Option<String>| {
        let tx = create_signed_transaction(
            wallet,
            &to.unwrap_or(wallet.address()),
            0,
            1,
            Some(&data.to_string()),
            now(),
        );
        let mut body = good.clone();
        body["payload"]["body"]["transaction"] = tx;
        body
    };
    let data = |action: &str, network: &str, ts: i64, address: &str| json!({"action": action, "timestamp": ts, "network": network, "walletAddress": address});
    let a = owner.address();
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 400, "transaction is required"),
        (
            json!({"payload": {"body": 5}}),
            400,
            "body.payload.body must be an object",
        ),
        (
            with(&|b| b["payload"]["body"]["transaction"] = json!("x")),
            400,
            "transaction must be an object",
        ),
        (
            with(&|b| {
                b["payload"]["body"]
                    .as_object_mut()
                    .unwrap()
                    .remove("walletAddress");
            }),
            400,
            "walletAddress is required",
        ),
        (
            with(&|b| b["payload"]["body"]["walletAddress"] = json!(7)),
            400,
            "walletAddress must be a string",
        ),
        (
            with(&|b| {
                b["payload"]["body"]["transaction"]
                    .as_object_mut()
                    .unwrap()
                    .remove("signature");
            }),
            400,
            "signature",
        ),
        (
            with(&|b| {
                b["payload"]["body"]["transaction"]
                    .as_object_mut()
                    .unwrap()
                    .remove("from");
            }),
            400,
            "from",
        ),
        (
            with(&|b| b["payload"]["body"]["transaction"]["fee"] = json!("1")),
            400,
            "fee",
        ),
        (
            with(&|b| b["payload"]["body"]["transaction"]["signature"] = json!("zz")),
            400,
            "hex",
        ),
        (
            with(&|b| b["payload"]["body"]["transaction"]["signature"] = json!("3006020101020101ff")),
            400,
            "DER",
        ),
        (
            with(&|b| b["payload"]["body"]["transaction"]["from"]["publicKey"] = json!("04abcd")),
            400,
            "public key",
        ),
        (
            with(&|b| b["payload"]["body"]["transaction"]["amount"] = json!(5)),
            401,
            "hash",
        ),
        (
            with(&|b| b["payload"]["body"]["transaction"]["data"] = json!("x".repeat(5000))),
            400,
            "exceeds 4096 bytes",
        ),
        (
            with(&|b| b["payload"]["body"]["walletAddress"] = json!(other.address())),
            401,
            "walletAddress does not match",
        ),
        (
            with(&|b| b["payload"]["body"]["publicKey"] = json!(other.public_uncompressed_hex())),
            401,
            "publicKey does not match",
        ),
        (
            resign(
                data("LOGIN_REQUEST", "testnet", now(), &a),
                &owner,
                Some(other.address()),
            ),
            401,
            "own address",
        ),
        (
            resign(data("DEVELOPER_REQUEST", "testnet", now(), &a), &owner, None),
            401,
            "action must be LOGIN_REQUEST",
        ),
        (
            resign(data("LOGIN_REQUEST", "mainnet", now(), &a), &owner, None),
            401,
            "this node serves \"testnet\"",
        ),
        (
            resign(
                data("LOGIN_REQUEST", "testnet", now(), &other.address()),
                &owner,
                None,
            ),
            401,
            "names another wallet",
        ),
        (
            resign(
                data("LOGIN_REQUEST", "testnet", now() - 120_000, &a),
                &owner,
                None,
            ),
            401,
            "sign a new one",
        ),
        (
            resign(
                data("LOGIN_REQUEST", "testnet", now() + 120_000, &a),
                &owner,
                None,
            ),
            401,
            "future",
        ),
        (
            resign(json!("not an object"), &owner, None),
            400,
            "not a JSON object",
        ),
    ];
    for (body, status, needle) in cases {
        let (got, reply) = login(&node, body.clone()).await;
        assert_eq!(got, status, "{needle}: {reply}");
        let message = reply["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "expected {needle:?} in {message:?}");
        assert!(reply.get("raw").is_none());
    }
    // Another wallet's signature over the owner's transaction.
    let mut forged = good.clone();
    let tx = create_signed_transaction(
        &other,
        &a,
        0,
        1,
        Some(&data("LOGIN_REQUEST", "testnet", now(), &a).to_string()),
        now(),
    );
    forged["payload"]["body"]["transaction"]["signature"] = tx["signature"].clone();
    let (status, reply) = login(&node, forged).await;
    assert_eq!(status, 401, "{reply}");
}

#[tokio::test]
async fn a_signed_login_is_good_for_one_session() {
    let owner = Wallet::generate();
    let node = TestNode::start_with(closed_node(&owner)).await;
    let body = login_body(&owner);
    assert_eq!(login(&node, body.clone()).await.0, 200);
    let (status, reply) = login(&node, body).await;
    assert_eq!(status, 401);
    assert!(reply["error"].as_str().unwrap().contains("already used"));
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_source() {
    let owner = Wallet::generate();
    let node = TestNode::start_with(closed_node(&owner)).await;
    for _ in 0..10 {
        assert_eq!(login(&node, json!({})).await.0, 400);
    }
    let (status, reply) = login(&node, login_body(&owner)).await;
    assert_eq!(status, 429, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("retry in"));
}
