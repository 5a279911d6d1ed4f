//! `heterogen workers list | show | create | edit | start | stop | restart | delete`; a worker
//! is named by its sid or by a prefix of it that no other sid shares.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use comfy_table::Cell;
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
    /// Shows one worker: its record, this node's statistics of it, its leader, its last error.
    Show {
        /// The worker's sid, or a unique prefix of it.
        sid: String,
        /// Prints only the stored script.
        #[arg(long, conflicts_with = "json")]
        script: bool,
        /// Prints `{entry, stats, leader}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Activates a worker.
    Start {
        /// The worker's sid, or a unique prefix of it.
        sid: String,
        /// Prints the updated entry as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deactivates a worker.
    Stop {
        /// The worker's sid, or a unique prefix of it.
        sid: String,
        /// Prints the updated entry as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stops a worker and starts it again (on every node that runs it); starts an inactive one.
    Restart {
        /// The worker's sid, or a unique prefix of it.
        sid: String,
        /// Prints the updated entry as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replaces a worker's script with a file (`-`: stdin); a running worker hot-reloads.
    Edit {
        /// The worker's sid, or a unique prefix of it.
        sid: String,
        /// The new script (`-`: stdin).
        file: PathBuf,
        /// Prints the updated entry as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deletes a worker: stops it on every node and removes its record, logs and statistics.
    /// Asks first unless `--yes`.
    Delete {
        /// The worker's sid, or a unique prefix of it.
        sid: String,
        /// Deletes without asking.
        #[arg(long, short)]
        yes: bool,
        /// Prints the deleted entry as JSON.
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

mod show;

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
        WorkersCommand::Show { sid, script, json } => show::run(&args.connect, &sid, script, json).await,
        WorkersCommand::Start { sid, json } => set_active(&args.connect, &sid, true, json).await,
        WorkersCommand::Stop { sid, json } => set_active(&args.connect, &sid, false, json).await,
        WorkersCommand::Restart { sid, json } => restart(&args.connect, &sid, json).await,
        WorkersCommand::Delete { sid, yes, json } => delete(&args.connect, &sid, yes, json).await,
        WorkersCommand::Edit { sid, file, json } => {
            let script = super::read_script(&file)?;
            let mut conn = Connection::open(&args.connect).await?;
            let (before, after) = update(&mut conn, &sid, |raw| {
                raw["script"] = Value::String(script.clone());
                true
            })
            .await?;
            conn.close().await;
            let sid = sid_of(&before);
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
    let sid = sid_of(&before);
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
        let entry = find(&entries, sid)?.clone();
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

/// Stops the worker (`active: false`), then starts it (`active: true`): two writes, so every
/// node ends the old run before it starts the new one, and a worker the error rules halted
/// runs again.
async fn restart(connect: &ConnectArgs, sid: &str, json: bool) -> Result<(), CliError> {
    let mut conn = Connection::open(connect).await?;
    let (before, _) = update(&mut conn, sid, |raw| {
        if raw["active"] == Value::Bool(false) {
            return false;
        }
        raw["active"] = Value::Bool(false);
        true
    })
    .await?;
    let sid = sid_of(&before);
    let (_, after) = update(&mut conn, &sid, |raw| {
        raw["active"] = Value::Bool(true);
        true
    })
    .await?;
    conn.close().await;
    if json {
        return format::print_json(after.as_ref().unwrap_or(&before));
    }
    format::print_raw(&format!("restarted {sid}\n"))
}

async fn delete(connect: &ConnectArgs, sid: &str, yes: bool, json: bool) -> Result<(), CliError> {
    let mut conn = Connection::open(connect).await?;
    let entries = conn.call("listWorkers", None).await?;
    let entry = find(&entries, sid)?;
    let sid = sid_of(entry);
    if !yes {
        let note = plain(&entry["value"]["raw"]["note"]);
        let question = format!(
            "Delete worker {sid}{}? It stops on every node; its record, logs and statistics are removed.",
            if note == "-" {
                String::new()
            } else {
                format!(" ({})", truncate(&note, 40))
            }
        );
        if !confirm(&question)? {
            conn.close().await;
            return Err(CliError::Failed(format!("{sid} was not deleted")));
        }
    }
    let deleted = conn.call("deleteWorker", Some(json!({"sid": sid}))).await?;
    conn.close().await;
    if json {
        return format::print_json(&deleted);
    }
    format::print_raw(&format!("deleted {sid}\n"))
}

/// Asks `question` on stderr and reads y/N from a terminal; without one, asking is a usage
/// error (a script must say `--yes`).
fn confirm(question: &str) -> Result<bool, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "{question}\nRefusing to ask without a terminal: pass --yes to delete"
        )));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question} [y/N] ");
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::Failed(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// The sid of a `listWorkers` entry.
pub(super) fn sid_of(entry: &Value) -> String {
    plain(&entry["value"]["raw"]["sid"])
}

/// The entry whose sid is `name`, or the only one whose sid starts with it.
pub(super) fn find<'a>(entries: &'a Value, name: &str) -> Result<&'a Value, CliError> {
    let entries = entries.as_array().map(Vec::as_slice).unwrap_or_default();
    if let Some(exact) = entries.iter().find(|e| e["value"]["raw"]["sid"] == name) {
        return Ok(exact);
    }
    let matching: Vec<&Value> = if name.is_empty() {
        Vec::new()
    } else {
        entries
            .iter()
            .filter(|e| {
                e["value"]["raw"]["sid"]
                    .as_str()
                    .is_some_and(|sid| sid.starts_with(name))
            })
            .collect()
    };
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(CliError::Failed(format!("no worker with sid {name}"))),
        several => Err(CliError::Usage(format!(
            "{name} names {} workers ({}); give more of the sid",
            several.len(),
            several
                .iter()
                .take(5)
                .map(|e| sid_of(e))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
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
            Cell::new(plain(&raw["sid"])),
            if raw["active"] == true {
                format::good("yes")
            } else {
                format::dim("no")
            },
            Cell::new(or_default("mode", "loop")),
            Cell::new(or_default("executionMode", "parallel")),
            Cell::new(or_default("priority", "normal")),
            Cell::new(truncate(&plain(&raw["note"]), 48)),
        ]);
    }
    let mut text = table.lines().join("\n");
    text.push('\n');
    format::print_raw(&text)
}
