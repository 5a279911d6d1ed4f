//! `WebSocket` in scripts (S-14) on a real node: the editor's "WebSocket Monitor" template
//! (`stels-client.md` §4.4) runs unmodified against a local stand-in for Binance's ticker
//! stream, loopback needs `--fetch-allow`, a failed connection counts as a network error
//! (W-RUN-3), `--script-websockets` caps a worker's sockets, and deactivating the worker closes
//! its socket. Engine-level cases are in `runtime_websocket.rs`.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestNode, eventually, quick_runtime, sid};
use futures_util::{SinkExt, StreamExt};
use heterogen::store::{Key, KeyPart};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// The template's script as the editor ships it (`WORKER_TEMPLATES['websocket-monitor']`).
const WEBSOCKET_MONITOR: &str = r#"const SYMBOLS = ['BTC/USDT', 'ETH/USDT', 'SOL/USDT'];

logger.info('WebSocket Monitor v1.0');
logger.info(`Symbols: ${SYMBOLS.join(', ')}`);

// Connect to Binance WebSocket
const streams = SYMBOLS.map(s => `${s.toLowerCase().replace('/', '')}@ticker`);
const wsUrl = `wss://stream.binance.com:9443/stream?streams=${streams.join('/')}`;

const ws = new WebSocket(wsUrl);

ws.onopen = () => {
  logger.info('✅ WebSocket connected');
};

ws.onmessage = async (event) => {
  const data = JSON.parse(event.data);
  const ticker = data.data;
  
  const symbol = ticker.s.replace('USDT', '/USDT');
  const price = parseFloat(ticker.c);
  const volume = parseFloat(ticker.v);
  const priceChange = parseFloat(ticker.P);

  await Stels.webfix({
    brain: Stels.local,
    method: 'set',
    channel: ['market', 'realtime', symbol],
    module: 'market',
    raw: {
      price,
      volume,
      priceChange,
      timestamp: Date.now(),
      node: Stels.config.nid
    },
    timestamp: Date.now()
  });

  logger.debug(`${symbol}: $${price} (${priceChange > 0 ? '+' : ''}${priceChange.toFixed(2)}%)`);
};

ws.onerror = (error) => {
  logger.error('WebSocket error:', error);
};

ws.onclose = () => {
  logger.warn('WebSocket disconnected');
};

// Keep connection alive
while (true) {
  await Stels.sleep(30000);
  if (ws.readyState === WebSocket.CLOSED) {
    logger.error('Connection lost, restarting...');
    throw new Error('WebSocket closed');
  }
}"#;

/// What the stand-in saw: the request path and the close frames (code, reason) it got.
#[derive(Default)]
struct Seen {
    paths: Vec<String>,
    closes: Vec<(u16, String)>,
}

/// A stand-in for Binance's combined ticker stream: on each connection, a 24 h ticker for
/// BTC, ETH and SOL every 20 ms (`{"stream", "data": {"e", "s", "c", "v", "P"}}`) until the
/// client closes.
async fn ticker_stream() -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tcp.set_nodelay(true).unwrap();
            let seen = record.clone();
            tokio::spawn(async move {
                let path = Arc::new(Mutex::new(String::new()));
                let keep = path.clone();
                // The callback's error type is tungstenite's, large by design.
                #[allow(clippy::result_large_err)]
                let callback = move |request: &Request, response: Response| {
                    *keep.lock().unwrap() = request.uri().to_string();
                    Ok(response)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                seen.lock().unwrap().paths.push(path.lock().unwrap().clone());
                let (mut tx, mut rx) = ws.split();
                let feed = async {
                    let tickers = [
                        ("BTCUSDT", "50000.5", "1.25"),
                        ("ETHUSDT", "3000.25", "-0.5"),
                        ("SOLUSDT", "150", "0"),
                    ];
                    loop {
                        for (symbol, price, change) in tickers {
                            let stream = format!("{}@ticker", symbol.to_lowercase());
                            let data = json!({"e": "24hrTicker", "s": symbol, "c": price, "v": "1234.5", "P": change});
                            let frame = json!({"stream": stream, "data": data}).to_string();
                            if tx.send(Message::Text(frame.into())).await.is_err() {
                                return;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                let listen = async {
                    while let Some(Ok(message)) = rx.next().await {
                        if let Message::Close(frame) = message {
                            let frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                            seen.lock()
                                .unwrap()
                                .closes
                                .push(frame.unwrap_or((1005, String::new())));
                            return;
                        }
                    }
                };
                tokio::select! {
                    () = feed => {}
                    () = listen => {}
                }
            });
        }
    });
    (addr, seen)
}

/// `Stels.local` key `parts` as stored (under the script namespace).
fn local_key(parts: &[&str]) -> Key {
    let mut key = vec![KeyPart::Str("kv".into())];
    key.extend(parts.iter().map(|p| KeyPart::Str((*p).into())));
    Key(key)
}

#[tokio::test]
async fn the_websocket_monitor_template_runs_unmodified_and_closes_when_stopped() {
    let (addr, seen) = ticker_stream().await;
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.nid = "s-0007".into();
        c.runtime.fetch_allowed_hosts = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    let script = WEBSOCKET_MONITOR.replace("wss://stream.binance.com:9443", &format!("ws://{addr}"));
    assert_ne!(script, WEBSOCKET_MONITOR);
    let entry = node
        .start_worker(json!({
            "scriptContent": script, "scope": "local", "executionMode": "leader",
            "priority": "high", "mode": "single", "dependencies": [],
        }))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "[INFO] ✅ WebSocket connected").await;
    node.wait_for_log(&sid, "[DEBUG] BTC/USDT: $50000.5 (+1.25%)")
        .await;
    node.wait_for_log(&sid, "[DEBUG] ETH/USDT: $3000.25 (-0.50%)")
        .await;

    // Each update lands in local KV under ['market', 'realtime', symbol].
    let local = node.running().local_store().clone();
    for (symbol, price, change) in [
        ("BTC/USDT", 50000.5, 1.25),
        ("ETH/USDT", 3000.25, -0.5),
        ("SOL/USDT", 150.0, 0.0),
    ] {
        let stored: Value = eventually(10, &format!("{symbol} in local KV"), || async {
            let got = local
                .get(&local_key(&["market", "realtime", symbol]))
                .await
                .unwrap();
            got.entry.map(|e| e.value.parse().unwrap())
        })
        .await;
        let raw = &stored["raw"];
        assert_eq!(raw["price"].as_f64(), Some(price), "{stored}");
        assert_eq!(raw["volume"], json!(1234.5), "{stored}");
        assert_eq!(raw["priceChange"].as_f64(), Some(change), "{stored}");
        assert_eq!(raw["node"], json!("s-0007"), "{stored}");
        assert_eq!(stored["module"], "market", "{stored}");
    }
    assert_eq!(
        seen.lock().unwrap().paths,
        ["/stream?streams=btcusdt@ticker/ethusdt@ticker/solusdt@ticker"]
    );
    let lines = node.log_lines(&sid);
    assert!(
        !lines.iter().any(|l| l.contains("[ERROR]")),
        "no error while the feed runs: {lines:?}"
    );

    // Deactivating stops the run: its socket closes (1001) and the script hears of it.
    node.set_active(&entry, false).await;
    let closes = eventually(10, "the server sees the close", || async {
        let seen = seen.lock().unwrap();
        (!seen.closes.is_empty()).then(|| seen.closes.clone())
    })
    .await;
    assert_eq!(closes, [(1001, "the worker is stopping".to_string())]);
    node.wait_for_log(&sid, "[WARN] WebSocket disconnected").await;
}

#[tokio::test]
async fn loopback_needs_fetch_allow_and_failures_are_network_errors() {
    let (addr, seen) = ticker_stream().await;
    // Default policy: every public host, no loopback.
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({
            "scriptContent": format!(
                r#"const ws = new WebSocket("ws://{addr}/stream");
                   await new Promise((resolve, reject) => {{ ws.onopen = resolve; ws.onerror = reject; }});
                   logger.info("connected");"#
            ),
            "priority": "critical",
        }))
        .await;
    let failing = sid(&entry);
    let stats = eventually(10, "a network error", || async {
        node.worker_stats(&failing)
            .await
            .filter(|w| w["networkErrors"].as_u64().unwrap() >= 1)
    })
    .await;
    assert_eq!(stats["lastErrorType"], "network", "{stats}");
    assert_eq!(stats["criticalErrors"], 0, "{stats}");
    let last = stats["lastError"].as_str().unwrap();
    assert!(
        last.starts_with(&format!(
            "NetworkError: WebSocket connection to ws://{addr}/stream failed: refused: 127.0.0.1 is a loopback address"
        )),
        "{last}"
    );
    assert!(
        seen.lock().unwrap().paths.is_empty(),
        "nothing reached the server"
    );
    assert!(!node.log_lines(&failing).iter().any(|l| l.contains("connected")));
}

#[tokio::test]
async fn script_websockets_caps_a_workers_sockets() {
    let (addr, _seen) = ticker_stream().await;
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.fetch_allowed_hosts = Some(vec!["127.0.0.1".into()]);
        c.runtime.script_websockets = 1;
    })
    .await;
    let entry = node
        .start_worker(json!({
            "scriptContent": format!(
                r#"const first = new WebSocket("ws://{addr}/a");
                   await new Promise((resolve, reject) => {{ first.onopen = resolve; first.onerror = reject; }});
                   try {{ new WebSocket("ws://{addr}/b"); logger.info("second opened"); }}
                   catch (e) {{ logger.info("second refused", e.name, e.message); }}
                   first.close();
                   logger.info("done");"#
            ),
            "mode": "single",
            "priority": "high",
        }))
        .await;
    let lines = node.wait_for_log(&sid(&entry), "] done").await;
    assert!(
        lines.iter().any(|l| l.contains(
            "second refused QuotaExceededError too many open sockets: a worker may hold 1 at once (--script-websockets)"
        )),
        "{lines:?}"
    );
}
