//! `heterogen deploy` through its binary against a real node: a manifest's workers are created
//! with their settings, their sids recorded in the manifest (comments kept), a second deploy
//! sends nothing, a changed script is updated, a worker edited on the node since the last
//! deploy is reported and left alone unless `--force`, and a bad manifest changes nothing.

mod common;

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

use common::process::{spawn_node, test_config_dir};

fn cli(url: &str, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heterogen"));
    command
        .current_dir(dir)
        .env("HETEROGEN_CONFIG_DIR", test_config_dir())
        .env("HETEROGEN_URL", url)
        .env_remove("HETEROGEN_KEY")
        .env_remove("HETEROGEN_SESSION")
        .env_remove("HETEROGEN_PROFILE");
    command
}

async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn deploy(url: &str, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = cli(url, dir);
    command.arg("deploy").args(extra);
    run(command).await
}

/// The node's entries by sid.
async fn entries(url: &str, dir: &Path) -> Vec<Value> {
    let mut command = cli(url, dir);
    command.args(["workers", "list", "--json"]);
    let out = run(command).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn entry<'a>(all: &'a [Value], sid: &str) -> &'a Value {
    all.iter().find(|e| e["value"]["raw"]["sid"] == sid).unwrap()
}

/// The `sid = "…"` values the manifest holds, in order.
fn recorded_sids(manifest: &str) -> Vec<String> {
    let parsed: toml::Table = toml::from_str(manifest).unwrap();
    parsed["worker"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.get("sid").and_then(|s| s.as_str()).map(str::to_string))
        .collect()
}

const MANIFEST: &str = r#"# Our workers.
[[worker]]
name = "ticker"   # logs a tick
file = "ticker.js"
priority = "high"

[[worker]]
name = "report"
file = "jobs/report.js"
mode = "single"
active = false
note = "nightly report"
"#;

#[tokio::test]
async fn deploy_creates_updates_and_reports_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(&dir.path().join("data"), &["--fsync", "false"]).await;
    let url = node.url().replace("http://", "ws://");
    let work = dir.path().join("project");
    std::fs::create_dir_all(work.join("jobs")).unwrap();
    std::fs::write(
        work.join("ticker.js"),
        "// tick\nlogger.info('tick');\nawait Stels.sleep(50);\n",
    )
    .unwrap();
    std::fs::write(work.join("jobs/report.js"), "logger.info('report');\n").unwrap();
    std::fs::write(work.join("heterogen.toml"), MANIFEST).unwrap();

    // The plan changes nothing.
    let out = deploy(&url, &work, &["--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "create     ticker\ncreate     report\n");
    assert_eq!(
        std::fs::read_to_string(work.join("heterogen.toml")).unwrap(),
        MANIFEST
    );
    assert!(entries(&url, &work).await.is_empty());

    let out = deploy(&url, &work, &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifest = std::fs::read_to_string(work.join("heterogen.toml")).unwrap();
    assert!(
        manifest.starts_with("# Our workers.") && manifest.contains("# logs a tick"),
        "{manifest}"
    );
    let sids = recorded_sids(&manifest);
    assert_eq!(sids.len(), 2, "{manifest}");
    let all = entries(&url, &work).await;
    let ticker = &entry(&all, &sids[0])["value"]["raw"];
    assert_eq!(ticker["priority"], "high");
    assert_eq!(ticker["active"], true);
    let report = &entry(&all, &sids[1])["value"]["raw"];
    assert_eq!(report["mode"], "single");
    assert_eq!(report["active"], false);
    assert_eq!(report["note"], "nightly report");

    // Nothing changed: nothing is sent (no versionstamp moves).
    let out = deploy(&url, &work, &["--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "unchanged"),
        "{rows}"
    );
    let again = entries(&url, &work).await;
    for sid in &sids {
        assert_eq!(
            entry(&all, sid)["versionstamp"],
            entry(&again, sid)["versionstamp"]
        );
    }

    // A changed script is updated under the recorded versionstamp.
    std::fs::write(
        work.join("ticker.js"),
        "logger.info('tock');\nawait Stels.sleep(50);\n",
    )
    .unwrap();
    let out = deploy(&url, &work, &["--dry-run"]).await;
    assert_eq!(
        text(&out.stdout),
        format!(
            "update     ticker ({}): script\nunchanged  report ({})\n",
            sids[0], sids[1]
        )
    );
    let out = deploy(&url, &work, &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = entries(&url, &work).await;
    assert!(
        entry(&all, &sids[0])["value"]["raw"]["script"]
            .as_str()
            .unwrap()
            .contains("tock")
    );
    let manifest = std::fs::read_to_string(work.join("heterogen.toml")).unwrap();
    assert!(
        manifest.contains(entry(&all, &sids[0])["versionstamp"].as_str().unwrap()),
        "{manifest}"
    );

    // Someone edits the report on the node; the manifest changes it too: a conflict, reported.
    std::fs::write(work.join("edited.js"), "logger.info('edited in the console');\n").unwrap();
    let mut edit = cli(&url, &work);
    edit.args(["workers", "edit", &sids[1], "edited.js"]);
    assert!(run(edit).await.status.success());
    std::fs::write(work.join("jobs/report.js"), "logger.info('report v2');\n").unwrap();
    let out = deploy(&url, &work, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("conflict   report"),
        "{}",
        text(&out.stdout)
    );
    let all = entries(&url, &work).await;
    let script = entry(&all, &sids[1])["value"]["raw"]["script"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(script.contains("edited in the console"), "{script}");
    let out = deploy(&url, &work, &["--force"]).await;
    assert!(out.status.success(), "{}", text(&out.stdout));
    let all = entries(&url, &work).await;
    let script = entry(&all, &sids[1])["value"]["raw"]["script"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(script.contains("report v2"), "{script}");
}

#[tokio::test]
async fn a_bad_manifest_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(&dir.path().join("data"), &["--fsync", "false"]).await;
    let url = node.url().replace("http://", "ws://");
    let work = dir.path().join("project");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("a.js"), "logger.info('a');").unwrap();
    let cases = [
        (
            "[[worker]]\nname = \"a\"\nfile = \"a.js\"\npriority = \"urgent\"\n",
            "priority",
        ),
        (
            "[[worker]]\nname = \"a\"\nfile = \"a.js\"\ncolour = \"red\"\n",
            "colour",
        ),
        ("[[worker]]\nname = \"a\"\nfile = \"missing.js\"\n", "missing.js"),
        (
            "[[worker]]\nname = \"a\"\nfile = \"a.js\"\n[[worker]]\nname = \"a\"\nfile = \"a.js\"\n",
            "twice",
        ),
    ];
    for (manifest, needle) in cases {
        std::fs::write(work.join("heterogen.toml"), manifest).unwrap();
        let out = deploy(&url, &work, &[]).await;
        assert_eq!(out.status.code(), Some(2), "{manifest}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(needle),
            "{needle}: {}",
            text(&out.stderr)
        );
    }
    assert!(entries(&url, &work).await.is_empty());
}
