//! `heterogen stats [--watch | --cluster]`: this node's `getWorkerStats` as a table (`--cluster`:
//! every node's, from `listNodes`); `--watch` redraws it
//! on every push of the `stats` stream (a live table on a terminal, one plain line per push
//! otherwise).

use std::io::IsTerminal;

use clap::Args;
use serde_json::{Value, json};

use comfy_table::Cell;

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
            _ => show(style, &stats, None),
        };
    }
    // The node pushes the first snapshot at once, then one every interval.
    let mut previous: Option<Value> = None;
    conn.follow(json!({"stream": "stats", "interval": args.interval}), |frame| {
        if frame["value"]["module"] == "stats" {
            let stats = &frame["value"]["raw"];
            show(style, stats, previous.as_ref())?;
            previous = Some(stats.clone());
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

/// Prints a snapshot; `previous` (the snapshot before, when watching) turns CPU time into a
/// share of a core.
fn show(style: Style, stats: &Value, previous: Option<&Value>) -> Result<(), CliError> {
    match style {
        Style::Json => format::print_json_line(stats),
        Style::Plain => format::print_raw(&format!("{}\n", plain_line(stats))),
        Style::Table => format::print_raw(&format!("{}\n", table(stats, previous).join("\n"))),
        Style::Live => {
            let mut screen = String::from(HOME);
            for line in table(stats, previous) {
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

/// A summary line, a blank line, and one row per worker. CPU is the time the worker's code
/// ran since its run started, or with `previous` its share of a core since that snapshot.
fn table(stats: &Value, previous: Option<&Value>) -> Vec<String> {
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
        "MEM",
        if previous.is_some() { "CPU%" } else { "CPU" },
        "LAST RUN",
        "UPTIME",
        "HASH",
        "LAST ERROR",
    ]);
    for w in workers {
        let errors = plain(&w["errors"]);
        table.row(vec![
            Cell::new(plain(&w["sid"])),
            if w["isRunning"] == true {
                format::good("yes")
            } else if w["haltedReason"].is_null() {
                format::dim("no")
            } else {
                format::bad("halted")
            },
            Cell::new(plain(&w["executions"])),
            if errors == "0" {
                Cell::new(errors)
            } else {
                format::bad(errors)
            },
            Cell::new(plain(&w["errorRate"])),
            Cell::new(plain(&w["networkErrors"])),
            Cell::new(plain(&w["criticalErrors"])),
            Cell::new(w["memoryBytes"].as_u64().map_or("-".into(), format::bytes)),
            Cell::new(match previous {
                Some(previous) => cpu_share(w, stats, previous),
                None => duration_ms(&w["cpuMs"]),
            }),
            Cell::new(match &w["lastRunAgo"] {
                Value::Null => "-".into(),
                ago => format!("{} ago", duration_ms(ago)),
            }),
            Cell::new(duration_ms(&w["uptime"])),
            Cell::new(plain(&w["scriptHash"])),
            Cell::new(truncate(&plain(&w["lastError"]), 60)),
        ]);
    }
    lines.push(String::new());
    lines.extend(table.lines());
    lines
}

/// `12.5%`: the CPU time worker `w` gained since `previous`, over the time between the two
/// snapshots; `-` when the worker is new or restarted since.
fn cpu_share(w: &Value, stats: &Value, previous: &Value) -> String {
    let before = previous["workers"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["sid"] == w["sid"]));
    let (Some(before), Some(now), Some(then)) = (
        before,
        stats["timestamp"].as_i64(),
        previous["timestamp"].as_i64(),
    ) else {
        return "-".into();
    };
    match (w["cpuMs"].as_u64(), before["cpuMs"].as_u64()) {
        (Some(cpu), Some(cpu_before)) if cpu >= cpu_before && now > then => {
            format!("{:.1}%", (cpu - cpu_before) as f64 * 100.0 / (now - then) as f64)
        }
        _ => "-".into(),
    }
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
        let lines = table(&stats, None);
        assert!(lines[2].starts_with("SID  RUNNING  EXECS"), "{lines:?}");
        assert!(
            lines[3].contains("12ms ago") && lines[3].contains("1.5s"),
            "{lines:?}"
        );
        let mut later = stats.clone();
        later["timestamp"] = json!(2000);
        later["workers"][0]["cpuMs"] = json!(500);
        later["workers"][0]["memoryBytes"] = json!(230_000);
        let mut before = stats.clone();
        before["workers"][0]["cpuMs"] = json!(100);
        let lines = table(&later, Some(&before));
        assert!(lines[2].contains("CPU%"), "{lines:?}");
        assert!(
            lines[3].contains("20.0%") && lines[3].contains("224.6 KiB"),
            "{lines:?}"
        );
    }
}
