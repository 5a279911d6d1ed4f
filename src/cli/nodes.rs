//! `heterogen nodes` (every live node of the cluster, from `listNodes`) and the cluster view of
//! `heterogen stats --cluster` (each node's published per-worker statistics).

use clap::Args;
use serde_json::Value;

use super::format::{self, Table, duration_ms, plain, truncate};
use super::{CliError, ConnectArgs, Connection};

/// `heterogen nodes`.
#[derive(Args, Debug)]
pub struct NodesArgs {
    /// Prints the `listNodes` result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where the node is and how to log in.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn run(args: NodesArgs) -> Result<(), CliError> {
    let listed = list_nodes(&args.connect).await?;
    if args.json {
        return format::print_json(&listed);
    }
    format::print_raw(&format!("{}\n", nodes_table(&listed).join("\n")))
}

/// The cluster's `listNodes` answer, through the node at `connect`.
pub async fn list_nodes(connect: &ConnectArgs) -> Result<Value, CliError> {
    let mut conn = Connection::open(connect).await?;
    let listed = conn.call("listNodes", None).await?;
    conn.close().await;
    Ok(listed)
}

fn nodes(listed: &Value) -> &[Value] {
    listed["nodes"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// One row per node; `*` marks the node that answered.
fn nodes_table(listed: &Value) -> Vec<String> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut table = Table::new(&[
        "NID", "URL", "VERSION", "UP", "CONNS", "RUNNING", "EXECS", "ERRORS", "UPDATED",
    ]);
    for node in nodes(listed) {
        let load = &node["load"];
        let mark = if node["current"] == true { " *" } else { "" };
        let ago = |field: &str| match node[field].as_i64() {
            Some(at) => Value::from(now - at),
            None => Value::Null,
        };
        table.row(vec![
            format!("{}{mark}", plain(&node["nid"])),
            plain(&node["apiUrl"]),
            plain(&node["version"]),
            duration_ms(&ago("startedAt")),
            plain(&load["connections"]),
            plain(&load["runningWorkers"]),
            plain(&load["executions"]),
            plain(&load["errors"]),
            format!("{} ago", duration_ms(&ago("updatedAt"))),
        ]);
    }
    let mut lines = vec![format!("{} live nodes (* answered)", nodes(listed).len())];
    lines.push(String::new());
    lines.extend(table.lines());
    lines
}

/// One row per worker per node, from what each node published with its membership.
pub fn cluster_stats_table(listed: &Value) -> Vec<String> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut table = Table::new(&[
        "NODE",
        "SID",
        "RUNNING",
        "EXECS",
        "ERRORS",
        "NET",
        "CRIT",
        "LAST RUN",
        "HASH",
        "LAST ERROR",
    ]);
    let mut omitted = 0;
    for node in nodes(listed) {
        omitted += node["load"]["workersOmitted"].as_u64().unwrap_or(0);
        for w in node["load"]["workers"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            table.row(vec![
                plain(&node["nid"]),
                plain(&w["sid"]),
                if w["isRunning"] == true { "yes" } else { "no" }.into(),
                plain(&w["executions"]),
                plain(&w["errors"]),
                plain(&w["networkErrors"]),
                plain(&w["criticalErrors"]),
                match w["lastRun"].as_i64() {
                    Some(at) => format!("{} ago", duration_ms(&Value::from(now - at))),
                    None => "-".into(),
                },
                plain(&w["scriptHash"]),
                truncate(&plain(&w["lastError"]), 60),
            ]);
        }
    }
    let mut lines = vec![format!(
        "{} nodes; statistics as each node last published them",
        nodes(listed).len()
    )];
    if omitted > 0 {
        lines.push(format!(
            "{omitted} workers left out (a node publishes up to 48 KiB of them)"
        ));
    }
    lines.push(String::new());
    lines.extend(table.lines());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_of_nodes_and_their_workers() {
        let listed = json!({"total": 2, "nodes": [
            {"nid": "n1", "apiUrl": "http://127.0.0.1:1", "version": "0.1.0", "startedAt": 0, "updatedAt": 0,
             "current": true, "load": {"connections": 3, "runningWorkers": 1, "executions": 9, "errors": 1,
             "workers": [{"sid": "w1", "isRunning": true, "executions": 9, "errors": 1, "networkErrors": 1,
             "criticalErrors": 0, "lastRun": null, "scriptHash": "1f0c7a55", "lastError": "boom"}], "workersOmitted": 0}},
            {"nid": "n2", "apiUrl": "http://127.0.0.1:2", "version": "0.1.0", "startedAt": 0, "updatedAt": 0,
             "current": false, "load": {"connections": 0, "runningWorkers": 0, "executions": 0, "errors": 0,
             "workers": [], "workersOmitted": 4}}
        ]});
        let lines = nodes_table(&listed);
        assert_eq!(lines[0], "2 live nodes (* answered)");
        assert!(lines[2].starts_with("NID   URL"), "{lines:?}");
        assert!(lines[3].starts_with("n1 *  http://127.0.0.1:1"), "{lines:?}");
        let lines = cluster_stats_table(&listed);
        assert_eq!(
            lines[1],
            "4 workers left out (a node publishes up to 48 KiB of them)"
        );
        assert!(lines[4].starts_with("n1    w1   yes"), "{lines:?}");
        assert!(lines[4].ends_with("boom"), "{lines:?}");
    }
}
