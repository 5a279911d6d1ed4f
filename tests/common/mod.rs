//! Shared test harness: a real node on 127.0.0.1:0 with its own store, and real HTTP and
//! WebSocket clients.
#![allow(dead_code)]

#[cfg(feature = "etcd")]
pub mod cluster;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod process;
pub mod raw_ws;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use heterogen::{NodeConfig, RunningNode};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running node and the temporary directory holding its store.
pub struct TestNode {
    pub node: Option<RunningNode>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// A config for tests: any free port, fsync off (speed), and `--open` — these tests are about
/// other things; the authentication tests turn it off and log in.
pub fn test_config(dir: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.fsync = false;
    config.open = true;
    config
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut NodeConfig)) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        change(&mut config);
        let node = heterogen::start(config).await.unwrap();
        Self::started(node, dir)
    }

    fn started(node: RunningNode, dir: tempfile::TempDir) -> TestNode {
        TestNode {
            addr: node.local_addr(),
            node: Some(node),
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// A node whose cluster store is `store` (opened by the caller, e.g. wrapped to inject
    /// faults); its local store and everything else live in a fresh directory.
    pub async fn start_on(
        store: std::sync::Arc<dyn heterogen::store::Store>,
        change: impl FnOnce(&mut NodeConfig),
    ) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        change(&mut config);
        let node = heterogen::start_with_store(config, store).await.unwrap();
        Self::started(node, dir)
    }

    pub fn running(&self) -> &RunningNode {
        self.node.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// POSTs a WebFIX request; returns status and JSON body.
    pub async fn call(&self, method: &str, body: Value) -> (u16, Value) {
        self.post(&json!({"webfix": "1.0", "method": method, "params": [], "body": body}))
            .await
    }

    /// POSTs any JSON value.
    pub async fn post(&self, envelope: &Value) -> (u16, Value) {
        self.post_raw(serde_json::to_vec(envelope).unwrap()).await
    }

    /// POSTs raw bytes.
    pub async fn post_raw(&self, bytes: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(self.url())
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
        )
    }

    /// Creates a worker over HTTP and returns its entry.
    pub async fn create_worker(&self, body: Value) -> Value {
        let (status, entry) = self.call("setWorker", body).await;
        assert_eq!(status, 200, "{entry}");
        entry
    }

    /// Opens a WebSocket on `path` offering the `webfix` subprotocol.
    pub async fn ws(&self, path: &str) -> Ws {
        let mut request = format!("ws://{}{}", self.addr, path)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "webfix".parse().unwrap());
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "webfix"
        );
        ws
    }

    pub async fn shutdown(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await.unwrap();
        }
    }
}

/// POSTs a WebFIX request to the node at `url`; returns status and JSON body.
pub async fn call_url(client: &reqwest::Client, url: &str, method: &str, body: Value) -> (u16, Value) {
    let envelope = json!({"webfix": "1.0", "method": method, "body": body});
    let response = client.post(url).json(&envelope).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Sends a WebFIX request with `id` over a WebSocket.
pub async fn ws_send(ws: &mut Ws, id: Value, method: &str, body: Value) {
    let frame = json!({"webfix": "1.0", "method": method, "params": [], "body": body, "id": id});
    ws.send(Message::Text(frame.to_string().into())).await.unwrap();
}

/// The next JSON text frame (skipping pings), failing after 10 s.
pub async fn ws_next(ws: &mut Ws) -> Value {
    serde_json::from_str(&ws_next_text(ws).await).unwrap()
}

/// The next `events` push of type `kind` about `sid` (its `raw`), skipping other frames.
pub async fn ws_next_event(ws: &mut Ws, kind: &str, sid: &str) -> Value {
    loop {
        let frame = ws_next(ws).await;
        let raw = &frame["value"]["raw"];
        if frame["value"]["module"] == "events" && raw["type"] == kind && raw["sid"] == sid {
            return raw.clone();
        }
    }
}

/// The next text frame as sent (skipping pings), failing after 10 s.
pub async fn ws_next_text(ws: &mut Ws) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no frame within 10 s")
            .expect("connection ended")
            .expect("WebSocket error");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// A WebFIX call over a WebSocket, expecting the answer as the next frame.
pub async fn ws_call(ws: &mut Ws, id: Value, method: &str, body: Value) -> Value {
    ws_send(ws, id.clone(), method, body).await;
    let frame = ws_next(ws).await;
    assert_eq!(frame["id"], id, "{frame}");
    frame
}

/// The `raw` of a worker entry.
pub fn raw(entry: &Value) -> Value {
    entry["value"]["raw"].clone()
}

/// The sid of a worker entry.
pub fn sid(entry: &Value) -> String {
    entry["value"]["raw"]["sid"].as_str().unwrap().to_string()
}

/// Polls `check` every 20 ms until it returns `Some`, failing after `secs` seconds with `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestNode {
    /// Logs `wallet` in with the existing client's `connectionNode` request; returns the session.
    pub async fn login(&self, wallet: &heterogen::auth::gliesereum::Wallet) -> String {
        let now = chrono::Utc::now().timestamp_millis();
        let request =
            heterogen::auth::gliesereum::login_request_body(wallet, "LOGIN_REQUEST", "testnet", now, "", "");
        let (status, reply) = self.post(&request).await;
        assert_eq!(status, 200, "{reply}");
        reply["raw"]["session"].as_str().unwrap().to_string()
    }

    /// Creates a worker with `body` and activates it; returns the active entry.
    pub async fn start_worker(&self, body: Value) -> Value {
        let entry = self.create_worker(body).await;
        self.set_active(&entry, true).await
    }

    /// Writes `entry`'s raw with `field` set to `value` through `updateWorker`; returns the
    /// new entry.
    pub async fn update_field(&self, entry: &Value, field: &str, value: Value) -> Value {
        let mut r = raw(entry);
        r[field] = value;
        let body = json!({"channel": entry["value"]["channel"], "raw": r});
        let (status, updated) = self.call("updateWorker", body).await;
        assert_eq!(status, 200, "{updated}");
        updated
    }

    /// Sets `active` on a worker entry; returns the new entry.
    pub async fn set_active(&self, entry: &Value, active: bool) -> Value {
        self.update_field(entry, "active", json!(active)).await
    }

    /// Replaces the script of a worker entry; returns the new entry.
    pub async fn set_script(&self, entry: &Value, script: &str) -> Value {
        self.update_field(entry, "script", json!(script)).await
    }

    /// The `getWorkerStats` item of `sid`, if this node has one.
    pub async fn worker_stats(&self, sid: &str) -> Option<Value> {
        let (_, stats) = self.call("getWorkerStats", json!({})).await;
        stats["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["sid"] == sid)
            .cloned()
    }

    /// The log lines of `sid` kept on this node.
    pub fn log_lines(&self, sid: &str) -> Vec<String> {
        self.running()
            .logs()
            .recent(sid)
            .into_iter()
            .map(|l| l.content)
            .collect()
    }

    /// Waits until a log line of `sid` contains `needle`; returns all lines.
    pub async fn wait_for_log(&self, sid: &str, needle: &str) -> Vec<String> {
        eventually(15, &format!("a log line containing {needle:?}"), || async {
            let lines = self.log_lines(sid);
            lines.iter().any(|l| l.contains(needle)).then_some(lines)
        })
        .await
    }
}

/// Fast timings for runtime tests: backoffs in milliseconds, short leases.
pub fn quick_runtime(c: &mut NodeConfig) {
    let rt = &mut c.runtime;
    rt.js_threads = 2;
    rt.stop_grace = Duration::from_millis(300);
    rt.cpu_limit = Duration::from_millis(300);
    rt.lease_duration = Duration::from_millis(1500);
    rt.lease_renew_interval = Duration::from_millis(200);
    rt.errors.network_backoff_base = Duration::from_millis(10);
    rt.errors.network_backoff_cap = Duration::from_millis(50);
    rt.errors.network_pause = Duration::from_millis(300);
    rt.errors.critical_backoff_base = Duration::from_millis(10);
    rt.errors.critical_backoff_cap = Duration::from_millis(50);
}

/// The changes under `prefix` from now on: a watch from the revision of a read made now.
pub async fn watch_from_now(
    store: &dyn heterogen::store::Store,
    prefix: &heterogen::store::Key,
) -> heterogen::store::WatchStream {
    let only_the_revision = heterogen::store::ListOptions {
        limit: Some(0),
        ..Default::default()
    };
    let now = store.list(prefix, only_the_revision).await.unwrap().revision;
    store.watch(prefix, now).await.unwrap()
}
