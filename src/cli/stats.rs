//! `heterogen stats [--watch | --cluster]`: this node's `getWorkerStats` as a table (`--cluster`:
//! every node's, from `listNodes`); `--watch` redraws it
//! on every push of the `stats` stream (a live table on a terminal, one plain line per push
//! otherwise).

use std::io::IsTerminal;

use clap::Args;
use serde_json::{Value, json};

use super::format::{self, Table, duration_ms, plain, truncate};
use super::{CliError, ConnectArgs, Connection};

/// Clears from the cursor to the end of the line / of the screen; moves the cursor home.
const CLEAR_LINE: &str = "\x1b[K";
const CLEAR_BELOW: &str = "\x1b[J";
const HOME: &str = "\x1b[H";

/// `heterogen stats [--watch]`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Keeps the statistics live until Ctrl-C.
    #[arg(short, long)]
    pub watch: bool,
    /// Milliseconds between updates with `--watch` (the node's minimum is 100).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// Prints the statistics as JSON (with `--watch`: one compact line per update).
    #[arg(long)]
    pub json: bool,
    /// Every node's per-worker statistics, as each published them with its membership (not
    /// with `--watch`).
    #[arg(long, conflicts_with = "watch")]
    pub cluster: bool,
    /// Where the node is and how to log in.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// How snapshots are shown.
#[derive(Clone, Copy)]
enum Style {
    Json,
    /// A table, redrawn in place on a terminal.
    Live,
    /// One line per snapshot.
    Plain,
    /// A table, once.
    Table,
}

pub async fn run(args: StatsArgs) -> Result<(), CliError> {
    if args.cluster {
        let listed = super::nodes::list_nodes(&args.connect).await?;
        if args.json {
            return format::print_json(&listed);
        }
        return format::print_raw(&format!(
            "{}\n",
            super::nodes::cluster_stats_table(&listed).join("\n")
        ));
    }
    let style = match (args.json, args.watch, std::io::stdout().is_terminal()) {
        (true, _, _) => Style::Json,
        (false, false, _) => Style::Table,
        (false, true, true) => Style::Live,
        (false, true, false) => Style::Plain,
    };
    let mut conn = Connection::open(&args.connect).await?;
    if !args.watch {
        let stats = conn.call("getWorkerStats", None).await?;
        conn.close().await;
        return match style {
            Style::Json => format::print_json(&stats),
            _ => show(style, &stats),
        };
    }
    // The node pushes the first snapshot at once, then one every interval.
    conn.follow(json!({"stream": "stats", "interval": args.interval}), |frame| {
        if frame["value"]["module"] == "stats" {
            show(style, &frame["value"]["raw"])?;
        }
        Ok(())
    })
    .await?;
    if matches!(style, Style::Live) {
        // Leave the last table on screen and the prompt below it.
        format::print_raw("\n")?;
    }
    conn.close().await;
    Ok(())
}

fn show(style: Style, stats: &Value) -> Result<(), CliError> {
    match style {
        Style::Json => format::print_json_line(stats),
        Style::Plain => format::print_raw(&format!("{}\n", plain_line(stats))),
        Style::Table => format::print_raw(&format!("{}\n", table(stats).join("\n"))),
        Style::Live => {
            let mut screen = String::from(HOME);
            for line in table(stats) {
                screen.push_str(&line);
                screen.push_str(CLEAR_LINE);
                screen.push('\n');
            }
            screen.push_str(&format!(
                "\n{} · Ctrl-C to quit{CLEAR_LINE}\n{CLEAR_BELOW}",
                format::timestamp(&stats["timestamp"])
            ));
            format::print_raw(&screen)
        }
    }
}

/// The node totals, in the order both summaries print them.
fn totals(stats: &Value) -> [String; 7] {
    [
        "totalWorkers",
        "runningWorkers",
        "stoppedWorkers",
        "totalExecutions",
        "totalErrors",
        "totalNetworkErrors",
        "totalCriticalErrors",
    ]
    .map(|field| plain(&stats[field]))
}

/// `2026-…Z workers=3 running=2 stopped=1 executions=… errors=… network=… critical=…`.
fn plain_line(stats: &Value) -> String {
    let [workers, running, stopped, executions, errors, network, critical] = totals(stats);
    format!(
        "{} workers={workers} running={running} stopped={stopped} executions={executions} errors={errors} \
         network={network} critical={critical}",
        format::timestamp(&stats["timestamp"]),
    )
}

/// A summary line, a blank line, and one row per worker.
fn table(stats: &Value) -> Vec<String> {
    let [workers, running, stopped, executions, errors, network, critical] = totals(stats);
    let mut lines = vec![format!(
        "workers {workers}  running {running}  stopped {stopped}  executions {executions}  errors {errors} \
         (network {network}, critical {critical})"
    )];
    let workers = stats["workers"].as_array().map(Vec::as_slice).unwrap_or_default();
    if workers.is_empty() {
        lines.push("no workers on this node".into());
        return lines;
    }
    let mut table = Table::new(&[
        "SID",
        "RUNNING",
        "EXECS",
        "ERRORS",
        "RATE",
        "NET",
        "CRIT",
        "LAST RUN",
        "UPTIME",
        "HASH",
        "LAST ERROR",
    ]);
    for w in workers {
        table.row(vec![
            plain(&w["sid"]),
            if w["isRunning"] == true { "yes" } else { "no" }.into(),
            plain(&w["executions"]),
            plain(&w["errors"]),
            plain(&w["errorRate"]),
            plain(&w["networkErrors"]),
            plain(&w["criticalErrors"]),
            match &w["lastRunAgo"] {
                Value::Null => "-".into(),
                ago => format!("{} ago", duration_ms(ago)),
            },
            duration_ms(&w["uptime"]),
            plain(&w["scriptHash"]),
            truncate(&plain(&w["lastError"]), 60),
        ]);
    }
    lines.push(String::new());
    lines.extend(table.lines());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_and_tables() {
        let stats = json!({"totalWorkers":1,"runningWorkers":1,"stoppedWorkers":0,"totalExecutions":5,
            "totalErrors":0,"totalNetworkErrors":0,"totalCriticalErrors":0,"timestamp":0,
            "workers":[{"sid":"s1","isRunning":true,"executions":5,"errors":0,"errorRate":"0.00%",
            "networkErrors":0,"criticalErrors":0,"lastError":null,"lastRunAgo":12,"uptime":1500,"scriptHash":"1f0c7a55"}]});
        assert_eq!(
            plain_line(&stats),
            "1970-01-01T00:00:00.000Z workers=1 running=1 stopped=0 executions=5 errors=0 network=0 critical=0"
        );
        let lines = table(&stats);
        assert!(lines[2].starts_with("SID  RUNNING  EXECS"), "{lines:?}");
        assert!(
            lines[3].contains("12ms ago") && lines[3].contains("1.5s"),
            "{lines:?}"
        );
    }
}
