//! A node started as a new user would, without `--owners` or `--open`: it creates an owner key
//! in its data directory (mode 0600, reused later), logs where and whose it is, and prints one
//! console link whose session works; its log carries that session nowhere else. An empty or
//! malformed `--owners` stops the node with exit code 2, naming the flag.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{NodeProcess, spawn_node_logged};
use serde_json::{Value, json};

/// A node started without `--owners`, and where its log goes.
struct Started {
    node: NodeProcess,
    url: String,
    log: PathBuf,
}

impl Started {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the `Console:` line; returns the link.
    async fn console_link(&self) -> String {
        for _ in 0..300 {
            if let Some(line) = self.stderr().lines().find(|l| l.starts_with("Console: ")) {
                return line.trim_start_matches("Console: ").to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no console link on stderr:\n{}", self.stderr());
    }
}

async fn start(data: &Path, log: &Path) -> Started {
    let node = spawn_node_logged(data, &[], log, "info").await;
    Started {
        url: node.url().trim_end_matches('/').to_string(),
        node,
        log: log.to_path_buf(),
    }
}

async fn list_workers(url: &str, session: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("stels-session", session)
        .json(&json!({"webfix": "1.0", "method": "listWorkers", "params": [], "body": {}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn key_address(path: &Path) -> String {
    let key: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    key["address"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_first_start_makes_an_owner_and_prints_a_link_that_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = start(&data, &dir.path().join("first.log")).await;
    let link = node.console_link().await;
    let (page, session) = link
        .split_once("#session=")
        .expect("the session is in the fragment");
    assert_eq!(page, format!("{}/console/", node.url));
    assert!(!page.contains('?'));

    let key = data.join("owner-key.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let address = key_address(&key);
    let log = node.stderr();
    assert!(log.contains(&address) && log.contains("owner-key.json"), "{log}");
    assert_eq!(
        log.matches(session).count(),
        1,
        "the session appears only in the link:\n{log}"
    );

    assert_eq!(
        list_workers(&node.url, session).await,
        200,
        "the link's session is an owner's"
    );
    assert_eq!(list_workers(&node.url, "not-a-session").await, 401);
    let mut first = node.node;
    first.child.kill().await.unwrap();

    let again = start(&data, &dir.path().join("second.log")).await;
    let second = again.console_link().await;
    assert_ne!(second, link, "a fresh session on every start");
    assert_eq!(key_address(&key), address, "the key is reused");
    assert!(again.stderr().contains(&address));
    let (_, session) = second.split_once("#session=").unwrap();
    assert_eq!(list_workers(&again.url, session).await, 200);
}

#[tokio::test]
async fn a_node_with_owners_or_open_makes_no_key_and_prints_no_link() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("owners", vec!["--owners", "gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKz"]),
        ("open", vec!["--open"]),
    ] {
        let data = dir.path().join(name);
        let log = dir.path().join(format!("{name}.log"));
        let mut node = spawn_node_logged(&data, &args, &log, "info").await;
        node.child.kill().await.unwrap();
        assert!(!data.join("owner-key.json").exists(), "{name}");
        assert!(
            !std::fs::read_to_string(&log).unwrap().contains("Console:"),
            "{name}"
        );
    }
}

/// Arguments and environment of one refused start.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

#[test]
fn empty_or_malformed_owners_stop_the_node_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("node.toml");
    std::fs::write(&toml, "owners = []\n").unwrap();
    let toml = toml.to_str().unwrap();
    let cases: &[Case] = &[
        (&["--owners", ""], &[]),
        (&["--owners", " , "], &[]),
        (&["--owners", "gNotAnAddress"], &[]),
        (&["--owners", "gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKz,0x1234"], &[]),
        (&[], &[("HETEROGEN_OWNERS", ",")]),
        (&["--config", toml], &[]),
    ];
    for (args, env) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_heterogen"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(*args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("--owners"), "{args:?} {env:?}: {stderr}");
    }
    assert!(!dir.path().join("data/owner-key.json").exists());
}
