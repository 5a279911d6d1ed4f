//! The worker runtime under load: resident memory per active worker, the share each priority
//! class gets of a saturated JS pool, `Stels.sleep(0)` round trips, and API latency while the
//! pool is saturated.
//!
//! Run with `cargo bench --bench workers`. Loopback only; every wait is bounded.
//!
//! - `rss` (a): for each count N (1,000 and 10,000), a fresh `heterogen serve --open` child
//!   process (the release binary, so its RSS is its own). N inactive worker records are written
//!   into its store before it starts; VmRSS is read once settled, all N are activated with
//!   `updateWorker` over WebSocket, `getWorkerStats` is polled until `runningWorkers` is N, and
//!   VmRSS is read again once settled. Each worker is `single` mode and loops on
//!   `await Stels.sleep(1000)` until stopped. Also reported: the node's CPU while the N workers
//!   idle, and two baselines measured in fresh processes of this program (`__baseline`): a bare
//!   QuickJS runtime + context, and a `QuickJsIsolate` with the SDK installed.
//! - `pool` (b, d): an in-process node (`--open`) with `BENCH_JS_THREADS` (2) JS threads and
//!   `BENCH_PER_CLASS` (4) workers per priority, each a `single`-mode loop of fixed JS work
//!   (calibrated to `BENCH_WORK_US`, 1,000 µs) followed by `await Stels.sleep(0)`. Each worker
//!   logs its iteration count at most every 100 ms; rates come from the counts and times of
//!   the last log line at the start and at the end of the window. (d): `BENCH_API_CLIENTS` (4)
//!   WebSocket clients each send one `listWorkers` at a time (16 workers stored), with no worker
//!   active, with the pool saturated, and with the pool saturated and its threads reniced to 10
//!   (an experiment for a suggested fix).
//! - `yield` (c): an in-process node running 1 worker, then `BENCH_YIELD_WORKERS` (1,000)
//!   workers, each `while (!shouldStop()) { await Stels.sleep(0); n++ }`, logging `n` at most
//!   every 250 ms.
//!
//! The machine may be shared: before each window the bench waits (at most
//! `BENCH_QUIET_WAIT_SECS`, 10) until other processes use under 0.25 cores, and every table
//! reports the CPU other processes used during the window.
//!
//! Environment: `BENCH_RSS_WORKERS` (`1000,10000`), `BENCH_JS_THREADS` (2), `BENCH_PER_CLASS`
//! (4), `BENCH_WORK_US` (1000), `BENCH_SECS` (5, each measuring window), `BENCH_YIELD_WORKERS`
//! (1000), `BENCH_API_CLIENTS` (4), `BENCH_QUIET_WAIT_SECS` (10), `BENCH_ONLY` (`rss`, `pool` or
//! `yield`: only the scenario groups whose name contains it).

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use heterogen::RunningNode;
use heterogen::auth::gliesereum::Wallet;
use heterogen::runtime::engine::{
    FetchPolicy, IsolateLimits, LogLevel, LogSink, NoSecrets, NodeIdentity, ScriptConfig, WebSocketPolicy,
    WorkerEnv,
};
use heterogen::runtime::quickjs::QuickJsIsolate;
use heterogen::store::fjall::FjallStore;
use heterogen::store::{AtomicWrite, ExpiryLeases, Key, Store};
use heterogen::workers::{ExecutionMode, Priority, RunMode, Scope, WorkerData, WorkerScript};
use serde_json::{Value, json};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use support::{
    Node, Rss, Wait, Ws, connect, cpu_seconds, env_counts, env_or, machine_busy_seconds, percentile_ms,
    settled_rss,
};

const CLASSES: [Priority; 4] = [
    Priority::Critical,
    Priority::High,
    Priority::Normal,
    Priority::Low,
];
/// W-RUN-5 minimum shares (`MinShares::default()`), by class; critical has none.
const MIN_SHARES: [Option<f64>; 4] = [None, Some(0.15), Some(0.10), Some(0.05)];

/// (a): one worker that sleeps a second at a time until stopped.
const SLEEPER: &str = "while (!shouldStop()) { await Stels.sleep(1000); }";
/// (c): `Stels.sleep(0)` round trips, the count logged at most every 250 ms.
const YIELDER: &str = "let n = 0, last = 0;\nwhile (!shouldStop()) {\n  await Stels.sleep(0);\n  n++;\n  \
                       const now = Date.now();\n  if (now - last >= 250) { logger.info('n', n); last = now; }\n}";
/// Iterations of the calibration loop.
const CALIBRATION_SPINS: u64 = 2_000_000;

/// Store writes per commit when filling (within the store contract's 128 operations).
const WRITE_BATCH: usize = 100;
/// Updates in flight per connection when activating, and connections.
const ACTIVATE_WINDOW: usize = 32;
const ACTIVATE_CONNECTIONS: usize = 8;
/// How long any single answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for N workers to be running.
const RUNNING_LIMIT: Duration = Duration::from_secs(120);
/// Node CPU is sampled over this span once the workers idle.
const CPU_SPAN: Duration = Duration::from_secs(5);
/// The rest of the machine counts as quiet below this many cores.
const QUIET_CORES: f64 = 0.25;
/// Warm-up before a measuring window.
const WARMUP: Duration = Duration::from_millis(1000);

struct Settings {
    rss_counts: Vec<usize>,
    js_threads: usize,
    per_class: usize,
    work: Duration,
    window: Duration,
    yield_workers: usize,
    api_clients: usize,
    only: String,
    quiet_wait: Duration,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            rss_counts: env_counts("BENCH_RSS_WORKERS", "1000,10000"),
            js_threads: env_or("BENCH_JS_THREADS", 2),
            per_class: env_or("BENCH_PER_CLASS", 4),
            work: Duration::from_micros(env_or("BENCH_WORK_US", 1000)),
            window: Duration::from_secs_f64(env_or("BENCH_SECS", 5.0)),
            yield_workers: env_or("BENCH_YIELD_WORKERS", 1000),
            api_clients: env_or("BENCH_API_CLIENTS", 4),
            only: env_or("BENCH_ONLY", String::new()),
            quiet_wait: Duration::from_secs_f64(env_or("BENCH_QUIET_WAIT_SECS", 10.0)),
        }
    }

    fn runs(&self, group: &str) -> bool {
        group.contains(self.only.as_str())
    }
}

fn priority_name(priority: Priority) -> &'static str {
    priority.as_str()
}

/// A worker record (`value`) as `setWorker` would store it, with a fresh UUID sid.
fn worker_record(script: &str, priority: Priority, active: bool) -> (String, WorkerData) {
    let sid = uuid::Uuid::new_v4().to_string();
    let raw = WorkerScript {
        sid: sid.clone(),
        nid: "s-0001".into(),
        active,
        mode: RunMode::Single,
        scope: Scope::Network,
        execution_mode: ExecutionMode::Parallel,
        priority,
        account_id: None,
        assigned_node: None,
        note: "bench".into(),
        script: script.into(),
        dependencies: Vec::new(),
        version: "1.0.0".into(),
        timestamp: heterogen::clock::Clock::system().wall_ms(),
    };
    (sid, WorkerData::new(raw))
}

/// Writes worker records in batches of `WRITE_BATCH`.
async fn write_workers(store: &dyn Store, records: &[WorkerData]) {
    for chunk in records.chunks(WRITE_BATCH) {
        let mut write = AtomicWrite::new();
        for data in chunk {
            write = write.set(Key::of(&["ami", "worker", &data.raw.sid]), data.to_value());
        }
        store.commit(write).await.expect("cannot write worker records");
    }
}

// ---------------------------------------------------------------------------------------------
// Process memory and CPU
// ---------------------------------------------------------------------------------------------

/// CPU seconds of a process's JS pool threads (`heterogen-js-N`) and of its other threads.
fn thread_cpu_seconds(pid: u32) -> (f64, f64) {
    let (mut js, mut rest) = (0.0, 0.0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (js, rest);
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks: u64 = fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)
            + fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        if comm.starts_with("heterogen-js") {
            js += ticks as f64 / 100.0;
        } else {
            rest += ticks as f64 / 100.0;
        }
    }
    (js, rest)
}

/// CPU used during a span by one process and by everything else on the machine, in cores.
struct CpuSpan {
    pid: String,
    own: f64,
    all: f64,
    at: Instant,
}

#[derive(Clone, Copy)]
struct CpuUse {
    own: f64,
    others: f64,
}

impl CpuSpan {
    fn start(pid: &str) -> CpuSpan {
        CpuSpan {
            pid: pid.to_string(),
            own: cpu_seconds(pid),
            all: machine_busy_seconds(),
            at: Instant::now(),
        }
    }

    fn finish(&self) -> CpuUse {
        let secs = self.at.elapsed().as_secs_f64();
        let own = cpu_seconds(&self.pid) - self.own;
        let all = machine_busy_seconds() - self.all;
        CpuUse {
            own: own / secs,
            others: (all - own).max(0.0) / secs,
        }
    }
}

/// Waits (at most `limit`) until the rest of the machine uses less than `QUIET_CORES` over a
/// second, so a measurement does not share the cores with someone else's build; says so if not.
async fn wait_quiet(limit: Duration) {
    let started = Instant::now();
    loop {
        let span = CpuSpan::start("self");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let others = span.finish().others;
        if others < QUIET_CORES {
            return;
        }
        if started.elapsed() >= limit {
            eprintln!("  other processes still use {others:.2} cores; measuring anyway");
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// The next text frame, skipping pings and pongs.
async fn next_text(ws: &mut Ws) -> Result<String, String> {
    support::next_text(ws, Wait::EachFrame(ANSWER_TIMEOUT))
        .await
        .map(|text| text.to_string())
}

/// Sends `frames` over `ACTIVATE_CONNECTIONS` WebSockets, `ACTIVATE_WINDOW` in flight on each;
/// every answer must have status 200.
async fn send_pipelined(addr: SocketAddr, frames: Vec<String>) {
    let per_connection = frames.len().div_ceil(ACTIVATE_CONNECTIONS).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for share in frames.chunks(per_connection) {
        let share = share.to_vec();
        tasks.spawn(async move {
            let mut ws = connect(addr).await;
            for batch in share.chunks(ACTIVATE_WINDOW) {
                for frame in batch {
                    ws.feed(Message::Text(frame.clone().into()))
                        .await
                        .expect("send failed");
                }
                ws.flush().await.expect("flush failed");
                for _ in batch {
                    let answer = next_text(&mut ws).await.expect("no answer");
                    assert!(answer.contains("\"status\":200"), "request failed: {answer}");
                }
            }
            let _ = ws.close(None).await;
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("client task panicked");
    }
}

/// POSTs one WebFIX request; returns the JSON result.
async fn http_call(http: &reqwest::Client, addr: SocketAddr, method: &str) -> Value {
    let response = http
        .post(format!("http://{addr}/"))
        .json(&json!({"webfix": "1.0", "method": method, "params": [], "body": {}}))
        .timeout(ANSWER_TIMEOUT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} failed: {e}"));
    assert_eq!(response.status().as_u16(), 200, "{method} failed");
    response.json().await.expect("answer is not JSON")
}

/// Polls `getWorkerStats` until `runningWorkers` is `count`; returns when it saw it.
async fn wait_running(http: &reqwest::Client, addr: SocketAddr, count: usize, poll: Duration) -> Instant {
    let started = Instant::now();
    loop {
        let stats = http_call(http, addr, "getWorkerStats").await;
        let running = stats["runningWorkers"].as_u64().unwrap_or(0) as usize;
        if running >= count {
            return Instant::now();
        }
        assert!(
            started.elapsed() < RUNNING_LIMIT,
            "only {running} of {count} workers running after {RUNNING_LIMIT:?} (errors: {})",
            stats["totalErrors"]
        );
        tokio::time::sleep(poll).await;
    }
}

/// Latencies (µs, sorted) of `listWorkers` sent one at a time by each of `clients` connections
/// during `window`, after a short warm-up.
async fn api_latencies(addr: SocketAddr, clients: usize, window: Duration) -> Vec<u64> {
    let start = Instant::now();
    let measure_from = start + Duration::from_millis(500);
    let end = measure_from + window;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..clients {
        tasks.spawn(async move {
            let mut ws = connect(addr).await;
            let mut samples = Vec::new();
            let mut id = index as u64 * 1_000_000_000;
            while Instant::now() < end {
                id += 1;
                let frame =
                    format!(r#"{{"webfix":"1.0","method":"listWorkers","params":[],"body":{{}},"id":{id}}}"#);
                let sent_at = Instant::now();
                ws.send(Message::Text(frame.into())).await.expect("send failed");
                let answer = next_text(&mut ws).await.expect("no listWorkers answer");
                let elapsed = sent_at.elapsed();
                assert!(
                    answer.starts_with(&format!("{{\"webfix\":\"1.0\",\"id\":{id},\"status\":200,")),
                    "unexpected answer: {}",
                    &answer[..answer.len().min(200)]
                );
                if sent_at >= measure_from {
                    samples.push(elapsed.as_micros() as u64);
                }
            }
            let _ = ws.close(None).await;
            samples
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.expect("client task panicked"));
    }
    all.sort_unstable();
    all
}

// ---------------------------------------------------------------------------------------------
// (a) RSS per active worker, child process
// ---------------------------------------------------------------------------------------------

/// Starts the release binary with `js_threads` JS threads.
async fn spawn_node(dir: &Path, js_threads: usize) -> Node {
    support::spawn_node(dir, &["--js-threads", &js_threads.to_string()]).await
}

struct RssRow {
    workers: usize,
    before: Rss,
    after: Rss,
    /// From the first `updateWorker` sent to the last answered.
    activate: Duration,
    /// From the first `updateWorker` sent to `runningWorkers == N` seen.
    all_running: Duration,
    /// Node CPU while the workers idle (and the rest of the machine's).
    idle_cpu: CpuUse,
    /// The part of `idle_cpu.own` on the JS pool threads, in cores.
    js_cpu: f64,
    threads: u64,
}

async fn measure_rss(count: usize, settings: &Settings) -> RssRow {
    let dir = tempfile::tempdir().expect("no temporary directory");
    // The records go into the store before the node opens it, inactive: the baseline holds them.
    let records: Vec<WorkerData> = (0..count)
        .map(|_| worker_record(SLEEPER, Priority::Normal, false).1)
        .collect();
    {
        let path = dir.path().join("cluster");
        std::fs::create_dir_all(&path).expect("cannot create the store directory");
        let store = tokio::task::spawn_blocking(move || FjallStore::open(&path, false))
            .await
            .expect("open task failed")
            .expect("cannot open the store");
        write_workers(&store, &records).await;
        store.flush().await.expect("flush failed");
    }
    let node = spawn_node(dir.path(), settings.js_threads).await;
    let http = reqwest::Client::new();
    // Warm the request paths (not listWorkers: its N-entry answer would inflate the baseline).
    let stats = http_call(&http, node.addr, "getWorkerStats").await;
    assert_eq!(stats["runningWorkers"], 0);
    let before = settled_rss(node.pid).await;
    wait_quiet(settings.quiet_wait).await;

    let frames: Vec<String> = records
        .iter()
        .enumerate()
        .map(|(id, data)| {
            let mut raw = serde_json::to_value(&data.raw).expect("raw serialises");
            raw["active"] = json!(true);
            json!({"webfix": "1.0", "method": "updateWorker", "id": id,
                   "body": {"channel": data.channel, "raw": raw}})
            .to_string()
        })
        .collect();
    let started = Instant::now();
    send_pipelined(node.addr, frames).await;
    let activate = started.elapsed();
    let poll = Duration::from_millis(if count > 2000 { 500 } else { 100 });
    let all_running = wait_running(&http, node.addr, count, poll).await - started;
    drop(records);
    let after = settled_rss(node.pid).await;
    let span = CpuSpan::start(&node.pid.to_string());
    let threads_before = thread_cpu_seconds(node.pid);
    tokio::time::sleep(CPU_SPAN).await;
    let threads_after = thread_cpu_seconds(node.pid);
    let idle_cpu = span.finish();
    let secs = span.at.elapsed().as_secs_f64();
    let js_cpu = (threads_after.0 - threads_before.0) / secs;
    let threads = support::status_number(node.pid, "Threads");
    // Still all running after the measurement.
    let stats = http_call(&http, node.addr, "getWorkerStats").await;
    assert_eq!(stats["runningWorkers"].as_u64(), Some(count as u64));
    assert_eq!(stats["totalErrors"], 0);
    support::stop_node(node).await;
    RssRow {
        workers: count,
        before,
        after,
        activate,
        all_running,
        idle_cpu,
        js_cpu,
        threads,
    }
}

/// Log lines of baseline isolates go nowhere.
struct NoLog;

impl LogSink for NoLog {
    fn log(&self, _level: LogLevel, _message: &str) {}
}

/// Run in a fresh process of this program (`__baseline KIND COUNT`): creates COUNT QuickJS
/// runtimes of KIND and prints `KiB-per-item µs-per-item`. KIND `bare`: an rquickjs
/// `AsyncRuntime` + `AsyncContext::full`, nothing else; `sdk`: a `QuickJsIsolate` as the node
/// creates it (SDK installed, the (a) script compiled, 64 MiB limit), never run.
async fn baseline_child(kind: &str, count: usize) {
    let pid = std::process::id();
    let dir = tempfile::tempdir().expect("no temporary directory");
    let path = dir.path().to_path_buf();
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || FjallStore::open(&path, false))
            .await
            .expect("open task failed")
            .expect("cannot open the store"),
    );
    let before = settled_rss(pid).await;
    let started = Instant::now();
    let mut bare = Vec::new();
    let mut isolates = Vec::new();
    let expiry = Arc::new(ExpiryLeases::new(
        store.clone(),
        Duration::from_secs(1),
        heterogen::clock::Clock::system(),
    ));
    let node = Arc::new(NodeIdentity {
        wallet: Arc::new(Wallet::generate()),
        start_time_ms: 0,
    });
    for _ in 0..count {
        if kind == "bare" {
            let runtime = rquickjs::AsyncRuntime::new().expect("cannot create a QuickJS runtime");
            let context = rquickjs::AsyncContext::full(&runtime)
                .await
                .expect("cannot create a QuickJS context");
            bare.push((runtime, context));
        } else {
            let env = WorkerEnv {
                config: ScriptConfig {
                    nid: "s-0001".into(),
                    network: "testnet".into(),
                    title: "heterogen".into(),
                    tick: 1,
                    sid: uuid::Uuid::new_v4().to_string(),
                    execution_mode: ExecutionMode::Parallel,
                    priority: Priority::Normal,
                    mode: RunMode::Single,
                    version: "1.0.0".into(),
                    lease_epoch: None,
                },
                running_workers: Arc::new(AtomicUsize::new(0)),
                net: store.clone(),
                local: store.clone(),
                net_expiry: expiry.clone(),
                local_expiry: expiry.clone(),
                net_fence: None,
                log: Arc::new(NoLog),
                fetch: FetchPolicy {
                    allowed_hosts: None,
                    timeout: Duration::from_secs(30),
                    max_body_bytes: 16 * 1024 * 1024,
                },
                kv_quota_bytes: 64 * 1024 * 1024,
                node: node.clone(),
                dependencies: vec!["gliesereum".into()],
                secrets: Arc::new(NoSecrets),
                websocket: WebSocketPolicy::default(),
                heap_bytes: Arc::new(AtomicU64::new(0)),
            };
            let limits = IsolateLimits {
                memory_bytes: 64 * 1024 * 1024,
                cpu_slice: Duration::from_secs(5),
            };
            let isolate = QuickJsIsolate::create(SLEEPER, env, limits)
                .await
                .unwrap_or_else(|e| panic!("cannot create an isolate: {e}"));
            isolates.push(isolate);
        }
    }
    let took = started.elapsed();
    let after = settled_rss(pid).await;
    println!(
        "{} {}",
        (after.total as f64 - before.total as f64) / count as f64,
        took.as_secs_f64() * 1e6 / count as f64
    );
}

/// Runs [`baseline_child`] in a fresh process; returns (KiB, µs) per item.
async fn baseline(kind: &str, count: usize) -> (f64, f64) {
    let exe = std::env::current_exe().expect("no path to this program");
    let output = Command::new(exe)
        .args(["__baseline", kind, &count.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("cannot run the baseline process");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut numbers = text.split_whitespace().filter_map(|n| n.parse::<f64>().ok());
    match (numbers.next(), numbers.next()) {
        (Some(kib), Some(us)) => (kib, us),
        _ => panic!("baseline {kind} printed {text:?}"),
    }
}

async fn run_rss(settings: &Settings) {
    eprintln!("rss: QuickJS baselines");
    let bare = baseline("bare", 1000).await;
    let sdk = baseline("sdk", 1000).await;
    println!();
    println!(
        "## (a) RSS per active worker (child process, --js-threads {}, single mode, \
         `while (!shouldStop()) {{ await Stels.sleep(1000); }}`)",
        settings.js_threads
    );
    let mut rows = Vec::new();
    for &count in &settings.rss_counts {
        eprintln!("rss: {count} workers");
        rows.push(measure_rss(count, settings).await);
    }
    println!();
    println!(
        "| workers | RSS before KiB | RSS after KiB | KiB/worker | anon KiB/worker | updateWorker s | all running s | node CPU % (idle workers) | of which JS threads % | other processes' CPU % | node threads |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        let n = row.workers as f64;
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {:.0} | {} |",
            row.workers,
            row.before.total,
            row.after.total,
            (row.after.total as f64 - row.before.total as f64) / n,
            (row.after.anon as f64 - row.before.anon as f64) / n,
            row.activate.as_secs_f64(),
            row.all_running.as_secs_f64(),
            row.idle_cpu.own * 100.0,
            row.js_cpu * 100.0,
            row.idle_cpu.others * 100.0,
            row.threads,
        );
    }
    println!();
    println!("Baselines, 1,000 each in a fresh process of this program:");
    println!();
    println!("| what | KiB each | creation µs each (one thread) |");
    println!("| --- | ---: | ---: |");
    println!(
        "| rquickjs AsyncRuntime + AsyncContext::full, nothing else | {:.1} | {:.0} |",
        bare.0, bare.1
    );
    println!(
        "| QuickJsIsolate::create: + SDK, script compiled, never run | {:.1} | {:.0} |",
        sdk.0, sdk.1
    );
}

// ---------------------------------------------------------------------------------------------
// In-process nodes: (b), (c), (d)
// ---------------------------------------------------------------------------------------------

async fn start_node(dir: &Path, js_threads: usize) -> RunningNode {
    support::start_node(dir, |config| config.runtime.js_threads = js_threads).await
}

/// The last `n <count>` line of a worker: (count, time in ms).
fn last_count(node: &RunningNode, sid: &str) -> Option<(u64, i64)> {
    let ring = node.logs().ring(sid);
    let lines = ring.since(ring.next_cursor().saturating_sub(2));
    let line = lines.last()?;
    let text = line.content.trim_end();
    let count = text.split("[INFO] n ").nth(1)?.parse().ok()?;
    Some((count, line.timestamp))
}

/// Iterations per second of each worker between two readings of their last count lines.
fn rates(first: &[Option<(u64, i64)>], second: &[Option<(u64, i64)>]) -> Vec<f64> {
    first
        .iter()
        .zip(second)
        .map(|(a, b)| match (a, b) {
            (Some((n0, t0)), Some((n1, t1))) if t1 > t0 => (n1 - n0) as f64 * 1000.0 / (t1 - t0) as f64,
            _ => 0.0,
        })
        .collect()
}

/// Waits until every sid has logged a count line.
async fn wait_counting(node: &RunningNode, sids: &[String]) {
    let started = Instant::now();
    loop {
        let missing = sids.iter().filter(|sid| last_count(node, sid).is_none()).count();
        if missing == 0 {
            return;
        }
        assert!(
            started.elapsed() < RUNNING_LIMIT,
            "{missing} of {} workers never logged a count",
            sids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Spin iterations per millisecond of QuickJS on this machine, measured by one worker on an
/// idle pool.
async fn calibrate(node: &RunningNode) -> f64 {
    // The fastest of three rounds, so a preemption during one round does not skew it.
    let script = format!(
        "let x = 0, best = 1e9;\nfor (let round = 0; round < 3; round++) {{\n  const t0 = Date.now();\n  \
         for (let i = 0; i < {CALIBRATION_SPINS}; i++) x = (x * 31 + i) | 0;\n  \
         best = Math.min(best, Date.now() - t0);\n}}\nlogger.info('took', best, x);"
    );
    let (sid, data) = worker_record(&script, Priority::Critical, true);
    write_workers(node.store().as_ref(), &[data]).await;
    let started = Instant::now();
    loop {
        let lines = node.logs().ring(&sid).since(0);
        if let Some(ms) = lines.iter().find_map(|l| {
            let rest = l.content.split("[INFO] took ").nth(1)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        }) {
            return CALIBRATION_SPINS as f64 / ms.max(1.0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "calibration never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sets the nice value of this process's JS pool threads (`heterogen-js-N`); returns how many.
fn renice_js_threads(nice: i32) -> usize {
    let mut changed = 0;
    let tasks = std::fs::read_dir("/proc/self/task").expect("cannot list threads");
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("heterogen-js") {
            let tid = task.file_name().to_string_lossy().to_string();
            let status = std::process::Command::new("renice")
                .args(["-n", &nice.to_string(), "-p", &tid])
                .stdout(Stdio::null())
                .status()
                .expect("cannot run renice");
            assert!(status.success(), "renice failed");
            changed += 1;
        }
    }
    changed
}

/// (b) script: `spins` of fixed work, then a yield through `Stels.sleep(0)`.
fn busy_script(spins: u64) -> String {
    format!(
        "let n = 0, x = 0, last = 0;\nwhile (!shouldStop()) {{\n  for (let i = 0; i < {spins}; i++) x = (x * 31 + i) | 0;\n  \
         await Stels.sleep(0);\n  n++;\n  const now = Date.now();\n  \
         if (now - last >= 100) {{ logger.info('n', n); last = now; }}\n}}"
    )
}

/// Iterations per second by class over `window`, with the CPU of this process and of the rest
/// of the machine.
async fn class_rates(
    node: &RunningNode,
    sids: &[(Priority, String)],
    window: Duration,
) -> ([f64; 4], CpuUse) {
    let read = || {
        sids.iter()
            .map(|(_, sid)| last_count(node, sid))
            .collect::<Vec<_>>()
    };
    let (first, span) = (read(), CpuSpan::start("self"));
    tokio::time::sleep(window).await;
    let (second, cores) = (read(), span.finish());
    let per_worker = rates(&first, &second);
    let mut by_class = [0.0; 4];
    for ((priority, _), rate) in sids.iter().zip(per_worker) {
        let class = CLASSES.iter().position(|c| c == priority).unwrap_or(0);
        by_class[class] += rate;
    }
    (by_class, cores)
}

fn print_class_table(
    label: &str,
    by_class: &[f64; 4],
    cores: CpuUse,
    per_class: usize,
    ms_per_iteration: f64,
) {
    let total: f64 = by_class.iter().sum();
    println!();
    println!(
        "{label} (this process {:.2} cores, other processes {:.2} cores)",
        cores.own, cores.others
    );
    println!();
    println!("| class | iterations/s | per worker | share | min share (W-RUN-5) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (class, priority) in CLASSES.into_iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.1} | {:.1} % | {} |",
            priority_name(priority),
            by_class[class],
            by_class[class] / per_class as f64,
            by_class[class] / total.max(f64::MIN_POSITIVE) * 100.0,
            MIN_SHARES[class].map_or("rest".to_string(), |s| format!("{:.0} %", s * 100.0)),
        );
    }
    println!(
        "| total | {:.0} | | 100 % | |\n\nJS time in iterations: {:.2} threads ({:.0} iterations/s × {:.3} ms)",
        total,
        total * ms_per_iteration / 1000.0,
        total,
        ms_per_iteration
    );
}

async fn run_pool(settings: &Settings) {
    let dir = tempfile::tempdir().expect("no temporary directory");
    let node = start_node(dir.path(), settings.js_threads).await;
    let addr = node.local_addr();
    let http = reqwest::Client::new();

    let spins_per_ms = calibrate(&node).await;
    let spins = ((spins_per_ms * settings.work.as_secs_f64() * 1000.0) as u64).max(1);
    let ms_per_iteration = spins as f64 / spins_per_ms;
    let script = busy_script(spins);

    // 16 workers stored inactive; the idle API phase lists them, then they are activated.
    let mut records = Vec::new();
    let mut sids = Vec::new();
    for priority in CLASSES {
        for _ in 0..settings.per_class {
            let (sid, data) = worker_record(&script, priority, false);
            sids.push((priority, sid));
            records.push(data);
        }
    }
    write_workers(node.store().as_ref(), &records).await;

    eprintln!("pool: API latency, idle");
    wait_quiet(settings.quiet_wait).await;
    let span = CpuSpan::start("self");
    let idle = api_latencies(addr, settings.api_clients, settings.window).await;
    let idle_cpu = span.finish();

    eprintln!("pool: saturating");
    for data in &mut records {
        data.raw.active = true;
    }
    write_workers(node.store().as_ref(), &records).await;
    // The calibration worker has finished: it no longer counts as running.
    wait_running(&http, addr, records.len(), Duration::from_millis(50)).await;
    let just_sids: Vec<String> = sids.iter().map(|(_, sid)| sid.clone()).collect();
    wait_counting(&node, &just_sids).await;
    tokio::time::sleep(WARMUP).await;
    wait_quiet(settings.quiet_wait).await;
    let (alone, alone_cpu) = class_rates(&node, &sids, settings.window).await;

    eprintln!("pool: API latency, saturated");
    wait_quiet(settings.quiet_wait).await;
    let (loaded_rates, loaded) = tokio::join!(
        class_rates(&node, &sids, settings.window + Duration::from_millis(500)),
        api_latencies(addr, settings.api_clients, settings.window)
    );
    eprintln!("pool: API latency, saturated, JS threads at nice 10");
    wait_quiet(settings.quiet_wait).await;
    let reniced = renice_js_threads(10);
    assert_eq!(reniced, settings.js_threads, "JS threads not found");
    let (niced_rates, niced) = tokio::join!(
        class_rates(&node, &sids, settings.window + Duration::from_millis(500)),
        api_latencies(addr, settings.api_clients, settings.window)
    );
    renice_js_threads(0);
    let stats = http_call(&http, addr, "getWorkerStats").await;
    assert_eq!(stats["totalErrors"], 0, "workers failed: {stats}");
    node.shutdown().await.expect("shutdown failed");

    println!();
    println!(
        "## (b) saturated pool: {} JS threads, {} workers per class, {:.0} µs of JS work per iteration \
         ({spins} spins, {:.0} spins/ms), then `await Stels.sleep(0)`; {:.1} s window",
        settings.js_threads,
        settings.per_class,
        ms_per_iteration * 1000.0,
        spins_per_ms,
        settings.window.as_secs_f64()
    );
    print_class_table(
        "Pool only",
        &alone,
        alone_cpu,
        settings.per_class,
        ms_per_iteration,
    );
    print_class_table(
        &format!("While {} API clients send listWorkers", settings.api_clients),
        &loaded_rates.0,
        loaded_rates.1,
        settings.per_class,
        ms_per_iteration,
    );
    print_class_table(
        &format!(
            "While {} API clients send listWorkers, JS threads at nice 10 (experiment)",
            settings.api_clients
        ),
        &niced_rates.0,
        niced_rates.1,
        settings.per_class,
        ms_per_iteration,
    );

    println!();
    println!(
        "## (d) listWorkers ({} workers stored) over WebSocket, {} clients, one request at a time, {:.1} s",
        records.len(),
        settings.api_clients,
        settings.window.as_secs_f64()
    );
    println!();
    println!("| pool | requests | req/s | p50 ms | p99 ms | max ms | process CPU | other processes' CPU |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, samples, cpu) in [
        ("idle (no active worker)", &idle, idle_cpu),
        ("saturated (scenario b)", &loaded, loaded_rates.1),
        (
            "saturated, JS threads at nice 10 (experiment)",
            &niced,
            niced_rates.1,
        ),
    ] {
        println!(
            "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            samples.len(),
            samples.len() as f64 / settings.window.as_secs_f64(),
            percentile_ms(samples, 50.0),
            percentile_ms(samples, 99.0),
            samples.last().map_or(f64::NAN, |&us| us as f64 / 1000.0),
            cpu.own,
            cpu.others
        );
    }
    println!();
    println!(
        "saturated / idle: p50 ×{:.2}, p99 ×{:.2}, req/s ×{:.2}",
        percentile_ms(&loaded, 50.0) / percentile_ms(&idle, 50.0),
        percentile_ms(&loaded, 99.0) / percentile_ms(&idle, 99.0),
        loaded.len() as f64 / idle.len().max(1) as f64
    );
    println!(
        "saturated with JS threads at nice 10 / idle: p50 ×{:.2}, p99 ×{:.2}, req/s ×{:.2}",
        percentile_ms(&niced, 50.0) / percentile_ms(&idle, 50.0),
        percentile_ms(&niced, 99.0) / percentile_ms(&idle, 99.0),
        niced.len() as f64 / idle.len().max(1) as f64
    );
}

struct YieldRow {
    workers: usize,
    total: f64,
    per_worker: Vec<f64>,
    cores: CpuUse,
}

async fn measure_yield(count: usize, settings: &Settings) -> YieldRow {
    let dir = tempfile::tempdir().expect("no temporary directory");
    let node = start_node(dir.path(), settings.js_threads).await;
    let http = reqwest::Client::new();
    let records: Vec<(String, WorkerData)> = (0..count)
        .map(|_| worker_record(YIELDER, Priority::Normal, true))
        .collect();
    let data: Vec<WorkerData> = records.iter().map(|(_, d)| d.clone()).collect();
    write_workers(node.store().as_ref(), &data).await;
    wait_running(&http, node.local_addr(), count, Duration::from_millis(100)).await;
    let sids: Vec<String> = records.into_iter().map(|(sid, _)| sid).collect();
    wait_counting(&node, &sids).await;
    tokio::time::sleep(WARMUP).await;
    wait_quiet(settings.quiet_wait).await;

    let read = || sids.iter().map(|sid| last_count(&node, sid)).collect::<Vec<_>>();
    let (first, span) = (read(), CpuSpan::start("self"));
    tokio::time::sleep(settings.window).await;
    let (second, cores) = (read(), span.finish());
    let mut per_worker = rates(&first, &second);
    per_worker.sort_by(f64::total_cmp);
    let stats = http_call(&http, node.local_addr(), "getWorkerStats").await;
    assert_eq!(stats["totalErrors"], 0, "workers failed");
    node.shutdown().await.expect("shutdown failed");
    YieldRow {
        workers: count,
        total: per_worker.iter().sum(),
        per_worker,
        cores,
    }
}

async fn run_yield(settings: &Settings) {
    let mut rows = Vec::new();
    for count in [1, settings.yield_workers] {
        eprintln!("yield: {count} workers");
        rows.push(measure_yield(count, settings).await);
    }
    println!();
    println!(
        "## (c) `await Stels.sleep(0)` round trips: {} JS threads, normal priority, {:.1} s window",
        settings.js_threads,
        settings.window.as_secs_f64()
    );
    println!();
    println!(
        "| workers | round trips/s | per worker mean | min | median | max | µs between round trips of one worker | process CPU cores | CPU µs per round trip | other processes' CPU |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        let n = row.per_worker.len();
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} |",
            row.workers,
            row.total,
            row.total / n as f64,
            row.per_worker[0],
            row.per_worker[n / 2],
            row.per_worker[n - 1],
            1e6 * n as f64 / row.total.max(f64::MIN_POSITIVE),
            row.cores.own,
            row.cores.own * 1e6 / row.total.max(f64::MIN_POSITIVE),
            row.cores.others
        );
    }
}

async fn run() {
    let settings = Settings::from_env();
    println!(
        "workers bench: {} cores, {} JS threads",
        std::thread::available_parallelism().map_or(1, usize::from),
        settings.js_threads
    );
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load().trim());
    let started = Instant::now();
    if settings.runs("rss") {
        run_rss(&settings).await;
    }
    if settings.runs("pool") {
        run_pool(&settings).await;
    }
    if settings.runs("yield") {
        run_yield(&settings).await;
    }
    println!();
    println!(
        "total {:.0} s; load average at end: {}",
        started.elapsed().as_secs_f64(),
        load().trim()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `__baseline KIND COUNT` is this program calling itself.
    let args: Vec<String> = std::env::args().collect();
    let runtime = support::runtime();
    if let Some(at) = args.iter().position(|a| a == "__baseline") {
        let kind = args.get(at + 1).expect("__baseline KIND COUNT").clone();
        let count = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .expect("__baseline KIND COUNT");
        runtime.block_on(baseline_child(&kind, count));
        return;
    }
    runtime.block_on(run());
}
