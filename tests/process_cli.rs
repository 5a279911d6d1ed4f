//! `heterogen serve` as a process: flags, environment, config file, exit code 2 on bad
//! values, and graceful shutdown on SIGTERM (close 1001, exit 0, data kept).

mod common;

use std::process::Command;

use common::process::{heterogen, spawn_node};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn serve(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_heterogen"))
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Arguments, environment, and a word the error must contain.
type BadCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_values_exit_with_code_2_and_a_clear_message() {
    let cases: &[BadCase] = &[
        (&["--listen", "nowhere"], &[], "--listen"),
        (&["--max-connections", "many"], &[], "--max-connections"),
        (&["--max-connections", "0"], &[], "max-connections"),
        (&["--nid", "bad nid"], &[], "nid"),
        (&["--public-url", "ftp://host"], &[], "public-url"),
        (&["--fsync", "sometimes"], &[], "--fsync"),
        (&["--no-such-flag"], &[], "--no-such-flag"),
        (&[], &[("HETEROGEN_LISTEN", "bad")], "--listen"),
        (
            &["--config", "/nonexistent/node.toml"],
            &[],
            "/nonexistent/node.toml",
        ),
    ];
    for (args, env, needle) in cases {
        let out = serve(args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
    }
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, "nid = \"s-0003\"\nmax_conections = 5\n").unwrap();
    let out = serve(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_conections"), "{stderr}");
    assert!(stderr.contains("did you mean \"max-connections\""), "{stderr}");
}

#[test]
fn a_config_file_value_of_the_wrong_kind_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, "js_threads = \"many\"\n").unwrap();
    let out = serve(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("node.toml") && stderr.contains("many"),
        "{stderr}"
    );
}

#[tokio::test]
async fn env_and_file_settings_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, "nid = \"s-0003\"\nnetwork = \"mainnet\"\n").unwrap();
    let data = dir.path().join("data");
    let mut node = spawn_node(&data, &["--config", path.to_str().unwrap(), "--nid", "s-0004"]).await;
    let info: serde_json::Value = reqwest::get(node.url()).await.unwrap().json().await.unwrap();
    assert_eq!(info["nid"], "s-0004", "flag beats file");
    assert_eq!(info["network"], "mainnet", "file beats default");
    node.child.start_kill().unwrap();
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn_node(dir.path(), &["--fsync", "false"]).await;
    let client = reqwest::Client::new();
    let response = client
        .post(node.url())
        .json(&json!({"webfix":"1.0","method":"setWorker","body":{"note":"kept"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", node.addr))
        .await
        .unwrap();
    // A SIGHUP (`systemctl reload`) without TLS has nothing to reload and must not end the node.
    let pid = node.child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let alive = client.get(format!("{}healthz", node.url())).send().await.unwrap();
    assert_eq!(alive.status().as_u16(), 200);
    node.terminate();
    let frame = loop {
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(frame.code), 1001);
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), node.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    let node = spawn_node(dir.path(), &[]).await;
    let response = client
        .post(node.url())
        .json(&json!({"webfix":"1.0","method":"listWorkers"}))
        .send()
        .await
        .unwrap();
    let list: serde_json::Value = response.json().await.unwrap();
    assert_eq!(list[0]["value"]["raw"]["note"], "kept");
}

#[tokio::test]
async fn open_mode_and_unsafe_durability_are_announced_at_start() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_heterogen"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--open",
            "--fsync",
            "false",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut open_warned, mut fsync_warned) = (false, false);
    while !(open_warned && fsync_warned) {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("no warning at start")
            .unwrap()
            .expect("node exited");
        open_warned |= line.contains("authentication is OFF");
        fsync_warned |= line.contains("fsync OFF");
    }
    child.start_kill().unwrap();
}

#[test]
fn the_version_names_the_commit_and_completions_are_generated() {
    let version = heterogen(&["--version"]);
    assert!(version.status.success());
    let text = String::from_utf8(version.stdout).unwrap();
    assert!(
        text.starts_with(&format!("heterogen {} (", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(head) = head {
        let head = String::from_utf8(head.stdout).unwrap();
        assert!(
            text.contains(&format!("({})", head.trim())),
            "{text} is not built from HEAD"
        );
    }
    for (shell, marker) in [
        ("bash", "complete -F _heterogen"),
        ("zsh", "#compdef heterogen"),
        ("fish", "complete -c heterogen"),
    ] {
        let script = heterogen(&["completions", shell]);
        assert!(script.status.success(), "{shell}");
        let script = String::from_utf8(script.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {marker} missing");
        assert!(
            script.contains("workers") && script.contains("serve"),
            "{shell}: subcommands"
        );
    }
    let unknown = heterogen(&["completions", "cmd.exe"]);
    assert_eq!(unknown.status.code(), Some(2));
}
