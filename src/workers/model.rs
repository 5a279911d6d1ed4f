//! The stored shape of a worker (`worker-api.md` §4.1).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::Entry;

/// Where an active worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// Runs on every node.
    Parallel,
    /// Runs on the one node that holds its leader lease.
    Leader,
    /// Runs only on its `assignedNode`.
    Exclusive,
}

/// Scheduling class when the JS pool is saturated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Served first on the JS pool; 1 ms between loop runs.
    Critical,
    /// 10 ms between loop runs.
    High,
    /// The default; 100 ms between loop runs.
    Normal,
    /// Served last; 1 s between loop runs.
    Low,
}

/// Whether the engine repeats the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Runs again after each run, with a gap set by its priority.
    Loop,
    /// Runs once per start.
    Single,
}

/// Which KV the worker record belongs to (from the existing client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Shown as this node's (the client's `local` scope).
    Local,
    /// Shown as the network's (the client's `network` scope).
    Network,
}

macro_rules! named_values {
    ($ty:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every accepted spelling, in order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// Parses the wire spelling.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($name => Some(Self::$variant),)+ _ => None }
            }

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)+ }
            }
        }
    };
}

named_values!(ExecutionMode { Parallel => "parallel", Leader => "leader", Exclusive => "exclusive" });
named_values!(Priority { Critical => "critical", High => "high", Normal => "normal", Low => "low" });
named_values!(RunMode { Loop => "loop", Single => "single" });
named_values!(Scope { Local => "local", Network => "network" });

/// `raw` of a worker record. Field order is the wire order the existing client shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerScript {
    /// The worker's id (a UUID), also the last part of its key.
    pub sid: String,
    /// The node that created the worker (editable by clients).
    pub nid: String,
    /// Whether it should run.
    pub active: bool,
    /// Once or in a loop.
    pub mode: RunMode,
    /// How the existing client groups it.
    pub scope: Scope,
    /// Where it runs.
    pub execution_mode: ExecutionMode,
    /// Its class on the JS pool.
    pub priority: Priority,
    /// An exchange account the client associates with it (kept, not used here).
    pub account_id: Option<String>,
    /// Set only for `exclusive` workers.
    pub assigned_node: Option<String>,
    /// Free text for people.
    pub note: String,
    /// The minified script.
    pub script: String,
    /// SDK modules the script declares (e.g. `gliesereum`).
    pub dependencies: Vec<String>,
    /// The SDK version the script was written for.
    pub version: String,
    /// Milliseconds since the epoch of the last write, set by the server.
    pub timestamp: i64,
}

/// `value` of a worker record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerData {
    /// `ami.worker.{sid}`.
    pub channel: String,
    /// Always `worker`.
    pub module: String,
    /// `widget.ami.worker.{sid}`.
    pub widget: String,
    /// The worker itself.
    pub raw: WorkerScript,
    /// When the record was written (ms since the epoch).
    pub timestamp: i64,
}

pub use super::repo::{worker_key, workers_prefix};

/// `ami.worker.{sid}`.
pub fn worker_channel(sid: &str) -> String {
    format!("ami.worker.{sid}")
}

impl WorkerData {
    /// Wraps `raw` with its channel, module and widget names.
    pub fn new(raw: WorkerScript) -> Self {
        let timestamp = raw.timestamp;
        WorkerData {
            channel: worker_channel(&raw.sid),
            module: "worker".into(),
            widget: format!("widget.ami.worker.{}", raw.sid),
            raw,
            timestamp,
        }
    }

    /// Reads a stored record; `None` when the stored value is not a worker.
    pub fn from_entry(entry: &Entry) -> Option<Self> {
        entry.value.deserialize().ok()
    }

    /// The stored JSON form.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
