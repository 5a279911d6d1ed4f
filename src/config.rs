//! Node configuration: command-line flags, `HETEROGEN_*` environment variables and an optional
//! TOML file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::logging::LogFormat;

/// Everything a node needs to start. Built by [`ServeArgs::resolve`] or directly in tests.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Address the one HTTP/WebSocket listener binds (port 0: any free port).
    pub listen: SocketAddr,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// This node's id in the cluster (`nid`).
    pub nid: String,
    /// Wallet addresses with the Owner role.
    pub owners: Vec<String>,
    /// No authentication at all (local development only).
    pub open: bool,
    /// WebSocket connections held at once; upgrades above it get 503.
    pub max_connections: usize,
    /// Network name reported to clients and checked in logins.
    pub network: String,
    /// How clients reach this node (`http(s)://host:port`); `None`: derived from `listen`.
    pub public_url: Option<String>,
    /// fdatasync every commit (W-T-3). Off: a commit survives a crash of the process, not of the OS.
    pub fsync: bool,
    /// How the process writes its log (read by `heterogen serve`; a node started in-process
    /// logs through whatever subscriber its host installed).
    pub log_format: LogFormat,
    /// Where worker records, leases and sessions live: the embedded store or a shared etcd.
    pub store: StoreChoice,
    /// How long this node's membership record outlives its last keep-alive (a dead node leaves
    /// `listNodes` within it).
    pub membership_ttl: Duration,
    /// Largest request body or WebSocket message accepted (W-ENV-4).
    pub max_request_bytes: usize,
    /// Interval of protocol pings on WebSockets; a peer that misses one is closed (W-WS-7).
    pub ws_ping_interval: Duration,
    /// Where `GET /metrics` (Prometheus), `/healthz` and `/readyz` are served apart from the
    /// API (`--metrics-listen`); `None`: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// The certificate and key that make the listener speak TLS (https, wss); `None`: plain.
    pub tls: Option<TlsPaths>,
    /// Requests of one WebSocket in flight at once before the node stops reading from it.
    pub ws_max_in_flight: usize,
    /// How workers run on this node.
    pub runtime: RuntimeConfig,
    /// Name of the node shown to clients (`info.title`, `Stels.config.title`).
    pub title: String,
    /// A session unused this long expires (W-AUTH-4).
    pub session_idle: Duration,
    /// A login transaction older (or further in the future) than this is refused (W-AUTH-5).
    pub login_window: Duration,
    /// Failed logins allowed per source address per minute; past it, 429.
    pub login_max_failures: usize,
    /// Successful logins allowed per wallet per minute; past it, 429.
    pub logins_per_wallet: usize,
    /// Successful logins allowed per source address per minute; past it, 429.
    pub logins_per_ip: usize,
    /// How often expired sessions, old replay marks and other expired entries are deleted.
    pub reaper_interval: Duration,
    /// Limits on connections that have not finished their first request (or upgrade) yet.
    pub http: HttpLimits,
    /// Limits on open WebSockets beyond `max_connections`.
    pub ws: WsLimits,
    /// The node's own wallet key file (`Stels.wallet`); `None`: `node-key.json` in `data_dir`,
    /// created at first start.
    pub node_key: Option<PathBuf>,
    /// The key that encrypts workers' secrets at rest; every node of a cluster needs the same
    /// one. `None`: `secrets-key` in `data_dir`, created at first start.
    pub secrets_key: Option<PathBuf>,
    /// Whether a node whose key is not the cluster's deletes every stored secret and makes its
    /// key the cluster's (for a lost key) instead of refusing secrets.
    pub secrets_key_reset: bool,
}

/// What a connection may hold before it has sent a whole request: the defence against clients
/// that open sockets and send nothing, or half a request line.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers, from connect or from the previous answer.
    pub header_timeout: Duration,
    /// An HTTP keep-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Time a client has to send a request's whole body once its head has arrived.
    pub body_timeout: Duration,
    /// Connections from one source address that have not completed a request yet.
    pub max_pending_per_ip: usize,
    /// Connections from all addresses that have not completed a request yet (at start capped
    /// at a quarter of the descriptor limit).
    pub max_pending: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_pending_per_ip: 256,
            max_pending: 8192,
        }
    }
}

/// How much one WebSocket, one address and one wallet may hold.
#[derive(Clone, Debug)]
pub struct WsLimits {
    /// Bytes of outgoing frames (answers and pushes) queued for one connection.
    pub outbound_bytes: usize,
    /// A connection whose socket has not taken a frame this long, or whose answer or push has
    /// waited this long for room in its queue, is closed (1008).
    pub write_timeout: Duration,
    /// WebSockets of non-owner sessions open at once from one source address.
    pub max_per_ip: usize,
    /// WebSockets open at once for one wallet without the Owner role (owners are uncapped).
    pub max_per_wallet: usize,
    /// Percent of `max_connections` that only owner sessions may use.
    pub owner_reserve_percent: u8,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            outbound_bytes: 8 * 1024 * 1024,
            write_timeout: Duration::from_secs(30),
            max_per_ip: 10_000,
            max_per_wallet: 100,
            owner_reserve_percent: 5,
        }
    }
}

/// Settings of the worker runtime (W-RUN-2..7, W-LE-1). Tests shrink the times.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Threads that run JavaScript (never the network threads).
    pub js_threads: usize,
    /// How much lower than the network threads the JS threads are scheduled (nice, 0..=19).
    pub js_nice: i32,
    /// Heap limit of one worker's runtime (W-RUN-6).
    pub memory_limit_bytes: usize,
    /// Longest computation without yielding before a run is interrupted (W-RUN-6).
    pub cpu_limit: Duration,
    /// Time a stopping run gets to end by itself before it is interrupted (W-RUN-7).
    pub stop_grace: Duration,
    /// Leader lease length and renewal interval (W-LE-1).
    pub lease_duration: Duration,
    /// How often the holder renews it.
    pub lease_renew_interval: Duration,
    /// Backoff and stop rules (W-RUN-4).
    pub errors: ErrorPolicy,
    /// Log lines kept in memory per worker.
    pub log_ring_lines: usize,
    /// Log lines kept in the local store per worker (W-STR-5).
    pub log_history_lines: usize,
    /// Log lines a worker may write per second; the excess is dropped and counted (W-STR-5).
    pub log_rate: u32,
    /// Hosts `fetch` may reach; `None`: all (S-10).
    pub fetch_allowed_hosts: Option<Vec<String>>,
    /// Time limit of one `fetch`.
    pub fetch_timeout: Duration,
    /// Bytes of keys and values one worker may hold in each KV scope (`Stels.net`, `Stels.local`).
    pub kv_quota_bytes: u64,
    /// `WebSocket`s one worker may hold open at once.
    pub script_websockets: usize,
}

/// W-RUN-4: waits after errors and when a worker stops or pauses.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorPolicy {
    /// Wait after the n-th consecutive network error: `base × factor^(n−1)`, at most `cap`.
    pub network_backoff_base: Duration,
    /// Each further network error multiplies the backoff by this.
    pub network_backoff_factor: f64,
    /// The longest backoff after network errors.
    pub network_backoff_cap: Duration,
    /// After this many consecutive network errors the worker pauses for `network_pause`.
    pub network_pause_after: u32,
    /// The pause after the run of network errors that triggers one.
    pub network_pause: Duration,
    /// Wait after the n-th consecutive critical error: `base × 2^(n−1)`, at most `cap`.
    pub critical_backoff_base: Duration,
    /// The longest backoff after critical errors.
    pub critical_backoff_cap: Duration,
    /// After this many critical errors the worker is stopped on this node.
    pub critical_stop_after: u32,
    /// After this many consecutive errors of any kind the worker is stopped on this node.
    pub consecutive_stop_after: u32,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        ErrorPolicy {
            network_backoff_base: Duration::from_secs(5),
            network_backoff_factor: 1.5,
            network_backoff_cap: Duration::from_secs(60),
            network_pause_after: 20,
            network_pause: Duration::from_secs(300),
            critical_backoff_base: Duration::from_secs(1),
            critical_backoff_cap: Duration::from_secs(10),
            critical_stop_after: 10,
            consecutive_stop_after: 50,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            js_threads: std::thread::available_parallelism().map_or(2, usize::from),
            js_nice: 10,
            memory_limit_bytes: 64 * 1024 * 1024,
            cpu_limit: Duration::from_secs(5),
            stop_grace: Duration::from_secs(5),
            lease_duration: Duration::from_secs(60),
            lease_renew_interval: Duration::from_secs(30),
            errors: ErrorPolicy::default(),
            log_ring_lines: 1000,
            log_history_lines: 10_000,
            log_rate: 100,
            fetch_allowed_hosts: None,
            fetch_timeout: Duration::from_secs(30),
            kv_quota_bytes: 64 * 1024 * 1024,
            script_websockets: 16,
        }
    }
}

impl NodeConfig {
    /// Defaults for everything, with the store in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            data_dir: data_dir.into(),
            nid: "s-0001".into(),
            owners: Vec::new(),
            open: false,
            max_connections: 100_000,
            network: "testnet".into(),
            public_url: None,
            fsync: true,
            log_format: LogFormat::Text,
            store: StoreChoice::Fjall,
            membership_ttl: Duration::from_secs(10),
            max_request_bytes: 1024 * 1024,
            ws_ping_interval: Duration::from_secs(30),
            metrics_listen: None,
            tls: None,
            ws_max_in_flight: 64,
            runtime: RuntimeConfig::default(),
            title: "heterogen".into(),
            session_idle: Duration::from_secs(24 * 3600),
            login_window: Duration::from_secs(300),
            login_max_failures: crate::auth::throttle::MAX_FAILURES,
            logins_per_wallet: 30,
            logins_per_ip: 30,
            reaper_interval: Duration::from_secs(60),
            http: HttpLimits::default(),
            ws: WsLimits::default(),
            node_key: None,
            secrets_key: None,
            secrets_key_reset: false,
        }
    }

    /// Whether `address` has the Owner role (W-AUTH-3).
    pub fn is_owner(&self, address: &str) -> bool {
        self.owners.iter().any(|o| o == address)
    }

    /// The URL clients use for HTTP calls.
    pub fn api_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => self.listening_url(bound),
        }
    }

    /// `http://ADDR`, or `https://ADDR` with TLS: the listener bound at `bound` itself.
    pub fn listening_url(&self, bound: SocketAddr) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{bound}")
    }
}

/// A configuration that cannot be used; the binary prints it and exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    /// The config file cannot be read.
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    /// The config file is not valid TOML for this node.
    ParseFile {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    #[error("invalid --{field}: {message}")]
    /// A setting has a value the node cannot use.
    Invalid {
        /// The flag's name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Which store holds the cluster's data (`--store`).
#[derive(Clone, Debug, PartialEq)]
pub enum StoreChoice {
    /// The embedded fjall store under `--data-dir/cluster` (one node).
    Fjall,
    /// A shared etcd cluster (several nodes).
    Etcd(EtcdSettings),
}

/// The files of `--tls-cert` and `--tls-key`.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsPaths {
    /// Certificate chain (PEM), the node's own first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// How a node reaches etcd (`--store etcd://…` and the `--etcd-*` flags).
#[derive(Clone, Debug, PartialEq)]
pub struct EtcdSettings {
    /// `host:port` of each member.
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster in etcd (`--etcd-prefix`, default `/heterogen/<network>/`).
    pub prefix: String,
    /// CA certificate (PEM) that signed the members' certificates; any TLS setting makes the
    /// connection TLS.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) this node presents.
    pub cert: Option<PathBuf>,
    /// The key of `cert`.
    pub key: Option<PathBuf>,
    /// User and password, from `HETEROGEN_ETCD_USER` / `HETEROGEN_ETCD_PASSWORD` only (a
    /// password on a command line is visible to every user of the machine).
    pub user: Option<(String, String)>,
    /// Longest wait of one etcd call.
    pub call_timeout: Duration,
}

impl EtcdSettings {
    /// Whether the connection uses TLS.
    pub fn tls(&self) -> bool {
        self.ca.is_some() || self.cert.is_some()
    }
}

/// Parses `--store`: `fjall`, or `etcd://HOST:PORT[,HOST:PORT…]`.
fn parse_store(text: &str, network: &str) -> Result<StoreChoice, ConfigError> {
    if text == "fjall" {
        return Ok(StoreChoice::Fjall);
    }
    let Some(list) = text.strip_prefix("etcd://") else {
        return Err(invalid(
            "store",
            format!("{text:?} is neither `fjall` nor `etcd://HOST:PORT[,HOST:PORT…]`"),
        ));
    };
    let endpoints: Vec<String> = list
        .split(',')
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .collect();
    for endpoint in &endpoints {
        let port_ok = endpoint
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !port_ok {
            return Err(invalid(
                "store",
                format!("{endpoint:?} in {text:?} is not HOST:PORT (etcd://127.0.0.1:2379,10.0.0.2:2379)"),
            ));
        }
    }
    Ok(StoreChoice::Etcd(EtcdSettings {
        endpoints,
        prefix: format!("/heterogen/{network}/"),
        ca: None,
        cert: None,
        key: None,
        user: None,
        call_timeout: Duration::from_secs(5),
    }))
}

/// Flags of `heterogen serve`. Each also reads `HETEROGEN_<NAME>` and the `--config` file,
/// whose keys are the same settings: this one declaration serves all three.
#[serde_with::skip_serializing_none]
#[derive(Args, Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flag names, `-` or `_`).
    #[arg(long, env = "HETEROGEN_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8088].
    #[arg(long, env = "HETEROGEN_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded store [default: ./data].
    #[arg(long, env = "HETEROGEN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// This node's id [default: s-0001].
    #[arg(long, env = "HETEROGEN_NID", value_name = "ID")]
    pub nid: Option<String>,
    /// Wallet addresses with the Owner role, comma-separated.
    #[arg(
        long,
        env = "HETEROGEN_OWNERS",
        value_name = "ADDR[,ADDR…]",
        value_delimiter = ','
    )]
    pub owners: Option<Vec<String>>,
    /// Skip authentication entirely (local development only; never the default).
    #[arg(long, env = "HETEROGEN_OPEN", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub open: Option<bool>,
    /// Most WebSocket connections held at once [default: 100000].
    #[arg(long, env = "HETEROGEN_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Network name [default: testnet].
    #[arg(long, env = "HETEROGEN_NETWORK", value_name = "NAME")]
    pub network: Option<String>,
    /// URL clients use to reach this node [default: http://<listen>].
    #[arg(long, env = "HETEROGEN_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// fdatasync every store commit [default: true]; false survives a process crash, not power loss.
    #[arg(long, env = "HETEROGEN_FSYNC", value_name = "BOOL")]
    pub fsync: Option<bool>,
    /// The node's log on stderr: `text` (coloured only on a terminal, never with NO_COLOR) or
    /// `json` (one object a line) [default: text].
    #[arg(long, env = "HETEROGEN_LOG_FORMAT", value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Where worker records, leases and sessions live: `fjall` (embedded, one node) or
    /// `etcd://HOST:PORT[,HOST:PORT…]` (a cluster; needs the `etcd` build) [default: fjall].
    #[arg(long, env = "HETEROGEN_STORE", value_name = "fjall|etcd://…")]
    pub store: Option<String>,
    /// Key prefix of this cluster in etcd [default: /heterogen/<network>/].
    #[arg(long, env = "HETEROGEN_ETCD_PREFIX", value_name = "PREFIX")]
    pub etcd_prefix: Option<String>,
    /// CA certificate (PEM) of the etcd members; makes the etcd connection TLS.
    #[arg(long, env = "HETEROGEN_ETCD_CA", value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) this node presents to etcd (with --etcd-key).
    #[arg(long, env = "HETEROGEN_ETCD_CERT", value_name = "FILE")]
    pub etcd_cert: Option<PathBuf>,
    /// Key (PEM) of --etcd-cert.
    #[arg(long, env = "HETEROGEN_ETCD_KEY", value_name = "FILE")]
    pub etcd_key: Option<PathBuf>,
    /// Longest wait of one etcd call, in ms [default: 5000].
    #[arg(long, env = "HETEROGEN_ETCD_TIMEOUT_MS", value_name = "MS")]
    pub etcd_timeout_ms: Option<u64>,
    /// A node that stops renewing its membership leaves the node list after this, in ms
    /// [default: 10000; etcd counts whole seconds].
    #[arg(long, env = "HETEROGEN_MEMBERSHIP_TTL_MS", value_name = "MS")]
    pub membership_ttl_ms: Option<u64>,
    /// Largest request body / WebSocket message in bytes [default: 1048576].
    #[arg(long, env = "HETEROGEN_MAX_REQUEST_BYTES", value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,
    /// WebSocket ping interval in milliseconds [default: 30000].
    #[arg(long, env = "HETEROGEN_WS_PING_INTERVAL_MS", value_name = "MS")]
    pub ws_ping_interval_ms: Option<u64>,
    /// Serve Prometheus metrics (`GET /metrics`), `/healthz` and `/readyz` on this address
    /// [default: off].
    #[arg(long, env = "HETEROGEN_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) that makes the listener speak TLS (https, wss), with --tls-key;
    /// read again on SIGHUP.
    #[arg(long, env = "HETEROGEN_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "HETEROGEN_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Name of the node shown to clients [default: heterogen].
    #[arg(long, env = "HETEROGEN_TITLE", value_name = "TEXT")]
    pub title: Option<String>,
    /// A session unused this long expires, in seconds [default: 86400].
    #[arg(long, env = "HETEROGEN_SESSION_IDLE_SECS", value_name = "SECS")]
    pub session_idle_secs: Option<u64>,
    /// Age limit of a login transaction's timestamp, in seconds [default: 300].
    #[arg(long, env = "HETEROGEN_LOGIN_WINDOW_SECS", value_name = "SECS")]
    pub login_window_secs: Option<u64>,
    /// Failed logins allowed per source address per minute [default: 10].
    #[arg(long, env = "HETEROGEN_LOGIN_MAX_FAILURES", value_name = "N")]
    pub login_max_failures: Option<usize>,
    /// Successful logins allowed per wallet per minute [default: 30].
    #[arg(long, env = "HETEROGEN_LOGINS_PER_WALLET", value_name = "N")]
    pub logins_per_wallet: Option<usize>,
    /// Successful logins allowed per source address per minute [default: 30].
    #[arg(long, env = "HETEROGEN_LOGINS_PER_IP", value_name = "N")]
    pub logins_per_ip: Option<usize>,
    /// How often expired sessions and login replay marks are deleted, in ms [default: 60000].
    #[arg(long, env = "HETEROGEN_REAPER_INTERVAL_MS", value_name = "MS")]
    pub reaper_interval_ms: Option<u64>,
    /// Time a client has to send a request's headers, in ms [default: 10000].
    #[arg(long, env = "HETEROGEN_HTTP_HEADER_TIMEOUT_MS", value_name = "MS")]
    pub http_header_timeout_ms: Option<u64>,
    /// Idle HTTP keep-alive connections are closed after this, in ms [default: 60000].
    #[arg(long, env = "HETEROGEN_HTTP_IDLE_TIMEOUT_MS", value_name = "MS")]
    pub http_idle_timeout_ms: Option<u64>,
    /// Time a client has to send a request's body after its head, in ms [default: 30000].
    #[arg(long, env = "HETEROGEN_HTTP_BODY_TIMEOUT_MS", value_name = "MS")]
    pub http_body_timeout_ms: Option<u64>,
    /// Connections per source address that have not completed a request yet [default: 256].
    #[arg(long, env = "HETEROGEN_MAX_PENDING_PER_IP", value_name = "N")]
    pub max_pending_per_ip: Option<usize>,
    /// Connections in all that have not completed a request yet [default: 8192, at most a
    /// quarter of the descriptor limit].
    #[arg(long, env = "HETEROGEN_MAX_PENDING", value_name = "N")]
    pub max_pending: Option<usize>,
    /// Bytes of outgoing frames queued per WebSocket [default: 8388608].
    #[arg(long, env = "HETEROGEN_WS_OUTBOUND_BYTES", value_name = "BYTES")]
    pub ws_outbound_bytes: Option<usize>,
    /// A WebSocket that does not take a frame this long is closed, in ms [default: 30000].
    #[arg(long, env = "HETEROGEN_WS_WRITE_TIMEOUT_MS", value_name = "MS")]
    pub ws_write_timeout_ms: Option<u64>,
    /// WebSockets of non-owner sessions open at once from one source address [default: 10000].
    #[arg(long, env = "HETEROGEN_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// WebSockets open at once per wallet without the Owner role [default: 100].
    #[arg(long, env = "HETEROGEN_MAX_CONNECTIONS_PER_WALLET", value_name = "N")]
    pub max_connections_per_wallet: Option<usize>,
    /// Percent of --max-connections kept for owner sessions (0..=50) [default: 5].
    #[arg(long, env = "HETEROGEN_OWNER_RESERVE_PERCENT", value_name = "PERCENT")]
    pub owner_reserve_percent: Option<u8>,
    /// Bytes one worker may hold in each of Stels.net and Stels.local, in MiB [default: 64].
    #[arg(long, env = "HETEROGEN_KV_QUOTA_MB", value_name = "MIB")]
    pub kv_quota_mb: Option<u64>,
    /// Threads that run JavaScript [default: number of cores].
    #[arg(long, env = "HETEROGEN_JS_THREADS", value_name = "N")]
    pub js_threads: Option<usize>,
    /// Scheduling priority of the JS threads below the network threads (nice 0..=19) [default: 10].
    #[arg(long, env = "HETEROGEN_JS_NICE", value_name = "N")]
    pub js_nice: Option<i32>,
    /// Heap limit per worker in MiB [default: 64].
    #[arg(long, env = "HETEROGEN_WORKER_MEMORY_MB", value_name = "MIB")]
    pub worker_memory_mb: Option<usize>,
    /// Longest computation without yielding, in ms, before a run is interrupted [default: 5000].
    #[arg(long, env = "HETEROGEN_WORKER_CPU_MS", value_name = "MS")]
    pub worker_cpu_ms: Option<u64>,
    /// Grace period of a stopping run, in ms [default: 5000].
    #[arg(long, env = "HETEROGEN_STOP_GRACE_MS", value_name = "MS")]
    pub stop_grace_ms: Option<u64>,
    /// Leader lease length in ms [default: 60000].
    #[arg(long, env = "HETEROGEN_LEASE_MS", value_name = "MS")]
    pub lease_ms: Option<u64>,
    /// Leader lease renewal interval in ms [default: 30000].
    #[arg(long, env = "HETEROGEN_LEASE_RENEW_MS", value_name = "MS")]
    pub lease_renew_ms: Option<u64>,
    /// Log lines kept per worker across restarts [default: 10000].
    #[arg(long, env = "HETEROGEN_LOG_HISTORY_LINES", value_name = "N")]
    pub log_history_lines: Option<usize>,
    /// Log lines a worker may write per second [default: 100].
    #[arg(long, env = "HETEROGEN_LOG_RATE", value_name = "N")]
    pub log_rate: Option<u32>,
    /// Hosts `fetch` may reach, comma-separated (`example.com`, `*.example.com`) [default: all].
    #[arg(
        long,
        env = "HETEROGEN_FETCH_ALLOW",
        value_name = "HOST[,HOST…]",
        value_delimiter = ','
    )]
    pub fetch_allow: Option<Vec<String>>,
    /// Time limit of one `fetch` in ms [default: 30000].
    #[arg(long, env = "HETEROGEN_FETCH_TIMEOUT_MS", value_name = "MS")]
    pub fetch_timeout_ms: Option<u64>,
    /// `WebSocket`s one worker may hold open at once [default: 16].
    #[arg(long, env = "HETEROGEN_SCRIPT_WEBSOCKETS", value_name = "N")]
    pub script_websockets: Option<usize>,
    /// The node's own wallet key file, `Stels.wallet` to scripts [default: <data-dir>/node-key.json, created when absent].
    #[arg(long, env = "HETEROGEN_NODE_KEY", value_name = "FILE")]
    pub node_key: Option<PathBuf>,
    /// Key file that encrypts workers' secrets at rest (64 hex digits, mode 0600). Every node of a cluster needs the same file: copy the first node's; a node whose key is not the cluster's (whose fingerprint the store keeps) refuses secrets and says so [default: <data-dir>/secrets-key, created when absent].
    #[arg(long, env = "HETEROGEN_SECRETS_KEY", value_name = "FILE")]
    pub secrets_key: Option<PathBuf>,
    /// When this node's secrets key is not the cluster's (the key was lost): delete every stored secret of every worker and make this key the cluster's, instead of refusing secrets.
    #[arg(long, env = "HETEROGEN_SECRETS_KEY_RESET", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub secrets_key_reset: Option<bool>,
    /// First wait after a network error, in ms [default: 5000].
    #[arg(long, env = "HETEROGEN_NETWORK_BACKOFF_MS", value_name = "MS")]
    pub network_backoff_ms: Option<u64>,
    /// Longest wait after network errors, in ms [default: 60000].
    #[arg(long, env = "HETEROGEN_NETWORK_BACKOFF_CAP_MS", value_name = "MS")]
    pub network_backoff_cap_ms: Option<u64>,
    /// Consecutive network errors before a pause [default: 20].
    #[arg(long, env = "HETEROGEN_NETWORK_PAUSE_AFTER", value_name = "N")]
    pub network_pause_after: Option<u32>,
    /// Length of that pause in ms [default: 300000].
    #[arg(long, env = "HETEROGEN_NETWORK_PAUSE_MS", value_name = "MS")]
    pub network_pause_ms: Option<u64>,
    /// First wait after a critical error, in ms [default: 1000].
    #[arg(long, env = "HETEROGEN_CRITICAL_BACKOFF_MS", value_name = "MS")]
    pub critical_backoff_ms: Option<u64>,
    /// Longest wait after critical errors, in ms [default: 10000].
    #[arg(long, env = "HETEROGEN_CRITICAL_BACKOFF_CAP_MS", value_name = "MS")]
    pub critical_backoff_cap_ms: Option<u64>,
    /// Critical errors before the worker is stopped on this node [default: 10].
    #[arg(long, env = "HETEROGEN_CRITICAL_STOP_AFTER", value_name = "N")]
    pub critical_stop_after: Option<u32>,
    /// Consecutive errors before the worker is stopped on this node [default: 50].
    #[arg(long, env = "HETEROGEN_CONSECUTIVE_STOP_AFTER", value_name = "N")]
    pub consecutive_stop_after: Option<u32>,
}

/// The `--config` file: the settings of [`ServeArgs`], keys as the flag names with `-` or `_`.
fn read_file(path: &Path) -> Result<ServeArgs, ConfigError> {
    let bad = |message: String| ConfigError::ParseFile {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    // The flags' own ids (`max_connections`) are the settings a file may give.
    let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    let known: Vec<&str> = command
        .get_arguments()
        .map(|arg| arg.get_id().as_str())
        .filter(|id| *id != "config")
        .collect();
    for key in table.keys() {
        let id = key.replace('-', "_");
        if !known.contains(&id.as_str()) {
            let closest = known
                .iter()
                .map(|k| (strsim::levenshtein(&id, k), *k))
                .min()
                .filter(|(distance, _)| *distance <= 3)
                .map(|(_, k)| format!(" — did you mean {:?}?", k.replace('_', "-")))
                .unwrap_or_default();
            return Err(bad(format!("unknown field {key:?}{closest}")));
        }
    }
    let table: toml::Table = table
        .into_iter()
        .map(|(key, value)| (key.replace('_', "-"), value))
        .collect();
    ServeArgs::deserialize(toml::Value::Table(table)).map_err(|e| bad(e.to_string()))
}

/// etcd's user and password from `HETEROGEN_ETCD_USER` and `HETEROGEN_ETCD_PASSWORD`.
fn etcd_user_from_env() -> Result<Option<(String, String)>, ConfigError> {
    let user = std::env::var("HETEROGEN_ETCD_USER")
        .ok()
        .filter(|u| !u.is_empty());
    let password = std::env::var("HETEROGEN_ETCD_PASSWORD").ok();
    match (user, password) {
        (None, None) => Ok(None),
        (Some(user), Some(password)) => Ok(Some((user, password))),
        _ => Err(invalid(
            "etcd-user",
            "HETEROGEN_ETCD_USER and HETEROGEN_ETCD_PASSWORD go together: set both or neither",
        )),
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl ServeArgs {
    /// Merges flags/env over the file over the defaults and checks every value.
    pub fn resolve(&self) -> Result<NodeConfig, ConfigError> {
        let s = match &self.config {
            Some(path) => self.over(read_file(path)?)?,
            None => self.clone(),
        };
        let mut config = NodeConfig::new(s.data_dir.clone().unwrap_or_else(|| PathBuf::from("./data")));
        if let Some(listen) = s.listen {
            config.listen = listen;
        }
        if let Some(nid) = s.nid.clone() {
            config.nid = nid;
        }
        if let Some(owners) = s.owners.clone() {
            config.owners = owners
                .into_iter()
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect();
            // Left out, the node makes its own owner key; given but empty is a mistake.
            if config.owners.is_empty() {
                return Err(invalid(
                    "owners",
                    "is empty: give at least one wallet address, or leave it out and the node creates an owner key in --data-dir",
                ));
            }
        }
        config.open = s.open.unwrap_or(false);
        if let Some(n) = s.max_connections {
            config.max_connections = n;
        }
        if let Some(network) = s.network.clone() {
            config.network = network;
        }
        config.public_url = s.public_url.clone();
        if let Some(fsync) = s.fsync {
            config.fsync = fsync;
        }
        if let Some(format) = s.log_format {
            config.log_format = format;
        }
        if let Some(ms) = s.membership_ttl_ms {
            config.membership_ttl = Duration::from_millis(ms);
        }
        let store = s.store.clone();
        config.store = match store {
            None => StoreChoice::Fjall,
            Some(text) => parse_store(&text, &config.network)?,
        };
        let etcd_ca = s.etcd_ca.clone();
        let etcd_cert = s.etcd_cert.clone();
        let etcd_key = s.etcd_key.clone();
        let etcd_prefix = s.etcd_prefix.clone();
        let etcd_timeout_ms = s.etcd_timeout_ms;
        match &mut config.store {
            StoreChoice::Etcd(etcd) => {
                if let Some(prefix) = etcd_prefix {
                    if prefix.is_empty() {
                        return Err(invalid(
                            "etcd-prefix",
                            "is empty: several clusters could not share one etcd",
                        ));
                    }
                    etcd.prefix = prefix;
                }
                if etcd_cert.is_some() != etcd_key.is_some() {
                    return Err(invalid(
                        "etcd-cert",
                        "and --etcd-key go together: give both or neither",
                    ));
                }
                (etcd.ca, etcd.cert, etcd.key) = (etcd_ca, etcd_cert, etcd_key);
                if let Some(ms) = etcd_timeout_ms {
                    etcd.call_timeout = Duration::from_millis(ms.max(1));
                }
                etcd.user = etcd_user_from_env()?;
            }
            StoreChoice::Fjall => {
                let given = [
                    ("etcd-prefix", etcd_prefix.is_some()),
                    ("etcd-ca", etcd_ca.is_some()),
                    ("etcd-cert", etcd_cert.is_some()),
                    ("etcd-key", etcd_key.is_some()),
                ];
                if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
                    return Err(invalid(flag, "only applies with --store etcd://…"));
                }
            }
        }
        if let Some(n) = s.max_request_bytes {
            config.max_request_bytes = n;
        }
        config.metrics_listen = s.metrics_listen;
        config.tls = match (s.tls_cert.clone(), s.tls_key.clone()) {
            (Some(cert), Some(key)) => Some(TlsPaths { cert, key }),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "tls-cert",
                    "and --tls-key go together: give both or neither",
                ));
            }
        };
        if let Some(ms) = s.ws_ping_interval_ms {
            config.ws_ping_interval = Duration::from_millis(ms);
        }
        if let Some(title) = s.title.clone() {
            config.title = title;
        }
        if let Some(secs) = s.session_idle_secs {
            config.session_idle = Duration::from_secs(secs);
        }
        if let Some(secs) = s.login_window_secs {
            config.login_window = Duration::from_secs(secs);
        }
        if let Some(n) = s.login_max_failures {
            config.login_max_failures = n;
        }
        if let Some(n) = s.logins_per_wallet {
            config.logins_per_wallet = n;
        }
        if let Some(n) = s.logins_per_ip {
            config.logins_per_ip = n;
        }
        if let Some(v) = s.reaper_interval_ms {
            config.reaper_interval = Duration::from_millis(v);
        }
        let http = &mut config.http;
        if let Some(v) = s.http_header_timeout_ms {
            http.header_timeout = Duration::from_millis(v);
        }
        if let Some(v) = s.http_idle_timeout_ms {
            http.idle_timeout = Duration::from_millis(v);
        }
        if let Some(v) = s.http_body_timeout_ms {
            http.body_timeout = Duration::from_millis(v);
        }
        if let Some(n) = s.max_pending_per_ip {
            http.max_pending_per_ip = n;
        }
        if let Some(n) = s.max_pending {
            http.max_pending = n;
        }
        let ws = &mut config.ws;
        if let Some(n) = s.ws_outbound_bytes {
            ws.outbound_bytes = n;
        }
        if let Some(v) = s.ws_write_timeout_ms {
            ws.write_timeout = Duration::from_millis(v);
        }
        if let Some(n) = s.max_connections_per_ip {
            ws.max_per_ip = n;
        }
        if let Some(n) = s.max_connections_per_wallet {
            ws.max_per_wallet = n;
        }
        if let Some(n) = s.owner_reserve_percent {
            ws.owner_reserve_percent = n;
        }
        let rt = &mut config.runtime;
        let ms = Duration::from_millis;
        if let Some(mib) = s.kv_quota_mb {
            rt.kv_quota_bytes = mib.saturating_mul(1024 * 1024);
        }
        if let Some(n) = s.js_threads {
            rt.js_threads = n;
        }
        if let Some(n) = s.js_nice {
            rt.js_nice = n;
        }
        if let Some(mib) = s.worker_memory_mb {
            rt.memory_limit_bytes = mib.saturating_mul(1024 * 1024);
        }
        if let Some(v) = s.worker_cpu_ms {
            rt.cpu_limit = ms(v);
        }
        if let Some(v) = s.stop_grace_ms {
            rt.stop_grace = ms(v);
        }
        if let Some(v) = s.lease_ms {
            rt.lease_duration = ms(v);
        }
        if let Some(v) = s.lease_renew_ms {
            rt.lease_renew_interval = ms(v);
        }
        if let Some(n) = s.log_history_lines {
            rt.log_history_lines = n;
        }
        if let Some(n) = s.log_rate {
            rt.log_rate = n;
        }
        if let Some(hosts) = s.fetch_allow.clone() {
            rt.fetch_allowed_hosts = Some(hosts.into_iter().map(|h| h.trim().to_ascii_lowercase()).collect());
        }
        if let Some(v) = s.fetch_timeout_ms {
            rt.fetch_timeout = ms(v);
        }
        if let Some(n) = s.script_websockets {
            rt.script_websockets = n;
        }
        config.node_key = s.node_key.clone();
        config.secrets_key = s.secrets_key.clone();
        config.secrets_key_reset = s.secrets_key_reset.unwrap_or(false);
        let e = &mut rt.errors;
        if let Some(v) = s.network_backoff_ms {
            e.network_backoff_base = ms(v);
        }
        if let Some(v) = s.network_backoff_cap_ms {
            e.network_backoff_cap = ms(v);
        }
        if let Some(v) = s.network_pause_after {
            e.network_pause_after = v;
        }
        if let Some(v) = s.network_pause_ms {
            e.network_pause = ms(v);
        }
        if let Some(v) = s.critical_backoff_ms {
            e.critical_backoff_base = ms(v);
        }
        if let Some(v) = s.critical_backoff_cap_ms {
            e.critical_backoff_cap = ms(v);
        }
        if let Some(v) = s.critical_stop_after {
            e.critical_stop_after = v;
        }
        if let Some(v) = s.consecutive_stop_after {
            e.consecutive_stop_after = v;
        }
        config.validate()?;
        Ok(config)
    }

    /// These flags over `file`: one value per setting, the flag's where both give one.
    fn over(&self, file: ServeArgs) -> Result<ServeArgs, ConfigError> {
        let merge = |message: String| invalid("config", message);
        let mut merged = toml::Table::try_from(&file).map_err(|e| merge(e.to_string()))?;
        merged.extend(toml::Table::try_from(self).map_err(|e| merge(e.to_string()))?);
        let mut settings =
            ServeArgs::deserialize(toml::Value::Table(merged)).map_err(|e| merge(e.to_string()))?;
        settings.config = self.config.clone();
        Ok(settings)
    }
}

impl NodeConfig {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !id_ok(&self.nid) {
            return Err(invalid(
                "nid",
                format!("{:?}: use 1-64 letters, digits, '-', '_' or '.'", self.nid),
            ));
        }
        if !id_ok(&self.network) {
            return Err(invalid(
                "network",
                format!("{:?}: use 1-64 letters, digits, '-', '_' or '.'", self.network),
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("max-connections", "must be at least 1"));
        }
        if self.max_request_bytes < 1024 {
            return Err(invalid("max-request-bytes", "must be at least 1024"));
        }
        if self.ws_ping_interval < Duration::from_millis(10) {
            return Err(invalid("ws-ping-interval-ms", "must be at least 10"));
        }
        if self.title.trim().is_empty() || self.title.len() > 200 {
            return Err(invalid("title", "must be 1-200 characters"));
        }
        if self.session_idle < Duration::from_secs(1) {
            return Err(invalid("session-idle-secs", "must be at least 1"));
        }
        if self.login_window < Duration::from_secs(1) {
            return Err(invalid("login-window-secs", "must be at least 1"));
        }
        if self.login_max_failures == 0 {
            return Err(invalid("login-max-failures", "must be at least 1"));
        }
        if self.logins_per_wallet == 0 {
            return Err(invalid("logins-per-wallet", "must be at least 1"));
        }
        if self.logins_per_ip == 0 {
            return Err(invalid("logins-per-ip", "must be at least 1"));
        }
        if self.reaper_interval < Duration::from_millis(10) {
            return Err(invalid("reaper-interval-ms", "must be at least 10"));
        }
        if self.http.header_timeout < Duration::from_millis(10) {
            return Err(invalid("http-header-timeout-ms", "must be at least 10"));
        }
        if self.http.idle_timeout < Duration::from_millis(10) {
            return Err(invalid("http-idle-timeout-ms", "must be at least 10"));
        }
        if self.http.body_timeout < Duration::from_millis(10) {
            return Err(invalid("http-body-timeout-ms", "must be at least 10"));
        }
        if self.http.max_pending_per_ip == 0 {
            return Err(invalid("max-pending-per-ip", "must be at least 1"));
        }
        if self.http.max_pending == 0 {
            return Err(invalid("max-pending", "must be at least 1"));
        }
        if self.ws.outbound_bytes < 64 * 1024 {
            return Err(invalid("ws-outbound-bytes", "must be at least 65536"));
        }
        if self.ws.write_timeout < Duration::from_millis(10) {
            return Err(invalid("ws-write-timeout-ms", "must be at least 10"));
        }
        if self.ws.max_per_ip == 0 {
            return Err(invalid("max-connections-per-ip", "must be at least 1"));
        }
        if self.ws.max_per_wallet == 0 {
            return Err(invalid("max-connections-per-wallet", "must be at least 1"));
        }
        if self.ws.owner_reserve_percent > 50 {
            return Err(invalid("owner-reserve-percent", "must be between 0 and 50"));
        }
        if let Some(bad) = self
            .owners
            .iter()
            .find(|o| !crate::auth::gliesereum::validate_address(o))
        {
            return Err(invalid(
                "owners",
                format!("{bad:?} is not a Gliesereum wallet address"),
            ));
        }
        let rt = &self.runtime;
        if rt.js_threads == 0 || rt.js_threads > 256 {
            return Err(invalid("js-threads", "must be between 1 and 256"));
        }
        if !(0..=19).contains(&rt.js_nice) {
            return Err(invalid("js-nice", "must be between 0 and 19"));
        }
        if rt.kv_quota_bytes < 1024 * 1024 {
            return Err(invalid("kv-quota-mb", "must be at least 1"));
        }
        if rt.memory_limit_bytes < 4 * 1024 * 1024 {
            return Err(invalid("worker-memory-mb", "must be at least 4"));
        }
        if rt.log_history_lines == 0 || rt.log_rate == 0 {
            return Err(invalid(
                "log-history-lines",
                "log history and log rate must be at least 1",
            ));
        }
        if rt.cpu_limit < Duration::from_millis(10) {
            return Err(invalid("worker-cpu-ms", "must be at least 10"));
        }
        if rt.lease_renew_interval.is_zero() || rt.lease_renew_interval * 2 > rt.lease_duration {
            return Err(invalid(
                "lease-renew-ms",
                "must be positive and at most half of --lease-ms",
            ));
        }
        if rt.stop_grace + rt.lease_renew_interval + rt.lease_duration / 20 >= rt.lease_duration {
            return Err(invalid(
                "stop-grace-ms",
                "a leader must be able to stop within its lease: --stop-grace-ms + --lease-renew-ms must stay \
                 below 95% of --lease-ms",
            ));
        }
        if rt.errors.critical_stop_after == 0 || rt.errors.consecutive_stop_after == 0 {
            return Err(invalid(
                "critical-stop-after",
                "stop thresholds must be at least 1",
            ));
        }
        if let Some(url) = &self.public_url {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ']) => {}
                _ => {
                    return Err(invalid(
                        "public-url",
                        format!("{url:?}: expected http(s)://host[:port] without query or fragment"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = ServeArgs::default().resolve().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8088");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.nid, "s-0001");
        assert_eq!(config.network, "testnet");
        assert!(!config.open);
        assert!(config.fsync);
        assert_eq!(config.log_format, LogFormat::Text);
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "nid = \"s-0007\"\nlisten = \"127.0.0.1:9000\"\nowners = [\"gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKz\"]\nfsync = false\nlog-format = \"json\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            nid: Some("s-0009".into()),
            ..Default::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        let text = ServeArgs {
            config: Some(path),
            log_format: Some(LogFormat::Text),
            ..Default::default()
        };
        assert_eq!(text.resolve().unwrap().log_format, LogFormat::Text);
        assert_eq!(config.nid, "s-0009");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(
            config.owners,
            vec!["gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKz".to_string()]
        );
        assert!(!config.fsync);
    }

    #[test]
    fn bad_values_are_named() {
        let args = ServeArgs {
            nid: Some("has space".into()),
            ..Default::default()
        };
        assert!(args.resolve().unwrap_err().to_string().contains("nid"));
        let half = ServeArgs {
            tls_cert: Some("node.crt".into()),
            ..Default::default()
        };
        assert!(half.resolve().unwrap_err().to_string().contains("tls-cert"));
        let args = ServeArgs {
            public_url: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(args.resolve().unwrap_err().to_string().contains("public-url"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(args.resolve().unwrap_err().to_string().contains("unknown field"));
    }
}
