//! `WebSocket` in scripts (S-14), engine level: real QuickJS isolates with small limits talk to
//! real WebSocket servers on loopback. The end-to-end cases (a node running a worker) are in
//! `runtime_websocket_node.rs`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use heterogen::auth::gliesereum::Wallet;
use heterogen::clock::Clock;
use heterogen::runtime::engine::{
    FetchPolicy, IsolateLimits, LogLevel, LogSink, NoSecrets, NodeIdentity, RunError, ScriptConfig,
    ScriptEngine, ScriptIsolate, WebSocketPolicy, WorkerEnv,
};
use heterogen::runtime::errors::classify;
use heterogen::runtime::quickjs::QuickJsEngine;
use heterogen::store::ExpiryLeases;
use heterogen::store::fjall::FjallStore;
use heterogen::streams::stats::ErrorKind;
use heterogen::workers::{ExecutionMode, Priority, RunMode};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

/// Collects a worker's log lines.
#[derive(Default)]
struct Lines(Mutex<Vec<(LogLevel, String)>>);

impl LogSink for Lines {
    fn log(&self, level: LogLevel, message: &str) {
        self.0.lock().unwrap().push((level, message.to_owned()));
    }
}

impl Lines {
    fn texts(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(_, t)| t.clone()).collect()
    }

    /// The first line starting with `label `, parsed as JSON after the label.
    fn json(&self, label: &str) -> Value {
        let prefix = format!("{label} ");
        let line = self
            .texts()
            .into_iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {label:?} line in {:?}", self.texts()));
        serde_json::from_str(&line[prefix.len()..]).unwrap()
    }

    async fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.texts().iter().any(|l| l.contains(needle)) {
            assert!(Instant::now() < deadline, "no {needle:?} in {:?}", self.texts());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A worker environment: `allowed` hosts for fetch and WebSocket, the socket `policy`.
struct Harness {
    env: WorkerEnv,
    lines: Arc<Lines>,
    _dir: tempfile::TempDir,
}

fn harness(allowed: Option<&[&str]>, policy: WebSocketPolicy) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let net: Arc<dyn heterogen::store::Store> =
        Arc::new(FjallStore::open(&dir.path().join("net"), false).unwrap());
    let local: Arc<dyn heterogen::store::Store> =
        Arc::new(FjallStore::open(&dir.path().join("local"), false).unwrap());
    let lines = Arc::new(Lines::default());
    let env = WorkerEnv {
        config: ScriptConfig {
            nid: "s-0001".into(),
            network: "testnet".into(),
            title: "test".into(),
            tick: 1,
            sid: "ws-test".into(),
            execution_mode: ExecutionMode::Leader,
            priority: Priority::High,
            mode: RunMode::Single,
            version: "1".into(),
            lease_epoch: None,
        },
        running_workers: Arc::new(std::sync::atomic::AtomicUsize::new(1)),
        net_expiry: Arc::new(ExpiryLeases::new(
            net.clone(),
            Duration::from_millis(10),
            Clock::system(),
        )),
        local_expiry: Arc::new(ExpiryLeases::new(
            local.clone(),
            Duration::from_millis(10),
            Clock::system(),
        )),
        net_fence: None,
        net,
        local,
        log: lines.clone(),
        fetch: FetchPolicy {
            allowed_hosts: allowed.map(|hosts| hosts.iter().map(|h| h.to_string()).collect()),
            timeout: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
        },
        kv_quota_bytes: 1 << 20,
        node: Arc::new(NodeIdentity {
            wallet: Arc::new(Wallet::generate()),
            start_time_ms: 0,
        }),
        dependencies: Vec::new(),
        secrets: Arc::new(NoSecrets),
        websocket: policy,
        heap_bytes: Arc::new(std::sync::atomic::AtomicU64::new(0)),
    };
    Harness {
        env,
        lines,
        _dir: dir,
    }
}

const LOOPBACK: Option<&[&str]> = Some(&["127.0.0.1"]);

fn policy(max_per_worker: usize, max_queued_messages: usize, max_message_bytes: usize) -> WebSocketPolicy {
    WebSocketPolicy {
        max_per_worker,
        max_queued_messages,
        max_queued_bytes: 0,
        max_message_bytes,
    }
}

async fn isolate(script: &str, env: &WorkerEnv) -> Box<dyn ScriptIsolate> {
    let limits = IsolateLimits {
        memory_bytes: 64 << 20,
        cpu_slice: Duration::from_secs(5),
    };
    QuickJsEngine::new()
        .create(script, env.clone(), limits)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `script` once to its end (within 10 s).
async fn run_once(h: &Harness, script: &str) -> Result<(), RunError> {
    let mut isolate = isolate(script, &h.env).await;
    let stop = CancellationToken::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        isolate.run(&stop, Duration::from_secs(1)),
    )
    .await
    .unwrap_or_else(|_| panic!("the run did not end: {:?}", h.lines.texts()))
}

/// What a test server saw of one connection.
#[derive(Debug, PartialEq)]
enum Seen {
    /// A message from the script.
    Text(String),
    Binary(Vec<u8>),
    /// The script's close frame: code and reason (`None`: no status).
    Close(Option<(u16, String)>),
    /// The connection ended without a close frame.
    Dropped,
}

/// A WebSocket server on 127.0.0.1:0 running `handler` for each connection; it selects the
/// first protocol offered. What each connection sees goes to the returned channel.
async fn server<F, Fut>(handler: F) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>)
where
    F: Fn(WebSocketStream<TcpStream>, mpsc::UnboundedSender<Seen>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // Without it, small frames after the first wait for the client's delayed ACK and
            // then arrive as one large burst.
            tcp.set_nodelay(true).unwrap();
            let handler = handler.clone();
            let seen = seen_tx.clone();
            tokio::spawn(async move {
                // The callback's error type is tungstenite's, large by design.
                #[allow(clippy::result_large_err)]
                let choose = |request: &Request, mut response: Response| {
                    let offered = request
                        .headers()
                        .get("sec-websocket-protocol")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split(',').next())
                        .map(|v| v.trim().to_string());
                    if let Some(first) = offered {
                        response
                            .headers_mut()
                            .insert("sec-websocket-protocol", first.parse().unwrap());
                    }
                    Ok(response)
                };
                if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, choose).await {
                    handler(ws, seen).await;
                }
            });
        }
    });
    (addr, seen_rx)
}

/// Reads the script's frames into `seen` until the connection ends; echoes them when `echo`.
async fn record(ws: &mut WebSocketStream<TcpStream>, seen: &mpsc::UnboundedSender<Seen>, echo: bool) {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let _ = seen.send(Seen::Text(text.to_string()));
                if echo {
                    let _ = ws.send(Message::Text(text)).await;
                }
            }
            Some(Ok(Message::Binary(bytes))) => {
                let _ = seen.send(Seen::Binary(bytes.to_vec()));
                if echo {
                    let _ = ws.send(Message::Binary(bytes)).await;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let _ = seen.send(Seen::Close(
                    frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                ));
                // tungstenite answers the close; wait for the end of the connection.
                while let Some(Ok(_)) = ws.next().await {}
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                let _ = seen.send(Seen::Dropped);
                return;
            }
        }
    }
}

/// Echoes everything; a text `close-me` makes it close with 4001 "server bye".
async fn echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    server(|mut ws, seen| async move {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) if text.as_str() == "close-me" => {
                    let frame = CloseFrame {
                        code: CloseCode::from(4001),
                        reason: "server bye".into(),
                    };
                    let _ = ws.close(Some(frame)).await;
                    while let Some(Ok(_)) = ws.next().await {}
                    return;
                }
                Some(Ok(Message::Text(text))) => {
                    let _ = seen.send(Seen::Text(text.to_string()));
                    let _ = ws.send(Message::Text(text)).await;
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let _ = seen.send(Seen::Binary(bytes.to_vec()));
                    let _ = ws.send(Message::Binary(bytes)).await;
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = seen.send(Seen::Close(
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ));
                    while let Some(Ok(_)) = ws.next().await {}
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let _ = seen.send(Seen::Dropped);
                    return;
                }
            }
        }
    })
    .await
}

/// The next thing a server saw that is not a message, within 10 s.
async fn next_end(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("the server saw no close within 10 s")
            .expect("server gone");
        if matches!(next, Seen::Close(_) | Seen::Dropped) {
            return next;
        }
    }
}

/// A port with nothing listening.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_text_and_binary_with_events_in_order() {
    let (addr, mut seen) = echo_server().await;
    let h = harness(LOOPBACK, WebSocketPolicy::default());
    let script = format!(
        r#"
        const events = [];
        const ws = new WebSocket("ws://{addr}/echo", ["chat", "other"]);
        logger.info("initial " + JSON.stringify({{
          state: ws.readyState, url: ws.url, protocol: ws.protocol, binaryType: ws.binaryType,
          buffered: ws.bufferedAmount, extensions: ws.extensions,
          constants: [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED,
                      ws.CONNECTING, ws.OPEN, ws.CLOSING, ws.CLOSED],
          tag: Object.prototype.toString.call(ws),
        }}));
        ws.addEventListener("open", (e) => events.push(`open ${{e.type}} ${{e.target === ws}} ${{ws.readyState}} ${{ws.protocol}}`));
        const closed = new Promise((resolve) => {{
          ws.onmessage = (e) => {{
            if (typeof e.data === "string") events.push(`text ${{e.data}} ${{e.origin}}`);
            else events.push(`binary ${{e.data instanceof ArrayBuffer}} ${{Array.from(new Uint8Array(e.data)).join(",")}}`);
            if (events.length === 5) ws.close(1000, "done");
          }};
          ws.onclose = (e) => {{
            events.push(`close ${{e.code}} ${{e.reason}} ${{e.wasClean}} ${{ws.readyState}} ${{ws.bufferedAmount}}`);
            resolve();
          }};
        }});
        ws.onopen = () => {{
          events.push(`onopen ${{ws.readyState}}`);
          ws.send("héllo ✓");
          ws.send(new Uint8Array([1, 2, 255]).buffer);
          ws.send(new Uint16Array([0x0201, 0x0403]).subarray(1));
        }};
        await closed;
        logger.info("events " + JSON.stringify(events));
        "#
    );
    run_once(&h, &script).await.unwrap();
    let initial = h.lines.json("initial");
    assert_eq!(
        initial,
        json!({
            "state": 0, "url": format!("ws://{addr}/echo"), "protocol": "", "binaryType": "arraybuffer",
            "buffered": 0, "extensions": "", "constants": [0, 1, 2, 3, 0, 1, 2, 3], "tag": "[object WebSocket]",
        })
    );
    assert_eq!(
        h.lines.json("events"),
        json!([
            "open open true 1 chat",
            "onopen 1",
            format!("text héllo ✓ ws://{addr}"),
            "binary true 1,2,255",
            "binary true 3,4",
            "close 1000 done true 3 0",
        ])
    );
    assert_eq!(seen.recv().await, Some(Seen::Text("héllo ✓".into())));
    assert_eq!(seen.recv().await, Some(Seen::Binary(vec![1, 2, 255])));
    assert_eq!(seen.recv().await, Some(Seen::Binary(vec![3, 4])));
    assert_eq!(
        next_end(&mut seen).await,
        Seen::Close(Some((1000, "done".into())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_and_reasons_both_ways() {
    let (addr, mut seen) = echo_server().await;
    let h = harness(LOOPBACK, WebSocketPolicy::default());
    let script = format!(
        r#"
        function opened(ws) {{
          return new Promise((resolve, reject) => {{ ws.onopen = resolve; ws.onerror = reject; }});
        }}
        function closed(ws) {{
          return new Promise((resolve) => {{
            ws.onclose = (e) => resolve({{ code: e.code, reason: e.reason, wasClean: e.wasClean, state: ws.readyState }});
          }});
        }}
        const results = {{}};
        // The server closes.
        const a = new WebSocket("ws://{addr}/a");
        await opened(a);
        const aClosed = closed(a);
        a.send("close-me");
        results.server = await aClosed;
        // The script closes with a code and a reason.
        const b = new WebSocket("ws://{addr}/b");
        await opened(b);
        const bClosed = closed(b);
        b.close(4000, "bye ✓");
        results.closingState = b.readyState;
        b.close(4001, "ignored while closing");
        b.send("dropped while closing");
        results.script = await bClosed;
        // No code at all: the server echoes no status.
        const c = new WebSocket("ws://{addr}/c");
        await opened(c);
        const cClosed = closed(c);
        c.close();
        results.noCode = await cClosed;
        // A reason alone means 1000; a fractional code is clamped like WebIDL.
        const d = new WebSocket("ws://{addr}/d");
        await opened(d);
        const dClosed = closed(d);
        d.close(undefined, "only a reason");
        results.reasonOnly = await dClosed;
        const e = new WebSocket("ws://{addr}/e");
        await opened(e);
        const eClosed = closed(e);
        e.close(3000.5);
        results.clamped = await eClosed;
        // Closing while connecting fails the connection: error, then close 1006.
        const f = new WebSocket("ws://{addr}/f");
        const order = [];
        f.onerror = (ev) => order.push(`error ${{ev.name}}`);
        const fClosed = closed(f);
        f.close();
        results.connecting = await fClosed;
        results.connectingOrder = order;
        logger.info("results " + JSON.stringify(results));
        "#
    );
    run_once(&h, &script).await.unwrap();
    let results = h.lines.json("results");
    assert_eq!(
        results["server"],
        json!({"code": 4001, "reason": "server bye", "wasClean": true, "state": 3})
    );
    assert_eq!(results["closingState"], 2);
    assert_eq!(
        results["script"],
        json!({"code": 4000, "reason": "bye ✓", "wasClean": true, "state": 3})
    );
    assert_eq!(
        results["noCode"],
        json!({"code": 1005, "reason": "", "wasClean": true, "state": 3})
    );
    assert_eq!(results["reasonOnly"]["code"], 1000);
    assert_eq!(results["clamped"]["code"], 3000);
    assert_eq!(
        results["connecting"],
        json!({"code": 1006, "reason": "", "wasClean": false, "state": 3})
    );
    assert_eq!(results["connectingOrder"], json!(["error NetworkError"]));
    // What the server saw of b, c, d, e (a was closed by the server itself).
    let mut ends = Vec::new();
    for _ in 0..4 {
        ends.push(next_end(&mut seen).await);
    }
    assert!(
        ends.contains(&Seen::Close(Some((4000, "bye ✓".into())))),
        "{ends:?}"
    );
    assert!(ends.contains(&Seen::Close(None)), "{ends:?}");
    assert!(
        ends.contains(&Seen::Close(Some((1000, "only a reason".into())))),
        "{ends:?}"
    );
    assert!(
        ends.contains(&Seen::Close(Some((3000, String::new())))),
        "{ends:?}"
    );
}

#[tokio::test]
async fn script_mistakes_throw_like_browsers() {
    let h = harness(LOOPBACK, WebSocketPolicy::default());
    let port = closed_port();
    let script = format!(
        r#"
        const out = {{}};
        function attempt(label, f) {{
          try {{ f(); out[label] = "no error"; }}
          catch (e) {{ out[label] = `${{e.name}} ${{e instanceof DOMException}}: ${{e.message}}`; }}
        }}
        attempt("noUrl", () => new WebSocket());
        attempt("badUrl", () => new WebSocket("not a url"));
        attempt("http", () => new WebSocket("http://127.0.0.1:{port}/"));
        attempt("fragment", () => new WebSocket("ws://127.0.0.1:{port}/#frag"));
        attempt("badProtocol", () => new WebSocket("ws://127.0.0.1:{port}/", "a b"));
        attempt("twice", () => new WebSocket("ws://127.0.0.1:{port}/", ["a", "b", "a"]));
        const ws = new WebSocket("ws://127.0.0.1:{port}/");
        attempt("sendConnecting", () => ws.send("x"));
        attempt("code1001", () => ws.close(1001));
        attempt("code5000", () => ws.close(5000));
        attempt("longReason", () => ws.close(1000, "x".repeat(124)));
        attempt("longUtf8Reason", () => ws.close(1000, "é".repeat(62)));
        attempt("blob", () => {{ ws.binaryType = "blob"; }});
        ws.binaryType = "nonsense";
        out.binaryType = ws.binaryType;
        await new Promise((resolve) => {{ ws.onclose = resolve; }});
        logger.info("out " + JSON.stringify(out));
        "#
    );
    run_once(&h, &script).await.unwrap();
    let out = h.lines.json("out");
    let starts = |label: &str, prefix: &str| {
        let got = out[label].as_str().unwrap();
        assert!(got.starts_with(prefix), "{label}: {got}");
    };
    starts("noUrl", "TypeError false");
    starts("badUrl", "SyntaxError true: invalid URL \"not a url\"");
    starts(
        "http",
        "SyntaxError true: unsupported URL scheme \"http:\" in \"http://127.0.0.1",
    );
    starts("fragment", "SyntaxError true: the URL");
    starts("badProtocol", "SyntaxError true: invalid protocol \"a b\"");
    starts("twice", "SyntaxError true: protocol \"a\" is listed twice");
    starts("sendConnecting", "InvalidStateError true");
    starts(
        "code1001",
        "InvalidAccessError true: close: the code must be 1000 or between 3000 and 4999, not 1001",
    );
    starts("code5000", "InvalidAccessError true");
    starts(
        "longReason",
        "SyntaxError true: close: the reason must be at most 123 bytes",
    );
    starts("longUtf8Reason", "SyntaxError true");
    starts("blob", "NotSupportedError true");
    assert_eq!(out["binaryType"], "arraybuffer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_failed_connections_are_error_then_close_1006() {
    let (addr, _seen) = echo_server().await;
    let port = addr.port();
    let closed = closed_port();
    // Each URL: the error event's name and message, then the close event.
    let probe = |urls: &[String]| {
        let list = serde_json::to_string(urls).unwrap();
        format!(
            r#"
            const out = [];
            for (const url of {list}) {{
              const ws = new WebSocket(url);
              const seen = [];
              ws.addEventListener("error", (e) => seen.push({{
                type: e.type, name: e.name, isError: e instanceof Error, same: e.error === e && e.target === ws,
                message: e.message, state: ws.readyState,
              }}));
              await new Promise((resolve) => ws.addEventListener("close", (e) => {{
                seen.push({{ type: e.type, code: e.code, wasClean: e.wasClean, reason: e.reason }});
                resolve();
              }}));
              out.push(seen);
            }}
            logger.info("out " + JSON.stringify(out));
            "#
        )
    };
    // Loopback is refused unless named exactly, however it is spelled.
    let h = harness(None, WebSocketPolicy::default());
    let urls = [
        format!("ws://127.0.0.1:{port}/"),
        format!("ws://localhost:{port}/"),
        format!("ws://[::1]:{port}/"),
    ];
    run_once(&h, &probe(&urls)).await.unwrap();
    let out = h.lines.json("out");
    for (at, url) in urls.iter().enumerate() {
        let error = &out[at][0];
        assert_eq!(error["type"], "error", "{url}: {out}");
        assert_eq!(error["name"], "NetworkError");
        assert_eq!(error["isError"], true);
        assert_eq!(error["same"], true);
        assert_eq!(error["state"], 0, "the error comes before the close");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("WebSocket connection to {url} failed: refused: ")),
            "{message}"
        );
        assert!(message.contains("loopback address"), "{message}");
        assert!(message.contains("named in --fetch-allow"), "{message}");
        assert_eq!(
            out[at][1],
            json!({"type": "close", "code": 1006, "wasClean": false, "reason": ""})
        );
    }
    assert!(
        out[1][0]["message"]
            .as_str()
            .unwrap()
            .contains("refused: localhost resolves to "),
        "{out}"
    );

    // Hosts outside --fetch-allow; a wildcard does not open loopback; nothing listening; TLS
    // to a plain server.
    let h = harness(Some(&["example.com", "*"]), WebSocketPolicy::default());
    run_once(&h, &probe(&[format!("ws://127.0.0.1:{port}/")]))
        .await
        .unwrap();
    let message = h.lines.json("out")[0][0]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("refused: 127.0.0.1 is a loopback address"),
        "{message}"
    );
    let h = harness(Some(&["example.com"]), WebSocketPolicy::default());
    run_once(&h, &probe(&[format!("ws://127.0.0.1:{port}/")]))
        .await
        .unwrap();
    let message = h.lines.json("out")[0][0]["message"].as_str().unwrap().to_string();
    assert!(
        message.ends_with("failed: host not allowed: 127.0.0.1"),
        "{message}"
    );
    let h = harness(LOOPBACK, WebSocketPolicy::default());
    let urls = [
        format!("ws://127.0.0.1:{closed}/"),
        format!("wss://127.0.0.1:{port}/"),
    ];
    run_once(&h, &probe(&urls)).await.unwrap();
    let out = h.lines.json("out");
    assert!(
        out[0][0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("connection to 127.0.0.1:{closed} failed")),
        "{out}"
    );
    for at in 0..2 {
        assert_eq!(out[at][0]["name"], "NetworkError", "{out}");
        assert_eq!(out[at][1]["code"], 1006, "{out}");
    }

    // The common pattern: await the open and let a failure escape. The run fails with a
    // NetworkError, which the supervisor counts as a network error (W-RUN-3).
    let h = harness(None, WebSocketPolicy::default());
    let error = run_once(
        &h,
        &format!(
            r#"const ws = new WebSocket("ws://127.0.0.1:{port}/");
               await new Promise((resolve, reject) => {{ ws.onopen = resolve; ws.onerror = reject; }});"#
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(error.name, "NetworkError");
    assert!(
        error.message.contains("refused: 127.0.0.1 is a loopback address"),
        "{error}"
    );
    assert_eq!(classify(&error), ErrorKind::Network);

    // An error nobody listens to is logged as a warning.
    let h = harness(None, WebSocketPolicy::default());
    run_once(
        &h,
        &format!(
            r#"const ws = new WebSocket("ws://127.0.0.1:{port}/");
               await new Promise((resolve) => {{ ws.onclose = resolve; }});"#
        ),
    )
    .await
    .unwrap();
    let warned = h.lines.0.lock().unwrap().clone();
    assert!(
        warned.iter().any(|(level, line)| *level == LogLevel::Warn
            && line.starts_with("WebSocket connection to ")
            && line.contains("refused")),
        "{warned:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_holds_at_most_its_share_of_sockets() {
    let (addr, _seen) = echo_server().await;
    let h = harness(LOOPBACK, policy(2, 64, 1 << 20));
    let script = format!(
        r#"
        const opened = (ws) => new Promise((resolve, reject) => {{ ws.onopen = resolve; ws.onerror = reject; }});
        const a = new WebSocket("ws://{addr}/");
        const b = new WebSocket("ws://{addr}/");
        await Promise.all([opened(a), opened(b)]);
        let third;
        try {{ new WebSocket("ws://{addr}/"); third = "opened"; }}
        catch (e) {{ third = `${{e.name}}: ${{e.message}}`; }}
        // A socket's slot is free once its close event has come.
        await new Promise((resolve) => {{ a.onclose = resolve; a.close(); }});
        const c = new WebSocket("ws://{addr}/");
        await opened(c);
        logger.info("out " + JSON.stringify({{ third, c: c.readyState }}));
        "#
    );
    run_once(&h, &script).await.unwrap();
    assert_eq!(
        h.lines.json("out"),
        json!({
            "third": "QuotaExceededError: too many open sockets: a worker may hold 2 at once (--script-websockets)",
            "c": 1,
        })
    );
    // Zero sockets: WebSocket is off for the worker.
    let zero = harness(LOOPBACK, policy(0, 64, 1 << 20));
    let error = run_once(&zero, &format!("new WebSocket('ws://{addr}/');"))
        .await
        .unwrap_err();
    assert_eq!(error.name, "QuotaExceededError");
}

/// A server that, on the script's first text message, sends `count` messages of `size` bytes
/// in bursts of `burst` (0: all at once) 2 ms apart, then records the rest of the connection.
async fn feed_server(count: usize, size: usize, burst: usize) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    server(move |mut ws, seen| async move {
        if let Some(Ok(Message::Text(_))) = ws.next().await {
            for n in 0..count {
                if burst > 0 && n > 0 && n % burst == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let text = format!("{n:0width$}", width = size);
                if ws.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        }
        record(&mut ws, &seen, false).await;
    })
    .await
}

async fn flood_server(count: usize, size: usize) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    feed_server(count, size, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_the_script_does_not_read_closes_the_socket_with_1008() {
    let (addr, mut seen) = flood_server(500, 10).await;
    let h = harness(LOOPBACK, policy(4, 8, 1 << 20));
    // The script does not yield for 300 ms right after asking for the flood, so nothing is
    // delivered meanwhile and the queue of 8 overflows.
    let script = format!(
        r#"
        const events = [];
        const ws = new WebSocket("ws://{addr}/");
        ws.onmessage = () => events.push("message");
        ws.onerror = (e) => events.push(`error ${{e.name}} ${{e.message}}`);
        const closed = new Promise((resolve) => {{
          ws.onclose = (e) => {{ events.push(`close ${{e.code}} ${{e.wasClean}} ${{e.reason}}`); resolve(); }};
        }});
        await new Promise((resolve) => ws.addEventListener("open", resolve));
        ws.send("go");
        const until = Date.now() + 300;
        while (Date.now() < until) {{}}
        await closed;
        logger.info("events " + JSON.stringify(events));
        "#
    );
    run_once(&h, &script).await.unwrap();
    let events = h.lines.json("events");
    let events: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let messages = events.iter().filter(|e| **e == "message").count();
    assert_eq!(messages, 8, "the queued messages are still delivered: {events:?}");
    let error = events[events.len() - 2];
    assert!(
        error.starts_with("error NetworkError WebSocket ws://")
            && error.ends_with("inbound queue full: 8 messages not yet read by the script"),
        "{events:?}"
    );
    assert_eq!(
        events[events.len() - 1],
        "close 1008 false inbound queue full: 8 messages not yet read by the script"
    );
    assert_eq!(
        next_end(&mut seen).await,
        Seen::Close(Some((
            1008,
            "inbound queue full: 8 messages not yet read by the script".into()
        )))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_bytes_are_bounded_as_well_as_messages() {
    // 100 messages of 1,000 bytes while the script computes: the queue allows 1,000 messages
    // but only 4,500 bytes, so the fifth message closes the socket.
    let (addr, mut seen) = flood_server(100, 1000).await;
    let mut limits = policy(4, 1000, 1 << 20);
    limits.max_queued_bytes = 4500;
    let h = harness(LOOPBACK, limits);
    let script = format!(
        r#"
        const events = [];
        const ws = new WebSocket("ws://{addr}/");
        ws.onmessage = () => events.push("message");
        ws.onerror = () => events.push("error");
        const closed = new Promise((resolve) => {{
          ws.onclose = (e) => {{ events.push(`close ${{e.code}} ${{e.reason}}`); resolve(); }};
        }});
        await new Promise((resolve) => ws.addEventListener("open", resolve));
        ws.send("go");
        const until = Date.now() + 300;
        while (Date.now() < until) {{}}
        await closed;
        logger.info("events " + JSON.stringify(events));
        "#
    );
    run_once(&h, &script).await.unwrap();
    let events = h.lines.json("events");
    let events: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        events.iter().filter(|e| **e == "message").count(),
        4,
        "{events:?}"
    );
    assert_eq!(
        events[events.len() - 1],
        "close 1008 inbound queue full: 4000 bytes not yet read by the script"
    );
    assert_eq!(
        next_end(&mut seen).await,
        Seen::Close(Some((
            1008,
            "inbound queue full: 4000 bytes not yet read by the script".into()
        )))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_keeps_reading_is_not_cut_off() {
    // A fast feed (2000 messages in bursts of 20, ~100 ms) read as it comes while the script
    // awaits a sleep: the queue (256) only has to hold what arrives between two polls.
    let (addr, _seen) = feed_server(2000, 10, 20).await;
    let h = harness(LOOPBACK, policy(4, 256, 1 << 20));
    let script = format!(
        r#"
        let count = 0;
        const ws = new WebSocket("ws://{addr}/");
        ws.onmessage = () => {{ count++; }};
        let closed = null;
        ws.onclose = (e) => {{ closed = e.code; }};
        await new Promise((resolve) => ws.addEventListener("open", resolve));
        ws.send("go");
        while (count < 2000 && closed === null) await Stels.sleep(5);
        logger.info("out " + JSON.stringify({{ count, closed }}));
        ws.close();
        "#
    );
    run_once(&h, &script).await.unwrap();
    assert_eq!(h.lines.json("out"), json!({"count": 2000, "closed": null}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_close_with_1009_and_sends_are_bounded() {
    let (addr, mut seen) = flood_server(1, 2000).await;
    let h = harness(LOOPBACK, policy(4, 64, 1024));
    let script = format!(
        r#"
        const events = [];
        const ws = new WebSocket("ws://{addr}/");
        ws.onmessage = (e) => events.push(`message ${{e.data.length}}`);
        ws.onerror = (e) => events.push(`error ${{e.message}}`);
        const closed = new Promise((resolve) => {{
          ws.onclose = (e) => {{ events.push(`close ${{e.code}} ${{e.wasClean}}`); resolve(); }};
        }});
        await new Promise((resolve) => ws.addEventListener("open", resolve));
        const tooBig = [];
        for (const data of ["x".repeat(1025), "é".repeat(513), new Uint8Array(1025)]) {{
          try {{ ws.send(data); tooBig.push("sent"); }} catch (e) {{ tooBig.push(`${{e.name}}: ${{e.message}}`); }}
        }}
        ws.send("x".repeat(1024));
        await closed;
        logger.info("out " + JSON.stringify({{ events, tooBig }}));
        "#
    );
    run_once(&h, &script).await.unwrap();
    let out = h.lines.json("out");
    assert_eq!(
        out["tooBig"],
        json!([
            "RangeError: send: a message of 1025 bytes is over the limit of 1024 bytes",
            "RangeError: send: a message of 1026 bytes is over the limit of 1024 bytes",
            "RangeError: send: a message of 1025 bytes is over the limit of 1024 bytes",
        ])
    );
    let events = out["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{out}");
    let error = events[0].as_str().unwrap();
    assert!(
        error.starts_with("error WebSocket ws://") && error.contains("message too big"),
        "{out}"
    );
    assert_eq!(events[1], "close 1009 false");
    // The server got the 1024-byte message (its trigger) and then the close 1009.
    match next_end(&mut seen).await {
        Seen::Close(Some((code, reason))) => {
            assert_eq!(code, 1009);
            assert!(reason.starts_with("message too big"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_run_closes_its_sockets_and_the_script_hears_it() {
    let (addr, mut seen) = echo_server().await;
    let h = harness(LOOPBACK, WebSocketPolicy::default());
    let script = format!(
        r#"
        const ws = new WebSocket("ws://{addr}/");
        await new Promise((resolve) => {{ ws.onopen = resolve; }});
        logger.info("open");
        const e = await new Promise((resolve) => {{ ws.onclose = resolve; }});
        logger.info("closed", e.code, e.wasClean, e.reason, shouldStop());
        "#
    );
    let mut isolate = isolate(&script, &h.env).await;
    let stop = CancellationToken::new();
    let canceller = stop.clone();
    let lines = h.lines.clone();
    tokio::spawn(async move {
        lines.wait_for("open").await;
        canceller.cancel();
    });
    let started = Instant::now();
    isolate.run(&stop, Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        next_end(&mut seen).await,
        Seen::Close(Some((1001, "the worker is stopping".into())))
    );
    assert!(
        h.lines
            .texts()
            .contains(&"closed 1001 true the worker is stopping true".to_string()),
        "{:?}",
        h.lines.texts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_sockets_close_when_it_ends_and_never_fire_into_the_next_run() {
    let (addr, mut seen) = echo_server().await;
    let h = harness(LOOPBACK, policy(1, 64, 1 << 20));
    let script = format!(
        r#"
        globalThis.runs = (globalThis.runs || 0) + 1;
        if (runs === 1) {{
          const ws = new WebSocket("ws://{addr}/");
          globalThis.kept = ws;
          ws.onclose = () => logger.info("close fired");
          ws.onmessage = (e) => logger.info("message fired", e.data);
          await new Promise((resolve) => {{ ws.onopen = resolve; }});
          ws.send("late echo");
          logger.info("first run ends", ws.readyState);
        }} else {{
          await Stels.sleep(100);
          const fresh = new WebSocket("ws://{addr}/");
          await new Promise((resolve) => {{ fresh.onopen = resolve; }});
          logger.info("second run", kept.readyState, fresh.readyState);
        }}
        "#
    );
    let mut isolate = isolate(&script, &h.env).await;
    let stop = CancellationToken::new();
    isolate.run(&stop, Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        next_end(&mut seen).await,
        Seen::Close(Some((1001, "the worker's run ended".into())))
    );
    isolate.run(&stop, Duration::from_secs(1)).await.unwrap();
    let texts = h.lines.texts();
    assert_eq!(texts, ["first run ends 1", "second run 3 1"], "{texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_isolate_closes_its_sockets() {
    let (addr, mut seen) = echo_server().await;
    let h = harness(LOOPBACK, WebSocketPolicy::default());
    let script = format!(
        r#"
        const ws = new WebSocket("ws://{addr}/");
        await new Promise((resolve) => {{ ws.onopen = resolve; }});
        logger.info("open");
        await new Promise(() => {{}});
        "#
    );
    let mut isolate = isolate(&script, &h.env).await;
    let stop = CancellationToken::new();
    // The run is abandoned mid-way (its future dropped), then the isolate.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        isolate.run(&stop, Duration::from_secs(1)),
    )
    .await;
    assert!(abandoned.is_err());
    assert_eq!(h.lines.texts(), ["open"]);
    drop(isolate);
    assert_eq!(
        next_end(&mut seen).await,
        Seen::Close(Some((1001, "the worker is gone".into())))
    );
}
