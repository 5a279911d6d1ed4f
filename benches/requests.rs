//! WebFIX requests per second and latency over WebSocket, next to an echo baseline on the same
//! WebSocket stack measured in the same run.
//!
//! Run with `cargo bench --bench requests`. Everything (nodes, echo servers, clients) runs in this
//! process on one multi-threaded tokio runtime, on 127.0.0.1 only.
//!
//! Scenarios (each for `BENCH_SECS` seconds after `BENCH_WARMUP_MS` of warm-up):
//! - `echo`: an axum WebSocket server with the node's settings (4 KiB read buffer, write buffer 0)
//!   that sends every frame back. The request frame is the `listWorkers` request.
//! - `echo, list-sized reply`: the same server answering every frame with a fixed text of exactly
//!   the bytes the node sends for `listWorkers` with 100 workers (transport cost of that reply).
//! - `listWorkers` with 100 workers stored; `setWorker` with body `{}` (fsync off, then on).
//! - W-LIST-2: `listWorkers` with 10,000 workers stored, one request at a time on one client,
//!   over WebSocket and over HTTP `POST /`.
//!
//! Each of the `BENCH_CONNECTIONS` (50) connections sends one request and waits for its answer
//! before sending the next (pipeline depth 1), so latency is request-to-answer time.
//!
//! Environment: `BENCH_SECS` (default 5), `BENCH_WARMUP_MS` (500), `BENCH_CONNECTIONS` (50),
//! `BENCH_LIST_WORKERS` (100), `BENCH_BIG_LIST_WORKERS` (10000), `BENCH_ONLY` (run only the
//! scenario groups whose name contains it: `echo`, `list`, `set`, `big`; all by default).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as ServerMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use heterogen::RunningNode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes as ClientText};

use support::{Wait, Ws, connect, env_or};

/// The node's default `--max-request-bytes`; the echo server copies the node's limits from it.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// How long any single answer may take before the run is declared broken.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests each connection keeps in flight while filling a store.
const FILL_WINDOW: usize = 32;
/// Connections used to fill a store.
const FILL_CONNECTIONS: usize = 8;
/// Most requests of the sequential W-LIST-2 runs (they also stop after `BENCH_SECS`).
const BIG_LIST_MAX_REQUESTS: usize = 200;

/// Settings read from the environment.
struct Settings {
    measure: Duration,
    warmup: Duration,
    connections: usize,
    list_workers: usize,
    big_list_workers: usize,
    only: String,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            measure: Duration::from_secs_f64(env_or("BENCH_SECS", 5.0)),
            warmup: Duration::from_millis(env_or("BENCH_WARMUP_MS", 500)),
            connections: env_or("BENCH_CONNECTIONS", 50),
            list_workers: env_or("BENCH_LIST_WORKERS", 100),
            big_list_workers: env_or("BENCH_BIG_LIST_WORKERS", 10_000),
            only: env_or("BENCH_ONLY", String::new()),
        }
    }

    /// Whether the scenario group `group` runs.
    fn runs(&self, group: &str) -> bool {
        group.contains(self.only.as_str())
    }
}

/// One line of the result table.
struct Row {
    name: String,
    connections: usize,
    /// Latencies in microseconds of the requests sent inside the measuring window, sorted.
    samples: Vec<u64>,
    window: Duration,
    reply_bytes: usize,
    /// Set when the scenario could not run to the end.
    failure: Option<String>,
}

impl Row {
    fn per_second(&self) -> f64 {
        self.samples.len() as f64 / self.window.as_secs_f64()
    }

    fn percentile(&self, p: usize) -> f64 {
        support::percentile_ms(&self.samples, p as f64)
    }

    fn max(&self) -> f64 {
        self.samples.last().map_or(f64::NAN, |&us| us as f64 / 1000.0)
    }
}

/// What a correct answer to a frame looks like.
#[derive(Clone)]
enum Expect {
    /// The same text back.
    Echo,
    /// Any text of exactly this many bytes.
    Length(usize),
    /// A WebFIX answer with the request's id and status 200.
    Webfix,
}

/// Checks one answer; `id` is the request id, `sent` the request text.
fn check(expect: &Expect, id: u64, sent: &str, answer: &str) -> Result<(), String> {
    let ok = match expect {
        Expect::Echo => answer == sent,
        Expect::Length(n) => answer.len() == *n,
        Expect::Webfix => {
            // Fast paths for the node's output (fields in insertion order, or sorted); a full
            // parse otherwise.
            let fast = answer.starts_with(&format!("{{\"webfix\":\"1.0\",\"id\":{id},\"status\":200,"))
                || (answer.starts_with(&format!("{{\"id\":{id},"))
                    && answer.ends_with("\"status\":200,\"webfix\":\"1.0\"}"));
            fast || serde_json::from_str::<serde_json::Value>(answer)
                .is_ok_and(|v| v["id"] == id && v["status"] == 200)
        }
    };
    if ok {
        Ok(())
    } else {
        let head: String = answer.chars().take(200).collect();
        Err(format!("unexpected answer to request {id}: {head}"))
    }
}

fn request_frame(method: &str, id: u64) -> String {
    format!(r#"{{"webfix":"1.0","method":"{method}","params":[],"body":{{}},"id":{id}}}"#)
}

/// Sends `text` and returns the next text frame, skipping pings and pongs.
async fn round_trip(ws: &mut Ws, text: String) -> Result<ClientText, String> {
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| format!("send failed: {e}"))?;
    support::next_text(ws, Wait::Total(ANSWER_TIMEOUT)).await
}

/// Drives `connections` clients, each sending `method` requests one at a time, and measures
/// the requests sent inside the window after the warm-up.
async fn drive(
    name: &str,
    addr: SocketAddr,
    method: &'static str,
    expect: Expect,
    connections: usize,
    settings: &Settings,
) -> Row {
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        sockets.push(connect(addr).await);
    }
    let start = Instant::now();
    let measure_from = start + settings.warmup;
    let end = measure_from + settings.measure;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, mut ws) in sockets.into_iter().enumerate() {
        let expect = expect.clone();
        tasks.spawn(async move {
            let mut samples = Vec::new();
            let mut reply_bytes = 0;
            // Ids distinct across connections.
            let mut id = index as u64 * 1_000_000_000;
            while Instant::now() < end {
                id += 1;
                let text = request_frame(method, id);
                let sent_at = Instant::now();
                let answer = round_trip(&mut ws, text.clone()).await?;
                let elapsed = sent_at.elapsed();
                check(&expect, id, &text, &answer)?;
                reply_bytes = answer.len();
                if sent_at >= measure_from {
                    samples.push(elapsed.as_micros() as u64);
                }
            }
            let _ = ws.close(None).await;
            Ok::<_, String>((samples, reply_bytes))
        });
    }
    let mut row = Row {
        name: name.to_string(),
        connections,
        samples: Vec::new(),
        window: settings.measure,
        reply_bytes: 0,
        failure: None,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("client task panicked") {
            Ok((samples, reply_bytes)) => {
                row.samples.extend(samples);
                row.reply_bytes = row.reply_bytes.max(reply_bytes);
            }
            Err(e) => row.failure = Some(e),
        }
    }
    row.samples.sort_unstable();
    row
}

/// W-LIST-2: one client, one request at a time, at most `BIG_LIST_MAX_REQUESTS` or the window.
async fn sequential_ws(name: &str, addr: SocketAddr, settings: &Settings) -> Row {
    let mut ws = connect(addr).await;
    let mut row = Row {
        name: name.to_string(),
        connections: 1,
        samples: Vec::new(),
        window: Duration::ZERO,
        reply_bytes: 0,
        failure: None,
    };
    let start = Instant::now();
    for id in 1..=BIG_LIST_MAX_REQUESTS as u64 {
        if start.elapsed() >= settings.measure {
            break;
        }
        let text = request_frame("listWorkers", id);
        let sent_at = Instant::now();
        let answer = round_trip(&mut ws, text.clone())
            .await
            .and_then(|answer| check(&Expect::Webfix, id, &text, &answer).map(|_| answer));
        match answer {
            Ok(answer) => {
                row.samples.push(sent_at.elapsed().as_micros() as u64);
                row.reply_bytes = answer.len();
            }
            Err(e) => {
                row.failure = Some(e);
                break;
            }
        }
    }
    row.window = start.elapsed();
    row.samples.sort_unstable();
    row
}

/// W-LIST-2 over HTTP `POST /`, for comparison with the WebSocket path.
async fn sequential_http(name: &str, addr: SocketAddr, settings: &Settings) -> Row {
    let client = reqwest::Client::new();
    let mut row = Row {
        name: name.to_string(),
        connections: 1,
        samples: Vec::new(),
        window: Duration::ZERO,
        reply_bytes: 0,
        failure: None,
    };
    let body = r#"{"webfix":"1.0","method":"listWorkers","params":[],"body":{}}"#;
    let start = Instant::now();
    for _ in 0..BIG_LIST_MAX_REQUESTS {
        if start.elapsed() >= settings.measure {
            break;
        }
        let sent_at = Instant::now();
        let answer = async {
            let response = client
                .post(format!("http://{addr}/"))
                .header("content-type", "application/json")
                .body(body)
                .timeout(ANSWER_TIMEOUT)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("HTTP {status}"));
            }
            Ok(bytes.len())
        }
        .await;
        match answer {
            Ok(len) => {
                row.samples.push(sent_at.elapsed().as_micros() as u64);
                row.reply_bytes = len;
            }
            Err(e) => {
                row.failure = Some(e);
                break;
            }
        }
    }
    row.window = start.elapsed();
    row.samples.sort_unstable();
    row
}

/// Starts an in-process node on 127.0.0.1:0 with its store in `dir`.
async fn start_node(dir: &std::path::Path, fsync: bool) -> RunningNode {
    support::start_node(dir, |config| config.fsync = fsync).await
}

/// Creates `count` workers through `setWorker` over WebSocket, `FILL_WINDOW` in flight per
/// connection.
async fn fill(addr: SocketAddr, count: usize) {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..FILL_CONNECTIONS {
        // This connection's share of the workers.
        let share = count / FILL_CONNECTIONS + usize::from(index < count % FILL_CONNECTIONS);
        tasks.spawn(async move {
            let mut ws = connect(addr).await;
            let mut done = 0;
            while done < share {
                let batch = FILL_WINDOW.min(share - done);
                for i in 0..batch {
                    let id = (done + i) as u64;
                    ws.feed(Message::Text(request_frame("setWorker", id).into()))
                        .await
                        .expect("send failed");
                }
                ws.flush().await.expect("flush failed");
                let mut answered = 0;
                while answered < batch {
                    let next = tokio::time::timeout(ANSWER_TIMEOUT, ws.next())
                        .await
                        .expect("no setWorker answer in time")
                        .expect("connection closed")
                        .expect("connection failed");
                    if let Message::Text(text) = next {
                        assert!(text.contains("\"status\":200"), "setWorker failed: {text}");
                        answered += 1;
                    }
                }
                done += batch;
            }
            let _ = ws.close(None).await;
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("fill task panicked");
    }
    eprintln!(
        "  stored {count} workers in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

/// What the echo server answers.
#[derive(Clone)]
struct EchoState {
    /// `None`: the received frame; `Some`: this fixed text.
    fixed: Option<Utf8Bytes>,
}

async fn echo_upgrade(State(state): State<EchoState>, upgrade: WebSocketUpgrade) -> Response {
    // The node's settings (src/net/ws.rs).
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_REQUEST_BYTES * 2 + 64 * 1024)
        .max_message_size(MAX_REQUEST_BYTES)
        .max_frame_size(MAX_REQUEST_BYTES)
        .on_upgrade(move |socket| echo(socket, state.fixed))
}

async fn echo(mut socket: WebSocket, fixed: Option<Utf8Bytes>) {
    while let Some(Ok(message)) = socket.recv().await {
        let answer = match message {
            ServerMessage::Text(text) => ServerMessage::Text(fixed.clone().unwrap_or(text)),
            ServerMessage::Binary(data) => ServerMessage::Binary(data),
            ServerMessage::Close(_) => break,
            ServerMessage::Ping(_) | ServerMessage::Pong(_) => continue,
        };
        if socket.send(answer).await.is_err() {
            break;
        }
    }
}

/// Starts an echo server on 127.0.0.1:0, bound like the node (deep backlog, Nagle off).
fn start_echo(fixed: Option<Utf8Bytes>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener =
        heterogen::net::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("cannot bind the echo server");
    let addr = listener.local_addr().expect("no local address");
    let app = Router::new()
        .route("/", get(echo_upgrade))
        .with_state(EchoState { fixed });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

fn print_table(rows: &[&Row]) {
    println!();
    println!(
        "{:<44} {:>5} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10}",
        "scenario", "conns", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "reply B"
    );
    for row in rows {
        println!(
            "{:<44} {:>5} {:>9} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>10}",
            row.name,
            row.connections,
            row.samples.len(),
            row.per_second(),
            row.percentile(50),
            row.percentile(99),
            row.max(),
            row.reply_bytes
        );
        if let Some(failure) = &row.failure {
            println!("    FAILED: {failure}");
        }
    }
}

/// One "node vs baseline" line, when both ran.
fn print_ratio(node: Option<&Row>, baseline: Option<&Row>) {
    let (Some(node), Some(baseline)) = (node, baseline) else {
        return;
    };
    println!(
        "{} vs {}: {:.1}% of the baseline's req/s, p50 x{:.2}, p99 x{:.2}",
        node.name,
        baseline.name,
        100.0 * node.per_second() / baseline.per_second(),
        node.percentile(50) / baseline.percentile(50),
        node.percentile(99) / baseline.percentile(99),
    );
}

async fn run(settings: Settings) {
    let n = settings.connections;
    println!(
        "requests bench: {n} connections, pipeline depth 1, {:.1} s per scenario after {} ms warm-up, {} threads",
        settings.measure.as_secs_f64(),
        settings.warmup.as_millis(),
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );

    // Echo baseline, with the listWorkers request as the frame.
    let mut echo_row = None;
    if settings.runs("echo") {
        eprintln!("echo");
        let (addr, server) = start_echo(None);
        echo_row = Some(
            drive(
                "echo (request frame back)",
                addr,
                "listWorkers",
                Expect::Echo,
                n,
                &settings,
            )
            .await,
        );
        server.abort();
    }

    // listWorkers with 100 workers stored, then the same reply bytes from the echo server: what
    // the transport alone costs for them.
    let (mut list_row, mut blob_row) = (None, None);
    if settings.runs("list") {
        eprintln!("listWorkers, {} workers", settings.list_workers);
        let dir = tempfile::tempdir().expect("no temporary directory");
        let node = start_node(dir.path(), false).await;
        fill(node.local_addr(), settings.list_workers).await;
        let mut probe = connect(node.local_addr()).await;
        let reply = round_trip(&mut probe, request_frame("listWorkers", 1))
            .await
            .expect("listWorkers failed");
        drop(probe);
        let name = format!("listWorkers ({} workers)", settings.list_workers);
        list_row = Some(
            drive(
                &name,
                node.local_addr(),
                "listWorkers",
                Expect::Webfix,
                n,
                &settings,
            )
            .await,
        );
        node.shutdown().await.expect("node did not stop cleanly");

        eprintln!("echo, list-sized reply");
        let expect = Expect::Length(reply.len());
        let (addr, server) = start_echo(Some(Utf8Bytes::from(reply.as_str().to_string())));
        blob_row = Some(
            drive(
                "echo, fixed list-sized reply",
                addr,
                "listWorkers",
                expect,
                n,
                &settings,
            )
            .await,
        );
        server.abort();
    }

    // setWorker, fsync off then on (the node's default).
    let mut set_rows = Vec::new();
    if settings.runs("set") {
        for fsync in [false, true] {
            eprintln!("setWorker, fsync {fsync}");
            let dir = tempfile::tempdir().expect("no temporary directory");
            let node = start_node(dir.path(), fsync).await;
            let name = format!("setWorker {{}} (fsync {})", if fsync { "on" } else { "off" });
            set_rows.push(
                drive(
                    &name,
                    node.local_addr(),
                    "setWorker",
                    Expect::Webfix,
                    n,
                    &settings,
                )
                .await,
            );
            node.shutdown().await.expect("node did not stop cleanly");
        }
    }

    // W-LIST-2: 10,000 workers, one request at a time.
    let mut big_rows = Vec::new();
    if settings.runs("big") {
        let big = settings.big_list_workers;
        eprintln!("listWorkers, {big} workers");
        let dir = tempfile::tempdir().expect("no temporary directory");
        let node = start_node(dir.path(), false).await;
        fill(node.local_addr(), big).await;
        let name = format!("W-LIST-2 listWorkers ({big} workers) WS");
        big_rows.push(sequential_ws(&name, node.local_addr(), &settings).await);
        let name = format!("W-LIST-2 listWorkers ({big} workers) HTTP");
        big_rows.push(sequential_http(&name, node.local_addr(), &settings).await);
        node.shutdown().await.expect("node did not stop cleanly");
    }

    let rows: Vec<&Row> = [&echo_row, &list_row, &blob_row]
        .into_iter()
        .flatten()
        .chain(&set_rows)
        .chain(&big_rows)
        .collect();
    print_table(&rows);
    println!();
    print_ratio(list_row.as_ref(), echo_row.as_ref());
    print_ratio(list_row.as_ref(), blob_row.as_ref());
    for row in &set_rows {
        print_ratio(Some(row), echo_row.as_ref());
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this program takes no arguments.
    let settings = Settings::from_env();
    support::runtime().block_on(run(settings));
}
