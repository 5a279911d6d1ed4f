//! The cluster on etcd, measured with real processes: write throughput on etcd against fjall,
//! propagation of a change between nodes, leader takeover after `kill -9`, and 100,000 idle
//! WebSockets across six nodes with a `stats` stream to each.
//!
//! Run with `cargo bench --features etcd --bench cluster` (needs `etcd` on the PATH). Groups, in
//! order (`BENCH_ONLY` runs those whose name contains it): `writes`, `propagation`, `takeover`,
//! `connections`. Environment: `BENCH_WRITE_SECS` (window per figure, default 5),
//! `BENCH_TRIALS` (propagation trials, default 50), `BENCH_TAKEOVERS` (default 10),
//! `BENCH_CONNECTIONS` (default 100000), `BENCH_NODES` (node processes for them, default 6).

#[path = "../tests/common/etcd.rs"]
mod etcd;
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use etcd::EtcdCluster;
use support::{Node, Wait, Ws, env_or, next_text, percentile_ms, spawn_node, stop_node};

/// Marks the re-executed bench binary that holds client connections for `connections`.
const CLIENT_ROLE: &str = "HG_BENCH_CLIENT";
/// Leader lease and renewal of the takeover trials.
const LEASE_MS: u64 = 3000;
const RENEW_MS: u64 = 1000;

fn main() {
    support::raise_fd_limit();
    if let Ok(spec) = std::env::var(CLIENT_ROLE) {
        support::runtime().block_on(client_process(&spec));
        return;
    }
    support::runtime().block_on(run());
}

fn wanted(group: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| group.contains(&only))
}

async fn run() {
    if wanted("writes") {
        writes().await;
    }
    if wanted("propagation") {
        propagation().await;
    }
    if wanted("takeover") {
        takeover().await;
    }
    if wanted("connections") {
        connections().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A node process on `store` (`None`: its embedded fjall) with `nid` and `extra` flags.
async fn node(dir: &std::path::Path, store: Option<&str>, nid: &str, extra: &[&str]) -> Node {
    let mut args = vec!["--nid", nid, "--js-threads", "1"];
    if let Some(store) = store {
        args.extend_from_slice(&["--store", store]);
    }
    args.extend_from_slice(extra);
    spawn_node(dir, &args).await
}

async fn call(ws: &mut Ws, id: u64, method: &str, body: Value) -> Value {
    let frame = json!({"webfix": "1.0", "method": method, "params": [], "body": body, "id": id});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send failed");
    loop {
        let text = next_text(ws, Wait::Total(Duration::from_secs(30)))
            .await
            .expect("no answer");
        let value: Value = serde_json::from_str(&text).expect("not JSON");
        if value["id"] == id {
            assert_eq!(value["status"], 200, "{method}: {value}");
            return value["result"].clone();
        }
    }
}

/// Waits for the next `events` push of `kind` for `sid` on `ws` (subscribed to `events`).
async fn event(ws: &mut Ws, kind: &str, sid: &str, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let text = next_text(ws, Wait::Total(left)).await?;
        let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let raw = &value["value"]["raw"];
        if value["value"]["module"] == "events" && raw["type"] == kind && raw["sid"] == sid {
            return Ok(());
        }
    }
}

fn summary(label: &str, samples: &mut [u64]) {
    samples.sort_unstable();
    println!(
        "  {label:<34} n={:<5} p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
        samples.len(),
        percentile_ms(samples, 50.0),
        percentile_ms(samples, 99.0),
        percentile_ms(samples, 100.0),
    );
}

// ---------------------------------------------------------------------------------------------
// writes: setWorker and updateWorker on etcd vs fjall, 50 connections
// ---------------------------------------------------------------------------------------------

async fn writes() {
    let window = Duration::from_secs(env_or("BENCH_WRITE_SECS", 5));
    println!("writes: 50 connections, one request in flight each, {window:?} per figure after 1 s warm-up");
    println!("  store                         method          req/s      p50 ms   p99 ms");
    let cluster = EtcdCluster::start(1).await;
    let store = cluster.store_url();
    for (label, store, fsync) in [
        ("fjall --fsync true", None, "true"),
        ("fjall --fsync false", None, "false"),
        ("etcd, 1 member (fsyncs itself)", Some(store.as_str()), "false"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let n = node(dir.path(), store, "w1", &["--fsync", fsync]).await;
        for method in ["setWorker", "updateWorker"] {
            let (rate, mut samples) = drive_writes(n.addr, method, 50, window).await;
            samples.sort_unstable();
            println!(
                "  {label:<29} {method:<14} {rate:>8.0}   {:>7.2}  {:>7.2}",
                percentile_ms(&samples, 50.0),
                percentile_ms(&samples, 99.0)
            );
        }
        stop_node(n).await;
    }
}

/// `connections` clients each writing `method` one at a time; requests per second and the
/// latencies (µs) of those sent after the warm-up.
async fn drive_writes(
    addr: SocketAddr,
    method: &'static str,
    connections: usize,
    window: Duration,
) -> (f64, Vec<u64>) {
    let warmup = Duration::from_secs(1);
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now() + Duration::from_millis(500);
    for index in 0..connections {
        tasks.spawn(async move {
            let mut ws = support::connect(addr).await;
            let mut id = 0u64;
            let script = format!("// writer {index}\nawait Stels.sleep(1000);");
            let mut entry = call(&mut ws, 0, "setWorker", json!({"scriptContent": script})).await;
            tokio::time::sleep_until(start.into()).await;
            let (measure_from, end) = (start + warmup, start + warmup + window);
            let mut samples = Vec::new();
            while Instant::now() < end {
                id += 1;
                let body = match method {
                    "setWorker" => json!({"scriptContent": script}),
                    _ => {
                        let mut raw = entry["value"]["raw"].clone();
                        raw["note"] = json!(format!("update {id}"));
                        json!({"channel": entry["value"]["channel"], "raw": raw, "versionstamp": entry["versionstamp"]})
                    }
                };
                let sent = Instant::now();
                let reply = call(&mut ws, id, method, body).await;
                if method == "updateWorker" {
                    entry = reply;
                }
                if sent >= measure_from {
                    samples.push(sent.elapsed().as_micros() as u64);
                }
            }
            samples
        });
    }
    let mut all = Vec::new();
    while let Some(samples) = tasks.join_next().await {
        all.extend(samples.expect("writer failed"));
    }
    (all.len() as f64 / window.as_secs_f64(), all)
}

// ---------------------------------------------------------------------------------------------
// propagation: updateWorker on node A → run started / stopped on node B
// ---------------------------------------------------------------------------------------------

async fn propagation() {
    let trials: usize = env_or("BENCH_TRIALS", 50);
    println!(
        "propagation: updateWorker through node A, then the run starting / stopping on node B ({trials} trials each)"
    );
    let cluster = EtcdCluster::start(1).await;
    let store = cluster.store_url();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(da.path(), Some(&store), "a", &[]).await;
    let b = node(db.path(), Some(&store), "b", &[]).await;
    let mut wa = support::connect(a.addr).await;
    let mut wb = support::connect(b.addr).await;
    call(&mut wb, 1, "subscribe", json!({"stream": "events"})).await;
    let mut entry = call(
        &mut wa,
        1,
        "setWorker",
        json!({"scriptContent": "await Stels.sleep(1000);"}),
    )
    .await;
    let sid = entry["value"]["raw"]["sid"].as_str().unwrap().to_string();
    let (mut started, mut stopped) = (Vec::new(), Vec::new());
    let mut id = 10;
    for _ in 0..trials {
        for (active, kind, samples) in [(true, "started", &mut started), (false, "stopped", &mut stopped)] {
            id += 1;
            let mut raw = entry["value"]["raw"].clone();
            raw["active"] = json!(active);
            let sent = Instant::now();
            entry = call(
                &mut wa,
                id,
                "updateWorker",
                json!({"channel": entry["value"]["channel"], "raw": raw}),
            )
            .await;
            event(&mut wb, kind, &sid, Duration::from_secs(10))
                .await
                .expect("node B did not follow");
            samples.push(sent.elapsed().as_micros() as u64);
        }
    }
    summary("A: active=true → B: started", &mut started);
    summary("A: active=false → B: stopped", &mut stopped);
    stop_node(a).await;
    stop_node(b).await;
}

// ---------------------------------------------------------------------------------------------
// takeover: kill -9 of the leader's node → another node runs the worker
// ---------------------------------------------------------------------------------------------

async fn takeover() {
    let trials: usize = env_or("BENCH_TAKEOVERS", 10);
    println!(
        "takeover: kill -9 of the node running a leader-mode worker, until another node's run starts \
         (3 nodes, --lease-ms {LEASE_MS} --lease-renew-ms {RENEW_MS} --stop-grace-ms 500, {trials} trials; bound: lease + renewal = {} ms)",
        LEASE_MS + RENEW_MS
    );
    let cluster = EtcdCluster::start(1).await;
    let store = cluster.store_url();
    let (lease, renew) = (LEASE_MS.to_string(), RENEW_MS.to_string());
    let timing = [
        "--lease-ms",
        lease.as_str(),
        "--lease-renew-ms",
        renew.as_str(),
        "--stop-grace-ms",
        "500",
        "--membership-ttl-ms",
        "2000",
    ];
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(Some(
            node(dir.path(), Some(&store), &format!("t{i}"), &timing).await,
        ));
    }
    let mut first = support::connect(nodes[0].as_ref().unwrap().addr).await;
    let entry = call(
        &mut first,
        1,
        "setWorker",
        json!({"scriptContent": "await Stels.sleep(50);", "executionMode": "leader"}),
    )
    .await;
    let mut raw = entry["value"]["raw"].clone();
    raw["active"] = json!(true);
    call(
        &mut first,
        2,
        "updateWorker",
        json!({"channel": entry["value"]["channel"], "raw": raw}),
    )
    .await;
    drop(first);
    let sid = entry["value"]["raw"]["sid"].as_str().unwrap().to_string();
    let mut took = Vec::new();
    for trial in 0..trials {
        let holder = leader_of(&nodes, &sid).await;
        let mut watchers = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            if i != holder {
                let mut ws = support::connect(n.as_ref().unwrap().addr).await;
                call(&mut ws, 1, "subscribe", json!({"stream": "events"})).await;
                watchers.push(ws);
            }
        }
        let mut dead = nodes[holder].take().unwrap();
        dead.child.kill().await.unwrap();
        let killed = Instant::now();
        let waits = watchers
            .iter_mut()
            .map(|ws| Box::pin(event(ws, "started", &sid, Duration::from_secs(30))));
        let (result, _, _) = futures_util::future::select_all(waits).await;
        result.expect("no node took over");
        let ms = killed.elapsed().as_millis() as u64;
        println!("  trial {trial}: t{holder} killed, taken over in {ms} ms");
        took.push(ms * 1000);
        drop(watchers);
        nodes[holder] = Some(node(dirs[holder].path(), Some(&store), &format!("t{holder}"), &timing).await);
    }
    summary("kill -9 → run on another node", &mut took);
    for n in nodes.into_iter().flatten() {
        stop_node(n).await;
    }
}

/// The index of the node whose `getLeaderInfo` names itself for `sid`, once one does.
async fn leader_of(nodes: &[Option<Node>], sid: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (i, n) in nodes.iter().enumerate() {
            let mut ws = support::connect(n.as_ref().unwrap().addr).await;
            let info = call(&mut ws, 1, "getLeaderInfo", json!({"workerId": sid})).await;
            if info["leader"] == format!("t{i}") && info["isExpired"] == false {
                let stats = call(&mut ws, 2, "getWorkerStats", json!({})).await;
                let running = stats["workers"]
                    .as_array()
                    .is_some_and(|w| w.iter().any(|w| w["sid"] == sid && w["isRunning"] == true));
                if running {
                    return i;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// connections: 100,000 idle WebSockets across six nodes, then a stats stream to each at 1 Hz
// ---------------------------------------------------------------------------------------------

async fn connections() {
    let total: usize = env_or("BENCH_CONNECTIONS", 100_000);
    let count: usize = env_or("BENCH_NODES", 6);
    let per_node = total.div_ceil(count);
    assert!(
        per_node <= 19_000,
        "{per_node} connections per node is over the 19,000 a process can hold here"
    );
    println!(
        "connections: {total} WebSockets across {count} node processes on one etcd ({per_node} each), one client process and source address per node"
    );
    let cluster = EtcdCluster::start(1).await;
    let store = cluster.store_url();
    let dirs: Vec<_> = (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let extra = [
            "--max-connections",
            "19500",
            "--ws-ping-interval-ms",
            "600000",
            "--max-pending",
            "8192",
        ];
        nodes.push(node(dir.path(), Some(&store), &format!("c{i}"), &extra).await);
    }
    let before: Vec<u64> =
        futures_util::future::join_all(nodes.iter().map(|n| support::settled_rss_kib(n.pid))).await;

    let started = Instant::now();
    let mut clients = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let source = Ipv4Addr::new(127, 0, 1, 1 + i as u8);
        let spec = format!("{};{};{}", n.addr, per_node.min(total - i * per_node), source);
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .env(CLIENT_ROLE, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start a client process");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        clients.push((child, lines));
    }
    for (_, lines) in &mut clients {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("a client process died while connecting");
        assert!(line.starts_with("connected"), "{line}");
    }
    let connect_took = started.elapsed();
    let after: Vec<u64> =
        futures_util::future::join_all(nodes.iter().map(|n| support::settled_rss_kib(n.pid))).await;
    let grown: u64 = after.iter().zip(&before).map(|(a, b)| a.saturating_sub(*b)).sum();
    println!(
        "  connected {total} in {:.1} s ({:.0}/s); node RSS {} MiB in all ({} MiB before), {:.1} KiB per connection",
        connect_took.as_secs_f64(),
        total as f64 / connect_took.as_secs_f64(),
        after.iter().sum::<u64>() / 1024,
        before.iter().sum::<u64>() / 1024,
        grown as f64 / total as f64
    );

    // Every connection subscribes to `stats` at 1 Hz; the clients count what arrives.
    let cpu_before: f64 = nodes
        .iter()
        .map(|n| support::cpu_seconds(&n.pid.to_string()))
        .sum();
    for (child, _) in &mut clients {
        use tokio::io::AsyncWriteExt;
        let mut go = child.stdin.take().unwrap();
        go.write_all(b"go\n").await.unwrap();
    }
    let mut frames = 0u64;
    let mut window = Duration::ZERO;
    for (_, lines) in &mut clients {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("a client process died while streaming");
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some("frames"), "{line}");
        frames += parts.next().unwrap().parse::<u64>().unwrap();
        window = window.max(Duration::from_millis(parts.next().unwrap().parse().unwrap()));
    }
    let cpu = nodes
        .iter()
        .map(|n| support::cpu_seconds(&n.pid.to_string()))
        .sum::<f64>()
        - cpu_before;
    let expected = total as f64 * window.as_secs_f64();
    println!(
        "  stats at 1 Hz to every connection: {frames} frames in {:.1} s ({:.1} % of one per connection per second); node CPU {:.2} s in all ({:.0} % of one core)",
        window.as_secs_f64(),
        frames as f64 * 100.0 / expected,
        cpu,
        cpu * 100.0 / window.as_secs_f64()
    );
    for (mut child, _) in clients {
        let _ = child.kill().await;
    }
    for n in nodes {
        stop_node(n).await;
    }
}

/// The client process: `ADDR;COUNT;SOURCE` — opens COUNT idle WebSockets to ADDR from SOURCE,
/// prints `connected`, waits for a line on stdin, then subscribes each to `stats` at 1 Hz,
/// counts frames for 10 s after the first second and prints `frames N WINDOW_MS`.
async fn client_process(spec: &str) {
    let mut parts = spec.split(';');
    let addr: SocketAddr = parts.next().unwrap().parse().unwrap();
    let count: usize = parts.next().unwrap().parse().unwrap();
    let source: IpAddr = parts.next().unwrap().parse().unwrap();
    let opened: Vec<Ws> = futures_util::stream::iter(0..count)
        .map(|_| connect_from(source, addr))
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("client from {source}: {e}"));
    println!("connected {}", opened.len());
    let mut go = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut go)
        .await
        .unwrap();

    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for mut ws in opened {
        let (frames, counting) = (frames.clone(), counting.clone());
        tasks.spawn(async move {
            let subscribe = r#"{"webfix":"1.0","method":"subscribe","params":[],"body":{"stream":"stats","interval":1000},"id":1}"#;
            if ws.send(Message::Text(subscribe.into())).await.is_err() {
                return;
            }
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Text(text) = message
                    && text.contains("\"module\":\"stats\"")
                    && counting.load(std::sync::atomic::Ordering::Relaxed)
                {
                    frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, std::sync::atomic::Ordering::Relaxed);
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    counting.store(false, std::sync::atomic::Ordering::Relaxed);
    println!(
        "frames {} {}",
        frames.load(std::sync::atomic::Ordering::Relaxed),
        window.as_millis()
    );
    tasks.abort_all();
}

/// One idle WebSocket to `addr` from the loopback address `source`, with small buffers.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> Result<Ws, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = tokio::time::timeout(Duration::from_secs(30), socket.connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let request = format!("ws://{addr}/")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let upgrade = tokio_tungstenite::client_async_with_config(
        request,
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
        Some(config),
    );
    let (ws, _) = tokio::time::timeout(Duration::from_secs(30), upgrade)
        .await
        .map_err(|_| "upgrade timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(ws)
}
