//! `heterogen logs SID [-n N] [--level L] [-f]`: the history kept on the node
//! (`getWorkerLogs`), then, with `-f`, the live stream (`subscribe {"stream":"logs"}`) from
//! where the history ended. A follow that loses its node (a restart) reconnects and resumes
//! after the last line it printed, so no line is shown twice or skipped while it was kept.

use std::collections::VecDeque;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use super::format;
use super::workers::find;
use super::{CliError, ConnectArgs, Connection};

/// History pages read at most (a node keeps a bounded history; this only guards a loop).
const MAX_PAGES: usize = 1000;

/// Waits between reconnection attempts of `-f`: from the first to the last, then the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_LAST: Duration = Duration::from_secs(5);

/// `heterogen logs SID [-f]`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The worker's sid, or a unique prefix of it.
    pub sid: String,
    /// Keeps printing new lines as the worker writes them, until Ctrl-C; reconnects when the
    /// node goes away and resumes where it stopped.
    #[arg(short, long)]
    pub follow: bool,
    /// Prints only the last N lines of the history (then follows with `-f`).
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<usize>,
    /// Prints only lines of this level or a more severe one.
    #[arg(long, value_enum)]
    pub level: Option<Level>,
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

/// A log level, least severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn of(line: &Value) -> Level {
        match line["level"].as_str().unwrap_or_default() {
            "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARN" => Level::Warn,
            _ => Level::Error,
        }
    }
}

/// Prints lines once each, in cursor order, filtered by level.
struct Printer {
    json: bool,
    level: Option<Level>,
    /// The cursor of the last line printed (or skipped by the filter).
    last: Option<u64>,
}

impl Printer {
    fn print(&mut self, line: &Value) -> Result<(), CliError> {
        if let Some(cursor) = line["cursor"].as_u64() {
            if self.last.is_some_and(|last| cursor <= last) {
                return Ok(());
            }
            self.last = Some(cursor);
        }
        if self.level.is_some_and(|level| Level::of(line) < level) {
            return Ok(());
        }
        if self.json {
            return format::print_json_line(line);
        }
        let content = format::plain(&line["content"]);
        if content.ends_with('\n') {
            format::print_raw(&content)
        } else {
            format::print_raw(&format!("{content}\n"))
        }
    }
}

pub async fn run(args: LogsArgs) -> Result<(), CliError> {
    let mut conn = Connection::open(&args.connect).await?;
    let sid = resolve_sid(&mut conn, &args.sid).await?;
    let mut printer = Printer {
        json: args.json,
        level: args.level,
        last: args.since,
    };
    history(&mut conn, &sid, args.since, args.lines, &mut printer).await?;
    if !args.follow {
        conn.close().await;
        return Ok(());
    }
    loop {
        match follow(&mut conn, &sid, &mut printer).await {
            Ok(()) => {
                conn.close().await;
                return Ok(());
            }
            Err(CliError::Lost(why)) => {
                eprintln!("heterogen: {why}; reconnecting");
                let Some(again) = reconnect(&args.connect).await? else {
                    return Ok(());
                };
                conn = again;
                eprintln!(
                    "heterogen: reconnected; resuming after cursor {}",
                    format::plain(&printer.last.into())
                );
                let since = printer.last;
                history(&mut conn, &sid, since, None, &mut printer).await?;
            }
            Err(other) => return Err(other),
        }
    }
}

/// The full sid of a sid or a unique prefix; a full sid is taken as given (an unknown one is
/// `getWorkerLogs`'s 404).
async fn resolve_sid(conn: &mut Connection, name: &str) -> Result<String, CliError> {
    if uuid::Uuid::try_parse(name).is_ok() {
        return Ok(name.to_string());
    }
    let entries = conn.call("listWorkers", None).await?;
    Ok(super::workers::sid_of(find(&entries, name)?))
}

/// Prints the history after `since` (only its last `tail` lines when given). Pages until one
/// is empty or reaches lines written after this call started, so a busy worker cannot keep
/// the history reading forever.
async fn history(
    conn: &mut Connection,
    sid: &str,
    since: Option<u64>,
    tail: Option<usize>,
    printer: &mut Printer,
) -> Result<(), CliError> {
    let started = chrono::Utc::now().timestamp_millis();
    let mut since = since.map(Value::from);
    let mut kept: VecDeque<Value> = VecDeque::new();
    for _ in 0..MAX_PAGES {
        let mut body = Map::new();
        body.insert("sid".into(), Value::String(sid.to_string()));
        if let Some(since) = &since {
            body.insert("since".into(), since.clone());
        }
        let page = match conn.call("getWorkerLogs", Some(Value::Object(body))).await {
            Err(CliError::Status { status: 404, .. }) => {
                return Err(CliError::Failed(format!("no worker with sid {sid}")));
            }
            other => other?,
        };
        let lines = page["lines"].as_array().cloned().unwrap_or_default();
        if since.is_some()
            && let Some(dropped) = page["dropped"].as_u64().filter(|n| *n > 0)
        {
            eprintln!("heterogen: {dropped} log lines after the cursor are no longer kept on the node");
        }
        let caught_up = lines.is_empty()
            || lines
                .last()
                .and_then(|line| line["timestamp"].as_i64())
                .is_none_or(|at| at >= started);
        for line in lines {
            match tail {
                // The filter applies before the count: `-n 5 --level error` is five errors.
                Some(_) if printer.level.is_some_and(|level| Level::of(&line) < level) => {}
                Some(tail) => {
                    if kept.len() == tail {
                        kept.pop_front();
                    }
                    if tail > 0 {
                        kept.push_back(line);
                    }
                }
                None => printer.print(&line)?,
            }
        }
        let next = page.get("next").filter(|next| !next.is_null()).cloned();
        let advanced = next.is_some() && next != since;
        if next.is_some() {
            since = next;
        }
        if caught_up || !advanced {
            break;
        }
    }
    for line in &kept {
        printer.print(line)?;
    }
    // Lines cut by `-n` are behind the follow too.
    if let Some(cursor) = since.as_ref().and_then(Value::as_u64) {
        printer.last = Some(printer.last.map_or(cursor, |last| last.max(cursor)));
    }
    Ok(())
}

/// Follows the live stream after the last line printed, until Ctrl-C (`Ok`) or a failure.
async fn follow(conn: &mut Connection, sid: &str, printer: &mut Printer) -> Result<(), CliError> {
    let mut body = json!({"stream": "logs", "sid": sid});
    if let Some(since) = printer.last {
        body["since"] = since.into();
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
        if value["raw"]["sid"].as_str().is_some_and(|other| other != sid) {
            return Ok(());
        }
        printer.print(&value["raw"])
    })
    .await
}

/// Opens a connection again, waiting longer after each failure; `None` on Ctrl-C. A refused
/// login or session is final.
async fn reconnect(connect: &ConnectArgs) -> Result<Option<Connection>, CliError> {
    let mut wait = RECONNECT_FIRST;
    loop {
        let attempt = async {
            tokio::time::sleep(wait).await;
            Connection::open(connect).await
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(None),
            opened = attempt => match opened {
                Ok(conn) => return Ok(Some(conn)),
                Err(CliError::Unreachable(_) | CliError::Lost(_)) => {}
                Err(other) => return Err(other),
            },
        }
        wait = (wait * 2).min(RECONNECT_LAST);
    }
}
