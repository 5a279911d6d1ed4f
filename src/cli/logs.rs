//! `heterogen logs SID [-f]`: the history kept on the node (`getWorkerLogs`), then, with
//! `-f`, the live stream (`subscribe {"stream":"logs"}`) from where the history ended.

use clap::Args;
use serde_json::{Map, Value, json};

use super::format;
use super::{CliError, ConnectArgs, Connection};

/// History pages read at most (a node keeps a bounded history; this only guards a loop).
const MAX_PAGES: usize = 1000;

/// `heterogen logs SID [-f]`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The worker's sid.
    pub sid: String,
    /// Keeps printing new lines as the worker writes them, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Starts after this cursor (from an earlier `--json` line) instead of the oldest line kept.
    #[arg(long)]
    pub since: Option<u64>,
    /// Prints each line as a JSON object (`sid, cursor, level, content, timestamp`).
    #[arg(long)]
    pub json: bool,
    /// Where the node is and how to log in.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn run(args: LogsArgs) -> Result<(), CliError> {
    let mut conn = Connection::open(&args.connect).await?;
    let started = chrono::Utc::now().timestamp_millis();
    let mut since = args.since.map(Value::from);
    let mut last_printed: Option<u64> = args.since;
    // Pages until one is empty or reaches lines written after this command started, so a
    // busy worker cannot keep the history reading forever.
    for _ in 0..MAX_PAGES {
        let mut body = Map::new();
        body.insert("sid".into(), Value::String(args.sid.clone()));
        if let Some(since) = &since {
            body.insert("since".into(), since.clone());
        }
        let page = conn.call("getWorkerLogs", Some(Value::Object(body))).await?;
        let lines = page["lines"].as_array().cloned().unwrap_or_default();
        if args.since.is_some()
            && let Some(dropped) = page["dropped"].as_u64().filter(|n| *n > 0)
        {
            eprintln!("heterogen: {dropped} log lines after the cursor are no longer kept on the node");
        }
        for line in &lines {
            print_line(line, args.json, &mut last_printed)?;
        }
        let next = page.get("next").filter(|next| !next.is_null()).cloned();
        let caught_up = lines.is_empty()
            || lines
                .last()
                .and_then(|line| line["timestamp"].as_i64())
                .is_none_or(|at| at >= started);
        let advanced = next.is_some() && next != since;
        if next.is_some() {
            since = next;
        }
        if caught_up || !advanced {
            break;
        }
    }
    if !args.follow {
        conn.close().await;
        return Ok(());
    }

    let mut body = json!({"stream": "logs", "sid": args.sid});
    if let Some(since) = &since {
        body["since"] = since.clone();
    }
    conn.follow(body, |frame| {
        if frame["type"] == "lagged" {
            let dropped = format::plain(&frame["dropped"]);
            eprintln!("heterogen: {dropped} log lines were dropped (this client fell behind)");
            return Ok(());
        }
        let value = &frame["value"];
        if value["module"] != "logs"
            && !value["channel"]
                .as_str()
                .is_some_and(|c| c.starts_with("ami.logs."))
        {
            return Ok(());
        }
        if value["raw"]["sid"].as_str().is_some_and(|sid| sid != args.sid) {
            return Ok(());
        }
        print_line(&value["raw"], args.json, &mut last_printed)
    })
    .await?;
    conn.close().await;
    Ok(())
}

/// Prints one log line unless its cursor was printed already.
fn print_line(line: &Value, json: bool, last_printed: &mut Option<u64>) -> Result<(), CliError> {
    if let Some(cursor) = line["cursor"].as_u64() {
        if last_printed.is_some_and(|last| cursor <= last) {
            return Ok(());
        }
        *last_printed = Some(cursor);
    }
    if json {
        return format::print_json_line(line);
    }
    let content = format::plain(&line["content"]);
    if content.ends_with('\n') {
        format::print_raw(&content)
    } else {
        format::print_raw(&format!("{content}\n"))
    }
}
