//! `heterogen secrets set | list | rm`: a worker's secrets, named by its sid or a unique prefix.
//! A value is read from standard input (hidden at a prompt on a terminal), never from an
//! argument, where the process list and the shell history would keep it.

use std::io::{IsTerminal, Read};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::format::{self, Table, plain};
use super::workers::{find, sid_of};
use super::{CliError, ConnectArgs, Connection};

/// The most read from standard input: the node's default request limit. The node itself says
/// when a value is over a secret's limit.
const MAX_STDIN_BYTES: u64 = 1024 * 1024;

/// `heterogen secrets …`.
#[derive(Args, Debug)]
pub struct SecretsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SecretsCommand,
    /// Where the node is and how to log in.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `heterogen secrets <command>`.
#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Sets a secret of a worker; the value comes from stdin (one trailing newline is dropped),
    /// asked for without echo on a terminal. Scripts read it as `Stels.secrets.NAME`.
    Set {
        /// The worker's sid, or a unique prefix of it.
        sid: String,
        /// The secret's name: letters, digits and `_`, not starting with a digit.
        name: String,
        /// Prints `{sid, name, updatedAt, created}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists the names of a worker's secrets and when each was set (never the values).
    List {
        /// The worker's sid, or a unique prefix of it.
        sid: String,
        /// Prints `{sid, secrets: [{name, updatedAt}]}` as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deletes a secret of a worker.
    Rm {
        /// The worker's sid, or a unique prefix of it.
        sid: String,
        /// The secret's name.
        name: String,
        /// Prints `{sid, name}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: SecretsArgs) -> Result<(), CliError> {
    match args.command {
        SecretsCommand::Set { sid, name, json } => {
            // Piped input is read before connecting: a missing value is a usage error at once.
            let piped = if std::io::stdin().is_terminal() {
                None
            } else {
                Some(read_piped()?)
            };
            let mut conn = Connection::open(&args.connect).await?;
            let sid = resolve(&mut conn, &sid).await?;
            let value = match piped {
                Some(value) => value,
                None => prompt(&sid, &name)?,
            };
            let set = conn
                .call(
                    "setWorkerSecret",
                    Some(json!({"sid": sid, "name": name, "value": value})),
                )
                .await?;
            conn.close().await;
            if json {
                return format::print_json(&set);
            }
            let text = if set["created"] == true {
                format!("added secret {name} to {sid}\n")
            } else {
                format!("replaced secret {name} of {sid}\n")
            };
            format::print_raw(&text)
        }
        SecretsCommand::List { sid, json } => {
            let mut conn = Connection::open(&args.connect).await?;
            let sid = resolve(&mut conn, &sid).await?;
            let listed = conn.call("listWorkerSecrets", Some(json!({"sid": sid}))).await?;
            conn.close().await;
            if json {
                return format::print_json(&listed);
            }
            format::print_raw(&list_text(&sid, &listed))
        }
        SecretsCommand::Rm { sid, name, json } => {
            let mut conn = Connection::open(&args.connect).await?;
            let sid = resolve(&mut conn, &sid).await?;
            let removed = conn
                .call("deleteWorkerSecret", Some(json!({"sid": sid, "name": name})))
                .await?;
            conn.close().await;
            if json {
                return format::print_json(&removed);
            }
            format::print_raw(&format!("removed secret {name} from {sid}\n"))
        }
    }
}

/// The whole sid a sid or prefix names.
async fn resolve(conn: &mut Connection, sid: &str) -> Result<String, CliError> {
    let entries = conn.call("listWorkers", None).await?;
    Ok(sid_of(find(&entries, sid)?))
}

/// The value on a pipe or file: one trailing newline (`\n` or `\r\n`) dropped, not empty.
fn read_piped() -> Result<String, CliError> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::Failed(format!("cannot read the value from stdin: {e}")))?;
    if bytes.len() as u64 > MAX_STDIN_BYTES {
        return Err(CliError::Usage(format!(
            "the value on stdin is over {} MiB",
            MAX_STDIN_BYTES / 1024 / 1024
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::Usage("the value is not UTF-8 text (encode a binary value, e.g. with base64)".into())
    })?;
    value_of(text)
}

/// `text` without one trailing newline; refused when nothing is left.
fn value_of(mut text: String) -> Result<String, CliError> {
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    if text.is_empty() {
        return Err(CliError::Usage(
            "the value is empty: give it on stdin (`printf %s \"$VALUE\" | heterogen secrets set SID NAME`) \
             or type it at the prompt"
                .into(),
        ));
    }
    Ok(text)
}

/// Asks for the value on the terminal without echoing it.
fn prompt(sid: &str, name: &str) -> Result<String, CliError> {
    let typed = rpassword::prompt_password(format!("Value of {name} for worker {sid} (not shown): "))
        .map_err(|e| CliError::Failed(format!("cannot read the value from the terminal: {e}")))?;
    value_of(typed)
}

/// One row per secret: name and when it was set.
fn list_text(sid: &str, listed: &Value) -> String {
    let secrets = listed["secrets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if secrets.is_empty() {
        return format!("{sid} has no secrets\n");
    }
    let mut table = Table::new(&["NAME", "UPDATED"]);
    for secret in secrets {
        let updated = match &secret["updatedAt"] {
            Value::Null => "-".to_string(),
            at => format::timestamp(at),
        };
        table.row(vec![plain(&secret["name"]), updated]);
    }
    let mut text = table.lines().join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_goes_and_empty_values_are_refused() {
        assert_eq!(value_of("s3cret\n".into()).unwrap(), "s3cret");
        assert_eq!(value_of("s3cret\r\n".into()).unwrap(), "s3cret");
        assert_eq!(value_of("two\n\n".into()).unwrap(), "two\n");
        assert_eq!(value_of(" spaced ".into()).unwrap(), " spaced ");
        assert!(matches!(value_of("\n".into()), Err(CliError::Usage(_))));
        assert!(matches!(value_of(String::new()), Err(CliError::Usage(_))));
    }

    #[test]
    fn a_table_of_names_and_times() {
        let listed = json!({"sid": "w", "secrets": [
            {"name": "API_KEY", "updatedAt": 1_700_000_000_000_i64},
            {"name": "B", "updatedAt": null},
        ]});
        let text = list_text("w", &listed);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME     UPDATED");
        assert_eq!(lines[1], "API_KEY  2023-11-14T22:13:20.000Z");
        assert_eq!(lines[2], "B        -");
        assert_eq!(list_text("w", &json!({"secrets": []})), "w has no secrets\n");
    }
}
