//! `heterogen wallet new` and `wallet show`: the key file is private, never overwritten, and
//! shows the same wallet back; bad files get a clear error.

mod common;

use common::process::heterogen;

#[test]
fn new_then_show() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.json");
    let path_text = path.to_str().unwrap();
    let out = heterogen(&["wallet", "new", "--out", path_text]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let address = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        heterogen::auth::gliesereum::validate_address(&address),
        "{address}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let out = heterogen(&["wallet", "show", path_text]);
    assert!(out.status.success());
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains(&format!("address: {address}")), "{shown}");
    assert!(
        !shown.contains("privateKey"),
        "show must not print the private key"
    );

    let out = heterogen(&["wallet", "show", path_text, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["address"], address.as_str());
    assert_eq!(shown["publicKey"].as_str().unwrap().len(), 66, "{shown}");
    assert_eq!(shown.as_object().unwrap().len(), 3, "no private key: {shown}");
    let other = dir.path().join("other.json");
    let out = heterogen(&["wallet", "new", "--json", "--out", other.to_str().unwrap()]);
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(heterogen::auth::gliesereum::validate_address(
        created["address"].as_str().unwrap()
    ));

    let again = heterogen(&["wallet", "new", "--out", path_text]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
}

#[test]
fn bad_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let out = heterogen(&["wallet", "show", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"privateKey\":\"zz\"}").unwrap();
    let out = heterogen(&["wallet", "show", garbage.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a heterogen wallet key file"));
}

#[tokio::test]
async fn login_prints_a_session_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("owner.json");
    let out = heterogen(&["wallet", "new", "--out", key.to_str().unwrap()]);
    let address = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let stranger_key = dir.path().join("stranger.json");
    assert!(
        heterogen(&["wallet", "new", "--out", stranger_key.to_str().unwrap()])
            .status
            .success()
    );

    let mut node = tokio::process::Command::new(env!("CARGO_BIN_EXE_heterogen"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--fsync",
            "false",
            "--owners",
            &address,
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(node.stdout.take().unwrap()));
    let line = lines.next_line().await.unwrap().unwrap();
    let url = line.strip_prefix("heterogen listening on ").unwrap().to_string();

    let login = |key: &std::path::Path| {
        let url = url.clone();
        let key = key.to_path_buf();
        tokio::task::spawn_blocking(move || {
            heterogen(&["login", "--url", &url, "--key", key.to_str().unwrap()])
        })
    };
    let out = login(&key).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let response = reqwest::Client::new()
        .post(&url)
        .header("stels-session", &session)
        .json(&serde_json::json!({"webfix":"1.0","method":"listWorkers"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // A stranger gets a session too, but no worker access; a dead node is a clear error.
    assert!(login(&stranger_key).await.unwrap().status.success());
    node.start_kill().unwrap();
    node.wait().await.unwrap();
    let out = login(&key).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}
