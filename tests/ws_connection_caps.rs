//! Caps on open WebSockets: per source address and per non-owner wallet (429), and the owner
//! reserve — the last slots of `--max-connections` that only owner sessions may take (503).
//! Owners are uncapped but for `--max-connections` itself.

mod common;

use std::net::SocketAddr;

use common::{TestNode, Ws};
use heterogen::auth::gliesereum::Wallet;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

fn closed_node(
    owner: &Wallet,
    change: impl FnOnce(&mut heterogen::NodeConfig),
) -> impl FnOnce(&mut heterogen::NodeConfig) {
    let owner = owner.address();
    move |c| {
        c.open = false;
        c.owners = vec![owner];
        change(c);
    }
}

/// Opens a WebSocket with `session` from the source address `from`; on refusal, the HTTP
/// status and body.
async fn connect_from(node: &TestNode, from: &str, session: &str) -> Result<Ws, (u16, String)> {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from}:0").parse::<SocketAddr>().unwrap())
        .unwrap();
    let tcp = socket.connect(node.addr).await.unwrap();
    let mut request = format!("ws://{}/?session={session}", node.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "webfix".parse().unwrap());
    match tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("{e}"),
    }
}

async fn connect(node: &TestNode, session: &str) -> Result<Ws, (u16, String)> {
    connect_from(node, "127.0.0.1", session).await
}

/// Waits until the node has let go of a closed connection.
async fn until_open(node: &TestNode, open: usize) {
    let state = node.running().net().clone();
    common::eventually(5, "the node to free the slot", || {
        let state = state.clone();
        async move { (state.connections.open() == open).then_some(()) }
    })
    .await
}

#[tokio::test]
async fn one_source_address_holds_at_most_max_per_ip_non_owner_websockets() {
    let owner = Wallet::generate();
    let node = TestNode::start_with(closed_node(&owner, |c| c.ws.max_per_ip = 3)).await;
    let stranger = node.login(&Wallet::generate()).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&node, &stranger).await.unwrap());
    }
    let (status, body) = connect(&node, &stranger).await.err().unwrap();
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("limit of 3 WebSocket connections"), "{body}");
    // Another address is not affected, nor is an owner on the same one.
    let _elsewhere = connect_from(&node, "127.0.0.2", &stranger).await.unwrap();
    let owner_session = node.login(&owner).await;
    let _owner = connect(&node, &owner_session).await.unwrap();
    // A closed connection frees its place.
    held.pop().unwrap().close(None).await.unwrap();
    until_open(&node, 4).await;
    held.push(connect(&node, &stranger).await.unwrap());
}

#[tokio::test]
async fn a_non_owner_wallet_holds_at_most_max_per_wallet_websockets() {
    let owner = Wallet::generate();
    let node = TestNode::start_with(closed_node(&owner, |c| c.ws.max_per_wallet = 2)).await;
    let stranger = node.login(&Wallet::generate()).await;
    let _a = connect(&node, &stranger).await.unwrap();
    let _b = connect_from(&node, "127.0.0.2", &stranger).await.unwrap();
    // The cap is the wallet's, whatever the address or session.
    let second_session = node.login(&Wallet::generate()).await;
    let (status, body) = connect_from(&node, "127.0.0.3", &stranger).await.err().unwrap();
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("wallet holds its limit of 2"), "{body}");
    let _other_wallet = connect(&node, &second_session).await.unwrap();
    // Owners are not capped per wallet.
    let owner_session = node.login(&owner).await;
    let mut owners = Vec::new();
    for _ in 0..4 {
        owners.push(connect(&node, &owner_session).await.unwrap());
    }
}

#[tokio::test]
async fn the_owner_reserve_is_left_to_owners_when_non_owners_fill_the_rest() {
    let owner = Wallet::generate();
    let node = TestNode::start_with(closed_node(&owner, |c| {
        c.max_connections = 20;
        c.ws.owner_reserve_percent = 10;
    }))
    .await;
    // 18 non-owner connections (6 wallets × 3) take everything but the reserve of 2.
    let mut held = Vec::new();
    for _ in 0..6 {
        let session = node.login(&Wallet::generate()).await;
        for _ in 0..3 {
            held.push(connect(&node, &session).await.unwrap());
        }
    }
    let late = node.login(&Wallet::generate()).await;
    let (status, body) = connect(&node, &late).await.err().unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the last 2 are kept for owners"), "{body}");
    let owner_session = node.login(&owner).await;
    held.push(connect(&node, &owner_session).await.unwrap());
    held.push(connect(&node, &owner_session).await.unwrap());
    // Full now, for owners too.
    let (status, body) = connect(&node, &owner_session).await.err().unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("limit of 20 WebSocket connections"), "{body}");
}
