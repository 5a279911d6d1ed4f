//! Snapshots pushed to many subscribers, computed at most once per period and serialised once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::stats::StatsBoard;
use super::{Frame, push_frame};
use crate::clock::Clock;
use crate::cluster::membership::{NodeList, NodeLoad};
use crate::workers::{Scope, WorkerData, WorkerRepo};

/// A cached frame and when it was made.
type Cached = Mutex<Option<(Instant, Frame)>>;

fn fresh(cache: &Cached, max_age: Duration) -> Option<Frame> {
    let cached = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    cached
        .as_ref()
        .filter(|(at, _)| at.elapsed() < max_age)
        .map(|(_, frame)| frame.clone())
}

fn keep(cache: &Cached, frame: &Frame) {
    *cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((Instant::now(), frame.clone()));
}

/// The `stats` stream's frame: `getWorkerStats` of this node (W-STR-1).
#[derive(Default)]
pub struct StatsFeed {
    cache: Cached,
}

impl StatsFeed {
    /// Snapshots are shared for this long, whatever the number of subscribers.
    const MAX_AGE: Duration = Duration::from_millis(50);

    /// The frame of node `nid`'s `stats`, stamped by `clock`.
    pub fn frame(&self, nid: &str, stats: &StatsBoard, clock: &Clock) -> Frame {
        if let Some(frame) = fresh(&self.cache, Self::MAX_AGE) {
            return frame;
        }
        let frame = push_frame(
            &format!("ami.stats.{nid}"),
            "stats",
            stats.snapshot(),
            clock.wall_ms(),
        );
        keep(&self.cache, &frame);
        frame
    }
}

/// The existing client's `sonar` summary (stels-client.md §5): every live node of the cluster.
pub struct SonarFeed {
    cache: Cached,
    network: String,
    nid: String,
    workers: WorkerRepo,
    nodes: NodeList,
    stats: std::sync::Arc<StatsBoard>,
    clock: Clock,
}

impl SonarFeed {
    const MAX_AGE: Duration = Duration::from_millis(900);

    /// The summary seen from node `nid` on `network`: the worker records, this node's own stats
    /// and the other live nodes' published load.
    pub fn new(
        network: &str,
        nid: &str,
        workers: WorkerRepo,
        nodes: NodeList,
        stats: std::sync::Arc<StatsBoard>,
        clock: Clock,
    ) -> SonarFeed {
        SonarFeed {
            clock,
            cache: Cached::default(),
            network: network.to_string(),
            nid: nid.to_string(),
            workers,
            nodes,
            stats,
        }
    }

    /// The current summary frame, made at most once per period.
    pub async fn frame(&self) -> Frame {
        if let Some(frame) = fresh(&self.cache, Self::MAX_AGE) {
            return frame;
        }
        let frame = push_frame(
            &format!("{}.runtime.sonar", self.network),
            "runtime",
            self.summary().await,
            self.clock.wall_ms(),
        );
        keep(&self.cache, &frame);
        frame
    }
}

impl SonarFeed {
    async fn summary(&self) -> Value {
        let (mut total, mut active, mut local, mut network) = (0u64, 0u64, 0u64, 0u64);
        match self.workers.all().await {
            Ok(page) => {
                for data in page.entries.iter().filter_map(WorkerData::from_entry) {
                    total += 1;
                    active += u64::from(data.raw.active);
                    match data.raw.scope {
                        Scope::Local => local += 1,
                        Scope::Network => network += 1,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "sonar: cannot list workers"),
        }
        let own = self.stats.totals();
        let mut loads: Vec<(String, NodeLoad)> = match self.nodes.live().await {
            Ok(records) => records
                .into_iter()
                .filter(|r| r.nid != self.nid)
                .map(|r| (r.nid, r.load))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "sonar: cannot list nodes");
                Vec::new()
            }
        };
        loads.push((self.nid.clone(), own));
        loads.sort_by(|a, b| a.0.cmp(&b.0));
        let workers = json!({"active": active, "stopped": total - active, "total": total, "local": local, "network": network});
        let now = self.clock.wall_ms();
        let mut nodes = serde_json::Map::new();
        let (mut operations, mut errors) = (0u64, 0u64);
        for (nid, load) in &loads {
            operations += load.executions;
            errors += load.errors;
            let channel = format!("{}.runtime.sonar.{nid}", self.network);
            let node = json!({
                "channel": channel,
                "module": "runtime",
                "widget": format!("widget.{channel}"),
                "raw": {
                    "currentNode": {
                        "id": nid,
                        "operations": {
                            "total": load.executions,
                            "errors": load.errors,
                            "networkErrors": load.network_errors,
                            "criticalErrors": load.critical_errors,
                            "successRate": success_rate(load.executions, load.errors),
                        },
                        "workers": workers,
                    },
                    "workers": workers,
                },
                "timestamp": now,
            });
            nodes.insert(nid.clone(), node);
        }
        let success_rate = success_rate(operations, errors);
        json!({
            "timestamp": now,
            "totalNodes": loads.len(),
            "nodes": nodes,
            "network": {
                "totalOperations": operations,
                "totalErrors": errors,
                "totalWorkers": total,
                "activeWorkers": active,
                "successRate": success_rate,
            },
        })
    }
}

/// Percent of runs that did not fail (100 before the first run).
fn success_rate(operations: u64, errors: u64) -> f64 {
    if operations == 0 {
        100.0
    } else {
        operations.saturating_sub(errors) as f64 * 100.0 / operations as f64
    }
}
