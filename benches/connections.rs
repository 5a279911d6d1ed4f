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

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use support::{Rss, Ws, env_counts, env_or};

/// The node's `--max-connections` for this bench: above the largest count, within the fd cap.
const MAX_CONNECTIONS: &str = "19500";
/// Ping interval of the node, well beyond a run, so no ping traffic happens while measuring.
const PING_INTERVAL_MS: &str = "600000";
/// Target from the issue.
const TARGET_KIB: f64 = 8.0;
/// Client read buffer (this process holds up to 19,000 connections).
const CLIENT_READ_BUFFER: usize = 4 * 1024;

/// Opens one client WebSocket with small buffers.
async fn connect(addr: std::net::SocketAddr) -> Result<Ws, String> {
    support::connect_idle(addr, CLIENT_READ_BUFFER, None).await
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
    let node = support::spawn_node(
        dir.path(),
        &[
            "--max-connections",
            MAX_CONNECTIONS,
            "--ws-ping-interval-ms",
            PING_INTERVAL_MS,
        ],
    )
    .await;
    let addr = node.addr;

    // Warm up the paths a connection takes once (a connection and a request), then the baseline.
    let mut warm = connect(addr).await.expect("warm-up connection failed");
    probe(&mut warm).await;
    let _ = warm.close(None).await;
    drop(warm);
    let before = support::settled_rss_fixed(node.pid).await;

    let (mut sockets, connect_time) =
        support::connect_many(addr, count, concurrency, CLIENT_READ_BUFFER, None).await;
    let after = support::settled_rss_fixed(node.pid).await;

    // The first and last connections still work.
    if let Some(first) = sockets.first_mut() {
        probe(first).await;
    }
    if let Some(last) = sockets.last_mut() {
        probe(last).await;
    }

    // Client ends first, then the node; both bounded.
    drop(sockets);
    support::stop_node(node).await;
    Row {
        connections: count,
        before,
        after,
        connect_time,
    }
}

async fn run() {
    let fd_limit = support::raise_fd_limit();
    let counts = env_counts("BENCH_CONNECTION_COUNTS", "5000,19000");
    let concurrency: usize = env_or("BENCH_CONNECT_CONCURRENCY", 256);
    println!("connections bench: descriptor limit {fd_limit}, {concurrency} connects in flight");
    let mut rows = Vec::new();
    for count in counts {
        // This process needs one descriptor per connection plus a few of its own.
        if !support::within_fd_limit(count, fd_limit) {
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
    support::runtime().block_on(run());
}
