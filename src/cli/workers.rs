//! `heterogen workers list | create | start | stop | edit`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::format::{self, Table, plain, truncate};
use super::{CliError, ConnectArgs, Connection};

/// How many times a start/stop/edit re-reads the worker after losing a race (409).
const UPDATE_ATTEMPTS: usize = 3;

/// `heterogen workers …`.
#[derive(Args, Debug)]
pub struct WorkersArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WorkersCommand,
    /// Where the node is and how to log in.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `heterogen workers <command>`.
#[derive(Subcommand, Debug)]
pub enum WorkersCommand {
    /// Lists every worker: sid, active, mode, execution mode, priority, note.
    List {
        /// Prints the entries as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Creates a worker (inactive) from a script file (`-`: stdin); prints its sid.
    Create(CreateArgs),
    /// Activates a worker.
    Start {
        /// The worker's id.
        sid: String,
        /// Prints the updated entry as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deactivates a worker.
    Stop {
        /// The worker's id.
        sid: String,
        /// Prints the updated entry as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replaces a worker's script with a file (`-`: stdin); a running worker hot-reloads.
    Edit {
        /// The worker's id.
        sid: String,
        /// The new script (`-`: stdin).
        file: PathBuf,
        /// Prints the updated entry as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `heterogen workers create FILE [flags]`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The script file (`-`: stdin).
    pub file: PathBuf,
    /// `loop` (run again and again) or `single` (run once).
    #[arg(long, value_parser = ["loop", "single"])]
    pub mode: Option<String>,
    /// How soon a `loop` worker runs again (1 ms, 10 ms, 100 ms, 1 s).
    #[arg(long, value_parser = ["critical", "high", "normal", "low"])]
    pub priority: Option<String>,
    /// Where it runs: on every node, on the leader only, or on `--assigned-node` only.
    #[arg(long, value_parser = ["parallel", "leader", "exclusive"])]
    pub execution_mode: Option<String>,
    /// The node id of an `exclusive` worker.
    #[arg(long)]
    pub assigned_node: Option<String>,
    /// A free-text description.
    #[arg(long)]
    pub note: Option<String>,
    /// `local` workers keep to this node's store (leader mode only).
    #[arg(long, value_parser = ["local", "network"])]
    pub scope: Option<String>,
    /// Prints the new entry as JSON instead of the sid.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: WorkersArgs) -> Result<(), CliError> {
    match args.command {
        WorkersCommand::List { json } => {
            let mut conn = Connection::open(&args.connect).await?;
            let entries = conn.call("listWorkers", None).await?;
            conn.close().await;
            if json {
                format::print_json(&entries)
            } else {
                print_list(&entries)
            }
        }
        WorkersCommand::Create(create) => {
            let script = super::read_script(&create.file)?;
            let mut body = Map::new();
            body.insert("scriptContent".into(), Value::String(script));
            let optional = [
                ("mode", create.mode),
                ("priority", create.priority),
                ("executionMode", create.execution_mode),
                ("assignedNode", create.assigned_node),
                ("note", create.note),
                ("scope", create.scope),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    body.insert(key.into(), Value::String(value));
                }
            }
            let mut conn = Connection::open(&args.connect).await?;
            let entry = conn.call("setWorker", Some(Value::Object(body))).await?;
            conn.close().await;
            if create.json {
                format::print_json(&entry)
            } else {
                format::print_raw(&format!("{}\n", plain(&entry["value"]["raw"]["sid"])))
            }
        }
        WorkersCommand::Start { sid, json } => set_active(&args.connect, &sid, true, json).await,
        WorkersCommand::Stop { sid, json } => set_active(&args.connect, &sid, false, json).await,
        WorkersCommand::Edit { sid, file, json } => {
            let script = super::read_script(&file)?;
            let mut conn = Connection::open(&args.connect).await?;
            let (before, after) = update(&mut conn, &sid, |raw| {
                raw["script"] = Value::String(script.clone());
                true
            })
            .await?;
            conn.close().await;
            let after = after.unwrap_or(before.clone());
            if json {
                return format::print_json(&after);
            }
            let changed = before["value"]["raw"]["script"] != after["value"]["raw"]["script"];
            let note = if changed {
                "script replaced"
            } else {
                "script unchanged after minification"
            };
            format::print_raw(&format!("updated {sid} ({note})\n"))
        }
    }
}

async fn set_active(connect: &ConnectArgs, sid: &str, active: bool, json: bool) -> Result<(), CliError> {
    let mut conn = Connection::open(connect).await?;
    let (before, after) = update(&mut conn, sid, |raw| {
        if raw["active"] == Value::Bool(active) {
            return false;
        }
        raw["active"] = Value::Bool(active);
        true
    })
    .await?;
    conn.close().await;
    if json {
        return format::print_json(after.as_ref().unwrap_or(&before));
    }
    let verb = if active { "started" } else { "stopped" };
    let text = match after {
        Some(_) => format!("{verb} {sid}\n"),
        None => format!(
            "{sid} is already {}\n",
            if active { "active" } else { "inactive" }
        ),
    };
    format::print_raw(&text)
}

/// Reads worker `sid` from `listWorkers`, lets `change` edit its `raw` (returning false when
/// nothing needs writing), and writes it with `updateWorker` under the entry's versionstamp.
/// A lost race (409) is retried on a fresh read. Returns the entry read and the entry written.
async fn update(
    conn: &mut Connection,
    sid: &str,
    mut change: impl FnMut(&mut Value) -> bool,
) -> Result<(Value, Option<Value>), CliError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let entries = conn.call("listWorkers", None).await?;
        let entry = entries
            .as_array()
            .and_then(|entries| entries.iter().find(|e| e["value"]["raw"]["sid"] == sid))
            .cloned()
            .ok_or_else(|| CliError::Failed(format!("no worker with sid {sid}")))?;
        let mut raw = entry["value"]["raw"].clone();
        if !change(&mut raw) {
            return Ok((entry, None));
        }
        let body = json!({
            "channel": entry["value"]["channel"],
            "raw": raw,
            "versionstamp": entry["versionstamp"],
        });
        match conn.call("updateWorker", Some(body)).await {
            Ok(updated) => return Ok((entry, Some(updated))),
            Err(CliError::Status { status: 409, .. }) if attempt < UPDATE_ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
}

fn print_list(entries: &Value) -> Result<(), CliError> {
    let mut table = Table::new(&["SID", "ACTIVE", "MODE", "EXECUTION", "PRIORITY", "NOTE"]);
    for entry in entries.as_array().map(Vec::as_slice).unwrap_or_default() {
        let raw = &entry["value"]["raw"];
        let or_default = |key: &str, default: &str| match &raw[key] {
            Value::Null => default.to_string(),
            value => plain(value),
        };
        table.row(vec![
            plain(&raw["sid"]),
            if raw["active"] == true { "yes" } else { "no" }.into(),
            or_default("mode", "loop"),
            or_default("executionMode", "parallel"),
            or_default("priority", "normal"),
            truncate(&plain(&raw["note"]), 48),
        ]);
    }
    let mut text = table.lines().join("\n");
    text.push('\n');
    format::print_raw(&text)
}
