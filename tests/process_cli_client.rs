//! The command-line client (`call`, `workers`, `logs`, `stats`) as a real process against a
//! real node process: outputs, exit codes (0 / 1 on an error status / 2 on a usage problem),
//! login with `--key`, and the streaming commands read for a while then interrupted.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::process::{fails, ok, stderr, stdout};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_heterogen");

/// A `heterogen serve` child on a free port.
struct Node {
    _child: Child,
    url: String,
    dir: tempfile::TempDir,
}

/// Starts a node with fast test timings; `--open` unless `args` names `--owners`.
async fn node(args: &[&str]) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--fsync", "false"])
        .args(["--js-threads", "2", "--stop-grace-ms", "300", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(args);
    if !args.contains(&"--owners") {
        command.arg("--open");
    }
    let mut child = command
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("node did not start within 30 s")
        .unwrap()
        .expect("node exited before listening");
    let addr = line
        .strip_prefix("heterogen listening on http://")
        .unwrap()
        .to_string();
    Node {
        _child: child,
        url: format!("ws://{addr}"),
        dir,
    }
}

/// Runs the client with `--url` of `node` (or any URL) after `args`.
async fn cli(url: &str, args: &[&str]) -> Output {
    cli_env(url, args, &[]).await
}

async fn cli_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let run = Command::new(BIN)
        .args(args)
        .args(["--url", url])
        .env_remove("HETEROGEN_URL")
        .env_remove("HETEROGEN_KEY")
        .env_remove("HETEROGEN_SESSION")
        .env_remove("HETEROGEN_PROFILE")
        .env("HETEROGEN_CONFIG_DIR", config_dir())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the client hung")
        .unwrap()
}

/// Saved logins of these tests: none, and never the user's own.
fn config_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-client-config")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// `workers list --json` as entries.
async fn list(node: &Node) -> Vec<Value> {
    let out = cli(&node.url, &["workers", "list", "--json"]).await;
    serde_json::from_str::<Value>(&ok(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

async fn raw_of(node: &Node, sid: &str) -> Value {
    let entries = list(node).await;
    let entry = entries.iter().find(|e| e["value"]["raw"]["sid"] == sid).unwrap();
    entry["value"]["raw"].clone()
}

/// Creates and starts a worker running `script`; returns its sid.
async fn running_worker(node: &Node, script: &str) -> String {
    let file = write(node.dir.path(), "worker.js", script);
    let out = cli(&node.url, &["workers", "create", &file, "--priority", "high"]).await;
    let sid = ok(&out).trim().to_string();
    ok(&cli(&node.url, &["workers", "start", &sid]).await);
    sid
}

/// Sends SIGINT (what Ctrl-C sends) to a child.
fn interrupt(child: &Child) {
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// A streaming client child with its stdout as lines.
fn spawn_client(url: &str, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--url", url])
        .env_remove("HETEROGEN_KEY")
        .env("HETEROGEN_CONFIG_DIR", config_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Reads lines until `done` says so, failing after `secs` seconds.
async fn read_until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    secs: u64,
    what: &str,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done(&seen) {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => seen.push(line),
            Ok(other) => panic!("the client's output ended ({other:?}) before {what}; got {seen:#?}"),
            Err(_) => panic!("timed out after {secs} s waiting for {what}; got {seen:#?}"),
        }
    }
    seen
}

/// Interrupts a streaming client and expects it to end with exit code 0.
async fn interrupt_and_expect_success(mut child: Child) {
    interrupt(&child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the client did not end on SIGINT")
        .unwrap();
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut err)
            .await
            .unwrap();
    }
    assert_eq!(status.code(), Some(0), "stderr: {err}");
}

#[tokio::test]
async fn call_prints_the_result_and_fails_on_error_statuses() {
    let node = node(&[]).await;
    let out = cli(&node.url, &["call", "listWorkers"]).await;
    assert_eq!(ok(&out), "[]\n", "compact JSON when stdout is not a terminal");

    let out = cli(&node.url, &["call", "noSuchMethod"]).await;
    fails(&out, 1, "the node has no method \"noSuchMethod\"");
    assert!(stdout(&out).is_empty());
    // A near miss names the method meant.
    let out = cli(&node.url, &["call", "listWorker"]).await;
    fails(&out, 1, "did you mean listWorkers?");

    let out = cli(
        &node.url,
        &["call", "setWorker", "{\"scriptContent\":\"const a = ;\"}"],
    )
    .await;
    fails(&out, 1, "error (400): Script minification failed");
    assert!(
        stderr(&out).contains("details: Unexpected token"),
        "{}",
        stderr(&out)
    );

    let out = cli(&node.url, &["call", "setWorker", "{not json"]).await;
    fails(&out, 2, "not JSON");

    let out = cli(&node.url, &["call", "setWorker", "{\"note\":\"via call\"}"]).await;
    let entry: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(entry["value"]["raw"]["note"], "via call");
    assert_eq!(entry["value"]["raw"]["active"], false);

    // The URL may also come from the environment, and http:// is accepted.
    let http_url = node.url.replace("ws://", "http://");
    let run = Command::new(BIN)
        .args(["call", "listWorkers"])
        .env("HETEROGEN_URL", &http_url)
        .env_remove("HETEROGEN_KEY")
        .output()
        .await
        .unwrap();
    let listed: Value = serde_json::from_str(&ok(&run)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn workers_create_list_start_stop_edit() {
    let node = node(&[]).await;
    let file = write(
        node.dir.path(),
        "a.js",
        "logger.info(\"first\");\nawait Stels.sleep(100);\n",
    );
    let out = cli(
        &node.url,
        &[
            "workers",
            "create",
            &file,
            "--priority",
            "low",
            "--note",
            "from the cli",
        ],
    )
    .await;
    let sid = ok(&out).trim().to_string();
    assert!(uuid::Uuid::try_parse(&sid).is_ok(), "not a sid: {sid:?}");

    let raw = raw_of(&node, &sid).await;
    assert_eq!(raw["active"], false);
    assert_eq!(raw["priority"], "low");
    assert_eq!(raw["note"], "from the cli");
    assert!(raw["script"].as_str().unwrap().contains("first"));

    let table = ok(&cli(&node.url, &["workers", "list"]).await);
    let mut rows = table.lines();
    assert!(rows.next().unwrap().starts_with("SID"), "{table}");
    let row = rows.next().unwrap();
    assert!(
        row.starts_with(&sid) && row.contains("low") && row.contains("from the cli"),
        "{table}"
    );

    assert_eq!(
        ok(&cli(&node.url, &["workers", "start", &sid]).await),
        format!("started {sid}\n")
    );
    assert_eq!(raw_of(&node, &sid).await["active"], true);
    let again = ok(&cli(&node.url, &["workers", "start", &sid]).await);
    assert!(again.contains("already active"), "{again}");

    let edited = write(
        node.dir.path(),
        "b.js",
        "logger.info(\"second\");\nawait Stels.sleep(100);\n",
    );
    let out = ok(&cli(&node.url, &["workers", "edit", &sid, &edited]).await);
    assert!(out.contains("script replaced"), "{out}");
    let raw = raw_of(&node, &sid).await;
    assert!(raw["script"].as_str().unwrap().contains("second"), "{raw}");
    assert_eq!(raw["active"], true, "edit keeps the worker running");

    assert_eq!(
        ok(&cli(&node.url, &["workers", "stop", &sid]).await),
        format!("stopped {sid}\n")
    );
    assert_eq!(raw_of(&node, &sid).await["active"], false);

    // With --json: the entry.
    let out = cli(
        &node.url,
        &["workers", "create", &file, "--mode", "single", "--json"],
    )
    .await;
    let entry: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(entry["value"]["raw"]["mode"], "single");

    let unknown = "00000000-0000-4000-8000-000000000000";
    fails(
        &cli(&node.url, &["workers", "start", unknown]).await,
        1,
        "no worker with sid",
    );
    fails(
        &cli(&node.url, &["workers", "edit", unknown, &edited]).await,
        1,
        "no worker with sid",
    );
    fails(
        &cli(&node.url, &["workers", "create", "/nonexistent/x.js"]).await,
        1,
        "cannot read",
    );
    // A bad flag value is clap's usage error.
    fails(
        &cli(&node.url, &["workers", "create", &file, "--mode", "sometimes"]).await,
        2,
        "--mode",
    );
    // The server's own validation comes back as an error status.
    fails(
        &cli(
            &node.url,
            &["workers", "create", &file, "--execution-mode", "exclusive"],
        )
        .await,
        1,
        "error (400): Exclusive mode requires assignedNode",
    );
}

#[tokio::test]
async fn workers_show_restart_and_delete_by_sid_prefix() {
    let node = node(&[]).await;
    let sid = running_worker(&node, "logger.info('tick');\nawait Stels.sleep(50);").await;
    let prefix = &sid[..8];
    wait_for_log_line(&node, &sid, "tick").await;

    let shown = ok(&cli(&node.url, &["workers", "show", prefix]).await);
    for field in [
        "sid ",
        "active ",
        "running here",
        "memory",
        "cpu time",
        "versionstamp",
    ] {
        assert!(shown.contains(field), "{field:?} missing:\n{shown}");
    }
    assert!(shown.contains(&sid), "{shown}");
    let shown: Value =
        serde_json::from_str(&ok(&cli(&node.url, &["workers", "show", prefix, "--json"]).await)).unwrap();
    assert_eq!(shown["entry"]["value"]["raw"]["sid"], sid.as_str());
    assert_eq!(shown["stats"]["isRunning"], true);
    let script = ok(&cli(&node.url, &["workers", "show", prefix, "--script"]).await);
    assert!(script.contains("tick"), "{script}");

    // Restart: the run ends and a new one starts.
    let started = |lines: &str| lines.matches("Worker started").count();
    let before = started(&ok(&cli(&node.url, &["logs", &sid]).await));
    assert_eq!(
        ok(&cli(&node.url, &["workers", "restart", prefix]).await),
        format!("restarted {sid}\n")
    );
    let mut after = 0;
    for _ in 0..100 {
        after = started(&ok(&cli(&node.url, &["logs", &sid]).await));
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(after > before, "no new run after the restart");
    assert_eq!(raw_of(&node, &sid).await["active"], true);

    // Several sids share a first hex digit once there are 17 workers: a prefix that names
    // more than one is a usage error that lists them.
    let file = write(node.dir.path(), "idle.js", "await Stels.sleep(10);");
    for _ in 0..16 {
        ok(&cli(&node.url, &["workers", "create", &file]).await);
    }
    let sids: Vec<String> = list(&node)
        .await
        .iter()
        .map(|e| e["value"]["raw"]["sid"].as_str().unwrap().to_string())
        .collect();
    let shared = (0..sids.len())
        .flat_map(|i| (i + 1..sids.len()).map(move |j| (i, j)))
        .find(|&(i, j)| sids[i][..1] == sids[j][..1])
        .map(|(i, _)| sids[i][..1].to_string())
        .unwrap();
    fails(
        &cli(&node.url, &["workers", "show", &shared]).await,
        2,
        "give more of the sid",
    );
    fails(
        &cli(&node.url, &["workers", "show", "zzz"]).await,
        1,
        "no worker with sid zzz",
    );

    // Delete asks; without a terminal it will not, unless --yes.
    fails(&cli(&node.url, &["workers", "delete", prefix]).await, 2, "--yes");
    assert!(
        list(&node)
            .await
            .iter()
            .any(|e| e["value"]["raw"]["sid"] == sid.as_str())
    );
    let out = ok(&cli(&node.url, &["workers", "delete", prefix, "--yes"]).await);
    assert_eq!(out, format!("deleted {sid}\n"));
    assert!(
        !list(&node)
            .await
            .iter()
            .any(|e| e["value"]["raw"]["sid"] == sid.as_str())
    );
    fails(
        &cli(&node.url, &["workers", "delete", &sid, "--yes"]).await,
        1,
        "no worker",
    );
}

/// Waits until the worker's log holds `needle`.
async fn wait_for_log_line(node: &Node, sid: &str, needle: &str) {
    for _ in 0..100 {
        if ok(&cli(&node.url, &["logs", sid]).await).contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{needle:?} never appeared in the log of {sid}");
}

#[tokio::test]
async fn stats_prints_a_table() {
    let node = node(&[]).await;
    let out = ok(&cli(&node.url, &["stats"]).await);
    assert!(out.starts_with("workers 0  running 0"), "{out}");
    let sid = running_worker(&node, "await Stels.sleep(20);").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let table = loop {
        let out = ok(&cli(&node.url, &["stats"]).await);
        if out.lines().any(|l| l.starts_with(&sid) && l.contains("yes")) {
            break out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never showed as running: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(table.contains("SID") && table.contains("EXECS"), "{table}");
    let json: Value = serde_json::from_str(&ok(&cli(&node.url, &["stats", "--json"]).await)).unwrap();
    assert_eq!(json["totalWorkers"], 1);
}

#[tokio::test]
async fn a_node_that_is_down_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    // Exit 3, and what to do about it.
    let advice = "is a node running? start one with 'heterogen serve'";
    fails(&cli(&url, &["call", "listWorkers"]).await, 3, advice);
    fails(&cli(&url, &["workers", "list"]).await, 3, "cannot reach");
    fails(&cli(&url, &["stats", "--watch"]).await, 3, "cannot reach");
    // A usage problem is found before connecting.
    fails(
        &cli(&url, &["call", "setWorker", "{not json"]).await,
        2,
        "not JSON",
    );
    fails(&cli("127.0.0.1:8088", &["call", "listWorkers"]).await, 2, "--url");
}

#[tokio::test]
async fn an_owners_node_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("owner.json");
    let key = key.to_str().unwrap();
    let stranger = dir.path().join("stranger.json");
    let stranger = stranger.to_str().unwrap();
    let wallet_new = |out: &str| {
        std::process::Command::new(BIN)
            .args(["wallet", "new", "--out", out])
            .output()
            .unwrap()
    };
    let address = ok(&wallet_new(key)).trim().to_string();
    ok(&wallet_new(stranger));
    let node = node(&["--owners", &address]).await;

    let out = cli(&node.url, &["call", "listWorkers"]).await;
    fails(&out, 1, "401");
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));

    let out = cli(&node.url, &["call", "listWorkers", "--key", key]).await;
    assert_eq!(ok(&out), "[]\n");
    let file = write(dir.path(), "w.js", "await Stels.sleep(10);");
    let out = cli_env(
        &node.url,
        &["workers", "create", &file],
        &[("HETEROGEN_KEY", key)],
    )
    .await;
    let sid = ok(&out).trim().to_string();
    let out = cli_env(&node.url, &["workers", "list"], &[("HETEROGEN_KEY", key)]).await;
    assert!(ok(&out).contains(&sid));

    let out = cli(&node.url, &["call", "listWorkers", "--key", stranger]).await;
    fails(&out, 1, "error (403): Forbidden");
}

// ---- these need the server's getWorkerLogs and subscribe (issue #5, server side) ----

#[tokio::test]
async fn logs_prints_a_workers_lines() {
    let node = node(&[]).await;
    let sid = running_worker(
        &node,
        "logger.info(\"hello from the cli test\");\nawait Stels.sleep(50);",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let out = loop {
        let out = ok(&cli(&node.url, &["logs", &sid]).await);
        if out
            .lines()
            .filter(|l| l.contains("hello from the cli test"))
            .count()
            >= 2
        {
            break out;
        }
        assert!(tokio::time::Instant::now() < deadline, "no log lines: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(out.ends_with('\n'));
    for line in out.lines() {
        assert!(
            line.starts_with('[') && !line.is_empty(),
            "not a log line: {line:?} in {out}"
        );
    }
    let json = ok(&cli(&node.url, &["logs", &sid, "--json"]).await);
    let first: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["sid"], sid.as_str());
    assert!(first["cursor"].is_u64(), "{first}");
    fails(
        &cli(&node.url, &["logs", "not-a-sid"]).await,
        1,
        "no worker with sid not-a-sid",
    );
}

#[tokio::test]
async fn logs_follow_streams_new_lines_until_interrupted() {
    let node = node(&[]).await;
    let sid = running_worker(&node, "logger.info(\"old version\");\nawait Stels.sleep(50);").await;
    let (child, mut lines) = spawn_client(&node.url, &["logs", &sid, "-f"]);
    read_until(&mut lines, 15, "an old-version line", |seen| {
        seen.iter().any(|l| l.contains("old version"))
    })
    .await;
    // A line written after the client started can only arrive through the stream.
    let file = write(
        node.dir.path(),
        "new.js",
        "logger.info(\"new version\");\nawait Stels.sleep(50);",
    );
    ok(&cli(&node.url, &["workers", "edit", &sid, &file]).await);
    let seen = read_until(&mut lines, 15, "three new-version lines", |seen| {
        seen.iter().filter(|l| l.contains("new version")).count() >= 3
    })
    .await;
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a line came twice: {seen:#?}");
    interrupt_and_expect_success(child).await;
}

#[tokio::test]
async fn stats_watch_prints_one_plain_line_per_push() {
    let node = node(&[]).await;
    running_worker(&node, "await Stels.sleep(20);").await;
    let (child, mut lines) = spawn_client(&node.url, &["stats", "--watch", "--interval", "200"]);
    let seen = read_until(&mut lines, 10, "three stats lines", |seen| seen.len() >= 3).await;
    for line in &seen {
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{line}");
        assert!(
            rest.starts_with("workers=1 running=1 stopped=0 executions="),
            "{line}"
        );
        assert!(
            !line.contains('\x1b'),
            "no escapes when stdout is not a terminal: {line:?}"
        );
    }
    interrupt_and_expect_success(child).await;
}

/// `heterogen ARGS --url URL` on a pseudo-terminal (util-linux `script`): what it printed.
fn on_a_terminal(url: &str, args: &str, extra_env: &[(&str, &str)]) -> String {
    let command = format!("{BIN} {args} --url {url}");
    let mut script = std::process::Command::new("script");
    script
        .args(["-qfc", &command, "/dev/null"])
        .env("HETEROGEN_CONFIG_DIR", config_dir())
        .env_remove("NO_COLOR")
        .env_remove("HETEROGEN_KEY");
    for (name, value) in extra_env {
        script.env(name, value);
    }
    let output = script.output().expect("util-linux `script` is needed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn tables_are_coloured_on_a_terminal_only_and_never_with_no_color() {
    let node = node(&[]).await;
    let sid = running_worker(&node, "await Stels.sleep(20);").await;
    let url = node.url.clone();
    let (coloured, plain, piped) = tokio::task::spawn_blocking(move || {
        (
            on_a_terminal(&url, "workers list", &[]),
            on_a_terminal(&url, "workers list", &[("NO_COLOR", "1")]),
            std::process::Command::new(BIN)
                .args(["workers", "list", "--url", &url])
                .env("HETEROGEN_CONFIG_DIR", config_dir())
                .env_remove("NO_COLOR")
                .output()
                .unwrap(),
        )
    })
    .await
    .unwrap();
    assert!(
        coloured.contains(&sid) && coloured.contains("\u{1b}["),
        "{coloured:?}"
    );
    assert!(plain.contains(&sid) && !plain.contains("\u{1b}["), "{plain:?}");
    let piped = stdout(&piped);
    assert!(piped.contains(&sid) && !piped.contains("\u{1b}["), "{piped:?}");
}
