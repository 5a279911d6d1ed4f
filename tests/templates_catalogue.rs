//! The STELS editor's worker templates (`stels-client.md` §4.4) that need neither exchange
//! clients nor an HTTP server, run unmodified on a real node, with the settings the catalogue
//! gives them (scope / execution mode / priority / mode; dependencies). Where a template calls
//! out, only its URL is replaced by a local server's. Each test checks what §4.4 says the
//! template does: the keys it writes and the lines it logs.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{TestNode, eventually, quick_runtime, sid};
use heterogen::store::{Key, KeyPart, Store, list_all};
use serde_json::{Value, json};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Creates and starts a worker from a template's settings and script; returns its sid.
async fn deploy(node: &TestNode, settings: Value, script: &str) -> String {
    let mut body = settings;
    body["scriptContent"] = json!(script);
    sid(&node.start_worker(body).await)
}

/// `scope/executionMode/priority/mode` and dependencies, as the catalogue lists them.
fn settings(scope: &str, execution: &str, priority: &str, mode: &str, gliesereum: bool) -> Value {
    json!({"scope": scope, "executionMode": execution, "priority": priority, "mode": mode,
           "dependencies": if gliesereum { json!(["gliesereum"]) } else { json!([]) }})
}

/// Runs a one-off script that prepares data; waits for its `seeded` line.
async fn seed(node: &TestNode, script: &str) {
    let sid = deploy(node, settings("local", "leader", "high", "single", false), script).await;
    node.wait_for_log(&sid, "seeded").await;
}

fn key(parts: &[Value]) -> Key {
    let mut key = vec![KeyPart::Str("kv".into())];
    for part in parts {
        key.push(match part {
            Value::String(s) => KeyPart::Str(s.clone()),
            Value::Number(n) => KeyPart::Num(n.as_f64().unwrap()),
            Value::Bool(b) => KeyPart::Bool(*b),
            other => panic!("not a key part: {other}"),
        });
    }
    Key(key)
}

async fn value_at(store: &Arc<dyn Store>, parts: &[Value]) -> Option<Value> {
    store
        .get(&key(parts))
        .await
        .unwrap()
        .entry
        .map(|e| e.value.parse().unwrap())
}

/// The user keys (without the script namespace) and values under `parts`.
async fn listed(store: &Arc<dyn Store>, parts: &[Value]) -> Vec<(Vec<Value>, Value)> {
    let page = list_all(store.as_ref(), &key(parts)).await.unwrap();
    page.entries
        .iter()
        .map(|e| {
            let parts = e.key.0[1..]
                .iter()
                .map(|p| match p {
                    KeyPart::Str(s) => json!(s),
                    KeyPart::Num(n) => json!(n),
                    KeyPart::Bool(b) => json!(b),
                })
                .collect();
            (parts, e.value.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn health_check_stores_memory_load_and_uptime() {
    let node = TestNode::start_with(quick_runtime).await;
    let script = r#"
const nid = Stels.config.nid;
const memory = Deno.memoryUsage();
const load = Deno.loadavg();
const uptime = Date.now() - Stels.startTime;

await Stels.net.set(['health', nid], {
  nid,
  memory: {
    rss: memory.rss,
    heapTotal: memory.heapTotal,
    heapUsed: memory.heapUsed,
    external: memory.external,
  },
  load: { '1m': load[0], '5m': load[1], '15m': load[2] },
  uptime,
  timestamp: Date.now(),
});

logger.info(`Health check: heap ${(memory.heapUsed / 1024 / 1024).toFixed(2)} MB, load ${load[0].toFixed(2)}, uptime ${Math.round(uptime / 1000)}s`);
await Stels.sleep(60000);
"#;
    let sid = deploy(&node, settings("local", "leader", "low", "loop", false), script).await;
    node.wait_for_log(&sid, "Health check: heap").await;
    let health = value_at(node.running().store(), &[json!("health"), json!("s-0001")])
        .await
        .expect("['health', nid] in net KV");
    assert_eq!(health["nid"], "s-0001");
    assert!(health["memory"]["heapUsed"].as_f64().unwrap() > 0.0, "{health}");
    for window in ["1m", "5m", "15m"] {
        assert!(health["load"][window].as_f64().unwrap() >= 0.0, "{health}");
    }
    assert!(health["uptime"].as_f64().unwrap() >= 0.0, "{health}");
}

#[tokio::test]
async fn log_cleanup_deletes_entries_older_than_seven_days() {
    let node = TestNode::start_with(quick_runtime).await;
    seed(
        &node,
        &format!(
            r#"const now = Date.now();
               await Stels.local.set(['testnet', 'logs', 'old', now - 8 * {DAY_MS}], {{ line: 'old' }});
               await Stels.local.set(['testnet', 'logs', 'older', now - 30 * {DAY_MS}], {{ line: 'older' }});
               await Stels.local.set(['testnet', 'logs', 'fresh', now - {DAY_MS}], {{ line: 'fresh' }});
               await Stels.local.set(['testnet', 'logs', 'named'], {{ line: 'no timestamp' }});
               logger.info('seeded');"#
        ),
    )
    .await;
    let script = r#"
const network = Stels.config.network;
const maxAge = 7 * 24 * 60 * 60 * 1000;
const cutoff = Date.now() - maxAge;
let deleted = 0;
let kept = 0;

for await (const entry of Stels.local.list({ prefix: [network, 'logs'] })) {
  const timestamp = entry.key[entry.key.length - 1];
  if (typeof timestamp === 'number' && timestamp < cutoff) {
    await Stels.local.delete(entry.key);
    deleted++;
  } else {
    kept++;
  }
}

logger.info(`Log cleanup: deleted ${deleted} entries older than 7 days, kept ${kept}`);
await Stels.sleep(3600000);
"#;
    let sid = deploy(&node, settings("local", "leader", "low", "loop", false), script).await;
    node.wait_for_log(&sid, "Log cleanup: deleted 2 entries older than 7 days, kept 2")
        .await;
    let left = listed(node.running().local_store(), &[json!("testnet"), json!("logs")]).await;
    let lines: Vec<&Value> = left.iter().map(|(_, v)| &v["line"]).collect();
    assert_eq!(lines, [&json!("fresh"), &json!("no timestamp")]);
}

#[tokio::test]
async fn database_backup_snapshots_the_network_and_prunes_old_backups() {
    let node = TestNode::start_with(quick_runtime).await;
    seed(
        &node,
        &format!(
            r#"await Stels.net.set(['testnet', 'accounts', 'a'], {{ balance: 1 }});
               await Stels.net.set(['testnet', 'accounts', 'b'], {{ balance: 2 }});
               await Stels.net.set(['elsewhere', 'x'], {{ skip: true }});
               await Stels.local.set(['backup', Date.now() - 8 * {DAY_MS}], {{ stale: true }});
               logger.info('seeded');"#
        ),
    )
    .await;
    let script = r#"
const network = Stels.config.network;
const timestamp = Date.now();
const entries = [];

for await (const entry of Stels.net.list({ prefix: [network] })) {
  entries.push({ key: entry.key, value: entry.value, versionstamp: entry.versionstamp });
}

await Stels.local.set(['backup', timestamp], { timestamp, network, count: entries.length, entries });

const cutoff = timestamp - 7 * 24 * 60 * 60 * 1000;
let pruned = 0;
for await (const backup of Stels.local.list({ prefix: ['backup'] })) {
  if (backup.key[1] < cutoff) {
    await Stels.local.delete(backup.key);
    pruned++;
  }
}

logger.info(`Backup complete: ${entries.length} entries saved, ${pruned} old backups removed`);
await Stels.sleep(3600000);
"#;
    let sid = deploy(
        &node,
        settings("local", "leader", "normal", "loop", false),
        script,
    )
    .await;
    node.wait_for_log(&sid, "Backup complete: 2 entries saved, 1 old backups removed")
        .await;
    let backups = listed(node.running().local_store(), &[json!("backup")]).await;
    assert_eq!(backups.len(), 1, "the stale backup is gone: {backups:?}");
    let (key, backup) = &backups[0];
    assert!(key[1].as_f64().unwrap() > 1_700_000_000_000.0);
    assert_eq!(backup["count"], 2);
    let saved: Vec<&Value> = backup["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["key"])
        .collect();
    assert_eq!(
        saved,
        [
            &json!(["testnet", "accounts", "a"]),
            &json!(["testnet", "accounts", "b"])
        ]
    );
}

#[tokio::test]
async fn price_aggregator_writes_average_min_max_and_spread() {
    let node = TestNode::start_with(quick_runtime).await;
    seed(
        &node,
        r#"const tickers = { 's-0001': 100, 's-0002': 102, 's-0003': 104 };
           for (const [nid, price] of Object.entries(tickers)) {
             await Stels.net.set(['market', 'ticker', 'BTC/USDT', nid], { symbol: 'BTC/USDT', price, volume: 5, timestamp: Date.now() });
           }
           await Stels.net.set(['market', 'ticker', 'ETH/USDT', 's-0002'], { symbol: 'ETH/USDT', price: 50, volume: 1, timestamp: Date.now() });
           logger.info('seeded');"#,
    )
    .await;
    let script = r#"
const symbols = ['BTC/USDT', 'ETH/USDT', 'SOL/USDT'];
const nodes = ['s-0001', 's-0002', 's-0003'];

for (const symbol of symbols) {
  const tickers = await Stels.net.getMany(nodes.map((nid) => ['market', 'ticker', symbol, nid]));
  const prices = tickers.filter((t) => t.value !== null).map((t) => t.value.price);
  if (prices.length === 0) {
    logger.warn(`No tickers for ${symbol}`);
    continue;
  }
  const avg = prices.reduce((a, b) => a + b, 0) / prices.length;
  const min = Math.min(...prices);
  const max = Math.max(...prices);
  const spread = ((max - min) / avg) * 100;
  await Stels.net.set(['market', 'aggregated', symbol], {
    symbol, avg, min, max, spread, sources: prices.length, timestamp: Date.now(),
  });
  logger.info(`${symbol}: avg ${avg.toFixed(2)} min ${min} max ${max} spread ${spread.toFixed(3)}%`);
}
await Stels.sleep(10000);
"#;
    let sid = deploy(&node, settings("network", "leader", "high", "loop", true), script).await;
    node.wait_for_log(&sid, "No tickers for SOL/USDT").await;
    let store = node.running().store();
    let btc = value_at(store, &[json!("market"), json!("aggregated"), json!("BTC/USDT")])
        .await
        .unwrap();
    assert_eq!(
        (&btc["avg"], &btc["min"], &btc["max"], &btc["sources"]),
        (&json!(102), &json!(100), &json!(104), &json!(3))
    );
    assert!((btc["spread"].as_f64().unwrap() - 4.0 / 102.0 * 100.0).abs() < 1e-9);
    let eth = value_at(store, &[json!("market"), json!("aggregated"), json!("ETH/USDT")])
        .await
        .unwrap();
    assert_eq!((&eth["avg"], &eth["spread"]), (&json!(50), &json!(0)));
    assert!(
        value_at(store, &[json!("market"), json!("aggregated"), json!("SOL/USDT")])
            .await
            .is_none()
    );
    node.wait_for_log(&sid, "BTC/USDT: avg 102.00 min 100 max 104 spread 3.922%")
        .await;
}

/// Each `sendMessage` the stand-in Telegram API received: the bot path part and the body.
type Sent = Arc<Mutex<Vec<(String, Value)>>>;

/// A stand-in for the Telegram Bot API: records each `sendMessage` body.
async fn telegram() -> (SocketAddr, Sent) {
    use axum::extract::{Path, State};
    let sent: Sent = Arc::default();
    let app =
        axum::Router::new()
            .route(
                "/{bot}/sendMessage",
                axum::routing::post(
                    |State(sent): State<Sent>,
                     Path(bot): Path<String>,
                     axum::Json(body): axum::Json<Value>| async move {
                        sent.lock().unwrap().push((bot, body));
                        axum::Json(json!({"ok": true, "result": {"message_id": 1}}))
                    },
                ),
            )
            .with_state(sent.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, sent)
}

#[tokio::test]
async fn telegram_bot_sends_each_signal_then_deletes_it() {
    let (api, sent) = telegram().await;
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.fetch_allowed_hosts = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    seed(
        &node,
        r#"await Stels.net.set(['testnet', 'trading', 'signals', 1700000000000], { symbol: 'BTC/USDT', side: 'buy', price: 100 });
           await Stels.net.set(['testnet', 'trading', 'signals', 1700000000001], { symbol: 'ETH/USDT', side: 'sell', price: 50 });
           logger.info('seeded');"#,
    )
    .await;
    let script = r#"
const BOT_TOKEN = '123456:TEST-TOKEN';
const CHAT_ID = '-1001234567890';
const network = Stels.config.network;

async function sendMessage(text) {
  const response = await fetch(`https://api.telegram.org/bot${BOT_TOKEN}/sendMessage`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ chat_id: CHAT_ID, text, parse_mode: 'Markdown' }),
  });
  if (!response.ok) {
    throw new Error(`Telegram API error: ${response.status}`);
  }
  return response.json();
}

let sentCount = 0;
for await (const entry of Stels.net.list({ prefix: [network, 'trading', 'signals'] })) {
  const signal = entry.value;
  await sendMessage(`*${signal.side.toUpperCase()}* ${signal.symbol} @ ${signal.price}`);
  await Stels.net.delete(entry.key);
  sentCount++;
}

logger.info(`Telegram: sent ${sentCount} signals`);
await Stels.sleep(5000);
"#
    .replace("https://api.telegram.org", &format!("http://{api}"));
    let sid = deploy(
        &node,
        settings("network", "leader", "normal", "loop", false),
        &script,
    )
    .await;
    node.wait_for_log(&sid, "Telegram: sent 2 signals").await;
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].0, "bot123456:TEST-TOKEN");
    assert_eq!(
        sent[0].1,
        json!({"chat_id": "-1001234567890", "text": "*BUY* BTC/USDT @ 100", "parse_mode": "Markdown"})
    );
    assert_eq!(sent[1].1["text"], "*SELL* ETH/USDT @ 50");
    let left = listed(
        node.running().store(),
        &[json!("testnet"), json!("trading"), json!("signals")],
    )
    .await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn empty_script_logs_its_two_lines() {
    let node = TestNode::start_with(quick_runtime).await;
    let script = r#"
logger.info(`Worker started on node: ${Stels.config.nid}`);

// Your code here

logger.info('Worker execution completed');
await Stels.sleep(1000);
"#;
    let sid = deploy(&node, settings("local", "leader", "normal", "loop", true), script).await;
    let lines = node.wait_for_log(&sid, "Worker execution completed").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[INFO] Worker started on node: s-0001")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn exchange_and_http_server_templates_fail_at_once_saying_why() {
    let node = TestNode::start_with(quick_runtime).await;
    let cases = [
        (
            settings("network", "leader", "critical", "loop", true),
            r#"const exchange = Stels.runtime.cex.bybit;
               const orders = await exchange.fetchOpenOrders('BTC/USDT');"#,
            "TypeError: Stels.runtime.cex (exchange clients) is not available on this node",
        ),
        (
            // The catalogue says local/exclusive, which the API refuses (local scope is leader
            // only, worker-api.md); the script is what matters here.
            json!({"scope": "network", "executionMode": "exclusive", "assignedNode": "s-0001",
                   "priority": "high", "mode": "single", "dependencies": []}),
            r#"Deno.serve({ port: 8080 }, (req) => new Response('ok'));"#,
            "TypeError: Deno.serve is not available on this node (workers cannot listen for HTTP requests)",
        ),
    ];
    for (settings, script, error) in cases {
        let sid = deploy(&node, settings, script).await;
        let stats = eventually(10, "the error in the worker's stats", || async {
            node.worker_stats(&sid)
                .await
                .filter(|s| s["criticalErrors"].as_u64() >= Some(1))
        })
        .await;
        assert_eq!(stats["lastError"], error);
        assert_eq!(stats["lastErrorType"], "critical");
    }
}

/// A stand-in for Binance's combined ticker stream: sends `rounds` rounds of tickers for the
/// streams the client asked for, then closes the socket.
async fn ticker_feed(rounds: u32) -> SocketAddr {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
                for round in 0..rounds {
                    for (symbol, price) in [("BTCUSDT", 100_000.0), ("ETHUSDT", 4_000.0)] {
                        let ticker = json!({"stream": format!("{}@ticker", symbol.to_lowercase()),
                            "data": {"e": "24hrTicker", "E": 1_700_000_000_000u64 + u64::from(round), "s": symbol,
                                     "c": format!("{:.2}", price + f64::from(round)), "P": "1.50", "v": "1234.5"}});
                        ws.send(Message::text(ticker.to_string())).await.unwrap();
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                let _ = ws.close(None).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_monitor_stores_each_update_and_fails_once_the_feed_is_gone() {
    let feed = ticker_feed(3).await;
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.fetch_allowed_hosts = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    let script = r#"
const symbols = ['btcusdt', 'ethusdt'];
const streams = symbols.map((symbol) => `${symbol}@ticker`).join('/');
const ws = new WebSocket(`wss://stream.binance.com:9443/stream?streams=${streams}`);

ws.onopen = () => {
  logger.info('WebSocket connected');
};

ws.onmessage = async (event) => {
  const message = JSON.parse(event.data);
  const ticker = message.data;
  await Stels.local.set(['market', 'realtime', ticker.s], {
    symbol: ticker.s,
    price: parseFloat(ticker.c),
    change: parseFloat(ticker.P),
    volume: parseFloat(ticker.v),
    timestamp: ticker.E,
  });
};

ws.onerror = (error) => {
  logger.error('WebSocket error:', error.message);
};

ws.onclose = () => {
  logger.warn('WebSocket closed');
};

while (true) {
  await Stels.sleep(30000);
  if (ws.readyState !== WebSocket.OPEN) {
    throw new Error('WebSocket connection lost');
  }
  logger.info('WebSocket healthy');
}
"#
    .replace("wss://stream.binance.com:9443", &format!("ws://{feed}"));
    let sid = deploy(
        &node,
        settings("local", "leader", "high", "single", false),
        &script,
    )
    .await;
    node.wait_for_log(&sid, "WebSocket connected").await;
    node.wait_for_log(&sid, "WebSocket closed").await;
    let local = node.running().local_store();
    let btc = eventually(10, "the last BTC update stored", || async {
        value_at(local, &[json!("market"), json!("realtime"), json!("BTCUSDT")])
            .await
            .filter(|v| v["timestamp"] == 1_700_000_000_002u64)
    })
    .await;
    assert_eq!(
        btc,
        json!({"symbol": "BTCUSDT", "price": 100_002, "change": 1.5, "volume": 1234.5, "timestamp": 1_700_000_000_002u64})
    );
    assert!(
        value_at(local, &[json!("market"), json!("realtime"), json!("ETHUSDT")])
            .await
            .is_some()
    );
    // The template checks its socket every 30 s.
    let stats = eventually(40, "the lost connection reported", || async {
        node.worker_stats(&sid)
            .await
            .filter(|s| s["errors"].as_u64() >= Some(1))
    })
    .await;
    assert_eq!(stats["lastError"], "Error: WebSocket connection lost");
    assert_eq!(stats["lastErrorType"], "network");
}
