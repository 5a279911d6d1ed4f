//! `scripts/local-cluster.sh`, the README's way to try a cluster: `start` brings up a real etcd
//! and three nodes that list each other, `status` shows them, `stop` ends every process.
#![cfg(feature = "etcd")]

mod common;

use std::process::Command;

use common::process::free_port;

fn script(dir: &std::path::Path, etcd_port: u16, base_port: u16, action: &str) -> (bool, String) {
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local-cluster.sh"))
        .arg(action)
        .env("HG_CLUSTER_DIR", dir)
        .env("HG_ETCD_PORT", etcd_port.to_string())
        .env("HG_BASE_PORT", base_port.to_string())
        .env("HETEROGEN_BIN", env!("CARGO_BIN_EXE_heterogen"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn start_status_and_stop_a_local_cluster() {
    let dir = tempfile::tempdir().unwrap();
    // Ports: etcd's client and peer (+1), and the nodes (base + 1..3), all free just now.
    let etcd_port = free_port();
    let base_port = free_port();
    let (ok, out) = script(dir.path(), etcd_port, base_port, "start");
    let stop = || script(dir.path(), etcd_port, base_port, "stop");
    if !ok {
        let _ = stop();
        panic!("start failed: {out}");
    }
    assert!(
        out.contains(&format!("n3: http://127.0.0.1:{}/console/", base_port + 3)),
        "{out}"
    );
    let mut listed = String::new();
    for _ in 0..100 {
        let (_, status) = script(dir.path(), etcd_port, base_port, "status");
        listed = status;
        if listed.contains("\"total\":3") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (ok, out) = stop();
    assert!(ok, "{out}");
    assert!(
        listed.contains("etcd: running") && listed.contains("\"total\":3"),
        "{listed}"
    );
    let pids: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .collect();
    assert!(pids.is_empty(), "pid files left: {pids:?}");
    let (_, status) = script(dir.path(), etcd_port, base_port, "status");
    assert!(status.contains("etcd: stopped"), "{status}");
}
