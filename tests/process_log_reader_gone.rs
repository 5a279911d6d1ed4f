//! Issue 9, defect 11: whatever reads the node's stderr may stop reading or exit (a
//! `serve 2>&1 | tee` ended with Ctrl-C, a stuck log shipper), and the node must go on serving:
//! log lines are dropped, never a panic and never a blocked request.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Child;

/// A FIFO at `path`, opened for writing once a reader holds its other end.
fn fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Starts the node with `stderr` as its standard error, logging every failed request (debug).
async fn spawn_node(dir: &Path, stderr: File) -> (Child, String) {
    let node = common::process::spawn_node_with_stderr(dir, &[], Stdio::from(stderr), "debug").await;
    let url = node.url();
    (node.child, url)
}

/// `n` requests that each fail and so each write a log line; every one must be answered.
async fn failing_requests(url: &str, n: usize) {
    let http = reqwest::Client::new();
    let request = json!({"webfix": "1.0", "method": "getLeaderInfo", "body": {}});
    for i in 0..n {
        let response = tokio::time::timeout(Duration::from_secs(5), http.post(url).json(&request).send())
            .await
            .unwrap_or_else(|_| panic!("request {i} was not answered within 5 s"))
            .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        assert_eq!(response.status(), 400, "request {i}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
}

/// SIGTERM, then a clean exit.
async fn stops_cleanly(mut child: Child) {
    assert!(child.try_wait().unwrap().is_none(), "the node died");
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the node did not stop")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_keeps_serving_after_its_log_reader_exits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stderr.fifo");
    fifo(&path);
    let mut reader = std::process::Command::new("cat")
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let writer = File::options().write(true).open(&path).unwrap();
    let (child, url) = spawn_node(&dir.path().join("data"), writer).await;
    failing_requests(&url, 5).await;

    reader.kill().unwrap();
    reader.wait().unwrap();
    // Every one of these logs a line into a pipe nobody reads any more (EPIPE).
    failing_requests(&url, 200).await;
    stops_cleanly(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_keeps_serving_while_its_log_reader_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stderr.fifo");
    fifo(&path);
    // A reader that holds the pipe open and never reads: the 64 KiB pipe buffer fills.
    let read_path = path.clone();
    let stalled_reader = std::thread::spawn(move || File::open(read_path).unwrap());
    let writer = File::options().write(true).open(&path).unwrap();
    let _stalled_reader = stalled_reader.join().unwrap();
    let (child, url) = spawn_node(&dir.path().join("data"), writer).await;
    // ~150 bytes of log per request: several times what the pipe holds.
    failing_requests(&url, 3000).await;
    stops_cleanly(child).await;
}
