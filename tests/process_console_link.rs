//! `heterogen console`: logs in with a key file and prints a console link whose session sits in
//! the fragment only; it starts `$BROWSER` on it unless told not to; the node never logs it.

mod common;

use std::path::Path;
use std::process::Command;

use common::process::spawn_node_logged;

fn heterogen(args: &[&str], browser: Option<&Path>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heterogen"));
    command
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    match browser {
        Some(path) => command.env("BROWSER", path),
        None => command.env_remove("BROWSER"),
    };
    command.output().unwrap()
}

async fn works(url: &str, session: &str) -> bool {
    reqwest::Client::new()
        .post(url)
        .header("stels-session", session)
        .json(&serde_json::json!({"webfix": "1.0", "method": "listWorkers"}))
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

#[tokio::test]
async fn the_link_logs_in_opens_the_browser_and_stays_out_of_the_node_log() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("owner.json");
    let out = heterogen(&["wallet", "new", "--out", key.to_str().unwrap()], None);
    let address = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let log = dir.path().join("node.log");
    let _node = spawn_node_logged(&dir.path().join("data"), &["--owners", &address], &log, "debug").await;
    let http = _node.url().trim_end_matches('/').to_string();
    let ws = http.replace("http://", "ws://");

    let run = |args: Vec<String>, browser: Option<std::path::PathBuf>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            heterogen(&args, browser.as_deref())
        })
    };
    let args = |extra: &[&str]| {
        let mut v = vec![
            "console".to_string(),
            "--url".into(),
            ws.clone(),
            "--key".into(),
            key.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    let out = run(args(&["--no-open"]), None).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (page, session) = link.split_once("#session=").expect("a fragment");
    assert_eq!(
        page,
        format!("{http}/console/"),
        "a ws:// URL gives an http:// link"
    );
    assert!(!page.contains('?'));
    assert!(works(&http, session).await);

    // A stand-in browser records what it was asked to open.
    let opened = dir.path().join("opened.txt");
    let browser = dir.path().join("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", opened.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(args(&[]), Some(browser)).await.unwrap();
    assert!(out.status.success());
    let second = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_ne!(second, link, "a fresh session each time");
    let mut seen = String::new();
    for _ in 0..100 {
        seen = std::fs::read_to_string(&opened).unwrap_or_default();
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, second, "the browser was started on the link");

    let (_, second_session) = second.split_once("#session=").unwrap();
    assert!(works(&http, second_session).await);
    let node_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        node_log.contains("DEBUG") || node_log.contains("INFO"),
        "the node did log"
    );
    for token in [session, second_session] {
        assert!(
            !node_log.contains(token),
            "the node logged a session:\n{node_log}"
        );
    }

    let bad = run(
        vec![
            "console".into(),
            "--url".into(),
            http.clone(),
            "--key".into(),
            "/nonexistent.json".into(),
            "--no-open".into(),
        ],
        None,
    )
    .await
    .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.json"));
}
