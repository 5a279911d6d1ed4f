//! The cluster view for people, with real processes: `heterogen nodes` lists every live node and
//! `heterogen stats --cluster` shows each node's runs of a `parallel` worker, as each node
//! published them with its membership.
#![cfg(feature = "etcd")]

mod common;

use common::cluster::Cluster;
use common::eventually;
use serde_json::{Value, json};

async fn cli(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let url = format!("ws://{}", cluster.node(0).addr);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_heterogen"))
        .args(args)
        .args(["--url", &url])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_cluster_stats_show_every_node() {
    let cluster = Cluster::start(2).await;
    let sid = cluster
        .start_worker(
            1,
            json!({"scriptContent": "await Stels.sleep(20);", "executionMode": "parallel"}),
        )
        .await;

    let (ok, table) = eventually(10, "both nodes in `heterogen nodes`", || async {
        let (ok, table) = cli(&cluster, &["nodes"]).await;
        (table.contains("2 live nodes")).then_some((ok, table))
    })
    .await;
    assert!(ok, "{table}");
    let rows: Vec<&str> = table.lines().skip(3).collect();
    assert!(
        rows[0].starts_with("n1 *") && rows[1].starts_with("n2 "),
        "{table}"
    );
    assert!(
        rows[1].contains(&format!("http://{}", cluster.node(1).addr)),
        "{table}"
    );

    let runs = eventually(10, "each node publishing its run of the worker", || async {
        let (ok, text) = cli(&cluster, &["stats", "--cluster", "--json"]).await;
        assert!(ok, "{text}");
        let listed: Value = serde_json::from_str(&text).unwrap();
        let runs: Vec<(String, u64)> = listed["nodes"]
            .as_array()?
            .iter()
            .filter_map(|node| {
                let worker = node["load"]["workers"]
                    .as_array()?
                    .iter()
                    .find(|w| w["sid"] == sid)?;
                (worker["isRunning"] == true).then(|| {
                    (
                        node["nid"].as_str().unwrap().to_string(),
                        worker["executions"].as_u64().unwrap(),
                    )
                })
            })
            .collect();
        (runs.len() == 2 && runs.iter().all(|(_, n)| *n > 0)).then_some(runs)
    })
    .await;
    assert_eq!(
        runs.iter().map(|(nid, _)| nid.as_str()).collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    let (ok, table) = cli(&cluster, &["stats", "--cluster"]).await;
    assert!(ok, "{table}");
    let short = &sid;
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains(short.as_str()) && l.contains(" yes "))
            .count(),
        2,
        "{table}"
    );
}
