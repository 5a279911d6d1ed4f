//! Real `etcd` processes on 127.0.0.1 with free ports and temporary data directories, with
//! shrunken raft timings (leases of one second are honoured, an election takes about half a
//! second).
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use heterogen::store::etcd::{EtcdOptions, EtcdStore};

/// One etcd member: its process, its directory and its ports.
pub struct EtcdMember {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    initial_cluster: String,
    /// `http` or `https` for the client listener.
    scheme: &'static str,
    /// More flags (TLS files).
    extra: Vec<String>,
}

/// An etcd cluster of one or more members; every process is killed when it is dropped.
pub struct EtcdCluster {
    pub members: Vec<EtcdMember>,
}

/// A port free on 127.0.0.1 a moment ago (this file is also compiled outside `common`).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl EtcdMember {
    fn spawn(&mut self, state: &str) {
        let client = format!("{}://127.0.0.1:{}", self.scheme, self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .args(["--name", &self.name, "--data-dir"])
            .arg(self.dir.path())
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &self.initial_cluster])
            .args([
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                "heterogen-test",
            ])
            // Shrunk from 100/1000 ms, but not so far that a loaded test machine starves a
            // heartbeat into a spurious election.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--max-request-bytes", "1638400"])
            .args(&self.extra)
            .args(["--logger", "zap", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("etcd is not installed (apt-get install etcd-server)");
        self.child = Some(child);
    }

    /// `127.0.0.1:PORT` of its client listener.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Kills the process (SIGKILL); its data stays for [`EtcdMember::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the member again on its data directory and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn("existing");
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.kill();
    }
}

impl EtcdCluster {
    /// Starts `size` members and waits until the cluster answers.
    pub async fn start(size: usize) -> EtcdCluster {
        let cluster = Self::spawn_members(size, "http", &[]);
        cluster.wait_ready().await;
        cluster
    }

    /// One member whose client listener speaks TLS with the given etcd flags (certificate files);
    /// the caller waits for it to answer, with its own client settings.
    pub fn start_tls(extra: &[String]) -> EtcdCluster {
        Self::spawn_members(1, "https", extra)
    }

    fn spawn_members(size: usize, scheme: &'static str, extra: &[String]) -> EtcdCluster {
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<EtcdMember> = ports
            .into_iter()
            .enumerate()
            .map(|(i, (client_port, peer_port))| EtcdMember {
                name: format!("m{i}"),
                client_port,
                peer_port,
                child: None,
                dir: tempfile::tempdir().unwrap(),
                initial_cluster: initial_cluster.clone(),
                scheme,
                extra: extra.to_vec(),
            })
            .collect();
        for member in &mut members {
            member.spawn("new");
        }
        EtcdCluster { members }
    }

    /// The index of the member that is raft leader now (`etcdctl endpoint status`).
    pub fn leader_index(&self) -> usize {
        let endpoints = self.endpoints().join(",");
        let output = Command::new("etcdctl")
            .args(["--endpoints", &endpoints, "endpoint", "status", "-w", "json"])
            .output()
            .expect("etcdctl is not installed (apt-get install etcd-client)");
        let statuses: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("etcdctl did not answer JSON");
        let statuses = statuses.as_array().expect("a list of statuses");
        let is_leader = |s: &serde_json::Value| s["Status"]["header"]["member_id"] == s["Status"]["leader"];
        let endpoint = statuses
            .iter()
            .find(|s| is_leader(s))
            .and_then(|s| s["Endpoint"].as_str())
            .expect("no member is leader");
        self.members
            .iter()
            .position(|m| endpoint.ends_with(&m.endpoint()))
            .expect("the leader is not one of ours")
    }

    /// `host:port` of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }

    /// The `--store` argument of a node using this cluster.
    pub fn store_url(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    /// Options for a store under `prefix` with a short deadline.
    pub fn options(&self, prefix: &str) -> EtcdOptions {
        let mut options = EtcdOptions::new(self.endpoints(), prefix);
        options.call_timeout = Duration::from_secs(3);
        options
    }

    /// Waits until a write through the cluster succeeds (a leader is elected).
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(store) = EtcdStore::connect(self.options("/ready/")).await {
                let write = heterogen::store::AtomicWrite::new()
                    .set(heterogen::store::Key::of(&["ready"]), serde_json::json!(true));
                if heterogen::store::Store::commit(&store, write).await.is_ok() {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd did not become ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
