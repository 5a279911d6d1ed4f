//! A cluster of real processes: one etcd and several `heterogen serve` nodes on it, with
//! shrunken timings (2 s leader lease renewed every 300 ms, 1 s membership).

use std::process::Stdio;

use serde_json::{Value, json};

use super::etcd::EtcdCluster;
use super::process::{NodeProcess, spawn_node_logged, spawn_node_with_stderr};

/// The shrunken timings every node of these tests runs with.
pub const QUICK: &[&str] = &[
    "--js-threads",
    "2",
    "--stop-grace-ms",
    "300",
    "--lease-ms",
    "2000",
    "--lease-renew-ms",
    "300",
    "--membership-ttl-ms",
    "1000",
    "--etcd-timeout-ms",
    "2000",
    "--critical-backoff-ms",
    "10",
    "--critical-backoff-cap-ms",
    "50",
];

/// etcd plus nodes `n1`, `n2`, … (a killed node's slot is `None`).
pub struct Cluster {
    pub etcd: EtcdCluster,
    pub nodes: Vec<Option<NodeProcess>>,
    /// Each nid's data directory, kept for a restart of that nid.
    dirs: std::collections::HashMap<String, tempfile::TempDir>,
    pub http: reqwest::Client,
    /// Flags every node of this cluster gets besides the quick timings.
    common_args: Vec<String>,
    /// Nodes run with `--open` (no authentication).
    open: bool,
}

impl Cluster {
    /// One etcd member and `size` open (`--open`) nodes.
    pub async fn start(size: usize) -> Cluster {
        Self::start_with(size, true, &[]).await
    }

    /// One etcd member and `size` nodes, `--open` or not, each also given `common_args`.
    pub async fn start_with(size: usize, open: bool, common_args: &[&str]) -> Cluster {
        Self::start_on(EtcdCluster::start(1).await, size, open, common_args).await
    }

    /// `size` nodes on `etcd` (all its members as endpoints), `--open` or not, each also given
    /// `common_args`.
    pub async fn start_on(etcd: EtcdCluster, size: usize, open: bool, common_args: &[&str]) -> Cluster {
        let mut cluster = Cluster {
            etcd,
            nodes: Vec::new(),
            dirs: std::collections::HashMap::new(),
            http: reqwest::Client::new(),
            common_args: common_args.iter().map(|a| a.to_string()).collect(),
            open,
        };
        for i in 1..=size {
            let node = cluster.spawn(&format!("n{i}"), &[]).await;
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    /// Starts node `nid` on this cluster's etcd with the quick timings and `extra` flags, in the
    /// data directory `nid` had before, if any.
    pub async fn spawn(&mut self, nid: &str, extra: &[&str]) -> NodeProcess {
        let dir = self
            .dirs
            .remove(nid)
            .unwrap_or_else(|| tempfile::tempdir().unwrap());
        let store = self.etcd.store_url();
        let mut args = vec!["--store", store.as_str(), "--nid", nid];
        args.extend_from_slice(QUICK);
        args.extend(self.common_args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        let node = if self.open {
            args.extend_from_slice(&["--fsync", "false"]);
            spawn_node_with_stderr(dir.path(), &args, Stdio::inherit(), "warn").await
        } else {
            // Adds `--fsync false` itself.
            spawn_node_logged(dir.path(), &args, &dir.path().join("node.log"), "warn").await
        };
        self.dirs.insert(nid.to_string(), dir);
        node
    }

    /// The running node at `index` (0-based).
    pub fn node(&self, index: usize) -> &NodeProcess {
        self.nodes[index].as_ref().expect("that node was killed")
    }

    /// Calls `method` on node `index`.
    pub async fn call(&self, index: usize, method: &str, body: Value) -> (u16, Value) {
        super::call_url(&self.http, &self.node(index).url(), method, body).await
    }

    /// Creates a worker through node `index` and activates it; returns its sid.
    pub async fn start_worker(&self, index: usize, body: Value) -> String {
        let (status, entry) = self.call(index, "setWorker", body).await;
        assert_eq!(status, 200, "{entry}");
        let mut raw = entry["value"]["raw"].clone();
        raw["active"] = json!(true);
        let update = json!({"channel": entry["value"]["channel"], "raw": raw});
        let (status, reply) = self.call(index, "updateWorker", update).await;
        assert_eq!(status, 200, "{reply}");
        raw["sid"].as_str().unwrap().to_string()
    }

    /// Rewrites worker `sid` through node `index`: its record as listed there, changed by
    /// `change`, sent with `updateWorker`.
    pub async fn update(&self, index: usize, sid: &str, change: impl FnOnce(&mut Value)) {
        let (status, list) = self.call(index, "listWorkers", json!({})).await;
        assert_eq!(status, 200, "{list}");
        let entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["value"]["raw"]["sid"] == sid)
            .unwrap_or_else(|| panic!("no worker {sid}"))
            .clone();
        let mut raw = entry["value"]["raw"].clone();
        change(&mut raw);
        let update = json!({"channel": entry["value"]["channel"], "raw": raw});
        let (status, reply) = self.call(index, "updateWorker", update).await;
        assert_eq!(status, 200, "{reply}");
    }

    /// The index of the one node that runs `sid`, once exactly one does (within `secs`).
    pub async fn single_runner(&self, sid: &str, secs: u64) -> usize {
        super::eventually(secs, "exactly one node to run the worker", || async {
            match self.runners(sid).await.as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        })
        .await
    }

    /// Whether node `index` runs `sid` now (its `getWorkerStats`).
    pub async fn runs(&self, index: usize, sid: &str) -> bool {
        let (status, stats) = self.call(index, "getWorkerStats", json!({})).await;
        assert_eq!(status, 200, "{stats}");
        stats["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["sid"] == sid && w["isRunning"] == true)
    }

    /// The indexes of the live nodes that run `sid` now.
    pub async fn runners(&self, sid: &str) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.is_some() && self.runs(i, sid).await {
                out.push(i);
            }
        }
        out
    }

    /// Kills node `index` with SIGKILL and waits for it to exit.
    pub async fn kill(&mut self, index: usize) {
        let mut node = self.nodes[index].take().expect("already killed");
        node.child.kill().await.unwrap();
    }
}
