//! `heterogen login` through its binary against a real node that has owners: the session is
//! saved as a profile (mode 0600) that later commands use, `--profile` names several, a `ws://`
//! URL works, a refused saved session says what to do, and a failed login names its cause.

mod common;

use assert_cmd::Command;
use serde_json::Value;

use common::process::spawn_node_logged;

/// The binary with saved logins in `config`, and nothing from the caller's environment.
fn cli(config: &std::path::Path) -> Command {
    let mut command = Command::from_std(common::process::client_command());
    command.env("HETEROGEN_CONFIG_DIR", config);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `command` on a blocking thread (the node runs on this test's runtime).
async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_saved_login_serves_later_commands() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let key = dir.path().join("owner.json");
    let out = run({
        let mut c = cli(&config);
        c.args(["wallet", "new", "--out"]).arg(&key);
        c
    })
    .await;
    let address = text(&out.stdout).trim().to_string();
    let node = spawn_node_logged(
        &dir.path().join("data"),
        &["--owners", &address],
        &dir.path().join("node.log"),
        "warn",
    )
    .await;
    let ws = format!("ws://{}", node.addr);
    let http = format!("http://{}", node.addr);

    // Without a login the node refuses, and says how to log in.
    let out = run({
        let mut c = cli(&config);
        c.args(["workers", "list", "--url", &ws]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("heterogen login"),
        "{}",
        text(&out.stderr)
    );

    // `login` with a ws:// URL saves the default profile, readable by its owner only.
    let out = run({
        let mut c = cli(&config);
        c.args(["login", "--url", &ws, "--key"]).arg(&key);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let session = text(&out.stdout).trim().to_string();
    assert_eq!(session.len(), 64, "{session}");
    let file = config.join("profiles.toml");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("[default]") && saved.contains(&session), "{saved}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Later commands need neither the URL nor the key.
    let out = run({
        let mut c = cli(&config);
        c.args(["workers", "list", "--json"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        Value::Array(vec![])
    );

    // The printed token works as --session (and HETEROGEN_SESSION) without any profile.
    let out = run({
        let mut c = cli(&dir.path().join("elsewhere"));
        c.args(["call", "listWorkers", "--url", &http])
            .env("HETEROGEN_SESSION", &session);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A second profile, and a named profile that does not exist.
    let out = run({
        let mut c = cli(&config);
        c.args(["login", "--profile", "second", "--json", "--url", &http, "--key"])
            .arg(&key);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["profile"], "second");
    assert_eq!(answer["address"], address.as_str());
    let out = run({
        let mut c = cli(&config);
        c.args(["call", "listWorkers", "--profile", "second"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run({
        let mut c = cli(&config);
        c.args(["call", "listWorkers", "--profile", "third"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("heterogen login --profile third"),
        "{}",
        text(&out.stderr)
    );

    // A saved session the node does not know is refused with what to do.
    let forged = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&session, &"0".repeat(64));
    std::fs::write(&file, forged).unwrap();
    let out = run({
        let mut c = cli(&config);
        c.args(["workers", "list"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("saved in profile \"default\" was refused"),
        "{}",
        text(&out.stderr)
    );

    // logout forgets the profile; a second logout says there is none.
    let out = run({
        let mut c = cli(&config);
        c.args(["logout", "--profile", "second"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run({
        let mut c = cli(&config);
        c.args(["logout", "--profile", "second"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn a_failed_login_names_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let key = dir.path().join("k.json");
    let out = run({
        let mut c = cli(&config);
        c.args(["wallet", "new", "--out"]).arg(&key);
        c
    })
    .await;
    assert!(out.status.success());
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run({
        let mut c = cli(&config);
        c.args(["login", "--url", &format!("ws://127.0.0.1:{port}"), "--key"])
            .arg(&key);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.to_lowercase().contains("connection refused"), "{stderr}");
    assert!(stderr.contains("heterogen serve"), "{stderr}");

    // Without --key, login is a usage error.
    let out = run({
        let mut c = cli(&config);
        c.args(["login", "--url", &format!("ws://127.0.0.1:{port}")]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--key"));
    assert!(!config.join("profiles.toml").exists());
}
