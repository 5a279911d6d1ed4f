//! The QuickJS backend (`rquickjs`) of [`ScriptEngine`].
//!
//! An isolate is one QuickJS runtime with one context, kept for the worker's life. The script
//! is compiled once, as the body of an async function (top-level `await` and `return` work);
//! each run calls that function and awaits its promise. Every JS job and every host future
//! (sleeps, KV calls, fetches) is driven inside the run future itself by rquickjs's spawner:
//! a run needs no tokio task, only a thread that has entered the node's tokio runtime.
//!
//! Limits (W-RUN-6, W-RUN-7):
//! - memory: the runtime's heap limit. Running out fails the run with
//!   [`RunErrorCause::MemoryLimit`] and poisons the isolate (every later run fails the same way).
//! - CPU: every poll of a run records when it started; the interrupt handler QuickJS calls
//!   while computing interrupts a poll older than `cpu_slice` ([`RunErrorCause::CpuTimeLimit`]).
//!   The isolate stays usable.
//! - stop: `grace` after the stop token is cancelled, a computing run is interrupted by the same
//!   handler and an awaiting run is dropped ([`RunErrorCause::Interrupted`]).
//!
//! Not enforced: a script that catches QuickJS's catchable `InternalError: out of memory` and
//! goes on is not reported; `throw null` is reported as out of memory (QuickJS throws `null`
//! when it cannot even allocate the error object).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use rquickjs::context::EvalOptions;
use rquickjs::{AsyncContext, AsyncRuntime, Ctx, Function, Promise, Value};
use tokio_util::sync::CancellationToken;

use crate::runtime::engine::{
    IsolateLimits, IsolateUsage, RunError, RunErrorCause, ScriptEngine, ScriptIsolate, WorkerEnv,
};
use crate::runtime::sdk::logger::{coerce_text, format_value, property_text};
use crate::runtime::sdk::{self, RunSignal};

/// File name in stacks and syntax errors.
const SCRIPT_NAME: &str = "worker.js";
/// Opens the wrapper on the script's first line, so line numbers are the script's own.
const SCRIPT_PREFIX: &str = "(async function(){";
/// On its own line, so a trailing `// comment` cannot swallow it.
const SCRIPT_SUFFIX: &str = "\n})";

/// Makes [`QuickJsIsolate`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuickJsEngine;

impl QuickJsEngine {
    /// The engine; it holds no state (each isolate owns its runtime).
    pub fn new() -> Self {
        QuickJsEngine
    }
}

impl ScriptEngine for QuickJsEngine {
    fn create(
        &self,
        script: &str,
        env: WorkerEnv,
        limits: IsolateLimits,
    ) -> BoxFuture<'static, Result<Box<dyn ScriptIsolate>, RunError>> {
        let script = script.to_owned();
        Box::pin(async move {
            let isolate = QuickJsIsolate::create(&script, env, limits).await?;
            Ok(Box::new(isolate) as Box<dyn ScriptIsolate>)
        })
    }
}

/// One worker's QuickJS runtime and context, with the SDK installed and the script compiled.
///
/// The compiled script lives in the runtime's userdata slot of type [`Function`] (a
/// `Persistent` would make the isolate `!Send`).
pub struct QuickJsIsolate {
    /// The context the script was compiled in; it owns the runtime (and its heap limit).
    context: AsyncContext,
    /// What the interrupt handler decides from; shared with it and with the SDK.
    watch: Arc<RunWatch>,
    /// Set once the heap limit was hit: the runtime may be inconsistent, so every later run
    /// fails at once with this error and the caller drops the isolate.
    poisoned: Option<RunError>,
    /// Where each usage sample's heap size goes for the script itself (`Deno.memoryUsage()`).
    heap_bytes: Arc<AtomicU64>,
}

impl QuickJsIsolate {
    /// A fresh runtime limited by `limits`, with the SDK of `env` and `script` compiled.
    pub async fn create(script: &str, env: WorkerEnv, limits: IsolateLimits) -> Result<Self, RunError> {
        let runtime = AsyncRuntime::new().map_err(|_| memory_limit())?;
        runtime.set_memory_limit(limits.memory_bytes).await;
        let watch = Arc::new(RunWatch::new(limits.cpu_slice));
        let handler = watch.clone();
        runtime
            .set_interrupt_handler(Some(Box::new(move || handler.should_interrupt())))
            .await;
        let context = AsyncContext::full(&runtime).await.map_err(|_| memory_limit())?;
        // Compiling runs no script code, but a script that closes the wrapper early could: it
        // gets the same CPU limit as a run.
        watch.poll_begins();
        let compiled = context
            .with(|ctx| compile(&ctx, script, &env, &watch.signal))
            .await;
        watch.poll_ends();
        if let Some(cause) = watch.tripped() {
            return Err(limit_error(cause));
        }
        compiled?;
        Ok(QuickJsIsolate {
            context,
            watch,
            poisoned: None,
            heap_bytes: env.heap_bytes,
        })
    }

    async fn run_once(&mut self, stop: &CancellationToken, grace: Duration) -> Result<(), RunError> {
        if let Some(error) = &self.poisoned {
            return Err(error.clone());
        }
        let watch = &*self.watch;
        watch.begin(stop.clone(), grace);
        let script = PollClock {
            watch,
            run: Box::pin(self.context.async_with(run_script)),
        };
        let outcome = tokio::select! {
            biased;
            outcome = script => outcome,
            () = stop_deadline(watch, stop, grace) => Err(interrupted()),
        };
        watch.end();
        if let Err(error) = &outcome
            && error.cause == RunErrorCause::MemoryLimit
        {
            self.poisoned = Some(error.clone());
        }
        outcome
    }
}

impl ScriptIsolate for QuickJsIsolate {
    fn run<'a>(
        &'a mut self,
        stop: &'a CancellationToken,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), RunError>> {
        Box::pin(self.run_once(stop, grace))
    }

    fn usage(&self) -> BoxFuture<'_, IsolateUsage> {
        Box::pin(async move {
            let heap = self.context.runtime().memory_usage().await;
            let memory_bytes = u64::try_from(heap.malloc_size).unwrap_or(0);
            self.heap_bytes.store(memory_bytes, Ordering::Relaxed);
            IsolateUsage {
                memory_bytes,
                busy: Duration::from_nanos(self.watch.busy.load(Ordering::Relaxed)),
            }
        })
    }
}

/// Installs the SDK, compiles the script and keeps the function each run calls.
fn compile<'js>(ctx: &Ctx<'js>, script: &str, env: &WorkerEnv, signal: &RunSignal) -> Result<(), RunError> {
    let wrap =
        sdk::install_sdk_for(ctx, env, signal, Some(script)).map_err(|error| caught_error(ctx, error))?;
    let mut options = EvalOptions::default();
    // Sloppy mode, as `new AsyncFunction(body)` would be; a leading "use strict" still works.
    options.strict = false;
    options.filename = Some(SCRIPT_NAME.to_owned());
    let source = format!("{SCRIPT_PREFIX}{script}{SCRIPT_SUFFIX}");
    let main: Function = ctx
        .eval_with_options(source, options)
        .map_err(|error| syntax_error(ctx, error))?;
    let runner: Function = wrap.call((main,)).map_err(|error| caught_error(ctx, error))?;
    ctx.store_userdata(runner)
        .map_err(|_| internal_error("the compiled script could not be stored"))?;
    Ok(())
}

/// One run, inside the runtime lock: call the compiled script and await its promise.
async fn run_script(ctx: Ctx<'_>) -> Result<(), RunError> {
    let runner = ctx.userdata::<Function<'_>>().map(|runner| runner.clone());
    let Some(runner) = runner else {
        return Err(internal_error("the compiled script is missing"));
    };
    let promise: Promise = runner.call(()).map_err(|error| caught_error(&ctx, error))?;
    match promise.into_future::<Value>().await {
        Ok(_) => Ok(()),
        Err(error) => Err(caught_error(&ctx, error)),
    }
}

/// Completes `grace` after `stop` is cancelled (counting from when the run first saw it).
async fn stop_deadline(watch: &RunWatch, stop: &CancellationToken, grace: Duration) {
    stop.cancelled().await;
    let seen = watch.note_stop(watch.now());
    let deadline = watch
        .origin
        .checked_add(Duration::from_nanos(seen))
        .and_then(|seen| seen.checked_add(grace));
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Why the current run was interrupted, stored in [`RunWatch::tripped`].
const TRIP_NONE: u8 = 0;
const TRIP_CPU: u8 = 1;
const TRIP_STOP: u8 = 2;

/// What the interrupt handler decides from. Times are nanoseconds since `origin`; 0 is "none".
struct RunWatch {
    /// Origin of every timestamp below.
    origin: Instant,
    /// Start of the poll in progress (0 between polls): the CPU slice is counted from it.
    poll_started: AtomicU64,
    /// When the current run's stop was first seen (0 before), by the run future or the handler.
    stop_seen: AtomicU64,
    /// The current run's grace, in nanoseconds.
    grace: AtomicU64,
    /// `IsolateLimits::cpu_slice`, in nanoseconds.
    cpu_slice: u64,
    /// Why the current run was interrupted; sticky until the next run, so that code which
    /// catches the interruption (a rejected promise) is interrupted again at once.
    tripped: AtomicU8,
    /// The current run's stop token, shared with the SDK.
    signal: RunSignal,
    /// Nanoseconds spent inside polls (compiling and running), in total.
    busy: AtomicU64,
}

impl RunWatch {
    fn new(cpu_slice: Duration) -> Self {
        RunWatch {
            origin: Instant::now(),
            poll_started: AtomicU64::new(0),
            stop_seen: AtomicU64::new(0),
            grace: AtomicU64::new(0),
            cpu_slice: nanos(cpu_slice),
            tripped: AtomicU8::new(TRIP_NONE),
            signal: RunSignal::default(),
            busy: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        nanos(self.origin.elapsed()).max(1)
    }

    fn begin(&self, stop: CancellationToken, grace: Duration) {
        self.signal.begin(stop);
        self.stop_seen.store(0, Ordering::Relaxed);
        self.grace.store(nanos(grace), Ordering::Relaxed);
        self.tripped.store(TRIP_NONE, Ordering::Relaxed);
    }

    fn end(&self) {
        self.poll_started.store(0, Ordering::Relaxed);
        self.signal.end();
    }

    fn poll_begins(&self) {
        self.poll_started.store(self.now(), Ordering::Relaxed);
    }

    fn poll_ends(&self) {
        let started = self.poll_started.swap(0, Ordering::Relaxed);
        if started != 0 {
            self.busy
                .fetch_add(self.now().saturating_sub(started), Ordering::Relaxed);
        }
    }

    /// Records `now` as the time the stop was seen, unless seen before; returns that time.
    fn note_stop(&self, now: u64) -> u64 {
        match self
            .stop_seen
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => now,
            Err(seen) => seen,
        }
    }

    fn tripped(&self) -> Option<RunErrorCause> {
        match self.tripped.load(Ordering::Relaxed) {
            TRIP_CPU => Some(RunErrorCause::CpuTimeLimit),
            TRIP_STOP => Some(RunErrorCause::Interrupted),
            _ => None,
        }
    }

    fn trip(&self, why: u8) {
        let _ = self
            .tripped
            .compare_exchange(TRIP_NONE, why, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The interrupt handler: called by QuickJS every few thousand instructions.
    fn should_interrupt(&self) -> bool {
        if self.tripped.load(Ordering::Relaxed) != TRIP_NONE {
            return true;
        }
        let now = self.now();
        let started = self.poll_started.load(Ordering::Relaxed);
        if started != 0 && now.saturating_sub(started) > self.cpu_slice {
            self.trip(TRIP_CPU);
            return true;
        }
        if self.signal.is_stopped() {
            let seen = self.note_stop(now);
            if now.saturating_sub(seen) >= self.grace.load(Ordering::Relaxed) {
                self.trip(TRIP_STOP);
                return true;
            }
        }
        false
    }
}

/// Wraps a run so that each poll is timed for the interrupt handler, and ends the run as soon
/// as the handler has interrupted it (the script may be left waiting on a promise that the
/// interrupted code would have settled).
struct PollClock<'a> {
    /// Where poll starts are recorded and interruptions read.
    watch: &'a RunWatch,
    /// The run itself (`AsyncContext::async_with`), boxed so this wrapper is `Unpin`.
    run: Pin<Box<dyn Future<Output = Result<(), RunError>> + Send + 'a>>,
}

impl Future for PollClock<'_> {
    type Output = Result<(), RunError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.watch.poll_begins();
        let outcome = this.run.as_mut().poll(cx);
        this.watch.poll_ends();
        this.watch.signal.wake_deferred();
        match this.watch.tripped() {
            Some(cause) => Poll::Ready(Err(limit_error(cause))),
            None => outcome,
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn limit_error(cause: RunErrorCause) -> RunError {
    match cause {
        RunErrorCause::CpuTimeLimit => RunError {
            name: "InternalError".to_owned(),
            message: "CPU time limit exceeded".to_owned(),
            stack: None,
            cause,
        },
        RunErrorCause::MemoryLimit => memory_limit(),
        _ => interrupted(),
    }
}

fn memory_limit() -> RunError {
    RunError {
        name: "InternalError".to_owned(),
        message: "Memory limit exceeded".to_owned(),
        stack: None,
        cause: RunErrorCause::MemoryLimit,
    }
}

fn interrupted() -> RunError {
    RunError {
        name: "InternalError".to_owned(),
        message: "Interrupted: the run did not end within its stop grace period".to_owned(),
        stack: None,
        cause: RunErrorCause::Interrupted,
    }
}

fn internal_error(message: &str) -> RunError {
    RunError {
        name: "InternalError".to_owned(),
        message: message.to_owned(),
        stack: None,
        cause: RunErrorCause::Thrown,
    }
}

/// An rquickjs error as a run error; a JS exception is taken from `ctx`.
fn caught_error<'js>(ctx: &Ctx<'js>, error: rquickjs::Error) -> RunError {
    match error {
        rquickjs::Error::Exception => thrown(ctx, &ctx.catch()),
        rquickjs::Error::Allocation => memory_limit(),
        other => internal_error(&other.to_string()),
    }
}

/// A thrown or rejected JS value as a run error.
fn thrown<'js>(ctx: &Ctx<'js>, value: &Value<'js>) -> RunError {
    // QuickJS throws `null` when it cannot even allocate the error object.
    if value.is_null() {
        return memory_limit();
    }
    let Some(object) = value.as_object() else {
        return RunError {
            name: "Error".to_owned(),
            message: coerce_text(ctx, value),
            stack: None,
            cause: RunErrorCause::Thrown,
        };
    };
    let name = property_text(ctx, object, "name")
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "Error".to_owned());
    let message = match property_text(ctx, object, "message") {
        Some(message) => message,
        None if value.is_error() => String::new(),
        // `throw {code: 42}`: say what was thrown.
        None => format_value(ctx, value),
    };
    if name == "InternalError" && message == "out of memory" {
        return memory_limit();
    }
    RunError {
        name,
        message,
        stack: property_text(ctx, object, "stack").filter(|stack| !stack.trim().is_empty()),
        cause: RunErrorCause::Thrown,
    }
}

/// A compile failure: a `SyntaxError` gets its place in the script appended to the message.
fn syntax_error<'js>(ctx: &Ctx<'js>, error: rquickjs::Error) -> RunError {
    let mut error = match error {
        rquickjs::Error::FromJs { .. } => RunError {
            name: "SyntaxError".to_owned(),
            message: "the script is not a function body".to_owned(),
            stack: None,
            cause: RunErrorCause::Syntax,
        },
        other => caught_error(ctx, other),
    };
    if error.name == "SyntaxError" {
        error.cause = RunErrorCause::Syntax;
        if let Some((line, column)) = error.stack.as_deref().and_then(script_position) {
            error.message = format!("{} (line {line}, column {column})", error.message);
        }
    }
    error
}

/// `(line, column)` of the first `worker.js:L:C` in a stack, in the script's own terms.
fn script_position(stack: &str) -> Option<(u32, u32)> {
    let marker = format!("{SCRIPT_NAME}:");
    let rest = &stack[stack.find(&marker)? + marker.len()..];
    let mut parts = rest.splitn(3, ':');
    let line: u32 = parts.next()?.parse().ok()?;
    let column: String = parts.next()?.chars().take_while(char::is_ascii_digit).collect();
    let column: u32 = column.parse().ok()?;
    let prefix = u32::try_from(SCRIPT_PREFIX.len()).unwrap_or(0);
    let column = if line == 1 {
        column.saturating_sub(prefix).max(1)
    } else {
        column
    };
    Some((line, column))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;

    use super::*;
    use crate::clock::Clock;
    use crate::runtime::engine::{FetchPolicy, LogLevel, LogSink, ScriptConfig};
    use crate::store::{
        AtomicWrite, CommitOutcome, ExpiryLeases, Got, Key, Lease, LeaseId, ListOptions, Page, Revision,
        Store, StoreError, StoreResult, WatchStream,
    };
    use crate::workers::{ExecutionMode, Priority, RunMode};

    /// Collects log lines.
    #[derive(Default)]
    struct Lines(Mutex<Vec<(LogLevel, String)>>);

    impl LogSink for Lines {
        fn log(&self, level: LogLevel, message: &str) {
            self.0.lock().unwrap().push((level, message.to_owned()));
        }
    }

    impl Lines {
        fn texts(&self) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|(_, text)| text.clone())
                .collect()
        }
    }

    /// A store that holds nothing (the placeholder KV never calls it).
    struct EmptyStore;

    #[async_trait]
    impl Store for EmptyStore {
        async fn get(&self, _key: &Key) -> StoreResult<Got> {
            Ok(Got {
                entry: None,
                revision: Revision(0),
            })
        }
        async fn list(&self, _prefix: &Key, _options: ListOptions) -> StoreResult<Page> {
            Ok(Page::default())
        }
        async fn commit(&self, _write: AtomicWrite) -> StoreResult<CommitOutcome> {
            Ok(CommitOutcome::CheckFailed)
        }
        async fn watch(&self, _prefix: &Key, _after: Revision) -> StoreResult<WatchStream> {
            Ok(Box::pin(futures_util::stream::pending()))
        }
        async fn grant(&self, ttl: Duration) -> StoreResult<Lease> {
            Ok(Lease { id: LeaseId(1), ttl })
        }
        async fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
            Err(StoreError::LeaseNotFound(lease))
        }
        async fn revoke(&self, _lease: LeaseId) -> StoreResult<()> {
            Ok(())
        }
        async fn flush(&self) -> StoreResult<()> {
            Ok(())
        }
    }

    struct Harness {
        lines: Arc<Lines>,
        running: Arc<AtomicUsize>,
        env: WorkerEnv,
    }

    fn harness() -> Harness {
        let lines = Arc::new(Lines::default());
        let running = Arc::new(AtomicUsize::new(3));
        let env = WorkerEnv {
            config: ScriptConfig {
                nid: "n1".into(),
                network: "testnet".into(),
                title: "Node one".into(),
                tick: 10,
                sid: "w1".into(),
                execution_mode: ExecutionMode::Leader,
                priority: Priority::High,
                mode: RunMode::Loop,
                version: "1.2.3".into(),
                lease_epoch: Some(7),
            },
            running_workers: running.clone(),
            net: Arc::new(EmptyStore),
            local: Arc::new(EmptyStore),
            net_expiry: Arc::new(ExpiryLeases::new(
                Arc::new(EmptyStore),
                Duration::from_secs(1),
                Clock::system(),
            )),
            local_expiry: Arc::new(ExpiryLeases::new(
                Arc::new(EmptyStore),
                Duration::from_secs(1),
                Clock::system(),
            )),
            net_fence: None,
            log: lines.clone(),
            fetch: FetchPolicy::default(),
            kv_quota_bytes: 1 << 20,
            node: Arc::new(crate::runtime::engine::testing::test_node()),
            dependencies: Vec::new(),
            secrets: Arc::new(crate::runtime::engine::NoSecrets),
            websocket: Default::default(),
            heap_bytes: Arc::new(AtomicU64::new(0)),
        };
        Harness { lines, running, env }
    }

    fn limits() -> IsolateLimits {
        IsolateLimits {
            memory_bytes: 64 << 20,
            cpu_slice: Duration::from_millis(200),
        }
    }

    async fn create(script: &str, env: WorkerEnv) -> Box<dyn ScriptIsolate> {
        QuickJsEngine::new()
            .create(script, env, limits())
            .await
            .expect("compiles")
    }

    async fn run(isolate: &mut Box<dyn ScriptIsolate>) -> Result<(), RunError> {
        isolate
            .run(&CancellationToken::new(), Duration::from_secs(5))
            .await
    }

    /// Runs `script` once and returns its log lines.
    async fn run_lines(script: &str) -> (Result<(), RunError>, Vec<String>) {
        let h = harness();
        let mut isolate = create(script, h.env).await;
        let outcome = run(&mut isolate).await;
        (outcome, h.lines.texts())
    }

    #[test]
    fn isolates_and_runs_are_send() {
        fn send<T: Send>(_: &T) {}
        let h = harness();
        let engine = QuickJsEngine::new();
        let create = engine.create("", h.env, limits());
        send(&create);
    }

    #[tokio::test]
    async fn top_level_await_and_return() {
        let script =
            "const v = await Promise.resolve(41);\nlogger.info(v + 1);\nif (v) return 5;\nlogger.info('no');";
        let (outcome, lines) = run_lines(script).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(lines, ["42"]);
    }

    #[tokio::test]
    async fn runs_repeat_with_the_same_globals() {
        let h = harness();
        let mut isolate = create("globalThis.n = (globalThis.n || 0) + 1; logger.info(n);", h.env).await;
        for _ in 0..3 {
            run(&mut isolate).await.unwrap();
        }
        assert_eq!(h.lines.texts(), ["1", "2", "3"]);
    }

    #[tokio::test]
    async fn logger_levels_and_formatting() {
        let h = harness();
        let script = r#"
            logger.info("plain", 1, "two", {a: 1, b: [true, null]}, [1, "x"]);
            logger.warn("w", new TypeError("bad thing"), null, undefined);
            const e = new Error("down"); e.name = "NetworkError";
            logger.error(e);
            logger.debug({n: 1n}, Symbol("s"), () => 1);
            const cyclic = {}; cyclic.self = cyclic;
            logger.info(cyclic);
            logger.info();
        "#;
        let mut isolate = create(script, h.env).await;
        run(&mut isolate).await.unwrap();
        let lines = h.lines.0.lock().unwrap().clone();
        let expected = [
            (LogLevel::Info, r#"plain 1 two {"a":1,"b":[true,null]} [1,"x"]"#),
            (LogLevel::Warn, "w TypeError: bad thing null undefined"),
            (LogLevel::Error, "NetworkError: down"),
            (LogLevel::Debug, "[object Object] symbol () => 1"),
            (LogLevel::Info, "[object Object]"),
            (LogLevel::Info, ""),
        ];
        let got: Vec<(LogLevel, &str)> = lines.iter().map(|(l, t)| (*l, t.as_str())).collect();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn console_is_silent() {
        let script = "console.log('a'); console.info(1); console.warn({}); console.error(new Error('x'));\
                      console.debug(); console.trace('t');";
        let (outcome, lines) = run_lines(script).await;
        assert_eq!(outcome, Ok(()));
        assert!(lines.is_empty());
    }

    #[tokio::test]
    async fn sleep_resolves_after_its_time() {
        let started = Instant::now();
        let (outcome, lines) = run_lines("await Stels.sleep(150); logger.info('woke');").await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(lines, ["woke"]);
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn stop_wakes_sleep_sets_should_stop_and_aborts_signal() {
        let h = harness();
        let script = r#"
            signal.addEventListener("abort", (event) => logger.info("listener", event.type));
            signal.onabort = () => logger.info("onabort");
            logger.info("before", shouldStop(), signal.aborted);
            await Stels.sleep(10000);
            logger.info("after", shouldStop(), signal.aborted, signal.reason.name);
        "#;
        let mut isolate = create(script, h.env).await;
        let stop = CancellationToken::new();
        let canceller = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            canceller.cancel();
        });
        let started = Instant::now();
        isolate.run(&stop, Duration::from_secs(5)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            h.lines.texts(),
            [
                "before false false",
                "listener abort",
                "onabort",
                "after true true AbortError"
            ]
        );
    }

    #[tokio::test]
    async fn each_run_reads_its_own_stop_token() {
        let h = harness();
        let mut isolate = create("logger.info(shouldStop(), signal.aborted);", h.env).await;
        let stopped = CancellationToken::new();
        stopped.cancel();
        isolate.run(&stopped, Duration::from_secs(5)).await.unwrap();
        run(&mut isolate).await.unwrap();
        assert_eq!(h.lines.texts(), ["true true", "false false"]);
    }

    #[tokio::test]
    async fn config_is_frozen_and_complete() {
        let h = harness();
        let script = r#"
            logger.info(JSON.stringify(config));
            logger.info(Stels.config === config, Object.isFrozen(config));
            config.nid = "other";
            logger.info(config.nid);
        "#;
        let mut isolate = create(script, h.env).await;
        run(&mut isolate).await.unwrap();
        h.running.store(5, Ordering::Relaxed);
        run(&mut isolate).await.unwrap();
        let lines = h.lines.texts();
        assert_eq!(
            lines[0],
            r#"{"nid":"n1","network":"testnet","title":"Node one","tick":10,"workers":3,"sid":"w1","executionMode":"leader","priority":"high","mode":"loop","version":"1.2.3","leaseEpoch":7}"#
        );
        assert_eq!(lines[1], "true true");
        assert_eq!(lines[2], "n1");
        assert!(lines[3].contains(r#""workers":5"#));
    }

    #[tokio::test]
    async fn lease_epoch_is_null_without_a_lease() {
        let mut h = harness();
        h.env.config.lease_epoch = None;
        let mut isolate = create("logger.info(config.leaseEpoch === null);", h.env).await;
        run(&mut isolate).await.unwrap();
        assert_eq!(h.lines.texts(), ["true"]);
    }

    #[tokio::test]
    async fn syntax_error_has_name_and_place() {
        let h = harness();
        let error = match QuickJsEngine::new()
            .create("let a = 1;\n  a +* 2;", h.env.clone(), limits())
            .await
        {
            Err(error) => error,
            Ok(_) => panic!("compiled"),
        };
        assert_eq!(error.cause, RunErrorCause::Syntax);
        assert_eq!(error.name, "SyntaxError");
        assert!(error.message.contains("(line 2, column 6)"), "{}", error.message);

        let error = match QuickJsEngine::new().create("a +* 2;", h.env, limits()).await {
            Err(error) => error,
            Ok(_) => panic!("compiled"),
        };
        assert!(error.message.contains("(line 1, column 4)"), "{}", error.message);
    }

    #[tokio::test]
    async fn thrown_errors_keep_their_names() {
        let cases = [
            ("null.x;", "TypeError", ""),
            (
                "const e = new Error(\"x\"); e.name = \"NetworkError\"; throw e;",
                "NetworkError",
                "x",
            ),
            ("await Promise.reject(new RangeError(\"r\"));", "RangeError", "r"),
            ("await Stels.sleep(1); throw 'plain';", "Error", "plain"),
            ("throw {code: 42};", "Error", r#"{"code":42}"#),
            (
                "Deno.serve();",
                "TypeError",
                "Deno.serve is not available on this node (workers cannot listen for HTTP requests)",
            ),
            (
                "function f() { return f() + 1; }\nf();",
                "RangeError",
                "Maximum call stack size exceeded",
            ),
        ];
        for (script, name, message) in cases {
            let (outcome, _) = run_lines(script).await;
            let error = outcome.unwrap_err();
            assert_eq!(error.cause, RunErrorCause::Thrown, "{script}");
            assert_eq!(error.name, name, "{script}");
            if !message.is_empty() {
                assert_eq!(error.message, message, "{script}");
            }
        }
        let (outcome, _) = run_lines("function f() { null.x; }\nf();").await;
        let stack = outcome.unwrap_err().stack.unwrap();
        assert!(stack.contains("worker.js:1"), "{stack}");
    }

    #[tokio::test]
    async fn no_file_system_process_or_modules() {
        let script = r#"
            logger.info(typeof Deno, typeof process, typeof require, typeof std, typeof os);
            try { Deno.readTextFile("/etc/passwd"); } catch (e) { logger.info(e.name); }
            for (const name of ["process", "require"]) {
                try { eval(name); logger.info("found", name); }
                catch (e) { logger.info(e.name); }
            }
            try { await import("fs"); logger.info("imported"); } catch (e) { logger.info("import failed"); }
        "#;
        let (outcome, lines) = run_lines(script).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(
            lines,
            [
                "object undefined undefined undefined undefined",
                "TypeError",
                "ReferenceError",
                "ReferenceError",
                "import failed"
            ]
        );
    }

    #[tokio::test]
    async fn busy_loop_is_interrupted_and_the_isolate_survives() {
        let h = harness();
        let script = r#"
            globalThis.n = (globalThis.n || 0) + 1;
            if (n === 1) { try { while (true) {} } catch (e) { logger.info("caught"); } }
            if (n === 2) { await Stels.sleep(1); try { while (true) {} } finally { logger.info("finally"); } }
            logger.info("run", n);
        "#;
        let mut isolate = create(script, h.env).await;
        for _ in 0..2 {
            let started = Instant::now();
            let error = run(&mut isolate).await.unwrap_err();
            assert_eq!(error.cause, RunErrorCause::CpuTimeLimit);
            assert_eq!(error.message, "CPU time limit exceeded");
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(200) && took < Duration::from_secs(2),
                "{took:?}"
            );
        }
        run(&mut isolate).await.unwrap();
        assert_eq!(h.lines.texts(), ["run 3"]);
    }

    #[tokio::test]
    async fn detached_and_microtask_loops_are_interrupted() {
        for script in [
            "Stels.sleep(10).then(() => { while (true) {} }); await new Promise(() => {});",
            "while (true) { await null; }",
        ] {
            let (outcome, _) = run_lines(script).await;
            assert_eq!(
                outcome.unwrap_err().cause,
                RunErrorCause::CpuTimeLimit,
                "{script}"
            );
        }
    }

    #[tokio::test]
    async fn code_escaping_the_wrapper_is_limited_at_creation() {
        let h = harness();
        let created = QuickJsEngine::new()
            .create("}); while (true) {} (async function(){", h.env, limits())
            .await;
        assert_eq!(
            created.err().map(|error| error.cause),
            Some(RunErrorCause::CpuTimeLimit)
        );
    }

    #[tokio::test]
    async fn awaiting_does_not_count_as_cpu_time() {
        let script = "for (let i = 0; i < 4; i++) { await Stels.sleep(100); } logger.info('done');";
        let (outcome, lines) = run_lines(script).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(lines, ["done"]);
    }

    #[tokio::test]
    async fn memory_bomb_poisons_the_isolate() {
        let h = harness();
        let limits = IsolateLimits {
            memory_bytes: 16 << 20,
            cpu_slice: Duration::from_secs(10),
        };
        let script = "const a = []; while (true) { a.push('item ' + a.length + ' of a growing array'); }";
        let mut isolate = QuickJsEngine::new().create(script, h.env, limits).await.unwrap();
        let error = run(&mut isolate).await.unwrap_err();
        assert_eq!(error.cause, RunErrorCause::MemoryLimit);
        assert_eq!(error.name, "InternalError");
        assert_eq!(error.message, "Memory limit exceeded");
        assert_eq!(run(&mut isolate).await.unwrap_err(), error);
    }

    #[tokio::test]
    async fn caught_out_of_memory_is_still_a_memory_error_when_rethrown() {
        let h = harness();
        let limits = IsolateLimits {
            memory_bytes: 16 << 20,
            cpu_slice: Duration::from_secs(10),
        };
        let script = "try { const a = []; while (true) a.push('x' + a.length); } catch (e) { throw e; }";
        let mut isolate = QuickJsEngine::new().create(script, h.env, limits).await.unwrap();
        assert_eq!(
            run(&mut isolate).await.unwrap_err().cause,
            RunErrorCause::MemoryLimit
        );
    }

    #[tokio::test]
    async fn stop_and_grace_interrupt_a_busy_loop() {
        let h = harness();
        let limits = IsolateLimits {
            memory_bytes: 64 << 20,
            cpu_slice: Duration::from_secs(30),
        };
        let mut isolate = QuickJsEngine::new()
            .create("while (true) {}", h.env, limits)
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let canceller = stop.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            canceller.cancel();
        });
        let error = isolate.run(&stop, Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(error.cause, RunErrorCause::Interrupted);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn stop_and_grace_interrupt_an_awaiting_run() {
        let h = harness();
        let mut isolate = create("await new Promise(() => {});", h.env.clone()).await;
        let stop = CancellationToken::new();
        let canceller = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            canceller.cancel();
        });
        let started = Instant::now();
        let error = isolate.run(&stop, Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(error.cause, RunErrorCause::Interrupted);
        assert!(started.elapsed() >= Duration::from_millis(250));
        // The isolate is still usable.
        let mut isolate = create(
            "globalThis.n = (globalThis.n || 0) + 1; if (n === 1) await new Promise(() => {}); logger.info(n);",
            h.env.clone(),
        )
        .await;
        let stop = CancellationToken::new();
        stop.cancel();
        let error = isolate.run(&stop, Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(error.cause, RunErrorCause::Interrupted);
        run(&mut isolate).await.unwrap();
        assert_eq!(h.lines.texts(), ["2"]);
        // A stopped script that ends within its grace is a normal end.
        let mut isolate = create("while (!shouldStop()) { await Stels.sleep(10); }", harness().env).await;
        let stop = CancellationToken::new();
        stop.cancel();
        assert_eq!(isolate.run(&stop, Duration::from_millis(200)).await, Ok(()));
    }

    /// Wakes a parked thread: the smallest executor, to poll runs outside tokio's workers.
    struct Unpark(std::thread::Thread);

    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            std::thread::park();
        }
    }

    #[test]
    fn runs_from_a_thread_that_only_entered_the_runtime() {
        let tokio = tokio::runtime::Runtime::new().unwrap();
        let handle = tokio.handle().clone();
        let h = harness();
        let env = h.env.clone();
        let outcome = std::thread::spawn(move || {
            let _entered = handle.enter();
            block_on(async move {
                let mut isolate = QuickJsEngine::new()
                    .create(
                        "await Stels.sleep(50); logger.info('slept', shouldStop());",
                        env,
                        limits(),
                    )
                    .await?;
                run(&mut isolate).await?;
                let stop = CancellationToken::new();
                stop.cancel();
                isolate.run(&stop, Duration::from_secs(1)).await
            })
        })
        .join()
        .unwrap();
        assert_eq!(outcome, Ok(()));
        assert_eq!(h.lines.texts(), ["slept false", "slept true"]);
    }

    #[test]
    fn positions_are_the_scripts_own() {
        assert_eq!(script_position("    at worker.js:3:6\n"), Some((3, 6)));
        assert_eq!(script_position("    at worker.js:1:22\n"), Some((1, 4)));
        assert_eq!(script_position("    at <eval>:1:2\n"), None);
    }
}
