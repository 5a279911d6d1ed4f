//! The README's shell examples, run as a reader would: every ```` ```sh ```` block not marked
//! `norun`, in order, in one fresh home and working directory with `heterogen` on the PATH —
//! and then all of them a second time in the same place, because people run examples twice.
//! Blocks marked `norun` install system packages, build release binaries, need an etcd cluster
//! or run in the foreground forever.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::process::free_port;

/// Longest a block may take.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The runnable blocks: (line of the opening fence, text).
fn runnable_blocks(readme: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    let mut skipping = false;
    for (index, line) in readme.lines().enumerate() {
        match (&mut open, line.trim_end()) {
            (None, fence) if fence.starts_with("```") && !skipping => {
                let info: Vec<&str> = fence.trim_start_matches('`').split_whitespace().collect();
                if info.first() == Some(&"sh") && !info.contains(&"norun") {
                    open = Some((index + 1, String::new()));
                } else if !info.is_empty() || fence == "```" {
                    skipping = true;
                }
            }
            (None, "```") if skipping => skipping = false,
            (Some(_), "```") => blocks.extend(open.take()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "an unclosed code block in the README");
    blocks
}

/// Runs `script` with bash in `work`, as its own process group (killed afterwards, so a block
/// that fails halfway leaves no node behind); returns (success, output).
async fn run_block(script: &str, work: &Path, home: &Path, port: &str) -> (bool, String) {
    let bin = Path::new(env!("CARGO_BIN_EXE_heterogen")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // Files, not pipes: a node left in the background must not keep the block from ending, and
    // what a block printed before it hung is still there to show.
    let (out, err) = (home.join("block.out"), home.join("block.err"));
    let mut command = tokio::process::Command::new("bash");
    for (name, _) in std::env::vars() {
        if name.starts_with("HETEROGEN_") {
            command.env_remove(name);
        }
    }
    // The examples rely on the default address; here it is a free port, moved through the
    // settings' environment variables (the node's listener and the CLI's node).
    command
        .env("HETEROGEN_LISTEN", format!("127.0.0.1:{port}"))
        .env("HETEROGEN_URL", format!("ws://127.0.0.1:{port}"));
    command
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(work)
        .env("PATH", path)
        .env("HOME", home)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BROWSER")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().expect("bash is needed");
    let group = child.id().unwrap();
    let outcome = tokio::time::timeout(BLOCK_TIMEOUT, child.wait()).await;
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
    let printed = format!(
        "stdout:\n{}\nstderr:\n{}",
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    match outcome {
        Ok(Ok(status)) => (status.success(), format!("exit: {:?}\n{printed}", status.code())),
        Ok(Err(e)) => (false, format!("could not run bash: {e}")),
        Err(_) => (
            false,
            format!("did not finish within {BLOCK_TIMEOUT:?}\n{printed}"),
        ),
    }
}

#[tokio::test]
async fn every_readme_example_runs_and_runs_again() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    assert!(
        blocks.len() >= 5,
        "the README should have runnable examples: {blocks:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (home, work) = (dir.path().join("home"), dir.path().join("work"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    // The examples use the default ports; here they get free ones, so a node already running
    // on this machine does not stand in for the examples' own.
    let (api, metrics) = (free_port().to_string(), free_port().to_string());
    for round in 1..=2 {
        for (line, block) in &blocks {
            let script = block.replace("8088", &api).replace("9090", &metrics);
            let (ok, output) = run_block(&script, &work, &home, &api).await;
            assert!(
                ok,
                "README.md line {line} failed in round {round}:\n{block}\n{output}"
            );
        }
    }
}

#[test]
fn blocks_are_found_and_norun_ones_left_out() {
    let text = "x\n```sh\necho one\n```\n```sh norun\necho two\n```\n```toml\na = 1\n```\n```\nplain\n```\n```sh\necho three\n```\n";
    let blocks = runnable_blocks(text);
    assert_eq!(
        blocks,
        vec![(2, "echo one\n".to_string()), (14, "echo three\n".to_string())]
    );
}
