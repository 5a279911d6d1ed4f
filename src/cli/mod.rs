//! The command-line client (issue #5): `call`, `workers`, `secrets`, `logs`, `stats` and
//! `nodes`, over one WebFIX WebSocket per command.
//!
//! Every command takes `--url` (`HETEROGEN_URL`; `http(s)://` works too), `--key`
//! (`HETEROGEN_KEY`), `--session` (`HETEROGEN_SESSION`) and `--profile` (`HETEROGEN_PROFILE`):
//! with a key file the command first logs in over HTTP ([`crate::client::login`]); else it uses
//! the session given, else the one `heterogen login` saved for that node; without any it
//! connects bare, which a node started with `--open` accepts.
//!
//! Exit codes: 0 on success (and on Ctrl-C while following), 1 on an error status, a refused
//! or failed request, or an unknown worker, 2 on a usage problem (clap's own errors too), 3
//! when the node cannot be reached.
// The client reads the node's JSON replies through serde_json's `Index`, which gives `Null` for
// a missing field rather than panicking, and it reads no stranger's input.
#![allow(clippy::indexing_slicing)]

mod conn;
mod console;
mod deploy;
mod format;
mod login;
mod logs;
mod nodes;
mod profile;
mod secrets;
mod stats;
mod target;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

pub use conn::Connection;
pub use console::ConsoleArgs;
pub use deploy::DeployArgs;
pub use login::{LoginArgs, LogoutArgs};
pub use logs::LogsArgs;
pub use nodes::NodesArgs;
pub use secrets::{SecretsArgs, SecretsCommand};
pub use stats::StatsArgs;
pub use workers::{WorkersArgs, WorkersCommand};

/// The default node address of every client command.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:8088";

/// How long a request may wait for its answer (and a connection for its handshake).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where and as whom a client command connects.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The node's URL: `ws(s)://host:port` (`http(s)://` is taken too) [default: the saved
    /// profile's, else ws://127.0.0.1:8088].
    #[arg(long, env = "HETEROGEN_URL", global = true)]
    pub url: Option<String>,
    /// A wallet key file (from `wallet new`) to log in with afresh.
    #[arg(long, env = "HETEROGEN_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// A session token (from `heterogen login`) to use instead of logging in.
    #[arg(long, env = "HETEROGEN_SESSION", global = true, hide_env_values = true)]
    pub session: Option<String>,
    /// The saved login to use (written by `heterogen login --profile NAME`) [default: default].
    #[arg(long, env = "HETEROGEN_PROFILE", global = true)]
    pub profile: Option<String>,
    /// A CA certificate (PEM) to trust for a `wss://`/`https://` node besides the public ones
    /// (a private CA, or the node's self-signed certificate).
    #[arg(long, env = "HETEROGEN_CA", global = true)]
    pub ca: Option<PathBuf>,
}

/// `heterogen call METHOD [JSON-BODY]`.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// The WebFIX method, e.g. `listWorkers`.
    pub method: String,
    /// The request body as JSON (`-` reads it from stdin); left out when not given.
    pub body: Option<String>,
    /// Where the node is and how to log in.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// The client commands, flattened into the binary's own subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Logs in with a wallet key file and saves the session as a profile that later commands
    /// use; prints the session token.
    Login(LoginArgs),
    /// Forgets a saved login.
    Logout(LogoutArgs),
    /// Prints (and opens) a browser console link carrying a session: a fresh one with `--key`,
    /// else the saved login's.
    Console(ConsoleArgs),
    /// Calls a WebFIX method over WebSocket and prints its result JSON (exit 1 on an error status).
    Call(CallArgs),
    /// Lists, creates, starts, stops and edits workers.
    Workers(WorkersArgs),
    /// Sets (value from stdin), lists (names only) and removes a worker's secrets.
    Secrets(SecretsArgs),
    /// Creates or updates the workers a `heterogen.toml` manifest lists (`--dry-run`: the plan).
    Deploy(DeployArgs),
    /// Prints a worker's log lines kept on the node; `-f` keeps following them.
    Logs(LogsArgs),
    /// Prints this node's worker statistics; `--watch` keeps them live; `--cluster`: every node's.
    Stats(StatsArgs),
    /// Lists every live node of the cluster.
    Nodes(NodesArgs),
}

/// Why a client command failed; decides the message and the exit code.
#[derive(Debug)]
pub enum CliError {
    /// A usage problem found after parsing (a body that is not JSON, a bad URL): exit 2.
    Usage(String),
    /// Anything else that went wrong: exit 1.
    Failed(String),
    /// The node answered with an error status: exit 1. `frame` is the whole answer frame.
    Status {
        /// The status the node answered with.
        status: u16,
        /// The whole answer frame.
        frame: Value,
    },
    /// The node could not be reached (refused, no answer, no such host): exit 3.
    Unreachable(String),
    /// An open connection broke (the node closed it or went away): exit 1.
    Lost(String),
    /// Stdout was closed by its reader (`… | head`): stop quietly, exit 0.
    StdoutClosed,
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Unreachable(_) => ExitCode::from(3),
            CliError::StdoutClosed => ExitCode::SUCCESS,
            CliError::Failed(_) | CliError::Lost(_) | CliError::Status { .. } => ExitCode::FAILURE,
        }
    }

    /// The text for stderr (without a trailing newline); empty for [`CliError::StdoutClosed`].
    pub fn message(&self) -> String {
        match self {
            CliError::Usage(text)
            | CliError::Failed(text)
            | CliError::Unreachable(text)
            | CliError::Lost(text) => {
                format!("heterogen: {text}")
            }
            CliError::Status { status, frame } => format::error_frame(*status, frame),
            CliError::StdoutClosed => String::new(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::StdoutClosed
        } else {
            CliError::Failed(format!("cannot write the output: {error}"))
        }
    }
}

/// Runs a client command on its own single-threaded runtime; prints any error to stderr.
pub fn run(command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("heterogen: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = error.message();
            if !message.is_empty() {
                eprintln!("{message}");
            }
            error.exit_code()
        }
    }
}

async fn execute(command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Login(args) => login::login(args).await,
        ClientCommand::Logout(args) => login::logout(args),
        ClientCommand::Console(args) => console::run(args).await,
        ClientCommand::Call(args) => call(args).await,
        ClientCommand::Workers(args) => workers::run(args).await,
        ClientCommand::Secrets(args) => secrets::run(args).await,
        ClientCommand::Deploy(args) => deploy::run(args).await,
        ClientCommand::Logs(args) => logs::run(args).await,
        ClientCommand::Stats(args) => stats::run(args).await,
        ClientCommand::Nodes(args) => nodes::run(args).await,
    }
}

async fn call(args: CallArgs) -> Result<(), CliError> {
    // The body is checked before connecting: a usage problem is exit 2 even with no node.
    let body = match args.body.as_deref() {
        None => None,
        Some(text) => {
            let text = if text == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| CliError::Failed(format!("cannot read the body from stdin: {e}")))?
            } else {
                text.to_string()
            };
            Some(
                serde_json::from_str::<Value>(&text)
                    .map_err(|e| CliError::Usage(format!("the body is not JSON: {e}")))?,
            )
        }
    };
    let mut conn = Connection::open(&args.connect).await?;
    let result = match conn.call(&args.method, body).await {
        // WebFIX code 13: the node has no such method.
        Err(CliError::Status { status: 404, frame }) if frame.get("code") == Some(&Value::from(13)) => {
            return Err(CliError::Failed(unknown_method(&args.method)));
        }
        other => other?,
    };
    conn.close().await;
    format::print_json(&result)
}

/// "The node has no method …", with the closest method name when one is near.
fn unknown_method(name: &str) -> String {
    let closest = crate::api::Method::names()
        .map(|known| (strsim::levenshtein(name, known), known))
        .filter(|(distance, _)| *distance <= 3)
        .min();
    match closest {
        Some((_, known)) => format!("the node has no method {name:?} — did you mean {known}?"),
        None => format!("the node has no method {name:?} (see the methods in the README)"),
    }
}

/// Reads a script file (`-`: stdin).
fn read_script(path: &std::path::Path) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        return std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::Failed(format!("cannot read the script from stdin: {e}")));
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", path.display())))
}
