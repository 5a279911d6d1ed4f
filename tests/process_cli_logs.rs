//! `heterogen logs` through its binary against a real node process: `-n`, `--level`, an
//! unknown worker, and `-f` that outlives a restart of the node and resumes after the last line
//! it printed (no line twice, none lost that the node kept).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use common::process::{client_command, free_port, spawn_node_at, test_config_dir};

/// `heterogen serve --open` on `port` over the data in `dir`; returns once it listens.
async fn serve(dir: &Path, port: u16) -> Child {
    let listen = format!("127.0.0.1:{port}");
    spawn_node_at(&listen, dir, &["--fsync", "false", "--js-threads", "2"])
        .await
        .child
}

/// Runs a client command to its end.
async fn cli(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = client_command();
    command.args(args).args(["--url", url]);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A worker that logs `tick N` (and every third run a warning) once per run.
async fn ticking_worker(url: &str, dir: &Path) -> String {
    let file = dir.join("tick.js");
    std::fs::write(
        &file,
        "globalThis.n = (globalThis.n ?? 0) + 1;\nlogger.info('tick ' + n);\nif (n % 3 === 0) logger.warn('third ' + n);\nawait Stels.sleep(40);",
    )
    .unwrap();
    let out = cli(
        url,
        &["workers", "create", file.to_str().unwrap(), "--priority", "high"],
    )
    .await;
    let sid = stdout(&out).trim().to_string();
    stdout(&cli(url, &["workers", "start", &sid]).await);
    sid
}

#[tokio::test]
async fn tail_level_and_unknown_workers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _node = serve(&dir.path().join("data"), port).await;
    let url = format!("ws://127.0.0.1:{port}");
    let sid = ticking_worker(&url, dir.path()).await;
    // Enough history: wait for a dozen ticks.
    for _ in 0..100 {
        if stdout(&cli(&url, &["logs", &sid]).await).matches("tick").count() >= 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stdout(&cli(&url, &["workers", "stop", &sid]).await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let all = stdout(&cli(&url, &["logs", &sid, "--json"]).await);
    let all: Vec<Value> = all.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(all.len() >= 12, "{all:?}");

    let tail = stdout(&cli(&url, &["logs", &sid, "-n", "3", "--json"]).await);
    let tail: Vec<Value> = tail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(tail, all[all.len() - 3..].to_vec());

    let warnings = stdout(&cli(&url, &["logs", &sid[..6], "--level", "warn"]).await);
    assert!(!warnings.is_empty());
    assert!(warnings.lines().all(|l| l.contains("[WARN] third")), "{warnings}");
    let last_two = stdout(&cli(&url, &["logs", &sid, "--level", "warn", "-n", "2"]).await);
    assert_eq!(last_two.lines().count(), 2, "{last_two}");
    assert!(warnings.ends_with(&last_two), "{warnings}\n---\n{last_two}");

    let unknown = cli(&url, &["logs", "00000000-0000-4000-8000-000000000000"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no worker"));
}

#[tokio::test]
async fn follow_resumes_after_the_node_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut node = serve(&data, port).await;
    let url = format!("ws://127.0.0.1:{port}");
    let sid = ticking_worker(&url, dir.path()).await;

    let mut follower = tokio::process::Command::new(env!("CARGO_BIN_EXE_heterogen"))
        .args(["logs", &sid, "-f", "--json", "--url", &url])
        .env("HETEROGEN_CONFIG_DIR", test_config_dir())
        .env_remove("HETEROGEN_KEY")
        .env_remove("HETEROGEN_SESSION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = Vec::new();
    let mut read_until = async |seen: &mut Vec<Value>, what: &str, done: &dyn Fn(&[Value]) -> bool| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !done(seen) {
            match tokio::time::timeout_at(deadline, lines.next_line()).await {
                Ok(Ok(Some(line))) => seen.push(serde_json::from_str(&line).unwrap()),
                other => panic!("no {what}: {other:?}; seen {seen:#?}"),
            }
        }
    };
    read_until(&mut seen, "ticks before the restart", &|s| s.len() >= 5).await;

    // The node stops (SIGTERM) and comes back on the same port with the same data.
    let pid = node.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    node.wait().await.unwrap();
    let before = seen.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    node = serve(&data, port).await;

    // New lines arrive: the restarted worker logs "Worker started" again.
    read_until(&mut seen, "lines after the restart", &|s| {
        s[before..].iter().any(|l| {
            l["content"]
                .as_str()
                .unwrap_or_default()
                .contains("Worker started")
        })
    })
    .await;
    read_until(&mut seen, "ticks after the restart", &|s| s.len() >= before + 4).await;
    let cursors: Vec<u64> = seen.iter().map(|l| l["cursor"].as_u64().unwrap()).collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors must rise with no repeats: {cursors:?}"
    );
    // Nothing the node kept was skipped: the follower saw every line up to its last cursor.
    let kept = stdout(&cli(&url, &["logs", &sid, "--json"]).await);
    let kept: Vec<u64> = kept
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["cursor"]
                .as_u64()
                .unwrap()
        })
        .filter(|c| c <= cursors.last().unwrap())
        .collect();
    assert_eq!(kept, cursors);

    let pid = follower.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), follower.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    drop(node);
}
