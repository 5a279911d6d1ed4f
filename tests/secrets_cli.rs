//! `heterogen secrets set | list | rm` as real processes against a real node process: the value
//! piped on stdin, outputs and `--json`, exit codes (1 for a refused request, 2 for a usage
//! problem), a stranger's session refused; the value is found in no file of the data
//! directory once the node has stopped (its log lines included: the script logged it); a
//! broken key file stops a node (exit 2) and a node with another key refuses secrets, saying why.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::process::{NodeProcess, client_command, fails, ok, refused_start, spawn_node, stderr};
use serde_json::Value;

/// A value that nothing but the secret holds.
const VALUE: &str = "tok-cli-91b7e3f0c2d4";

/// `heterogen ARGS… --url URL`, with `stdin` piped in (none: an empty stdin).
fn cli(node: &NodeProcess, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = client_command()
        .args(args)
        .args(["--url", &node.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Creates a worker running `script` (started when `start`); returns its sid.
fn worker(node: &NodeProcess, dir: &Path, script: &str, start: bool) -> String {
    let file = dir.join("worker.js");
    std::fs::write(&file, script).unwrap();
    let out = cli(
        node,
        &[
            "workers",
            "create",
            file.to_str().unwrap(),
            "--priority",
            "high",
            "--note",
            "note-marker-4d2c",
        ],
        None,
    );
    let sid = ok(&out).trim().to_string();
    if start {
        ok(&cli(node, &["workers", "start", &sid], None));
    }
    sid
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn secrets_set_list_and_rm_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(&dir.path().join("data"), &["--fsync", "false"]).await;
    let sid = worker(&node, dir.path(), "await Stels.sleep(1000);", false);
    let prefix = &sid[..8];

    let out = cli(
        &node,
        &["secrets", "set", prefix, "API_KEY"],
        Some(&format!("{VALUE}\n")),
    );
    assert_eq!(ok(&out), format!("added secret API_KEY to {sid}\n"));
    let out = cli(&node, &["secrets", "set", &sid, "API_KEY", "--json"], Some(VALUE));
    let set: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(
        (set["sid"].as_str(), set["name"].as_str(), &set["created"]),
        (Some(sid.as_str()), Some("API_KEY"), &Value::Bool(false))
    );
    assert!(set["updatedAt"].is_i64());
    ok(&cli(
        &node,
        &["secrets", "set", prefix, "DB_URL"],
        Some("postgres://u:p@h/db"),
    ));

    let out = cli(&node, &["secrets", "list", prefix, "--json"], None);
    let listed: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(listed["sid"], sid.as_str());
    let names: Vec<&str> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["API_KEY", "DB_URL"]);
    let table = ok(&cli(&node, &["secrets", "list", prefix], None));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("UPDATED"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("API_KEY") && lines[2].starts_with("DB_URL"),
        "{table}"
    );
    assert!(!table.contains(VALUE) && !listed.to_string().contains(VALUE));

    // Refusals: the node's (exit 1) and the command's own (exit 2).
    fails(
        &cli(&node, &["secrets", "set", prefix, "1BAD"], Some("v")),
        1,
        "name must be 1 to 64",
    );
    fails(
        &cli(
            &node,
            &["secrets", "set", prefix, "BIG"],
            Some(&"v".repeat(40_000)),
        ),
        1,
        "a secret holds at most 32768 bytes",
    );
    fails(
        &cli(&node, &["secrets", "set", prefix, "EMPTY"], None),
        2,
        "the value is empty",
    );
    fails(
        &cli(&node, &["secrets", "set", prefix, "EMPTY"], Some("\n")),
        2,
        "the value is empty",
    );
    fails(
        &cli(&node, &["secrets", "list", "ffffffff"], None),
        1,
        "no worker with sid ffffffff",
    );
    fails(
        &cli(&node, &["secrets", "set", "ffffffff", "A"], Some("v")),
        1,
        "no worker with sid ffffffff",
    );
    fails(&cli(&node, &["secrets", "set", prefix], Some("v")), 2, "NAME");

    let out = cli(&node, &["secrets", "rm", prefix, "API_KEY"], None);
    assert_eq!(ok(&out), format!("removed secret API_KEY from {sid}\n"));
    fails(
        &cli(&node, &["secrets", "rm", prefix, "API_KEY"], None),
        1,
        "Secret not found",
    );
    let out = cli(&node, &["secrets", "rm", prefix, "DB_URL", "--json"], None);
    let removed: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(removed, serde_json::json!({"sid": sid, "name": "DB_URL"}));
    assert_eq!(
        ok(&cli(&node, &["secrets", "list", prefix], None)),
        format!("{sid} has no secrets\n")
    );
}

#[tokio::test]
async fn a_strangers_session_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let owner_key = dir.path().join("owner.json");
    let stranger_key = dir.path().join("stranger.json");
    let mut owner = String::new();
    for (file, address) in [(&owner_key, Some(&mut owner)), (&stranger_key, None)] {
        let out = common::process::heterogen(&["wallet", "new", "--out", file.to_str().unwrap()]);
        let printed = ok(&out).trim().to_string();
        if let Some(address) = address {
            *address = printed;
        }
    }
    let node = spawn_node_closed(&dir.path().join("data"), &owner).await;
    let owner_flag = ["--key", owner_key.to_str().unwrap()];
    let file = dir.path().join("w.js");
    std::fs::write(&file, "await Stels.sleep(1000);").unwrap();
    let out = cli(
        &node,
        &[&["workers", "create", file.to_str().unwrap()][..], &owner_flag].concat(),
        None,
    );
    let sid = ok(&out).trim().to_string();
    ok(&cli(
        &node,
        &[&["secrets", "set", &sid, "K"][..], &owner_flag].concat(),
        Some(VALUE),
    ));

    let stranger_flag = ["--key", stranger_key.to_str().unwrap()];
    for args in [
        vec!["secrets", "list", &sid],
        vec!["secrets", "set", &sid, "K"],
        vec!["secrets", "rm", &sid, "K"],
    ] {
        let out = cli(&node, &[&args[..], &stranger_flag].concat(), Some("other"));
        fails(&out, 1, "error (403): Forbidden");
    }
    let out = cli(
        &node,
        &[&["secrets", "list", &sid][..], &owner_flag].concat(),
        None,
    );
    assert!(ok(&out).contains('K'));
}

/// A node that only `owner` may manage (no `--open`).
async fn spawn_node_closed(dir: &Path, owner: &str) -> NodeProcess {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_heterogen"));
    command.env("RUST_LOG", "error");
    common::process::spawn_with_command(command, dir, &["--fsync", "false", "--owners", owner]).await
}

#[tokio::test]
async fn no_plaintext_in_the_data_directory_and_another_key_refuses_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = spawn_node(&data, &["--fsync", "false", "--js-threads", "2"]).await;
    let script = "logger.info('using', Stels.secrets.TOKEN); await Stels.sleep(50);";
    let sid = worker(&node, dir.path(), script, false);
    ok(&cli(&node, &["secrets", "set", &sid, "TOKEN"], Some(VALUE)));
    ok(&cli(&node, &["workers", "start", &sid], None));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let logs = ok(&cli(&node, &["logs", &sid, "-n", "5"], None));
        assert!(!logs.contains(VALUE), "{logs}");
        if logs.contains("using ***") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no masked line: {logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let show = ok(&cli(&node, &["workers", "show", &sid, "--json"], None));
    assert!(!show.contains(VALUE), "{show}");
    // Stopped the way an operator stops it: everything flushed.
    node.terminate();
    let status = tokio::time::timeout(Duration::from_secs(20), node.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");

    // The scan sees what the node stored (the worker's note), and not the value.
    assert!(
        !files_holding(&data, b"note-marker-4d2c").is_empty(),
        "the scan finds stored text"
    );
    assert!(
        !files_holding(&data, b"using ***").is_empty(),
        "the log history is stored"
    );
    assert_eq!(files_holding(&data, VALUE.as_bytes()), Vec::<String>::new());

    // A key file that is no key: exit 2, naming the file.
    let broken = dir.path().join("broken-key");
    std::fs::write(&broken, "0123\n").unwrap();
    let (code, said) = refused_start(&data, &["--secrets-key", broken.to_str().unwrap()], &[]).await;
    assert_eq!(code, Some(2), "stderr: {said}");
    assert!(said.contains("cannot use the secrets key"), "{said}");
    assert!(
        said.contains(&format!("{} is not a secrets key file", broken.display())),
        "{said}"
    );

    // Another key: the node runs but refuses secrets, naming the problem and the way out.
    let other = dir.path().join("other-key");
    std::fs::write(&other, format!("{}\n", "5a".repeat(32))).unwrap();
    let node = spawn_node(
        &data,
        &["--fsync", "false", "--secrets-key", other.to_str().unwrap()],
    )
    .await;
    let out = cli(&node, &["secrets", "set", &sid, "TOKEN"], Some("new-value"));
    fails(&out, 1, "error (503): This node cannot seal secrets: ");
    let said = stderr(&out);
    assert!(
        said.contains("is not the key this cluster's secrets are sealed with"),
        "{said}"
    );
    assert!(said.contains("--secrets-key-reset"), "{said}");
    let listed = ok(&cli(&node, &["secrets", "list", &sid], None));
    assert!(listed.contains("TOKEN"), "{listed}");
}
