//! `heterogen deploy [--manifest heterogen.toml] [--dry-run] [--force]`: creates or updates the
//! workers a manifest lists, and records each one's sid and versionstamp in the manifest.
//!
//! A worker is sent only when it differs from what the node holds (its script compared after
//! the same minification the node applies, and its settings with their defaults). An update
//! carries the versionstamp this manifest last deployed: a worker edited elsewhere since (the
//! console, another deploy) is reported as a conflict and left as it is, unless `--force`.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::format;
use super::workers::sid_of;
use super::{CliError, ConnectArgs, Connection};
use crate::workers::validate::{Identity, Settings};

/// The record fields a manifest decides (the note only when it gives one).
const MANAGED: [&str; 8] = [
    "script",
    "mode",
    "scope",
    "executionMode",
    "priority",
    "assignedNode",
    "dependencies",
    "active",
];

/// `heterogen deploy`.
#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The manifest.
    #[arg(long, short = 'm', default_value = "heterogen.toml")]
    pub manifest: PathBuf,
    /// Shows what would be created and updated, and changes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrites workers edited on the node since this manifest last deployed them.
    #[arg(long)]
    pub force: bool,
    /// Prints the plan (or what was done) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where the node is and how to log in.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `heterogen.toml`: `[[worker]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    worker: Vec<WorkerSpec>,
}

/// One `[[worker]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerSpec {
    /// A name for people, unique in the manifest.
    name: String,
    /// The script, relative to the manifest.
    file: PathBuf,
    mode: Option<String>,
    priority: Option<String>,
    execution_mode: Option<String>,
    assigned_node: Option<String>,
    scope: Option<String>,
    note: Option<String>,
    dependencies: Option<Vec<String>>,
    account_id: Option<String>,
    /// Whether it runs (default true: deploying is to run).
    active: Option<bool>,
    /// Written by `deploy`: the worker's id on the node.
    sid: Option<String>,
    /// Written by `deploy`: the versionstamp it last deployed.
    versionstamp: Option<String>,
}

/// A manifest worker made ready: its `setWorker` body and the record fields it wants.
struct Desired {
    name: String,
    body: Map<String, Value>,
    fields: Map<String, Value>,
    sid: Option<String>,
    versionstamp: Option<String>,
}

/// What deploy does with one worker.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Create,
    Update {
        changed: Vec<String>,
    },
    Unchanged,
    /// Edited on the node since the last deploy, and different from the manifest.
    Conflict {
        recorded: String,
        now: String,
        changed: Vec<String>,
    },
}

impl Action {
    fn word(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update { .. } => "update",
            Action::Unchanged => "unchanged",
            Action::Conflict { .. } => "conflict",
        }
    }
}

pub async fn run(args: DeployArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&args.manifest).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the manifest {}: {e}",
            args.manifest.display()
        ))
    })?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "{} is not a valid manifest: {e}",
            args.manifest.display()
        ))
    })?;
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| CliError::Usage(format!("{} is not valid TOML: {e}", args.manifest.display())))?;
    let base = args.manifest.parent().unwrap_or(Path::new("."));
    let desired = prepare(&manifest, base)?;

    let mut conn = Connection::open(&args.connect).await?;
    let entries = conn.call("listWorkers", None).await?;
    let on_node = |sid: &str| {
        entries
            .as_array()
            .and_then(|all| all.iter().find(|e| e["value"]["raw"]["sid"] == sid))
            .cloned()
    };
    let mut report = Vec::new();
    let mut failed = false;
    for (index, want) in desired.iter().enumerate() {
        let current = want.sid.as_deref().and_then(on_node);
        let action = plan(want, current.as_ref(), args.force);
        let mut row = json!({"name": want.name, "action": action.word(), "sid": want.sid});
        if let Action::Update { changed } | Action::Conflict { changed, .. } = &action {
            row["changed"] = json!(changed);
        }
        if args.dry_run {
            failed |= matches!(action, Action::Conflict { .. });
            report.push((row, action));
            continue;
        }
        let outcome = match (&action, &current) {
            (Action::Create, _) => create(&mut conn, want).await.map(Some),
            (Action::Update { .. }, Some(current)) => update(&mut conn, want, current).await.map(Some),
            (Action::Unchanged, Some(current)) => Ok(Some(current.clone())),
            _ => Ok(None),
        };
        match outcome {
            Ok(Some(entry)) => {
                row["sid"] = json!(sid_of(&entry));
                row["versionstamp"] = entry["versionstamp"].clone();
                record(&mut document, index, &entry);
                write_manifest(&args.manifest, &document)?;
            }
            Ok(None) => failed = true,
            Err(error) => {
                failed = true;
                row["action"] = json!("failed");
                row["error"] = json!(error.message());
            }
        }
        report.push((row, action));
    }
    conn.close().await;
    print_report(&report, args.dry_run, args.json)?;
    if failed {
        return Err(CliError::Failed(if args.dry_run {
            "the plan has conflicts: deploy with --force to overwrite them".into()
        } else {
            "some workers were not deployed".into()
        }));
    }
    Ok(())
}

/// Reads every worker's script and checks its settings as the node would, before anything is
/// sent: a mistake anywhere in the manifest stops the deploy (exit 2).
fn prepare(manifest: &Manifest, base: &Path) -> Result<Vec<Desired>, CliError> {
    let mut names = std::collections::HashSet::new();
    let mut all = Vec::new();
    for spec in &manifest.worker {
        let bad = |why: String| CliError::Usage(format!("worker {:?}: {why}", spec.name));
        if !names.insert(spec.name.clone()) {
            return Err(bad("the name is used twice in the manifest".into()));
        }
        let path = base.join(&spec.file);
        let source = std::fs::read_to_string(&path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        let mut body = Map::new();
        let strings = [
            ("mode", &spec.mode),
            ("priority", &spec.priority),
            ("executionMode", &spec.execution_mode),
            ("assignedNode", &spec.assigned_node),
            ("scope", &spec.scope),
            ("note", &spec.note),
            ("accountId", &spec.account_id),
        ];
        for (key, value) in strings {
            if let Some(value) = value {
                body.insert(key.into(), json!(value));
            }
        }
        if let Some(dependencies) = &spec.dependencies {
            body.insert("dependencies".into(), json!(dependencies));
        }
        let settings = Settings::read(&body).map_err(|e| bad(e.to_string()))?;
        let script = crate::workers::minify::minify_script(&source)
            .map_err(|e| bad(format!("{} does not compile: {e}", path.display())))?;
        let note = settings.note.clone();
        let record = settings.into_worker(Identity {
            sid: String::new(),
            nid: String::new(),
            active: spec.active.unwrap_or(true),
            note: note.clone().unwrap_or_default(),
            script,
            version: String::new(),
            timestamp: 0,
        });
        let record = serde_json::to_value(record).map_err(|e| bad(e.to_string()))?;
        let mut fields = Map::new();
        let keys = MANAGED.iter().copied().chain(note.is_some().then_some("note"));
        for key in keys {
            fields.insert(key.into(), record.get(key).cloned().unwrap_or(Value::Null));
        }
        body.insert("scriptContent".into(), Value::String(source));
        all.push(Desired {
            name: spec.name.clone(),
            body,
            fields,
            sid: spec.sid.clone(),
            versionstamp: spec.versionstamp.clone(),
        });
    }
    Ok(all)
}

/// Compares what the manifest wants with the node's entry (none: not there, so created).
fn plan(want: &Desired, current: Option<&Value>, force: bool) -> Action {
    let Some(current) = current else {
        return Action::Create;
    };
    let raw = &current["value"]["raw"];
    let changed: Vec<String> = want
        .fields
        .iter()
        .filter(|(key, value)| raw.get(key.as_str()).unwrap_or(&Value::Null) != *value)
        .map(|(key, _)| key.clone())
        .collect();
    if changed.is_empty() {
        return Action::Unchanged;
    }
    let now = format::plain(&current["versionstamp"]);
    match &want.versionstamp {
        Some(recorded) if *recorded != now && !force => Action::Conflict {
            recorded: recorded.clone(),
            now,
            changed,
        },
        _ => Action::Update { changed },
    }
}

/// `setWorker`, then the activation it cannot do itself.
async fn create(conn: &mut Connection, want: &Desired) -> Result<Value, CliError> {
    let created = conn
        .call("setWorker", Some(Value::Object(want.body.clone())))
        .await?;
    if want.fields.get("active") != Some(&Value::Bool(true)) {
        return Ok(created);
    }
    let mut raw = created["value"]["raw"].clone();
    raw["active"] = Value::Bool(true);
    conn.call(
        "updateWorker",
        Some(json!({"channel": created["value"]["channel"], "raw": raw, "versionstamp": created["versionstamp"]})),
    )
    .await
}

/// `updateWorker` under the node's versionstamp (the one the plan compared against).
async fn update(conn: &mut Connection, want: &Desired, current: &Value) -> Result<Value, CliError> {
    let mut raw = current["value"]["raw"].clone();
    for (key, value) in &want.fields {
        raw[key.as_str()] = value.clone();
    }
    // The node minifies what it is sent; the source is what people read in the console.
    if let Some(Value::String(source)) = want.body.get("scriptContent") {
        raw["script"] = Value::String(source.clone());
    }
    conn.call(
        "updateWorker",
        Some(json!({"channel": current["value"]["channel"], "raw": raw, "versionstamp": current["versionstamp"]})),
    )
    .await
}

/// Writes the entry's sid and versionstamp into `[[worker]]` number `index`.
fn record(document: &mut toml_edit::DocumentMut, index: usize, entry: &Value) {
    let Some(table) = document
        .get_mut("worker")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
        .and_then(|tables| tables.get_mut(index))
    else {
        return;
    };
    table["sid"] = toml_edit::value(sid_of(entry));
    table["versionstamp"] = toml_edit::value(format::plain(&entry["versionstamp"]));
}

/// Replaces the manifest through a temporary file, so a crash leaves the old one or the new.
fn write_manifest(path: &Path, document: &toml_edit::DocumentMut) -> Result<(), CliError> {
    let failed = |e: std::io::Error| CliError::Failed(format!("cannot update {}: {e}", path.display()));
    let temporary = path.with_extension("toml.tmp");
    std::fs::write(&temporary, document.to_string()).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

fn print_report(report: &[(Value, Action)], dry_run: bool, json: bool) -> Result<(), CliError> {
    if json {
        let rows: Vec<Value> = report.iter().map(|(row, _)| row.clone()).collect();
        return format::print_json(&Value::Array(rows));
    }
    let mut text = String::new();
    for (row, action) in report {
        let name = format::plain(&row["name"]);
        let sid = format::plain(&row["sid"]);
        let line = match (row["action"].as_str(), action) {
            (Some("failed"), _) => format!("failed     {name}: {}", format::plain(&row["error"])),
            (_, Action::Create) if dry_run => format!("create     {name}"),
            (_, Action::Create) => format!("created    {name} ({sid})"),
            (_, Action::Update { changed }) => format!(
                "{}    {name} ({sid}): {}",
                if dry_run { "update " } else { "updated" },
                changed.join(", ")
            ),
            (_, Action::Unchanged) => format!("unchanged  {name} ({sid})"),
            (
                _,
                Action::Conflict {
                    recorded,
                    now,
                    changed,
                },
            ) => format!(
                "conflict   {name} ({sid}): edited on the node since the last deploy (versionstamp \
                 {recorded}, now {now}); differs in {}; not changed (--force overwrites)",
                changed.join(", ")
            ),
        };
        text.push_str(&line);
        text.push('\n');
    }
    if report.is_empty() {
        text.push_str("the manifest lists no workers\n");
    }
    format::print_raw(&text)
}
