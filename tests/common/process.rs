//! Running the real `heterogen` binary as a child process.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `heterogen ARGS…` run to its end: exit status and output. Saved logins go to a directory
/// of the test build, never the user's own, and no `HETEROGEN_*` setting of the caller leaks in.
pub fn heterogen(args: &[&str]) -> std::process::Output {
    client_command().args(args).output().unwrap()
}

/// The binary as a client command: [`heterogen`]'s environment, not started yet.
pub fn client_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_heterogen"));
    command.env("HETEROGEN_CONFIG_DIR", test_config_dir());
    for name in [
        "HETEROGEN_URL",
        "HETEROGEN_KEY",
        "HETEROGEN_SESSION",
        "HETEROGEN_PROFILE",
        "HETEROGEN_CA",
    ] {
        command.env_remove(name);
    }
    command
}

/// A port free on 127.0.0.1 a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `heterogen serve --listen LISTEN --data-dir DIR --open ARGS…` (a fixed address, so a test
/// can restart a node where its clients expect it), its log filtered to errors.
pub async fn spawn_node_at(listen: &str, dir: &Path, args: &[&str]) -> NodeProcess {
    let mut all = vec!["--open"];
    all.extend_from_slice(args);
    spawn_serve_at(
        listen,
        Command::new(env!("CARGO_BIN_EXE_heterogen")),
        dir,
        &all,
        Stdio::inherit(),
        "error",
    )
    .await
}

/// Where the client commands of these tests keep saved logins.
pub fn test_config_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-config")
}

/// A `heterogen serve` child and the address it printed.
pub struct NodeProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

/// Starts `heterogen serve --listen 127.0.0.1:0 --data-dir DIR --open ARGS…` and waits for its
/// "listening" line.
pub async fn spawn_node(dir: &Path, args: &[&str]) -> NodeProcess {
    spawn_node_with_stderr(dir, args, Stdio::inherit(), "warn").await
}

/// [`spawn_node`] with its log filtered by `log_filter` (`RUST_LOG`) going to `stderr`.
pub async fn spawn_node_with_stderr(
    dir: &Path,
    args: &[&str],
    stderr: Stdio,
    log_filter: &str,
) -> NodeProcess {
    let command = Command::new(env!("CARGO_BIN_EXE_heterogen"));
    spawn_node_with(command, dir, args, stderr, log_filter).await
}

/// [`spawn_node`] with at most `limit` open descriptors (soft and hard, util-linux `prlimit`),
/// its stderr (warnings and errors) going to `stderr`.
pub async fn spawn_node_with_fd_limit(limit: u64, dir: &Path, args: &[&str], stderr: Stdio) -> NodeProcess {
    let mut prlimit = Command::new("prlimit");
    prlimit
        .arg(format!("--nofile={limit}:{limit}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_heterogen"));
    spawn_node_with(prlimit, dir, args, stderr, "warn").await
}

/// `heterogen serve --listen 127.0.0.1:0 --fsync false --data-dir DIR ARGS…` as a new user runs
/// it (no `--open`), its log (`RUST_LOG=log_filter`; an empty filter: no `RUST_LOG` at all)
/// written to the file `log`.
pub async fn spawn_node_logged(dir: &Path, args: &[&str], log: &Path, log_filter: &str) -> NodeProcess {
    let command = Command::new(env!("CARGO_BIN_EXE_heterogen"));
    let stderr = Stdio::from(std::fs::File::create(log).unwrap());
    let mut all = vec!["--fsync", "false"];
    all.extend_from_slice(args);
    spawn_serve(command, dir, &all, stderr, log_filter).await
}

/// `command` (the binary, with its environment set by the caller) run as
/// `serve --listen 127.0.0.1:0 --data-dir DIR ARGS…`, its log to this process's stderr.
pub async fn spawn_with_command(command: Command, dir: &Path, args: &[&str]) -> NodeProcess {
    spawn_serve(command, dir, args, Stdio::inherit(), "warn").await
}

async fn spawn_node_with(
    command: Command,
    dir: &Path,
    args: &[&str],
    stderr: Stdio,
    log_filter: &str,
) -> NodeProcess {
    let mut all = vec!["--open"];
    all.extend_from_slice(args);
    spawn_serve(command, dir, &all, stderr, log_filter).await
}

async fn spawn_serve(
    command: Command,
    dir: &Path,
    args: &[&str],
    stderr: Stdio,
    log_filter: &str,
) -> NodeProcess {
    spawn_serve_at("127.0.0.1:0", command, dir, args, stderr, log_filter).await
}

async fn spawn_serve_at(
    listen: &str,
    mut command: Command,
    dir: &Path,
    args: &[&str],
    stderr: Stdio,
    log_filter: &str,
) -> NodeProcess {
    if log_filter.is_empty() {
        command.env_remove("RUST_LOG");
    } else {
        command.env("RUST_LOG", log_filter);
    }
    let mut child = command
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("node did not start within 30 s")
        .unwrap()
        .expect("node exited before listening");
    let addr = line
        .strip_prefix("heterogen listening on http://")
        .or_else(|| line.strip_prefix("heterogen listening on https://"))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    NodeProcess { child, addr }
}

impl NodeProcess {
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A finished command's standard output, as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished command's standard error, as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit code 0; returns stdout.
pub fn ok(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Asserts exit code `code` and a piece of stderr.
pub fn fails(out: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    assert!(
        stderr(out).contains(needle),
        "{needle:?} not in stderr: {}",
        stderr(out)
    );
}

/// Runs `heterogen serve --open ARGS` (with `env`) that must refuse to start; returns its exit
/// code and stderr.
pub async fn refused_start(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_heterogen"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--open",
                "--fsync",
                "false",
                "--data-dir",
            ])
            .arg(dir)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .output(),
    )
    .await
    .expect("the refused node did not exit")
    .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
