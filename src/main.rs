//! The `heterogen` command.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use heterogen::config::ServeArgs;
use heterogen::logging::LogFormat;
use std::io::Write;

#[derive(Parser)]
#[command(
    name = "heterogen",
    version = VERSION,
    about = "Stores JavaScript workers and runs them across a cluster of nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("HETEROGEN_GIT_REVISION"),
    ")"
);

#[derive(Subcommand)]
enum Command {
    /// Prints a completion script for a shell (`source <(heterogen completions bash)`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Run a node.
    Serve(Box<ServeArgs>),
    /// Gliesereum wallets: the keys that log in to nodes.
    #[command(subcommand)]
    Wallet(WalletCommand),
    #[command(flatten)]
    Client(Box<heterogen::cli::ClientCommand>),
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Creates a wallet and writes its key file (mode 0600); prints the address.
    New {
        /// Where to write the key file; an existing file is never overwritten.
        #[arg(long, default_value = "heterogen-wallet.json")]
        out: std::path::PathBuf,
        /// Prints `{address, publicKey, number, file}` as JSON instead of the address.
        #[arg(long)]
        json: bool,
    },
    /// Prints the address, public key and card number of a key file.
    Show {
        /// The key file written by `wallet new`.
        keyfile: std::path::PathBuf,
        /// Prints `{address, publicKey, number}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` starts its log once its settings say in which format.
    let _log = match &cli.command {
        Command::Serve(_) => None,
        _ => heterogen::logging::init(LogFormat::Text, None),
    };
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "heterogen", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Serve(args) => serve(*args),
        Command::Wallet(WalletCommand::New { out, json }) => wallet_new(&out, json),
        Command::Wallet(WalletCommand::Show { keyfile, json }) => wallet_show(&keyfile, json),
        Command::Client(command) => heterogen::cli::run(*command),
    }
}

fn wallet_new(out: &std::path::Path, json: bool) -> ExitCode {
    let wallet = heterogen::auth::gliesereum::Wallet::generate();
    match heterogen::auth::keyfile::write_new(out, &wallet) {
        Ok(()) => {
            if json {
                let mut described = describe_wallet(&wallet);
                described["file"] = serde_json::json!(out);
                println!("{described}");
            } else {
                println!("{}", wallet.address());
            }
            eprintln!(
                "heterogen: wallet key written to {} (keep it private)",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("heterogen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn wallet_show(keyfile: &std::path::Path, json: bool) -> ExitCode {
    match heterogen::auth::keyfile::read(keyfile) {
        Ok(wallet) if json => {
            println!("{}", describe_wallet(&wallet));
            ExitCode::SUCCESS
        }
        Ok(wallet) => {
            println!("address: {}", wallet.address());
            println!("public key: {}", wallet.public_compressed_hex());
            println!("number: {}", wallet.number());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("heterogen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A wallet's public parts (never its private key).
fn describe_wallet(wallet: &heterogen::auth::gliesereum::Wallet) -> serde_json::Value {
    serde_json::json!({
        "address": wallet.address(),
        "publicKey": wallet.public_compressed_hex(),
        "number": wallet.number(),
    })
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(config) => config,
        Err(e) => {
            complain(&e);
            return ExitCode::from(2);
        }
    };
    let _log = heterogen::logging::init(config.log_format, Some(&config.nid));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            complain(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let node = match heterogen::start(config).await {
            Ok(node) => node,
            Err(
                e @ (heterogen::NodeError::StoreUnreachable(_)
                | heterogen::NodeError::NidTaken { .. }
                | heterogen::NodeError::SecretsKey(_)),
            ) => {
                complain(&e);
                return ExitCode::from(2);
            }
            Err(e) => {
                complain(&e);
                return ExitCode::FAILURE;
            }
        };
        // One line on stdout that scripts and tests can wait for. Whoever reads stdout may be
        // gone already: that must not stop the node.
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "heterogen listening on {}", node.listening_url());
        let _ = stdout.flush();
        if let Some(link) = node.console_link() {
            let _ = writeln!(std::io::stderr(), "Console: {link}");
        }
        match node.run_until_signal().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                complain(&e);
                ExitCode::FAILURE
            }
        }
    })
}

/// A message on stderr for the operator; a closed stderr must not turn an exit into a panic.
fn complain(message: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "heterogen: {message}");
}
