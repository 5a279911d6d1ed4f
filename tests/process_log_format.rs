//! The node's own log as an operator reads it: `--log-format json` gives one JSON object a line
//! naming the node and each event's fields; the libraries' chatter stays out unless `RUST_LOG`
//! asks for it; text carries colours only on a terminal, and never with `NO_COLOR`.

mod common;

use std::time::Duration;

use common::process::{NodeProcess, spawn_node_logged};
use serde_json::{Value, json};

/// Stops the node and returns its log's lines.
async fn lines_after_stop(mut node: NodeProcess, log: &std::path::Path) -> Vec<String> {
    node.terminate();
    tokio::time::timeout(Duration::from_secs(20), node.child.wait())
        .await
        .expect("the node did not stop")
        .unwrap();
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn post(node: &NodeProcess, method: &str, body: Value) -> (u16, Value) {
    let envelope = json!({"webfix": "1.0", "method": method, "body": body});
    let response = reqwest::Client::new()
        .post(node.url())
        .json(&envelope)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn json_lines_name_the_node_and_carry_each_events_fields() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    // No RUST_LOG: the default filter.
    let args = ["--open", "--nid", "s-json-1", "--log-format", "json"];
    let node = spawn_node_logged(&dir.path().join("data"), &args, &log, "").await;
    let (status, created) = post(&node, "setWorker", json!({})).await;
    assert_eq!(status, 200, "{created}");
    let sid = created["value"]["raw"]["sid"].as_str().unwrap().to_owned();
    let lines = lines_after_stop(node, &log).await;

    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(events.len() >= 3, "{lines:?}");
    for event in &events {
        assert_eq!(event["nid"], "s-json-1", "{event}");
        for field in ["timestamp", "level", "message", "target"] {
            assert!(event[field].is_string(), "{field} in {event}");
        }
        let target = event["target"].as_str().unwrap();
        assert!(
            target.starts_with("heterogen"),
            "a library's line by default: {event}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "worker created" && e["sid"] == sid.as_str()),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_failed_request_names_its_method() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let args = ["--open", "--log-format", "json"];
    let node = spawn_node_logged(&dir.path().join("data"), &args, &log, "heterogen=debug").await;
    let (status, _) = post(&node, "updateWorker", json!({})).await;
    assert_eq!(status, 400);
    let lines = lines_after_stop(node, &log).await;
    let failed: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["message"] == "request failed")
        .collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert_eq!(failed[0]["method"], "updateWorker");
    assert_eq!(failed[0]["status"], 400);
    assert_eq!(failed[0]["nid"], "s-0001");
}

/// The node's output when run for a moment on a pseudo-terminal (util-linux `script`), with
/// `extra_env` set.
fn output_on_a_terminal(extra_env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let command = format!(
        "timeout -s INT 2 {} serve --listen 127.0.0.1:0 --open --fsync false --data-dir {}",
        env!("CARGO_BIN_EXE_heterogen"),
        dir.path().join("data").display()
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qfc", &command, "/dev/null"])
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    for (name, value) in extra_env {
        script.env(name, value);
    }
    let output = script.output().expect("util-linux `script` is needed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn text_is_coloured_on_a_terminal_only_and_never_with_no_color() {
    let on_terminal = output_on_a_terminal(&[]);
    assert!(on_terminal.contains("fjall store opened"), "{on_terminal}");
    assert!(
        on_terminal.contains("\u{1b}["),
        "no colours on a terminal: {on_terminal}"
    );
    let no_color = output_on_a_terminal(&[("NO_COLOR", "1")]);
    assert!(no_color.contains("fjall store opened"), "{no_color}");
    assert!(
        !no_color.contains("\u{1b}["),
        "colours despite NO_COLOR: {no_color}"
    );

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let node = spawn_node_logged(&dir.path().join("data"), &["--open"], &log, "").await;
    let lines = lines_after_stop(node, &log).await;
    assert!(
        lines.iter().any(|l| l.contains("fjall store opened")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "colours in a file: {lines:?}"
    );
}
