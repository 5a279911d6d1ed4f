//! Log catch-up cost and slow log readers against one `heterogen serve` process (issue #9,
//! defect 5).
//!
//! Run with `cargo bench --bench logs` (~1 min). It starts the release binary as a child
//! process (`--log-rate 1000000`, the default 10,000 lines of history and 1,000 in memory),
//! creates a single-mode worker that writes `BENCH_LOG_LINES` (10,000) lines, and waits until
//! the node has them all. Then:
//!
//! 1. **catch-up**: `BENCH_LOG_ROUNDS` (5) times, one reader reads the whole log — the SSE
//!    endpoint with `follow=false`, then a `logs` WebSocket subscription from cursor 0 — and
//!    the node's CPU (utime + stime of /proc/PID/stat) and the wall time of each read are
//!    recorded; 10 SSE readers at once are measured the same way;
//! 2. **slow readers**: with RSS settled, `BENCH_LOG_SLOW` (60) SSE readers (`follow=true`) and
//!    as many `logs` subscriptions from cursor 0 are opened and never read; RSS settles again
//!    and the growth is reported; meanwhile 100 `listWorkers` over HTTP, one at a time, give
//!    the latency other clients see.
//!
//! `BENCH_LOG_BINARY` runs another build of the node (e.g. the code before the fix) instead of
//! this one's.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use support::{
    Wait, Ws, cpu_seconds, env_or, next_text, percentile_ms, settled_rss_kib, spawn_binary, stop_node,
};

async fn call(http: &reqwest::Client, addr: SocketAddr, method: &str, body: Value) -> Value {
    let envelope = json!({"webfix": "1.0", "method": method, "params": [], "body": body});
    let response = http
        .post(format!("http://{addr}/"))
        .json(&envelope)
        .send()
        .await
        .expect("request failed");
    assert_eq!(response.status(), 200, "{method} failed");
    response.json().await.expect("answer is not JSON")
}

/// Creates and starts the logging worker; returns its sid and its last cursor once written.
async fn logging_worker(http: &reqwest::Client, addr: SocketAddr, lines: usize) -> (String, u64) {
    let script = format!("for (let i = 0; i < {lines}; i++) logger.info('line', i); logger.info('done');");
    let entry = call(
        http,
        addr,
        "setWorker",
        json!({"scriptContent": script, "mode": "single"}),
    )
    .await;
    let mut raw = entry["value"]["raw"].clone();
    raw["active"] = json!(true);
    let sid = raw["sid"].as_str().expect("no sid").to_string();
    call(
        http,
        addr,
        "updateWorker",
        json!({"channel": entry["value"]["channel"], "raw": raw}),
    )
    .await;
    let started = Instant::now();
    loop {
        let page = call(
            http,
            addr,
            "getWorkerLogs",
            json!({"sid": sid, "since": lines, "limit": 100}),
        )
        .await;
        let finished = page["lines"].as_array().expect("no lines").iter().any(|l| {
            l["content"]
                .as_str()
                .is_some_and(|c| c.contains("Worker finished"))
        });
        if finished {
            let last = page["next"].as_u64().expect("no next");
            // Let the history writer store the last batch.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return (sid, last);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the worker never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads the whole log over SSE (`follow=false`); returns the log events seen.
async fn sse_catch_up(http: &reqwest::Client, addr: SocketAddr, sid: &str) -> usize {
    let url = format!("http://{addr}/api/worker/logs/stream?sid={sid}&follow=false");
    let body = http
        .get(url)
        .send()
        .await
        .expect("SSE failed")
        .text()
        .await
        .expect("SSE body");
    assert!(body.contains("\"complete\""), "the stream did not complete");
    body.matches("\"type\":\"log\"").count()
}

async fn ws_connect(addr: SocketAddr) -> Ws {
    support::connect_idle(addr, 64 * 1024, Some("webfix"))
        .await
        .expect("cannot connect")
}

async fn subscribe_from_start(ws: &mut Ws, sid: &str) {
    let frame = json!({"webfix": "1.0", "method": "subscribe", "params": [], "id": 1,
        "body": {"stream": "logs", "sid": sid, "since": 0}});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send failed");
}

/// Reads the whole log over a `logs` subscription from cursor 0, until `last`.
async fn ws_catch_up(addr: SocketAddr, sid: &str, last: u64) -> usize {
    let mut ws = ws_connect(addr).await;
    subscribe_from_start(&mut ws, sid).await;
    let needle = format!("\"cursor\":{last},");
    let mut pushes = 0;
    loop {
        let text = next_text(&mut ws, Wait::EachFrame(Duration::from_secs(30)))
            .await
            .expect("subscription stalled");
        if text.contains("\"raw\":{\"sid\"") {
            pushes += 1;
        }
        if text.contains(&needle) {
            return pushes;
        }
    }
}

/// Node CPU (ms) and wall time (ms) of `read`.
async fn measured<F: std::future::Future<Output = usize>>(pid: &str, read: F) -> (f64, f64, usize) {
    let cpu = cpu_seconds(pid);
    let started = Instant::now();
    let lines = read.await;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    // /proc ticks are 10 ms: let the last one land.
    tokio::time::sleep(Duration::from_millis(20)).await;
    ((cpu_seconds(pid) - cpu) * 1000.0, wall, lines)
}

fn summary(label: &str, samples: &[(f64, f64, usize)]) {
    let mut cpu: Vec<f64> = samples.iter().map(|s| s.0).collect();
    cpu.sort_by(f64::total_cmp);
    let mut wall: Vec<f64> = samples.iter().map(|s| s.1).collect();
    wall.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    println!(
        "| {label} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        samples[0].2,
        median(&cpu),
        cpu[cpu.len() - 1],
        median(&wall),
        wall[wall.len() - 1]
    );
}

/// An SSE reader that sends its request and never reads.
async fn stalled_sse(addr: SocketAddr, sid: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("cannot connect");
    let request = format!(
        "GET /api/worker/logs/stream?sid={sid}&follow=true HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("cannot send");
    stream
}

async fn list_latencies(http: &reqwest::Client, addr: SocketAddr) -> Vec<u64> {
    let mut samples = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        call(http, addr, "listWorkers", json!({})).await;
        samples.push(started.elapsed().as_micros() as u64);
    }
    samples.sort_unstable();
    samples
}

async fn run() {
    let lines: usize = env_or("BENCH_LOG_LINES", 10_000);
    let rounds: usize = env_or("BENCH_LOG_ROUNDS", 5);
    let slow: usize = env_or("BENCH_LOG_SLOW", 60);
    let binary: String = env_or("BENCH_LOG_BINARY", env!("CARGO_BIN_EXE_heterogen").to_string());
    let dir = tempfile::tempdir().expect("no temporary directory");
    let node = spawn_binary(&binary, dir.path(), &["--log-rate", "1000000"]).await;
    let (addr, pid) = (node.addr, node.pid.to_string());
    let http = reqwest::Client::new();
    let (sid, last) = logging_worker(&http, addr, lines).await;
    println!("binary {binary}; {last} log lines (the newest 1,000 in memory)");

    println!("\n| catch-up of the whole log | lines | node CPU ms, median | max | wall ms, median | max |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let mut sse = Vec::new();
    for _ in 0..rounds {
        sse.push(measured(&pid, sse_catch_up(&http, addr, &sid)).await);
    }
    summary("SSE `follow=false`, 1 reader", &sse);
    let mut ws = Vec::new();
    for _ in 0..rounds {
        ws.push(measured(&pid, ws_catch_up(addr, &sid, last)).await);
    }
    summary("`logs` subscription from 0, 1 reader", &ws);
    let mut ten = Vec::new();
    for _ in 0..rounds.div_ceil(2) {
        let all = futures_util::future::join_all((0..10).map(|_| sse_catch_up(&http, addr, &sid)));
        ten.push(measured(&pid, async { all.await.iter().sum() }).await);
    }
    summary("SSE `follow=false`, 10 readers at once (all)", &ten);

    let pid_number = node.pid;
    let before = settled_rss_kib(pid_number).await;
    let idle_list = list_latencies(&http, addr).await;
    let mut sse_readers = Vec::new();
    for _ in 0..slow {
        sse_readers.push(stalled_sse(addr, &sid).await);
    }
    let with_sse = settled_rss_kib(pid_number).await;
    let mut ws_readers = Vec::new();
    for _ in 0..slow {
        let mut ws = ws_connect(addr).await;
        subscribe_from_start(&mut ws, &sid).await;
        ws_readers.push(ws);
    }
    let with_both = settled_rss_kib(pid_number).await;
    let busy_list = list_latencies(&http, addr).await;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("\n| slow readers (never read) | node RSS MiB | growth MiB |");
    println!("| --- | ---: | ---: |");
    println!("| none | {:.1} | |", mib(before));
    println!(
        "| {slow} SSE `follow=true` | {:.1} | {:+.1} |",
        mib(with_sse),
        mib(with_sse) - mib(before)
    );
    println!(
        "| + {slow} `logs` subscriptions from 0 | {:.1} | {:+.1} |",
        mib(with_both),
        mib(with_both) - mib(before)
    );
    println!("\n| listWorkers over HTTP, 1 at a time | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: |");
    println!(
        "| no log readers | {:.2} | {:.2} |",
        percentile_ms(&idle_list, 50.0),
        percentile_ms(&idle_list, 99.0)
    );
    println!(
        "| with the {} slow readers | {:.2} | {:.2} |",
        2 * slow,
        percentile_ms(&busy_list, 50.0),
        percentile_ms(&busy_list, 99.0)
    );
    drop(sse_readers);
    drop(ws_readers);
    stop_node(node).await;
}

fn main() {
    support::runtime().block_on(run());
}
