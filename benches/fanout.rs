//! Fan-out of the `stats` stream to many WebSocket subscribers of one `heterogen serve` process.
//!
//! Run with `cargo bench --bench fanout`. For each count N (1,000 and 10,000 by default) it
//! starts a fresh node as a child process (the release binary, so its CPU and RSS are its own),
//! creates `BENCH_FANOUT_WORKERS` (10) workers with `setWorker` and activates them with
//! `updateWorker` (script `await Stels.sleep(100);`, loop mode), so every snapshot carries 10
//! worker entries that change. Then:
//!
//! 1. VmRSS once settled (workers running, no client) = "RSS before";
//! 2. N WebSockets (subprotocol `webfix`) are opened, 256 connects at a time; RSS settles again
//!    ("RSS connected") and the node's CPU is sampled for 2 s (workers + idle connections);
//! 3. every connection sends `subscribe` `{"stream":"stats","interval":1000}` at once, and the
//!    bench waits for all N answers (the subscribe burst);
//! 4. after a warm-up, every push arriving in the window is recorded by the connection's task:
//!    its arrival time and the frame's `timestamp` (found with `rfind`, no JSON parse);
//! 5. the node's CPU (utime + stime of /proc/PID/stat) and VmRSS (sampled every 500 ms) are read
//!    over the window.
//!
//! Reported: pushes delivered per second (total and per subscriber; the ideal is 1 per second per
//! subscriber), the spread of arrivals of one frame (pushes with the same `timestamp`, from the
//! first arrival to each), the age of a push (arrival wall clock minus its `timestamp`), the gap
//! between consecutive pushes of one subscriber, the lateness of a push (each subscription ticks
//! at its own phase, start + k × interval; lateness = arrival − k × interval − the smallest such
//! offset of that subscriber in the window, so it excludes the cache's staleness and is a lower
//! bound of the delivery delay), frames built per second (distinct timestamps), node CPU (user
//! and system) and RSS per subscriber.
//!
//! The client side runs on a multi-threaded tokio runtime in this process and shares the
//! machine's cores with the node; its own CPU is reported too.
//!
//! Environment: `BENCH_FANOUT_COUNTS` (comma-separated, default `1000,10000`), `BENCH_SECS`
//! (10, the window), `BENCH_WARMUP_MS` (2000), `BENCH_FANOUT_WORKERS` (10),
//! `BENCH_STATS_INTERVAL_MS` (1000), `BENCH_CONNECT_CONCURRENCY` (256).

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use support::percentile_ms as ms;
use support::{Node, Wait, Ws, cpu_times, env_counts, env_or, machine_busy_seconds, rss_kib};

/// The node's `--max-connections`: above the largest count, within the 20,000 descriptor cap.
const MAX_CONNECTIONS: &str = "19500";
/// Ping interval of the node, well beyond a run, so no ping traffic happens while measuring.
const PING_INTERVAL_MS: &str = "600000";
/// The workers' script: a loop-mode worker that runs it again and again.
const WORKER_SCRIPT: &str = "await Stels.sleep(100);";
/// Client read buffer: a push is ~4 KB with 10 workers; tungstenite zero-fills the whole buffer.
const CLIENT_READ_BUFFER: usize = 8 * 1024;
/// Node CPU with idle connections is sampled over this span.
const IDLE_CPU_SPAN: Duration = Duration::from_secs(2);
/// RSS sampling during the window.
const RSS_SAMPLE: Duration = Duration::from_millis(500);
/// Longest wait for one answer, for all subscriptions, for all workers to run.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const SUBSCRIBE_LIMIT: Duration = Duration::from_secs(60);
const RUNNING_LIMIT: Duration = Duration::from_secs(30);

/// A push frame starts with this.
const PUSH_PREFIX: &str = r#"{"value":{"channel":"ami.stats."#;
/// The answer to the `subscribe` request (id 1).
const SUBSCRIBED_PREFIX: &str = r#"{"webfix":"1.0","id":1,"status":200,"result":{"subscription":"#;

struct Settings {
    counts: Vec<usize>,
    window: Duration,
    warmup: Duration,
    workers: usize,
    interval_ms: u64,
    concurrency: usize,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            counts: env_counts("BENCH_FANOUT_COUNTS", "1000,10000"),
            window: Duration::from_secs_f64(env_or("BENCH_SECS", 10.0)),
            warmup: Duration::from_millis(env_or("BENCH_WARMUP_MS", 2000)),
            workers: env_or("BENCH_FANOUT_WORKERS", 10),
            interval_ms: env_or("BENCH_STATS_INTERVAL_MS", 1000),
            concurrency: env_or("BENCH_CONNECT_CONCURRENCY", 256),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The node process and CPU readings
// ---------------------------------------------------------------------------------------------

/// Starts the release binary with the bench's connection limit and ping interval.
async fn spawn_node(dir: &std::path::Path) -> Node {
    support::spawn_node(
        dir,
        &[
            "--max-connections",
            MAX_CONNECTIONS,
            "--ws-ping-interval-ms",
            PING_INTERVAL_MS,
        ],
    )
    .await
}

/// User + system CPU time of a process, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let (user, system) = cpu_times(pid);
    user + system
}

/// CPU of the node, of this process and of everything else during a span, in cores.
struct CpuSpan {
    node: String,
    node_start: (f64, f64),
    own_start: f64,
    all_start: f64,
    at: Instant,
}

#[derive(Clone, Copy, Default)]
struct CpuUse {
    node: f64,
    node_system: f64,
    bench: f64,
    others: f64,
}

impl CpuSpan {
    fn start(pid: u32) -> CpuSpan {
        let node = pid.to_string();
        CpuSpan {
            node_start: cpu_times(&node),
            own_start: cpu_seconds("self"),
            all_start: machine_busy_seconds(),
            node,
            at: Instant::now(),
        }
    }

    fn finish(&self) -> CpuUse {
        let secs = self.at.elapsed().as_secs_f64();
        let (user, system) = cpu_times(&self.node);
        let node = user + system - self.node_start.0 - self.node_start.1;
        let node_system = system - self.node_start.1;
        let bench = cpu_seconds("self") - self.own_start;
        let all = machine_busy_seconds() - self.all_start;
        CpuUse {
            node: node / secs,
            node_system: node_system / secs,
            bench: bench / secs,
            others: (all - node - bench).max(0.0) / secs,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// Opens one WebSocket offering the `webfix` subprotocol, with a small read buffer.
async fn connect(addr: SocketAddr) -> Result<Ws, String> {
    support::connect_idle(addr, CLIENT_READ_BUFFER, Some("webfix")).await
}

/// The next text frame, skipping pings and pongs.
async fn next_text(ws: &mut Ws) -> String {
    match support::next_text(ws, Wait::EachFrame(ANSWER_TIMEOUT)).await {
        Ok(text) => text.to_string(),
        Err(e) => panic!("{e}"),
    }
}

/// One WebFIX call on `ws`; returns (status, result).
async fn call(ws: &mut Ws, id: u64, method: &str, body: Value) -> (u64, Value) {
    let frame = json!({"webfix": "1.0", "method": method, "params": [], "body": body, "id": id});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send failed");
    loop {
        let answer: Value = serde_json::from_str(&next_text(ws).await).expect("answer is not JSON");
        if answer["id"] == id {
            let status = answer["status"].as_u64().unwrap_or(0);
            return (status, answer["result"].clone());
        }
    }
}

/// Creates `count` workers running `WORKER_SCRIPT` and waits until all run.
async fn start_workers(addr: SocketAddr, count: usize) {
    let mut ws = connect(addr).await.expect("setup connection failed");
    let mut id = 0;
    for _ in 0..count {
        id += 1;
        let (status, entry) = call(&mut ws, id, "setWorker", json!({"scriptContent": WORKER_SCRIPT})).await;
        assert_eq!(status, 200, "setWorker failed: {entry}");
        let mut raw = entry["value"]["raw"].clone();
        raw["active"] = json!(true);
        id += 1;
        let body = json!({"channel": entry["value"]["channel"], "raw": raw});
        let (status, answer) = call(&mut ws, id, "updateWorker", body).await;
        assert_eq!(status, 200, "updateWorker failed: {answer}");
    }
    let started = Instant::now();
    loop {
        id += 1;
        let (_, stats) = call(&mut ws, id, "getWorkerStats", json!({})).await;
        let running = stats["runningWorkers"].as_u64().unwrap_or(0) as usize;
        let executions = stats["totalExecutions"].as_u64().unwrap_or(0) as usize;
        if running >= count && executions >= count {
            break;
        }
        assert!(
            started.elapsed() < RUNNING_LIMIT,
            "{running} of {count} workers running after {RUNNING_LIMIT:?}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = ws.close(None).await;
}

/// What the subscriber tasks share with the main task.
struct Shared {
    /// Monotonic zero of every `*_us` time.
    epoch: Instant,
    /// Wall clock at `epoch`, in µs since the Unix epoch.
    epoch_wall_us: i64,
    /// Subscriptions answered.
    answered: AtomicUsize,
    stop: CancellationToken,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// What one subscriber saw.
struct Seen {
    sent_us: u64,
    answered_us: u64,
    /// Every push: (frame timestamp ms, arrival µs since `epoch`).
    pushes: Vec<(i64, u64)>,
    /// Length of the last push, bytes.
    push_bytes: usize,
}

/// The `"timestamp":` of a push frame: the last one, since `raw` (getWorkerStats) has its own.
fn frame_timestamp(text: &str) -> Option<i64> {
    let at = text.rfind("\"timestamp\":")? + "\"timestamp\":".len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

/// Subscribes on `ws` and records every push until told to stop.
async fn subscriber(mut ws: Ws, shared: Arc<Shared>, interval_ms: u64) -> Result<Seen, String> {
    let request = format!(
        r#"{{"webfix":"1.0","method":"subscribe","id":1,"body":{{"stream":"stats","interval":{interval_ms}}}}}"#
    );
    let mut seen = Seen {
        sent_us: shared.now_us(),
        answered_us: 0,
        pushes: Vec::with_capacity(32),
        push_bytes: 0,
    };
    ws.send(Message::Text(request.into()))
        .await
        .map_err(|e| format!("subscribe send failed: {e}"))?;
    loop {
        let next = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            next = ws.next() => next,
        };
        let arrived = shared.now_us();
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => return Err(format!("unexpected frame {other:?}")),
            Some(Err(e)) => return Err(format!("connection failed: {e}")),
            None => return Err("connection closed".into()),
        };
        let text = text.as_str();
        if text.starts_with(PUSH_PREFIX) {
            let timestamp =
                frame_timestamp(text).ok_or_else(|| format!("push without a timestamp: {text}"))?;
            seen.pushes.push((timestamp, arrived));
            seen.push_bytes = text.len();
        } else if text.starts_with(SUBSCRIBED_PREFIX) && seen.answered_us == 0 {
            seen.answered_us = arrived;
            shared.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            return Err(format!("unexpected frame: {}", &text[..text.len().min(300)]));
        }
    }
    drop(ws);
    Ok(seen)
}

// ---------------------------------------------------------------------------------------------
// One count
// ---------------------------------------------------------------------------------------------

struct Row {
    subscribers: usize,
    window_secs: f64,
    connect_secs: f64,
    subscribe_burst_ms: f64,
    rss_before: u64,
    rss_connected: u64,
    rss_window_max: u64,
    rss_window_end: u64,
    idle_cpu: CpuUse,
    window_cpu: CpuUse,
    pushes: usize,
    per_subscriber_min: usize,
    per_subscriber_max: usize,
    push_bytes: usize,
    frames: usize,
    /// µs, sorted.
    spread: Vec<u64>,
    age: Vec<u64>,
    gap: Vec<u64>,
    lateness: Vec<u64>,
}

async fn measure(count: usize, settings: &Settings) -> Row {
    let dir = tempfile::tempdir().expect("no temporary directory");
    let node = spawn_node(dir.path()).await;
    let addr = node.addr;
    start_workers(addr, settings.workers).await;
    let rss_before = support::settled_rss_kib(node.pid).await;

    let (sockets, connect_time) = support::connect_many(
        addr,
        count,
        settings.concurrency,
        CLIENT_READ_BUFFER,
        Some("webfix"),
    )
    .await;
    let connect_secs = connect_time.as_secs_f64();
    let rss_connected = support::settled_rss_kib(node.pid).await;
    let idle = CpuSpan::start(node.pid);
    tokio::time::sleep(IDLE_CPU_SPAN).await;
    let idle_cpu = idle.finish();

    // All subscribe at once.
    let epoch = Instant::now();
    let epoch_wall_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_micros() as i64;
    let shared = Arc::new(Shared {
        epoch,
        epoch_wall_us,
        answered: AtomicUsize::new(0),
        stop: CancellationToken::new(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for ws in sockets {
        tasks.spawn(subscriber(ws, shared.clone(), settings.interval_ms));
    }
    while shared.answered.load(Ordering::Relaxed) < count {
        if let Some(done) = tasks.try_join_next() {
            match done.expect("subscriber task panicked") {
                Ok(_) => panic!("a subscriber stopped before the window"),
                Err(e) => panic!("subscriber failed: {e}"),
            }
        }
        if epoch.elapsed() > SUBSCRIBE_LIMIT {
            panic!(
                "{} of {count} subscriptions answered after {SUBSCRIBE_LIMIT:?}",
                shared.answered.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(settings.warmup).await;

    // The window.
    let window_start = shared.now_us();
    let cpu = CpuSpan::start(node.pid);
    let window_ends = Instant::now() + settings.window;
    let mut rss_window_max = 0;
    let mut rss_window_end = 0;
    while Instant::now() < window_ends {
        tokio::time::sleep(RSS_SAMPLE.min(window_ends.saturating_duration_since(Instant::now()))).await;
        rss_window_end = rss_kib(node.pid);
        rss_window_max = rss_window_max.max(rss_window_end);
    }
    let window_cpu = cpu.finish();
    let window_end = shared.now_us();
    let window_secs = (window_end - window_start) as f64 / 1e6;

    // Bounded: every task stops at the token.
    shared.stop.cancel();
    let mut seen = Vec::with_capacity(count);
    let joined = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("subscriber task panicked") {
                Ok(s) => seen.push(s),
                Err(e) => panic!("subscriber failed: {e}"),
            }
        }
    })
    .await;
    assert!(joined.is_ok(), "subscriber tasks did not stop within 30 s");
    support::stop_node(node).await;

    let first_sent = seen.iter().map(|s| s.sent_us).min().unwrap_or(0);
    let last_answer = seen.iter().map(|s| s.answered_us).max().unwrap_or(0);
    let in_window = |arrived: u64| arrived >= window_start && arrived < window_end;

    // Delivery, gaps, age.
    let mut pushes = 0;
    let (mut per_min, mut per_max) = (usize::MAX, 0);
    let mut gap = Vec::new();
    let mut age = Vec::new();
    for s in &seen {
        let mine: Vec<&(i64, u64)> = s.pushes.iter().filter(|(_, at)| in_window(*at)).collect();
        pushes += mine.len();
        per_min = per_min.min(mine.len());
        per_max = per_max.max(mine.len());
        gap.extend(mine.windows(2).map(|w| w[1].1 - w[0].1));
        for (timestamp, arrived) in &mine {
            let wall_us = shared.epoch_wall_us + *arrived as i64;
            age.push((wall_us - timestamp * 1000).max(0) as u64);
        }
    }

    // Spread within one frame: pushes carrying the same timestamp, first arrival to each.
    let mut first_of: HashMap<i64, u64> = HashMap::new();
    for s in &seen {
        for &(timestamp, arrived) in &s.pushes {
            let first = first_of.entry(timestamp).or_insert(arrived);
            *first = (*first).min(arrived);
        }
    }
    let mut spread = Vec::new();
    let mut frames = std::collections::HashSet::new();
    for s in &seen {
        for &(timestamp, arrived) in s.pushes.iter().filter(|(_, at)| in_window(*at)) {
            spread.push(arrived - first_of[&timestamp]);
            frames.insert(timestamp);
        }
    }

    // Lateness: a subscription ticks at start + k × interval, so arrival − k × interval is
    // constant but for delays; measured from that subscriber's smallest offset in the window.
    let period = settings.interval_ms as i64 * 1000;
    let mut lateness = Vec::new();
    for s in &seen {
        let arrivals: Vec<i64> = s
            .pushes
            .iter()
            .filter(|(_, at)| in_window(*at))
            .map(|p| p.1 as i64)
            .collect();
        let Some(&first) = arrivals.first() else { continue };
        let offsets: Vec<i64> = arrivals
            .iter()
            .map(|at| {
                // Up to a fifth of a period early against the first, or four fifths late.
                let k = (at - first + period / 5).div_euclid(period);
                at - k * period
            })
            .collect();
        let best = offsets.iter().copied().min().unwrap_or(0);
        lateness.extend(offsets.iter().map(|o| (o - best) as u64));
    }

    for v in [&mut spread, &mut age, &mut gap, &mut lateness] {
        v.sort_unstable();
    }
    Row {
        subscribers: count,
        window_secs,
        connect_secs,
        subscribe_burst_ms: (last_answer - first_sent) as f64 / 1000.0,
        rss_before,
        rss_connected,
        rss_window_max,
        rss_window_end,
        idle_cpu,
        window_cpu,
        pushes,
        per_subscriber_min: per_min,
        per_subscriber_max: per_max,
        push_bytes: seen.iter().map(|s| s.push_bytes).max().unwrap_or(0),
        frames: frames.len(),
        spread,
        age,
        gap,
        lateness,
    }
}

fn report(rows: &[Row], settings: &Settings) {
    let ideal_per_sec = 1000.0 / settings.interval_ms as f64;
    println!();
    println!(
        "| subscribers | pushes/s | per subscriber /s (ideal {ideal_per_sec:.2}) | min–max in window | push B | MB/s | frames built/s | subscribe burst ms |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let per_sec = r.pushes as f64 / r.window_secs;
        println!(
            "| {} | {per_sec:.0} | {:.3} | {}–{} | {} | {:.1} | {:.1} | {:.0} |",
            r.subscribers,
            per_sec / r.subscribers as f64,
            r.per_subscriber_min,
            r.per_subscriber_max,
            r.push_bytes,
            per_sec * r.push_bytes as f64 / 1e6,
            r.frames as f64 / r.window_secs,
            r.subscribe_burst_ms,
        );
    }
    println!();
    println!(
        "| subscribers | same-frame spread p50 / p99 / max ms | age p50 / p99 / max ms | gap p1 / p50 / p99 / max ms | lateness p50 / p99 / max ms |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} / {:.0} / {:.0} | {:.1} / {:.1} / {:.1} |",
            r.subscribers,
            ms(&r.spread, 50.0),
            ms(&r.spread, 99.0),
            ms(&r.spread, 100.0),
            ms(&r.age, 50.0),
            ms(&r.age, 99.0),
            ms(&r.age, 100.0),
            ms(&r.gap, 1.0),
            ms(&r.gap, 50.0),
            ms(&r.gap, 99.0),
            ms(&r.gap, 100.0),
            ms(&r.lateness, 50.0),
            ms(&r.lateness, 99.0),
            ms(&r.lateness, 100.0),
        );
    }
    println!();
    println!(
        "| subscribers | node CPU % idle conns | node CPU % window (of which system) | node CPU µs / push | bench CPU % | others CPU % | RSS before KiB | RSS connected KiB | RSS window max / end KiB | KiB / subscriber | of which subscription KiB |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let per_sec = r.pushes as f64 / r.window_secs;
        let fanout_cores = (r.window_cpu.node - r.idle_cpu.node).max(0.0);
        let n = r.subscribers as f64;
        println!(
            "| {} | {:.1} | {:.1} ({:.1}) | {:.1} | {:.1} | {:.1} | {} | {} | {} / {} | {:.2} | {:.2} |",
            r.subscribers,
            r.idle_cpu.node * 100.0,
            r.window_cpu.node * 100.0,
            r.window_cpu.node_system * 100.0,
            fanout_cores * 1e6 / per_sec,
            r.window_cpu.bench * 100.0,
            r.window_cpu.others * 100.0,
            r.rss_before,
            r.rss_connected,
            r.rss_window_max,
            r.rss_window_end,
            (r.rss_window_max as f64 - r.rss_before as f64) / n,
            (r.rss_window_max as f64 - r.rss_connected as f64) / n,
        );
    }
    for r in rows {
        println!(
            "{} subscribers: connected in {:.1} s; {} pushes in {:.2} s",
            r.subscribers, r.connect_secs, r.pushes, r.window_secs
        );
    }
}

async fn run() {
    let settings = Settings::from_env();
    let fd_limit = support::raise_fd_limit();
    println!(
        "fanout bench: descriptor limit {fd_limit}, {} workers, interval {} ms, window {:?}, warm-up {:?}",
        settings.workers, settings.interval_ms, settings.window, settings.warmup
    );
    let mut rows = Vec::new();
    for &count in &settings.counts {
        if !support::within_fd_limit(count, fd_limit) {
            continue;
        }
        eprintln!("{count} subscribers");
        rows.push(measure(count, &settings).await);
    }
    report(&rows, &settings);
}

fn main() {
    // `cargo bench` passes `--bench`; this program takes no arguments.
    support::runtime().block_on(run());
}
