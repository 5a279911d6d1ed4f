//! The supervisor: turns the worker records in the store into runs on this node.
//!
//! One tokio task owns all state and reacts to three kinds of events, one at a time:
//! changes under `["ami","worker"]` (the store watch — the API never starts workers directly),
//! changes of this node's leader leases, and runs that ended by themselves. For each worker it
//! compares the run this node *should* have ([`RunSpec`], from the record, the placement rules
//! and the lease) with the run it has, and starts, stops or replaces runs to match (W-UPD-6,
//! W-RUN-7). The runs themselves execute on the JS pool ([`run_worker`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_task::Task;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::engine::{
    FetchPolicy, IsolateLimits, LogLevel, LogSink, NodeIdentity, RunErrorCause, ScriptConfig, ScriptEngine,
    ScriptIsolate, SecretSource, WebSocketPolicy, WorkerEnv,
};
use super::errors::{AfterError, ErrorTracker, classify};
use super::pool::JsPool;
use crate::clock::Clock;
use crate::cluster::coordinator::{Coordinator, Fence};
use crate::cluster::leader::{LeaseChange, LeaseTiming, hold_leadership};
use crate::cluster::placement::{Placement, place_worker};
use crate::config::{NodeConfig, RuntimeConfig};
use crate::store::{Entry, ExpiryLeases, Revision, Store, StoreError, StoreResult, WatchEvent, WatchStream};
use crate::streams::events::EventKind;
use crate::streams::logs::LogBook;
use crate::streams::stats::{ErrorKind, StatsBoard, script_hash};
use crate::workers::{Priority, RunMode, WorkerData, WorkerRepo, WorkerScript};

/// The pause between two runs of a `loop` worker, by priority (W-RUN-2).
pub fn loop_gap(priority: Priority) -> Duration {
    match priority {
        Priority::Critical => Duration::from_millis(1),
        Priority::High => Duration::from_millis(10),
        Priority::Normal => Duration::from_millis(100),
        Priority::Low => Duration::from_secs(1),
    }
}

/// What a run is made of: a different spec means a different run.
#[derive(Clone, Debug, PartialEq)]
struct RunSpec {
    script: String,
    priority: Priority,
    mode: RunMode,
    /// The fence of the term a leader-mode run belongs to (its epoch is `leaseEpoch`).
    fence: Option<Fence>,
    record: WorkerScript,
}

impl RunSpec {
    fn same_run(&self, other: &RunSpec) -> bool {
        self.script == other.script
            && self.priority == other.priority
            && self.mode == other.mode
            && self.fence == other.fence
            && self.record.execution_mode == other.record.execution_mode
    }
}

/// How a run ended by itself.
#[derive(Clone, Debug, PartialEq)]
enum RunEnd {
    /// Asked to stop.
    Stopped,
    /// A `single` script returned.
    Finished,
    /// Stopped by the error rules (W-RUN-4), with the reason.
    Halted(String),
}

enum Event {
    /// Time to list the workers and watch them (at start, and after a failed watch).
    Relist,
    Watch(WatchEvent),
    /// The watch failed (with the error) or ended (`None`).
    WatchFailed(Option<StoreError>),
    Lease(LeaseChange),
    Ended {
        sid: String,
        generation: u64,
        end: RunEnd,
    },
}

/// A running [`hold_leadership`] task. Dropped without [`LeaseTask::release`] (a killed node), it is
/// aborted and leaves its lease to expire, as a crash would.
struct LeaseTask {
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LeaseTask {
    /// Asks the task to release the lease and end; returns it to await.
    fn release(mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.cancel.cancel();
        self.task.take()
    }
}

impl Drop for LeaseTask {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct Running {
    spec: RunSpec,
    generation: u64,
    stop: CancellationToken,
    task: Task<()>,
}

/// What this node knows and does about one worker.
#[derive(Default)]
struct Tracked {
    record: Option<WorkerScript>,
    /// The lease task of a leader-mode worker, while it is active.
    lease: Option<LeaseTask>,
    /// This node's term while it holds the worker's lease.
    fence: Option<Fence>,
    running: Option<Running>,
    /// A run that ended by itself, and whether it was halted by the error rules: it is not
    /// started again for the same spec (single) or the same script (halted).
    settled: Option<(RunSpec, bool)>,
}

/// What every run on this node shares.
pub struct RuntimeShared {
    /// The node's settings (runtime limits, lease timing, nid).
    pub config: NodeConfig,
    /// The worker records this node follows.
    pub workers: WorkerRepo,
    /// The cluster KV (`Stels.net`).
    pub store: Arc<dyn Store>,
    /// This node's KV (`Stels.local`).
    pub local: Arc<dyn Store>,
    /// Expiry leases of `store` and `local`, shared by every run (`expireIn`).
    pub net_expiry: Arc<ExpiryLeases>,
    /// The shared expiry leases of `local`.
    pub local_expiry: Arc<ExpiryLeases>,
    /// Elections of leader-mode workers.
    pub coordinator: Arc<dyn Coordinator>,
    /// Wall time for run statistics.
    pub clock: Clock,
    /// Where runs execute.
    pub pool: JsPool,
    /// Creates isolates.
    pub engine: Arc<dyn ScriptEngine>,
    /// Run statistics.
    pub stats: Arc<StatsBoard>,
    /// Every run's log lines.
    pub logs: Arc<LogBook>,
    /// Runs in progress on this node (`Stels.config.workers`).
    pub running: Arc<AtomicUsize>,
    /// Where worker and lease events go.
    pub events: Arc<crate::streams::EventBus>,
    /// Runs, errors, auto-stops and pool waits for the node's metrics.
    pub metrics: crate::metrics::RunMetrics,
    /// The node as scripts see it (`Stels.wallet`, `Stels.startTime`).
    pub node: Arc<NodeIdentity>,
    /// Each worker's secrets (`Stels.secrets`), also masked in its log lines and last error.
    pub secrets: Arc<dyn SecretSource>,
}

/// The supervisor's handle: stop it to stop every run.
pub struct Supervisor {
    shared: Arc<RuntimeShared>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    /// Starts supervising; runs start for the active workers already in the store.
    pub fn start(shared: Arc<RuntimeShared>) -> Supervisor {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(supervise(shared.clone(), cancel.clone()));
        Supervisor { shared, cancel, task }
    }

    /// Stops abruptly, as a crash would: runs are dropped, leases are neither renewed nor
    /// released (other nodes take over when they expire).
    pub fn kill(self) {
        self.task.abort();
        let shared = self.shared;
        // Joining the pool blocks: not on an async thread.
        std::thread::spawn(move || shared.pool.shutdown());
    }

    /// Stops every run (each gets its grace period), releases leases, stops the pool.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
        let pool_shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || pool_shared.pool.shutdown()).await;
    }
}

struct State {
    shared: Arc<RuntimeShared>,
    workers: HashMap<String, Tracked>,
    events: mpsc::UnboundedSender<Event>,
    lease_changes: mpsc::UnboundedSender<LeaseChange>,
    next_generation: u64,
}

/// The pause before listing the workers again after the store failed to list or watch them.
const RELIST_BACKOFF: Duration = Duration::from_millis(500);

/// The next change of `watch`; never ready while there is no watch.
async fn next_change(watch: &mut Option<WatchStream>) -> Option<StoreResult<WatchEvent>> {
    match watch {
        Some(watch) => watch.next().await,
        None => std::future::pending().await,
    }
}

async fn supervise(shared: Arc<RuntimeShared>, cancel: CancellationToken) {
    let (events, mut inbox) = mpsc::unbounded_channel();
    let (lease_changes, mut lease_inbox) = mpsc::unbounded_channel();
    let mut state = State {
        shared: shared.clone(),
        workers: HashMap::new(),
        events,
        lease_changes,
        next_generation: 0,
    };
    // List, then watch from the list's revision: no change falls between the two. A watch
    // that fails or ends (compaction, a lost store) is never a silent stop: list and watch again.
    let mut watch: Option<WatchStream> = None;
    let relist = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(relist);
    let mut relist_due = true;
    let mut listed_before = false;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            () = &mut relist, if relist_due => Event::Relist,
            change = next_change(&mut watch) => match change {
                Some(Ok(change)) => Event::Watch(change),
                Some(Err(error)) => Event::WatchFailed(Some(error)),
                None => Event::WatchFailed(None),
            },
            Some(change) = lease_inbox.recv() => Event::Lease(change),
            Some(event) = inbox.recv() => event,
        };
        match event {
            Event::Relist => {
                relist_due = false;
                let watched = match state.resync().await {
                    Ok(revision) => shared.workers.watch(revision).await,
                    Err(error) => Err(error),
                };
                match watched {
                    Ok(stream) => {
                        watch = Some(stream);
                        if listed_before {
                            shared.events.emit(EventKind::Resync, "", serde_json::json!({}));
                        }
                        listed_before = true;
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot list and watch the workers; runs unchanged, retrying");
                        relist.as_mut().reset(Instant::now() + RELIST_BACKOFF);
                        relist_due = true;
                    }
                }
            }
            Event::WatchFailed(error) => {
                watch = None;
                let pause = match &error {
                    Some(StoreError::Compacted { .. }) => Duration::ZERO,
                    _ => RELIST_BACKOFF,
                };
                match error {
                    Some(error) => {
                        tracing::warn!(%error, "the watch of the workers failed; listing them again")
                    }
                    None => tracing::warn!("the watch of the workers ended; listing them again"),
                }
                relist.as_mut().reset(Instant::now() + pause);
                relist_due = true;
            }
            Event::Watch(WatchEvent::Put(entry)) => {
                state.apply_entry(&entry);
                // For live views (the console's table): the record as listWorkers gives it.
                if shared.events.has_subscribers()
                    && let Some(sid) = entry.key.last_str().map(str::to_string)
                {
                    shared.events.emit_saved(&sid, &entry);
                }
            }
            Event::Watch(WatchEvent::Delete { key, .. }) => {
                if let Some(sid) = key.last_str() {
                    state.set_record(sid, None);
                    shared.events.emit(EventKind::Deleted, sid, serde_json::json!({}));
                }
            }
            Event::Lease(LeaseChange { sid, fence }) => {
                let epoch = fence.as_ref().map(|f| f.epoch);
                let kind = if epoch.is_some() {
                    EventKind::LeaderGained
                } else {
                    EventKind::LeaderLost
                };
                shared
                    .events
                    .emit(kind, &sid, serde_json::json!({"epoch": epoch}));
                if let Some(tracked) = state.workers.get_mut(&sid) {
                    tracked.fence = fence;
                    state.reconcile(&sid);
                }
            }
            Event::Ended { sid, generation, end } => state.run_ended(&sid, generation, end),
        }
    }
    state.stop_all().await;
}

impl State {
    /// Makes the runs match every worker record in the store; the revision of the listing.
    async fn resync(&mut self) -> StoreResult<Revision> {
        let page = self.shared.workers.all().await?;
        let present: std::collections::HashSet<String> = page
            .entries
            .iter()
            .filter_map(|e| e.key.last_str().map(str::to_string))
            .collect();
        for entry in &page.entries {
            self.apply_entry(entry);
        }
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|sid| !present.contains(*sid))
            .cloned()
            .collect();
        for sid in gone {
            self.set_record(&sid, None);
        }
        Ok(page.revision)
    }

    fn apply_entry(&mut self, entry: &Entry) {
        let Some(sid) = entry.key.last_str() else { return };
        match WorkerData::from_entry(entry) {
            Some(data) if data.raw.sid == sid => self.set_record(sid, Some(data.raw)),
            _ => tracing::warn!(%sid, "ignoring a worker record that does not parse"),
        }
    }

    fn set_record(&mut self, sid: &str, record: Option<WorkerScript>) {
        let tracked = self.workers.entry(sid.to_string()).or_default();
        // Re-activation clears a settled run, so it can start again (W-RUN-4).
        if record.as_ref().is_none_or(|r| !r.active) {
            tracked.settled = None;
        }
        let deleted = record.is_none();
        tracked.record = record;
        self.reconcile(sid);
        if deleted {
            self.shared.logs.forget(sid);
        }
        self.forget_if_deleted(sid);
    }

    /// Once a deleted worker has neither a run nor a lease here, forgets what this node kept of
    /// it: its entry and its stats (its log went with the delete).
    fn forget_if_deleted(&mut self, sid: &str) {
        if let Some(tracked) = self.workers.get(sid)
            && tracked.record.is_none()
            && tracked.running.is_none()
            && tracked.lease.is_none()
        {
            self.workers.remove(sid);
            self.shared.stats.forget(sid);
        }
    }

    /// The run this node should have for `sid`, and the lease task it should keep.
    fn reconcile(&mut self, sid: &str) {
        let nid = self.shared.config.nid.clone();
        let Some(tracked) = self.workers.get_mut(sid) else {
            return;
        };
        let placement = tracked
            .record
            .as_ref()
            .map_or(Placement::Elsewhere, |r| place_worker(r, &nid));

        // Leases: compete while the worker is active in leader mode, release otherwise.
        if placement == Placement::RunWhileLeader {
            if tracked.lease.is_none() {
                let cancel = CancellationToken::new();
                let rt = &self.shared.config.runtime;
                let timing = LeaseTiming {
                    duration: rt.lease_duration,
                    renew_interval: rt.lease_renew_interval,
                    stop_grace: rt.stop_grace,
                };
                let task = tokio::spawn(hold_leadership(
                    self.shared.coordinator.clone(),
                    sid.to_string(),
                    timing,
                    self.lease_changes.clone(),
                    cancel.clone(),
                ));
                tracked.lease = Some(LeaseTask {
                    cancel,
                    task: Some(task),
                });
            }
        } else if let Some(lease) = tracked.lease.take() {
            // The task releases the lease and ends by itself.
            drop(lease.release());
            tracked.fence = None;
        }

        let desired = match (&tracked.record, placement) {
            (Some(record), Placement::Run) => Some(spec_of(record, None)),
            (Some(record), Placement::RunWhileLeader) => {
                tracked.fence.clone().map(|f| spec_of(record, Some(f)))
            }
            _ => None,
        };
        let desired = desired.filter(|d| match &tracked.settled {
            Some((settled, true)) => settled.script != d.script,
            Some((settled, false)) => !settled.same_run(d),
            None => true,
        });
        match (&tracked.running, &desired) {
            (Some(running), Some(desired)) if running.spec.same_run(desired) => {}
            (None, None) => {}
            _ => {
                let reload = matches!((&tracked.running, &desired), (Some(old), Some(new)) if old.spec.script != new.script);
                if reload {
                    self.shared
                        .events
                        .emit(EventKind::Reloaded, sid, serde_json::json!({}));
                }
                let previous = tracked.running.take().map(|running| {
                    running.stop.cancel();
                    running.task
                });
                match desired {
                    Some(spec) => {
                        self.next_generation += 1;
                        let generation = self.next_generation;
                        let stop = CancellationToken::new();
                        let run = run_worker(
                            self.shared.clone(),
                            sid.to_string(),
                            spec.clone(),
                            stop.clone(),
                            previous,
                            generation,
                            self.events.clone(),
                        );
                        let (metrics, priority, queued) = (
                            self.shared.metrics.clone(),
                            spec.priority.as_str(),
                            std::time::Instant::now(),
                        );
                        let run = async move {
                            metrics.waited(priority, queued.elapsed());
                            run.await
                        };
                        let task = self.shared.pool.spawn(spec.priority, run);
                        tracked.running = Some(Running {
                            spec,
                            generation,
                            stop,
                            task,
                        });
                    }
                    None => {
                        if let Some(task) = previous {
                            task.detach();
                        }
                    }
                }
            }
        }
    }

    fn run_ended(&mut self, sid: &str, generation: u64, end: RunEnd) {
        let Some(tracked) = self.workers.get_mut(sid) else {
            // The worker was deleted while this run was stopping; the run may have opened its
            // log and counted itself after the delete was handled.
            self.shared.logs.forget(sid);
            self.shared.stats.forget(sid);
            return;
        };
        if tracked
            .running
            .as_ref()
            .is_none_or(|r| r.generation != generation)
        {
            return;
        }
        if let Some(running) = tracked.running.take() {
            running.task.detach();
            match end {
                RunEnd::Finished => tracked.settled = Some((running.spec, false)),
                RunEnd::Halted(_) => tracked.settled = Some((running.spec, true)),
                RunEnd::Stopped => {}
            }
        }
        self.reconcile(sid);
        if self.workers.get(sid).is_some_and(|t| t.record.is_none()) {
            // Deleted while running: the run logged until it stopped.
            self.shared.logs.forget(sid);
        }
        self.forget_if_deleted(sid);
    }

    async fn stop_all(&mut self) {
        let mut tasks = Vec::new();
        let mut leases = Vec::new();
        for tracked in self.workers.values_mut() {
            if let Some(lease) = tracked.lease.take() {
                leases.push(lease);
            }
            if let Some(running) = tracked.running.take() {
                running.stop.cancel();
                tasks.push(running.task);
            }
        }
        let grace = self.shared.config.runtime.stop_grace + Duration::from_secs(1);
        let all = futures_util::future::join_all(tasks.into_iter().map(|t| t.fallible()));
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("some workers did not stop within their grace period");
        }
        // Runs have ended: now the leases can go, so another node may take over at once.
        let released = futures_util::future::join_all(leases.into_iter().filter_map(LeaseTask::release));
        if tokio::time::timeout(Duration::from_secs(5), released)
            .await
            .is_err()
        {
            tracing::warn!("some leader leases were not released; they will expire");
        }
    }
}

fn spec_of(record: &WorkerScript, fence: Option<Fence>) -> RunSpec {
    RunSpec {
        script: record.script.clone(),
        priority: record.priority,
        mode: record.mode,
        fence,
        record: record.clone(),
    }
}

fn env_for(shared: &RuntimeShared, sid: &str, spec: &RunSpec, log: Arc<dyn LogSink>) -> WorkerEnv {
    let config = &shared.config;
    let rt: &RuntimeConfig = &config.runtime;
    WorkerEnv {
        config: ScriptConfig {
            nid: config.nid.clone(),
            network: config.network.clone(),
            title: config.title.clone(),
            tick: 1,
            sid: sid.to_string(),
            execution_mode: spec.record.execution_mode,
            priority: spec.priority,
            mode: spec.mode,
            version: spec.record.version.clone(),
            lease_epoch: spec.fence.as_ref().map(|f| f.epoch),
        },
        running_workers: shared.running.clone(),
        net: shared.store.clone(),
        local: shared.local.clone(),
        net_expiry: shared.net_expiry.clone(),
        local_expiry: shared.local_expiry.clone(),
        net_fence: spec.fence.clone(),
        log,
        fetch: FetchPolicy {
            allowed_hosts: rt.fetch_allowed_hosts.clone(),
            timeout: rt.fetch_timeout,
            max_body_bytes: 16 * 1024 * 1024,
        },
        kv_quota_bytes: rt.kv_quota_bytes,
        node: shared.node.clone(),
        dependencies: spec.record.dependencies.clone(),
        secrets: shared.secrets.for_worker(sid),
        websocket: WebSocketPolicy {
            max_per_worker: rt.script_websockets,
            ..WebSocketPolicy::default()
        },
        heap_bytes: Arc::new(AtomicU64::new(0)),
    }
}

/// Waits `duration` unless `stop` comes first; `false` when stopped.
async fn pause(duration: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

/// One run of a worker on this node: repeats the script per its mode, applies the error rules,
/// and keeps the statistics. Polled on the JS pool.
async fn run_worker(
    shared: Arc<RuntimeShared>,
    sid: String,
    spec: RunSpec,
    stop: CancellationToken,
    previous: Option<Task<()>>,
    generation: u64,
    events: mpsc::UnboundedSender<Event>,
) {
    // A reload starts only after the old run has ended (W-UPD-6).
    if let Some(previous) = previous {
        let _ = previous.fallible().await;
    }
    let end = if stop.is_cancelled() {
        RunEnd::Stopped
    } else {
        run_loop(&shared, &sid, &spec, &stop).await
    };
    let _ = events.send(Event::Ended { sid, generation, end });
}

/// How often a worker's memory and CPU figures are read after a run: reading the heap walks
/// it, which 10,000 workers each second would feel.
const USAGE_SAMPLE_EVERY: Duration = Duration::from_secs(2);

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

async fn run_loop(shared: &RuntimeShared, sid: &str, spec: &RunSpec, stop: &CancellationToken) -> RunEnd {
    let rt = &shared.config.runtime;
    // Every line of the run, the script's and the supervisor's, with the secrets masked.
    let secrets = shared.secrets.for_worker(sid);
    let log = super::sdk::logger::MaskedLog::wrap(shared.logs.sink(sid).await, secrets.clone());
    let hash = script_hash(&spec.script);
    shared.running.fetch_add(1, Ordering::AcqRel);
    shared.stats.update(sid, |w| {
        w.started = shared.clock.wall_ms();
        w.is_running = true;
        w.script_hash = hash.clone();
        w.consecutive_errors = 0;
        w.halted_reason = None;
        w.memory_bytes = None;
        w.cpu_ms = 0;
    });
    log.log(
        LogLevel::Info,
        &format!(
            "Worker started on {} (script {hash}, {} mode)",
            shared.config.nid,
            spec.mode.as_str()
        ),
    );
    shared
        .events
        .emit(EventKind::Started, sid, serde_json::json!({"scriptHash": hash}));
    let limits = IsolateLimits {
        memory_bytes: rt.memory_limit_bytes,
        cpu_slice: rt.cpu_limit,
    };
    let mut isolate: Option<Box<dyn ScriptIsolate>> = None;
    let mut tracker = ErrorTracker::default();
    let mut usage_sampled: Option<std::time::Instant> = None;
    // Busy time of the isolates this run dropped (after a memory-limit error).
    let mut busy_before = Duration::ZERO;
    let end = loop {
        if stop.is_cancelled() {
            break RunEnd::Stopped;
        }
        let run_started = std::time::Instant::now();
        shared.metrics.run(spec.priority.as_str());
        let result = match &mut isolate {
            Some(isolate) => isolate.run(stop, rt.stop_grace).await,
            None => match shared
                .engine
                .create(&spec.script, env_for(shared, sid, spec, log.clone()), limits)
                .await
            {
                Ok(created) => {
                    // A run may last forever: its compiled size is known at once.
                    let usage = created.usage().await;
                    usage_sampled = Some(std::time::Instant::now());
                    shared.stats.update(sid, |w| {
                        w.memory_bytes = Some(usage.memory_bytes);
                        w.cpu_ms = millis(busy_before + usage.busy);
                    });
                    isolate.insert(created).run(stop, rt.stop_grace).await
                }
                Err(e) => Err(e),
            },
        };
        let finished_at = shared.clock.wall_ms();
        let duration_ms = u64::try_from(run_started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(current) = &isolate
            && usage_sampled.is_none_or(|at| at.elapsed() >= USAGE_SAMPLE_EVERY)
        {
            let usage = current.usage().await;
            usage_sampled = Some(std::time::Instant::now());
            shared.stats.update(sid, |w| {
                w.memory_bytes = Some(usage.memory_bytes);
                w.cpu_ms = millis(busy_before + usage.busy);
            });
        }
        match result {
            Ok(()) => {
                tracker.on_success();
                shared.stats.update(sid, |w| {
                    w.executions += 1;
                    w.consecutive_errors = 0;
                    w.last_run = Some(finished_at);
                    w.last_duration_ms = Some(duration_ms);
                });
                if spec.mode == RunMode::Single {
                    log.log(LogLevel::Info, "Worker finished (single mode)");
                    break RunEnd::Finished;
                }
                if !pause(loop_gap(spec.priority), stop).await {
                    break RunEnd::Stopped;
                }
            }
            Err(error) if stop.is_cancelled() => {
                // The stop interrupted it: not the script's fault.
                tracing::debug!(%sid, error = %secrets.mask(&error.to_string()), "run ended by a stop");
                break RunEnd::Stopped;
            }
            Err(error) => {
                if error.cause == RunErrorCause::MemoryLimit
                    && let Some(dropped) = isolate.take()
                {
                    busy_before += dropped.usage().await.busy;
                }
                let kind = classify(&error);
                shared.metrics.error(spec.priority.as_str(), kind.as_str());
                // The limits speak for themselves (W-RUN-6 names them exactly).
                let text = match error.cause {
                    RunErrorCause::CpuTimeLimit | RunErrorCause::MemoryLimit => error.message.clone(),
                    _ => error.to_string(),
                };
                // `lastError` is shown to clients (stats, the console, the cluster's node list).
                let text = secrets.mask(&text).into_owned();
                shared.stats.update(sid, |w| {
                    w.executions += 1;
                    w.errors += 1;
                    match kind {
                        ErrorKind::Network => w.network_errors += 1,
                        ErrorKind::Critical => w.critical_errors += 1,
                    }
                    w.consecutive_errors += 1;
                    w.last_error = Some(text.clone());
                    w.last_error_type = Some(kind);
                    w.last_run = Some(finished_at);
                    w.last_duration_ms = Some(duration_ms);
                });
                log.log(LogLevel::Error, &format!("{} error: {text}", kind.as_str()));
                match tracker.on_error(kind, &rt.errors) {
                    AfterError::Retry(wait) => {
                        if !pause(wait, stop).await {
                            break RunEnd::Stopped;
                        }
                    }
                    AfterError::Pause(wait) => {
                        log.log(
                            LogLevel::Warn,
                            &format!(
                                "{} network errors in a row: pausing for {} s",
                                rt.errors.network_pause_after,
                                wait.as_secs()
                            ),
                        );
                        if !pause(wait, stop).await {
                            break RunEnd::Stopped;
                        }
                    }
                    AfterError::Stop(reason) => {
                        let message = format!("Worker stopped on this node after {reason} (last: {text})");
                        log.log(LogLevel::Error, &message);
                        tracing::warn!(%sid, %message, "worker auto-stopped");
                        shared.metrics.auto_stop(spec.priority.as_str());
                        break RunEnd::Halted(message);
                    }
                }
            }
        }
    };
    shared.running.fetch_sub(1, Ordering::AcqRel);
    shared.stats.update(sid, |w| w.is_running = false);
    match &end {
        RunEnd::Stopped => {
            log.log(LogLevel::Info, "Worker stopped");
            shared.events.emit(EventKind::Stopped, sid, serde_json::json!({}));
        }
        RunEnd::Finished => shared
            .events
            .emit(EventKind::Finished, sid, serde_json::json!({})),
        RunEnd::Halted(reason) => {
            shared
                .stats
                .update(sid, |w| w.halted_reason = Some(reason.clone()));
            shared
                .events
                .emit(EventKind::AutoStopped, sid, serde_json::json!({"reason": reason}))
        }
    }
    end
}
