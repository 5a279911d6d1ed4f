//! The boundary between the worker supervisor and a JavaScript engine.
//!
//! The supervisor only sees [`ScriptEngine`] and [`ScriptIsolate`]; QuickJS (`rquickjs`) is the
//! one implementation here, and a V8 backend could be added where the `v8` crate builds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::auth::gliesereum::Wallet;
use crate::cluster::coordinator::Fence;
use crate::store::{ExpiryLeases, Store};
use crate::workers::{ExecutionMode, Priority, RunMode};

pub use crate::streams::logs::{LogLevel, LogSink};

/// `Stels.config` of one worker (S-6). Read-only for the script.
#[derive(Clone, Debug)]
pub struct ScriptConfig {
    /// The node's id.
    pub nid: String,
    /// The node's network.
    pub network: String,
    /// Node title shown to clients.
    pub title: String,
    /// Updates per second the node aims for (informational).
    pub tick: u32,
    /// The worker's id.
    pub sid: String,
    /// Where the worker runs.
    pub execution_mode: ExecutionMode,
    /// Its class on the JS pool.
    pub priority: Priority,
    /// Once or in a loop.
    pub mode: RunMode,
    /// The worker's SDK version.
    pub version: String,
    /// Fencing number of the lease this node holds for a leader-mode worker.
    pub lease_epoch: Option<u64>,
}

/// Which hosts `fetch` may reach (S-10).
#[derive(Clone, Debug, Default)]
pub struct FetchPolicy {
    /// `None`: every host. Otherwise exact host names (or `*.suffix`).
    pub allowed_hosts: Option<Vec<String>>,
    /// Whole-request time limit; past it the promise rejects with `RequestTimeout`.
    pub timeout: Duration,
    /// Largest response body read, in bytes.
    pub max_body_bytes: usize,
}

/// What a script may know about the node it runs on.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    /// The node's own wallet (`Stels.wallet`): scripts see its public parts and may have it
    /// sign, never its private key.
    pub wallet: Arc<Wallet>,
    /// When the node started, in ms since the Unix epoch (`Stels.startTime`).
    pub start_time_ms: u64,
}

/// Limits of `WebSocket` connections opened by scripts (the hosts they may reach are those of
/// [`FetchPolicy::allowed_hosts`]).
#[derive(Clone, Copy, Debug)]
pub struct WebSocketPolicy {
    /// Sockets one worker may hold open at once.
    pub max_per_worker: usize,
    /// Inbound messages queued per socket before the script reads them; past it the socket is
    /// closed with an error rather than buffering without limit.
    pub max_queued_messages: usize,
    /// Bytes of inbound messages queued per socket before the script reads them; past it the
    /// socket is closed like an overflowing queue (so memory outside the JS heap stays bounded
    /// whatever the feed sends).
    pub max_queued_bytes: usize,
    /// Largest message received or sent, in bytes.
    pub max_message_bytes: usize,
}

impl Default for WebSocketPolicy {
    fn default() -> Self {
        WebSocketPolicy {
            max_per_worker: 16,
            max_queued_messages: 1024,
            max_queued_bytes: 4 * 1024 * 1024,
            max_message_bytes: 1024 * 1024,
        }
    }
}

/// A worker's secrets as its script reads them (`Stels.secrets`, `Deno.env.get`). The node's
/// reader follows changes: every call sees the secrets as they are then.
pub trait SecretReader: Send + Sync {
    /// The value of the secret `name`, if this worker has one.
    fn get(&self, name: &str) -> Option<String>;
    /// Every value, so that log lines can mask them.
    fn values(&self) -> Vec<String>;
    /// The names, in order (`Object.keys(Stels.secrets)`). Readers that hold secrets override
    /// it; the default suits one that holds none.
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
    /// Why this node cannot give the worker its secrets (its key is not the cluster's), if it
    /// cannot: reading `Stels.secrets` then throws an `Error` saying so.
    fn unavailable(&self) -> Option<String> {
        None
    }
    /// `text` with the values hidden, as a log line the script writes is stored and shown. The
    /// default replaces every non-empty value of [`SecretReader::values`] with `***`; the
    /// node's reader also finds JSON-escaped forms and leaves values of 1–3 characters alone.
    fn mask<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let mut values = self.values();
        values.retain(|v| !v.is_empty());
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut masked = std::borrow::Cow::Borrowed(text);
        for value in &values {
            if masked.contains(value.as_str()) {
                masked = std::borrow::Cow::Owned(masked.replace(value.as_str(), "***"));
            }
        }
        masked
    }
}

/// Where the runs of a node find their worker's secrets.
pub trait SecretSource: Send + Sync {
    /// The secrets of worker `sid`.
    fn for_worker(&self, sid: &str) -> Arc<dyn SecretReader>;
}

/// A worker without secrets, and a node that keeps none.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSecrets;

impl SecretReader for NoSecrets {
    fn get(&self, _name: &str) -> Option<String> {
        None
    }
    fn values(&self) -> Vec<String> {
        Vec::new()
    }
    fn mask<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        std::borrow::Cow::Borrowed(text)
    }
}

impl SecretSource for NoSecrets {
    fn for_worker(&self, _sid: &str) -> Arc<dyn SecretReader> {
        Arc::new(NoSecrets)
    }
}

/// Everything the SDK of one worker needs from its node.
#[derive(Clone)]
pub struct WorkerEnv {
    /// `Stels.config`.
    pub config: ScriptConfig,
    /// Workers running on this node now (`Stels.config.workers`).
    pub running_workers: Arc<AtomicUsize>,
    /// The cluster KV behind `Stels.net` (S-7).
    pub net: Arc<dyn Store>,
    /// This node's own KV behind `Stels.local` (S-8).
    pub local: Arc<dyn Store>,
    /// The shared expiry leases of `net` and `local` (`expireIn`).
    pub net_expiry: Arc<ExpiryLeases>,
    /// The shared expiry leases of `local`.
    pub local_expiry: Arc<ExpiryLeases>,
    /// For a leader-mode run: its term's fence, checked by every `Stels.net` write (S-22).
    pub net_fence: Option<Fence>,
    /// Where the script's log lines go.
    pub log: Arc<dyn LogSink>,
    /// What `fetch` may reach.
    pub fetch: FetchPolicy,
    /// Bytes this worker may hold in each of `net` and `local` (keys and values).
    pub kv_quota_bytes: u64,
    /// The node, as scripts may see it.
    pub node: Arc<NodeIdentity>,
    /// The worker's declared dependencies (`gliesereum` opens `Stels.blockchain`).
    pub dependencies: Vec<String>,
    /// This worker's secrets.
    pub secrets: Arc<dyn SecretReader>,
    /// What `WebSocket` may hold.
    pub websocket: WebSocketPolicy,
    /// The worker's heap size in bytes as last sampled with its statistics
    /// (`Deno.memoryUsage()`); the isolate updates it.
    pub heap_bytes: Arc<AtomicU64>,
}

/// Per-isolate resource limits (W-RUN-6).
#[derive(Clone, Copy, Debug)]
pub struct IsolateLimits {
    /// Heap limit of the runtime.
    pub memory_bytes: usize,
    /// Longest stretch of computation without yielding to the event loop.
    pub cpu_slice: Duration,
}

/// Why a run (or the creation of an isolate) failed.
#[derive(Clone, Debug, PartialEq)]
pub struct RunError {
    /// The JS error's `name` (`TypeError`, `NetworkError`, …); `Error` when unnamed.
    pub name: String,
    /// What went wrong, as the script's error said it.
    pub message: String,
    /// JS stack, when there is one.
    pub stack: Option<String>,
    /// What the engine knows for sure about the cause.
    pub cause: RunErrorCause,
}

/// Causes the engine detects itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunErrorCause {
    /// Thrown (or rejected) by the script.
    Thrown,
    /// The script does not compile.
    Syntax,
    /// Interrupted after computing longer than `cpu_slice` without yielding.
    CpuTimeLimit,
    /// The runtime ran out of its memory limit; the isolate must be dropped.
    MemoryLimit,
    /// The run was stopped (deactivation, reload, shutdown) after its grace period.
    Interrupted,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

/// One worker's JavaScript runtime, kept for the worker's life on this node.
pub trait ScriptIsolate: Send {
    /// Runs the script once, to completion (its promise settles) or failure.
    ///
    /// `stop` is cancelled when the run must end: `Stels.sleep` resolves at once, `shouldStop()`
    /// turns true, `signal` aborts. If the run has not ended `grace` after that, it is
    /// interrupted (`RunErrorCause::Interrupted`). The returned future is `Send` and may be polled
    /// on any thread that has entered the node's tokio runtime.
    fn run<'a>(
        &'a mut self,
        stop: &'a CancellationToken,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), RunError>>;

    /// What the isolate holds and has used so far (walks its heap: not for every run).
    fn usage(&self) -> BoxFuture<'_, IsolateUsage>;
}

/// A worker's resource use on this node, for its statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IsolateUsage {
    /// Bytes its JavaScript heap holds (allocated by the engine for it).
    pub memory_bytes: u64,
    /// Time its code ran on the JS pool (compiling and every run), in total.
    pub busy: Duration,
}

/// Makes isolates.
pub trait ScriptEngine: Send + Sync {
    /// Compiles `script` (an async-function body) in a fresh runtime with the SDK installed.
    fn create(
        &self,
        script: &str,
        env: WorkerEnv,
        limits: IsolateLimits,
    ) -> BoxFuture<'static, Result<Box<dyn ScriptIsolate>, RunError>>;
}

/// Shared pieces of the SDK's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A sink that drops every line.
    pub struct NoLog;

    impl LogSink for NoLog {
        fn log(&self, _level: LogLevel, _message: &str) {}
    }

    /// Runs `body` as an async function body in a fresh context after `install` has set up the
    /// SDK part under test; its result as JSON, or the uncaught error as text.
    pub async fn eval_body(
        env: &WorkerEnv,
        body: &str,
        install: for<'js> fn(&rquickjs::Ctx<'js>, &WorkerEnv),
    ) -> Result<serde_json::Value, String> {
        use rquickjs::{AsyncContext, AsyncRuntime, CatchResultExt, Promise};
        let rt = AsyncRuntime::new().unwrap();
        let ctx = AsyncContext::full(&rt).await.unwrap();
        let source =
            format!("(async () => {{ {body} \n}})().then(v => JSON.stringify(v === undefined ? null : v))");
        let text = ctx
            .async_with(async |ctx| {
                install(&ctx, env);
                let promise: Promise = ctx.eval(source).catch(&ctx).unwrap();
                promise
                    .into_future::<String>()
                    .await
                    .catch(&ctx)
                    .map_err(|e| e.to_string())
            })
            .await?;
        Ok(serde_json::from_str(&text).unwrap())
    }

    /// The environment of a test worker `sid` on node `s-0001`.
    pub fn test_env(net: Arc<dyn Store>, local: Arc<dyn Store>, fetch: FetchPolicy) -> WorkerEnv {
        WorkerEnv {
            config: ScriptConfig {
                nid: "s-0001".into(),
                network: "testnet".into(),
                title: "test".into(),
                tick: 1,
                sid: "sid".into(),
                execution_mode: ExecutionMode::Leader,
                priority: Priority::Normal,
                mode: RunMode::Single,
                version: "1".into(),
                lease_epoch: None,
            },
            running_workers: Arc::new(AtomicUsize::new(0)),
            net_expiry: Arc::new(ExpiryLeases::new(
                net.clone(),
                Duration::from_millis(10),
                crate::clock::Clock::system(),
            )),
            local_expiry: Arc::new(ExpiryLeases::new(
                local.clone(),
                Duration::from_millis(10),
                crate::clock::Clock::system(),
            )),
            net_fence: None,
            net,
            local,
            log: Arc::new(NoLog),
            fetch,
            kv_quota_bytes: 64 * 1024 * 1024,
            node: Arc::new(test_node()),
            dependencies: Vec::new(),
            secrets: Arc::new(NoSecrets),
            websocket: WebSocketPolicy::default(),
            heap_bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A node with a fresh wallet that started at 1 700 000 000 000 ms.
    pub fn test_node() -> NodeIdentity {
        NodeIdentity {
            wallet: Arc::new(Wallet::generate()),
            start_time_ms: 1_700_000_000_000,
        }
    }
}
