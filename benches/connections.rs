//! Resident memory per idle WebSocket connection of a `heterogen serve` process.
//!
//! Run with `cargo bench --bench connections`. For each count N (5,000 and 19,000 by default)
//! it starts a fresh node as a child process (so its RSS is its own), reads its VmRSS, opens N
//! WebSocket connections to it from this process, waits for the RSS to settle, and reports
//! (RSS after - RSS before) / N. The connections stay idle: no request, and a ping interval
//! longer than the run, so nothing but the open connection is measured (the ping timer itself
//! is still set up per connection).
//!
//! The machine caps a process at 20,000 descriptors: the node holds N sockets plus its store,
//! this process holds the N client ends, so both stay under the cap at N = 19,000.
//!
//! Environment: `BENCH_CONNECTION_COUNTS` (comma-separated, default `5000,19000`),
//! `BENCH_CONNECT_CONCURRENCY` (connects in flight at once, default 256).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The node's `--max-connections` for this bench: above the largest count, within the fd cap.
const MAX_CONNECTIONS: &str = "19500";
/// Ping interval of the node, well beyond a run, so no ping traffic happens while measuring.
const PING_INTERVAL_MS: &str = "600000";
/// Target from the issue.
const TARGET_KIB: f64 = 8.0;
/// RSS polling while it settles.
const SETTLE_POLL: Duration = Duration::from_millis(250);
/// RSS is settled when it moved less than this over `SETTLE_SPAN`.
const SETTLE_TOLERANCE_KIB: u64 = 256;
const SETTLE_SPAN: usize = 8;
/// Longest wait for RSS to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
/// Longest wait for one connection to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
        Err(_) => default,
    }
}

/// A `heterogen serve` child process.
struct Node {
    child: Child,
    pid: u32,
    addr: SocketAddr,
}

/// Starts the release binary on 127.0.0.1:0 and waits for its "listening" line.
async fn spawn_node(dir: &Path) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_heterogen"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--open", "--fsync", "false", "--max-connections", MAX_CONNECTIONS])
        .args(["--ws-ping-interval-ms", PING_INTERVAL_MS])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start the heterogen binary");
    let pid = child.id().expect("child has no pid");
    let stdout = child.stdout.take().expect("no stdout pipe");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("node did not start within 30 s")
        .expect("cannot read the node's stdout")
        .expect("node exited before listening");
    let addr = line
        .strip_prefix("heterogen listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("bad address in the listening line");
    Node { child, pid, addr }
}

/// Reads a `kB` field of /proc/PID/status.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("cannot read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Memory of the node at one moment, in KiB.
#[derive(Clone, Copy)]
struct Rss {
    total: u64,
    anon: u64,
}

fn rss(pid: u32) -> Rss {
    Rss {
        total: status_kib(pid, "VmRSS"),
        anon: status_kib(pid, "RssAnon"),
    }
}

/// Waits (bounded) until VmRSS stops moving, and returns the last reading.
async fn settled_rss(pid: u32) -> Rss {
    let started = Instant::now();
    let mut history = Vec::new();
    loop {
        let now = rss(pid);
        history.push(now.total);
        if history.len() >= SETTLE_SPAN {
            let recent = &history[history.len() - SETTLE_SPAN..];
            let spread = recent.iter().max().unwrap_or(&0) - recent.iter().min().unwrap_or(&0);
            if spread < SETTLE_TOLERANCE_KIB {
                return now;
            }
        }
        if started.elapsed() >= SETTLE_LIMIT {
            eprintln!("  RSS still moving after {SETTLE_LIMIT:?}; using the last reading");
            return now;
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// Opens one client WebSocket with small buffers (this process holds up to 19,000 of them).
async fn connect(addr: SocketAddr) -> Result<Ws, String> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let connecting =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), Some(config), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no upgrade within {CONNECT_TIMEOUT:?}")),
    }
}

/// Sends one `listWorkers` and checks the answer, to prove a connection is served.
async fn probe(ws: &mut Ws) {
    let frame = r#"{"webfix":"1.0","method":"listWorkers","params":[],"body":{},"id":1}"#;
    ws.send(Message::Text(frame.into()))
        .await
        .expect("probe send failed");
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no probe answer within 10 s")
            .expect("connection closed")
            .expect("connection failed");
        if let Message::Text(text) = next {
            assert!(text.contains("\"status\":200"), "probe failed: {text}");
            return;
        }
    }
}

/// One measured count.
struct Row {
    connections: usize,
    before: Rss,
    after: Rss,
    connect_time: Duration,
}

impl Row {
    fn per_connection_kib(&self) -> f64 {
        (self.after.total as f64 - self.before.total as f64) / self.connections as f64
    }

    fn anon_per_connection_kib(&self) -> f64 {
        (self.after.anon as f64 - self.before.anon as f64) / self.connections as f64
    }
}

async fn measure(count: usize, concurrency: usize) -> Row {
    let dir = tempfile::tempdir().expect("no temporary directory");
    let mut node = spawn_node(dir.path()).await;
    let addr = node.addr;

    // Warm up the paths a connection takes once (a connection and a request), then the baseline.
    let mut warm = connect(addr).await.expect("warm-up connection failed");
    probe(&mut warm).await;
    let _ = warm.close(None).await;
    drop(warm);
    let before = settled_rss(node.pid).await;

    let started = Instant::now();
    let opened: Vec<Result<Ws, String>> = futures_util::stream::iter(0..count)
        .map(|_| connect(addr))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let connect_time = started.elapsed();
    let mut sockets = Vec::with_capacity(count);
    for result in opened {
        match result {
            Ok(ws) => sockets.push(ws),
            Err(e) => panic!("{} of {count} connections opened; then: {e}", sockets.len()),
        }
    }
    let after = settled_rss(node.pid).await;

    // The first and last connections still work.
    if let Some(first) = sockets.first_mut() {
        probe(first).await;
    }
    if let Some(last) = sockets.last_mut() {
        probe(last).await;
    }

    // Client ends first, then the node; both bounded.
    drop(sockets);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &node.pid.to_string()])
        .status();
    if tokio::time::timeout(Duration::from_secs(20), node.child.wait())
        .await
        .is_err()
    {
        eprintln!("  node did not stop within 20 s; killing it");
        let _ = node.child.kill().await;
    }
    Row {
        connections: count,
        before,
        after,
        connect_time,
    }
}

async fn run() {
    let fd_limit = rlimit::increase_nofile_limit(u64::MAX).expect("cannot raise the descriptor limit");
    let counts: Vec<usize> = std::env::var("BENCH_CONNECTION_COUNTS")
        .unwrap_or_else(|_| "5000,19000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("BENCH_CONNECTION_COUNTS: comma-separated numbers")
        })
        .collect();
    let concurrency: usize = env_or("BENCH_CONNECT_CONCURRENCY", 256);
    println!("connections bench: descriptor limit {fd_limit}, {concurrency} connects in flight");
    let mut rows = Vec::new();
    for count in counts {
        // This process needs one descriptor per connection plus a few of its own.
        if count as u64 + 100 > fd_limit {
            println!("skipping {count}: above this process's descriptor limit {fd_limit}");
            continue;
        }
        eprintln!("{count} connections");
        rows.push(measure(count, concurrency).await);
    }
    println!();
    println!(
        "{:>7} {:>14} {:>14} {:>11} {:>14} {:>12}",
        "conns", "RSS before KiB", "RSS after KiB", "KiB/conn", "anon KiB/conn", "connect s"
    );
    for row in &rows {
        println!(
            "{:>7} {:>14} {:>14} {:>11.2} {:>14.2} {:>12.2}",
            row.connections,
            row.before.total,
            row.after.total,
            row.per_connection_kib(),
            row.anon_per_connection_kib(),
            row.connect_time.as_secs_f64()
        );
    }
    for row in &rows {
        let kib = row.per_connection_kib();
        let verdict = if kib <= TARGET_KIB { "within" } else { "ABOVE" };
        println!(
            "{} connections: {kib:.2} KiB per idle connection, {verdict} the {TARGET_KIB} KiB target",
            row.connections
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this program takes no arguments.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    runtime.block_on(run());
}
