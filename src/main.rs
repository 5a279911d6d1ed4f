//! The `heterogen` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use heterogen::config::ServeArgs;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "heterogen",
    version,
    about = "Stores JavaScript workers and runs them across a cluster of nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("heterogen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("heterogen: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let node = match heterogen::start(config).await {
            Ok(node) => node,
            Err(e) => {
                eprintln!("heterogen: {e}");
                return ExitCode::FAILURE;
            }
        };
        // One line on stdout that scripts and tests can wait for.
        println!("heterogen listening on http://{}", node.local_addr());
        match node.run_until_signal().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("heterogen: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
