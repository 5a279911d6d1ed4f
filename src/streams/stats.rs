//! Per-node worker statistics (W-STATS-1..3): counters the runtime updates and the
//! `getWorkerStats` view of them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::clock::Clock;
use crate::cluster::membership::NodeLoad;

/// Kind of a failed run (W-RUN-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A failure reaching something outside (fetch, WebSocket, timeout).
    Network,
    /// A failure of the script itself.
    Critical,
}

impl ErrorKind {
    /// The name `getWorkerStats` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Network => "network",
            ErrorKind::Critical => "critical",
        }
    }
}

/// Counters of one worker on this node since the node started.
#[derive(Clone, Debug, Default)]
pub struct WorkerStats {
    /// When the current run started (ms since epoch).
    pub started: i64,
    /// Runs of the script (each loop iteration is one).
    pub executions: u64,
    /// Runs that threw.
    pub errors: u64,
    /// Runs that failed with a network error.
    pub network_errors: u64,
    /// Runs that failed with a critical error.
    pub critical_errors: u64,
    /// Failed runs since the last success.
    pub consecutive_errors: u64,
    /// The message of the last error.
    pub last_error: Option<String>,
    /// The kind of the last error.
    pub last_error_type: Option<ErrorKind>,
    /// End of the last run (ms since epoch).
    pub last_run: Option<i64>,
    /// First 8 hex digits of SHA-256 of the running script (W-STATS-3).
    pub script_hash: String,
    /// Whether a run is in progress now.
    pub is_running: bool,
    /// Why the error rules stopped the worker on this node (W-RUN-4); `None` while it may run.
    pub halted_reason: Option<String>,
    /// How long the last run took, in milliseconds.
    pub last_duration_ms: Option<u64>,
    /// Bytes its JavaScript heap held when last read (at creation, then at most every 2 s after a run).
    pub memory_bytes: Option<u64>,
    /// Milliseconds its code ran on the JS pool since the current run started, when last read.
    pub cpu_ms: u64,
}

/// `"12.34%"`, or `"0%"` without executions (W-STATS-2).
pub fn error_rate(errors: u64, executions: u64) -> String {
    if executions == 0 {
        "0%".into()
    } else {
        format!("{:.2}%", errors as f64 * 100.0 / executions as f64)
    }
}

/// First 8 hex digits of SHA-256 of `script`.
pub fn script_hash(script: &str) -> String {
    use sha2::Digest;
    hex::encode(
        sha2::Sha256::digest(script.as_bytes())
            .get(..4)
            .unwrap_or_default(),
    )
}

/// The statistics of every worker this node runs or has run, by sid.
pub struct StatsBoard {
    workers: Mutex<BTreeMap<String, WorkerStats>>,
    /// For uptimes.
    clock: Clock,
}

impl StatsBoard {
    /// An empty board whose uptimes are measured by `clock`.
    pub fn new(clock: Clock) -> StatsBoard {
        StatsBoard {
            workers: Mutex::new(BTreeMap::new()),
            clock,
        }
    }

    /// Changes the counters of `sid` (creating them if new).
    pub fn update(&self, sid: &str, change: impl FnOnce(&mut WorkerStats)) {
        let mut workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(workers.entry(sid.to_string()).or_default());
    }

    /// Workers known here by state: running now, halted by the error rules, and idle.
    pub fn states(&self) -> [(&'static str, u64); 3] {
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (mut running, mut halted) = (0u64, 0u64);
        for worker in workers.values() {
            if worker.is_running {
                running += 1;
            } else if worker.halted_reason.is_some() {
                halted += 1;
            }
        }
        let idle = (workers.len() as u64).saturating_sub(running + halted);
        [("running", running), ("halted", halted), ("idle", idle)]
    }

    /// Drops the counters of `sid` (a deleted worker).
    pub fn forget(&self, sid: &str) {
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(sid);
    }

    /// This node's run counters as the cluster sees them (no connections, no per-worker items),
    /// without building the whole snapshot.
    pub fn totals(&self) -> NodeLoad {
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let sum = |f: fn(&WorkerStats) -> u64| workers.values().map(f).sum::<u64>();
        NodeLoad {
            running_workers: u64::try_from(workers.values().filter(|w| w.is_running).count())
                .unwrap_or(u64::MAX),
            executions: sum(|w| w.executions),
            errors: sum(|w| w.errors),
            network_errors: sum(|w| w.network_errors),
            critical_errors: sum(|w| w.critical_errors),
            ..NodeLoad::default()
        }
    }

    /// The `getWorkerStats` result.
    pub fn snapshot(&self) -> Value {
        let now = self.clock.wall_ms();
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let running = workers.values().filter(|w| w.is_running).count();
        let sum = |f: fn(&WorkerStats) -> u64| workers.values().map(f).sum::<u64>();
        let items: Vec<Value> = workers
            .iter()
            .map(|(sid, w)| {
                json!({
                    "sid": sid,
                    "started": w.started,
                    "uptime": if w.is_running { (now - w.started).max(0) } else { 0 },
                    "executions": w.executions,
                    "errors": w.errors,
                    "networkErrors": w.network_errors,
                    "criticalErrors": w.critical_errors,
                    "consecutiveErrors": w.consecutive_errors,
                    "errorRate": error_rate(w.errors, w.executions),
                    "lastError": w.last_error,
                    "lastErrorType": w.last_error_type.map(ErrorKind::as_str),
                    "lastRun": w.last_run,
                    "lastRunAgo": w.last_run.map(|t| (now - t).max(0)),
                    "scriptHash": w.script_hash,
                    "isRunning": w.is_running,
                    "haltedReason": w.halted_reason,
                    "lastDurationMs": w.last_duration_ms,
                    "memoryBytes": w.memory_bytes,
                    "cpuMs": w.cpu_ms,
                })
            })
            .collect();
        json!({
            "totalWorkers": workers.len(),
            "runningWorkers": running,
            "stoppedWorkers": workers.len() - running,
            "totalExecutions": sum(|w| w.executions),
            "totalErrors": sum(|w| w.errors),
            "totalNetworkErrors": sum(|w| w.network_errors),
            "totalCriticalErrors": sum(|w| w.critical_errors),
            "workers": items,
            "timestamp": now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_hashes() {
        assert_eq!(error_rate(0, 0), "0%");
        assert_eq!(error_rate(1, 2000), "0.05%");
        assert_eq!(error_rate(1, 3), "33.33%");
        assert_eq!(script_hash("x").len(), 8);
    }

    #[test]
    fn totals() {
        let board = StatsBoard::new(Clock::system());
        assert_eq!(board.snapshot()["totalWorkers"], 0);
        board.update("a", |w| {
            w.executions = 4;
            w.errors = 1;
            w.is_running = true;
        });
        board.update("b", |w| w.executions = 2);
        let s = board.snapshot();
        assert_eq!(s["totalWorkers"], 2);
        assert_eq!(s["runningWorkers"], 1);
        assert_eq!(s["totalExecutions"], 6);
        assert_eq!(s["workers"][0]["errorRate"], "25.00%");
    }
}
