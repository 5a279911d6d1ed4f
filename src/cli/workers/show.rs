//! `heterogen workers show SID`: one worker's record, this node's statistics of it, its
//! leader (leader mode) and its last error.

use serde_json::{Value, json};

use super::super::format::{self, duration_ms, plain};
use super::super::{CliError, ConnectArgs, Connection};
use super::{find, sid_of};

pub async fn run(connect: &ConnectArgs, name: &str, script_only: bool, json: bool) -> Result<(), CliError> {
    let mut conn = Connection::open(connect).await?;
    let entries = conn.call("listWorkers", None).await?;
    let entry = find(&entries, name)?.clone();
    let sid = sid_of(&entry);
    if script_only {
        conn.close().await;
        let script = plain(&entry["value"]["raw"]["script"]);
        return format::print_raw(&format!("{}\n", script.trim_end_matches('\n')));
    }
    let all_stats = conn.call("getWorkerStats", None).await?;
    let stats = all_stats["workers"]
        .as_array()
        .and_then(|workers| workers.iter().find(|w| w["sid"] == sid.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    let leader = if entry["value"]["raw"]["executionMode"] == "leader" {
        conn.call("getLeaderInfo", Some(json!({"workerId": sid}))).await?
    } else {
        Value::Null
    };
    conn.close().await;
    if json {
        return format::print_json(&json!({"entry": entry, "stats": stats, "leader": leader}));
    }
    format::print_raw(&describe(&entry, &stats, &leader))
}

/// The `show` text: one `field  value` line each.
fn describe(entry: &Value, stats: &Value, leader: &Value) -> String {
    let raw = &entry["value"]["raw"];
    let or = |value: &Value, default: &str| match value {
        Value::Null => default.to_string(),
        value => plain(value),
    };
    let script = raw["script"].as_str().unwrap_or_default();
    let mut rows: Vec<(&str, String)> = vec![
        ("sid", plain(&raw["sid"])),
        ("active", if raw["active"] == true { "yes" } else { "no" }.into()),
        ("mode", or(&raw["mode"], "loop")),
        ("priority", or(&raw["priority"], "normal")),
        ("execution", or(&raw["executionMode"], "parallel")),
        ("scope", or(&raw["scope"], "network")),
    ];
    if !raw["assignedNode"].is_null() {
        rows.push(("assigned node", plain(&raw["assignedNode"])));
    }
    rows.push(("note", or(&raw["note"], "-")));
    rows.push(("versionstamp", plain(&entry["versionstamp"])));
    rows.push((
        "script",
        format!(
            "{} bytes, hash {} (`workers show --script` prints it)",
            script.len(),
            crate::streams::stats::script_hash(script)
        ),
    ));
    match stats {
        Value::Null => rows.push(("on this node", "not run here since the node started".into())),
        stats => {
            rows.push((
                "running here",
                if stats["isRunning"] == true { "yes" } else { "no" }.into(),
            ));
            rows.push((
                "runs",
                format!(
                    "{} ({} errors, {}; network {}, critical {})",
                    plain(&stats["executions"]),
                    plain(&stats["errors"]),
                    plain(&stats["errorRate"]),
                    plain(&stats["networkErrors"]),
                    plain(&stats["criticalErrors"]),
                ),
            ));
            if let Some(ago) = stats["lastRunAgo"].as_i64() {
                rows.push((
                    "last run",
                    format!(
                        "{} ago, took {}",
                        duration_ms(&ago.into()),
                        duration_ms(&stats["lastDurationMs"])
                    ),
                ));
            }
            if stats["isRunning"] == true {
                rows.push(("uptime", duration_ms(&stats["uptime"])));
            }
            if let Some(bytes) = stats["memoryBytes"].as_u64() {
                rows.push(("memory", format::bytes(bytes)));
            }
            if !stats["cpuMs"].is_null() {
                rows.push(("cpu time", duration_ms(&stats["cpuMs"])));
            }
            if !stats["haltedReason"].is_null() {
                rows.push(("halted", plain(&stats["haltedReason"])));
            }
            if !stats["lastError"].is_null() {
                rows.push((
                    "last error",
                    format!(
                        "{} ({})",
                        plain(&stats["lastError"]),
                        plain(&stats["lastErrorType"])
                    ),
                ));
            }
        }
    }
    if !leader.is_null() {
        let text = if leader["hasLeader"] == true {
            format!(
                "{} (term {}, lease expires in {})",
                plain(&leader["leader"]),
                plain(&leader["epoch"]),
                duration_ms(&leader["expiresIn"])
            )
        } else {
            "none elected".into()
        };
        rows.push(("leader", text));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(key, value)| format!("{key:<width$}  {value}\n"))
        .collect()
}
