//! Helpers shared by the bench programs (`mod support;` in each): the environment, the node as a
//! child process or in process, /proc readings, WebSocket clients and percentiles.
//!
//! Not a bench target itself: Cargo only discovers `benches/*.rs` and `benches/*/main.rs`.

// Each bench uses only some of these.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use heterogen::{NodeConfig, RunningNode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// RSS polling while it settles; settled = the last `SETTLE_SPAN` readings are within
/// `SETTLE_TOLERANCE_KIB` (or, relative, max(`SETTLE_TOLERANCE_KIB`, 0.1 % of RSS)); at most
/// `SETTLE_LIMIT`.
const SETTLE_POLL: Duration = Duration::from_millis(250);
const SETTLE_SPAN: usize = 8;
const SETTLE_TOLERANCE_KIB: u64 = 256;
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
/// Longest wait for one connection to open ([`connect_idle`]).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Environment and runtime
// ---------------------------------------------------------------------------------------------

/// The variable `name` parsed, or `default` when it is not set; panics on a value that does not
/// parse.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The variable `name` parsed, or `default` when it is not set or does not parse.
pub fn env_or_lenient<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// A comma-separated list of counts from the variable `name` (`default` when it is not set).
pub fn env_counts(name: &str, default: &str) -> Vec<usize> {
    env_or(name, default.to_string())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{name}: comma-separated numbers: {e:?}"))
        })
        .collect()
}

/// A multi-threaded tokio runtime with everything enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
}

/// Raises this process's descriptor limit as far as it goes; returns the new limit.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).expect("cannot raise the descriptor limit")
}

/// Whether this process can hold `count` client sockets plus a few descriptors of its own;
/// says so when not.
pub fn within_fd_limit(count: usize, fd_limit: u64) -> bool {
    if count as u64 + 100 > fd_limit {
        println!("skipping {count}: above this process's descriptor limit {fd_limit}");
        return false;
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Nodes: a child process (the release binary) or in process
// ---------------------------------------------------------------------------------------------

/// A `heterogen serve` child process.
pub struct Node {
    pub child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
}

/// Starts the release binary on 127.0.0.1:0 (`--open --fsync false`, a per-address pending cap
/// of 4096, then `extra_args`) and waits for its "listening" line.
pub async fn spawn_node(dir: &Path, extra_args: &[&str]) -> Node {
    // Every bench client is 127.0.0.1, with up to 256 handshakes in flight (the default cap):
    // the node must not count a just-upgraded socket against the next connect.
    let mut args = vec!["--max-pending-per-ip", "4096"];
    args.extend_from_slice(extra_args);
    spawn_binary(env!("CARGO_BIN_EXE_heterogen"), dir, &args).await
}

/// Starts `binary` (this build or another, e.g. an older one to compare with) on 127.0.0.1:0
/// with `--open`, `--fsync false` unless `extra_args` sets `--fsync`, and `extra_args`, and
/// waits for its "listening" line.
pub async fn spawn_binary(binary: &str, dir: &Path, extra_args: &[&str]) -> Node {
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .arg("--open")
        .args(if extra_args.contains(&"--fsync") {
            &[][..]
        } else {
            &["--fsync", "false"][..]
        })
        .args(extra_args)
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

/// Stops a child node with SIGTERM, and kills it if it is not gone within 20 s.
pub async fn stop_node(mut node: Node) {
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
}

/// Starts an in-process node on 127.0.0.1:0 with its store in `dir`: fsync off and `open`
/// (requests without sessions: authentication is not what is measured), then `configure`.
pub async fn start_node(dir: &Path, configure: impl FnOnce(&mut NodeConfig)) -> RunningNode {
    let mut config = NodeConfig::new(dir);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.fsync = false;
    config.open = true;
    configure(&mut config);
    heterogen::start(config).await.expect("node did not start")
}

// ---------------------------------------------------------------------------------------------
// /proc readings
// ---------------------------------------------------------------------------------------------

/// The text after `FIELD:` in /proc/PID/status.
fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("cannot read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(str::to_string)
}

/// Reads a `kB` field of /proc/PID/status.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    status_field(pid, field)
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A plain number field of /proc/PID/status (0 when missing).
pub fn status_number(pid: u32, field: &str) -> u64 {
    status_field(pid, field)
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0)
}

/// Memory of a process at one moment, in KiB.
#[derive(Clone, Copy)]
pub struct Rss {
    pub total: u64,
    pub anon: u64,
}

pub fn rss(pid: u32) -> Rss {
    Rss {
        total: status_kib(pid, "VmRSS"),
        anon: status_kib(pid, "RssAnon"),
    }
}

pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Waits (bounded) until `total` of the readings stops moving, and returns the last reading.
/// `relative`: the tolerance grows to 0.1 % of the reading.
async fn settle<T: Copy>(read: impl Fn() -> T, total: impl Fn(&T) -> u64, relative: bool) -> T {
    let started = Instant::now();
    let mut history = Vec::new();
    loop {
        let now = read();
        let kib = total(&now);
        history.push(kib);
        if history.len() >= SETTLE_SPAN {
            let recent = &history[history.len() - SETTLE_SPAN..];
            let spread = recent.iter().max().unwrap_or(&0) - recent.iter().min().unwrap_or(&0);
            let tolerance = if relative {
                SETTLE_TOLERANCE_KIB.max(kib / 1000)
            } else {
                SETTLE_TOLERANCE_KIB
            };
            if spread < tolerance {
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

/// [`Rss`] once VmRSS has settled within max(256 KiB, 0.1 %).
pub async fn settled_rss(pid: u32) -> Rss {
    settle(|| rss(pid), |r| r.total, true).await
}

/// [`Rss`] once VmRSS has settled within 256 KiB.
pub async fn settled_rss_fixed(pid: u32) -> Rss {
    settle(|| rss(pid), |r| r.total, false).await
}

/// VmRSS (KiB) once it has settled within max(256 KiB, 0.1 %).
pub async fn settled_rss_kib(pid: u32) -> u64 {
    settle(|| rss_kib(pid), |&kib| kib, true).await
}

/// (user, system) CPU ticks of a process (`self` or a pid).
fn cpu_ticks(pid: &str) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("cannot read /proc stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("bad /proc stat") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields[i].parse::<u64>().unwrap_or(0);
    (ticks(11), ticks(12))
}

/// (user, system) CPU time of a process (`self` or a pid), in seconds.
pub fn cpu_times(pid: &str) -> (f64, f64) {
    let (user, system) = cpu_ticks(pid);
    // USER_HZ is 100 on Linux.
    (user as f64 / 100.0, system as f64 / 100.0)
}

/// User + system CPU time of a process (`self` or a pid), in seconds.
pub fn cpu_seconds(pid: &str) -> f64 {
    let (user, system) = cpu_ticks(pid);
    // USER_HZ is 100 on Linux.
    (user + system) as f64 / 100.0
}

/// Busy CPU time of the whole machine (all processes), in seconds.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("cannot read /proc/stat");
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum();
    busy as f64 / 100.0
}

// ---------------------------------------------------------------------------------------------
// WebSocket clients
// ---------------------------------------------------------------------------------------------

/// Opens a client WebSocket for large answers (Nagle off, like the node's accepted sockets).
pub async fn connect(addr: SocketAddr) -> Ws {
    let config = WebSocketConfig::default()
        .max_message_size(Some(256 << 20))
        .max_frame_size(Some(256 << 20));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), Some(config), true)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    ws
}

/// Opens one client WebSocket with a small read buffer and no write buffer (a process holds
/// thousands of them), offering `subprotocol` if given, which must then be selected. Waits at
/// most 30 s.
pub async fn connect_idle(
    addr: SocketAddr,
    read_buffer: usize,
    subprotocol: Option<&'static str>,
) -> Result<Ws, String> {
    let mut request = format!("ws://{addr}/")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Some(protocol) = subprotocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0);
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((ws, response))) => {
            if let Some(wanted) = subprotocol {
                let protocol = response.headers().get("Sec-WebSocket-Protocol");
                if protocol.and_then(|p| p.to_str().ok()) != Some(wanted) {
                    return Err(format!("subprotocol not selected: {protocol:?}"));
                }
            }
            Ok(ws)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no upgrade within {CONNECT_TIMEOUT:?}")),
    }
}

/// Opens `count` [`connect_idle`] connections, `concurrency` at a time; returns them and the
/// time it took. Panics at the first that fails.
pub async fn connect_many(
    addr: SocketAddr,
    count: usize,
    concurrency: usize,
    read_buffer: usize,
    subprotocol: Option<&'static str>,
) -> (Vec<Ws>, Duration) {
    let started = Instant::now();
    let opened: Vec<Result<Ws, String>> = futures_util::stream::iter(0..count)
        .map(|_| connect_idle(addr, read_buffer, subprotocol))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let took = started.elapsed();
    let mut sockets = Vec::with_capacity(count);
    for result in opened {
        match result {
            Ok(ws) => sockets.push(ws),
            Err(e) => panic!("{} of {count} connections opened; then: {e}", sockets.len()),
        }
    }
    (sockets, took)
}

/// How long [`next_text`] waits.
#[derive(Clone, Copy)]
pub enum Wait {
    /// At most this long for each frame (a ping or pong starts the wait again).
    EachFrame(Duration),
    /// At most this long in all.
    Total(Duration),
}

/// The next text frame, skipping pings and pongs.
pub async fn next_text(ws: &mut Ws, wait: Wait) -> Result<Utf8Bytes, String> {
    let (limit, each_frame) = match wait {
        Wait::EachFrame(limit) => (limit, true),
        Wait::Total(limit) => (limit, false),
    };
    let mut deadline = tokio::time::Instant::now() + limit;
    loop {
        if each_frame {
            deadline = tokio::time::Instant::now() + limit;
        }
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?;
        match next {
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => return Err(format!("unexpected frame {other:?}")),
            Some(Err(e)) => return Err(format!("connection failed: {e}")),
            None => return Err("connection closed without an answer".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/// The `p`th percentile of sorted samples (NaN when there are none).
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1);
    sorted[index] as f64
}

/// [`percentile`] of samples in µs, in ms.
pub fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    percentile(sorted, p) / 1000.0
}
