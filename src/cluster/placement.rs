//! `place_worker`: does an active worker run on this node (worker-api.md §1, §7)?

use crate::workers::{ExecutionMode, WorkerScript};

/// Where a worker stands with respect to this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Run it here now.
    Run,
    /// Run it here only while this node holds its leader lease.
    RunWhileLeader,
    /// Not here.
    Elsewhere,
}

/// Decides placement from the record alone; inactive workers run nowhere.
pub fn place_worker(worker: &WorkerScript, nid: &str) -> Placement {
    if !worker.active {
        return Placement::Elsewhere;
    }
    match worker.execution_mode {
        ExecutionMode::Parallel => Placement::Run,
        ExecutionMode::Leader => Placement::RunWhileLeader,
        ExecutionMode::Exclusive if worker.assigned_node.as_deref() == Some(nid) => Placement::Run,
        ExecutionMode::Exclusive => Placement::Elsewhere,
    }
}
