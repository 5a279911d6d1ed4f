//! `heterogen console`: a browser console link carrying a session, the session in the fragment
//! only (browsers never send a fragment, so it reaches no server log and no Referer).

use clap::Args;

use super::target::{Auth, Target};
use super::{CliError, ConnectArgs};

/// `heterogen console [--key KEYFILE] [--no-open]`.
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Only print the link; do not start a browser.
    #[arg(long)]
    pub no_open: bool,
    /// Where the node is and how to log in (a fresh login with `--key`, else the saved one).
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn run(args: ConsoleArgs) -> Result<(), CliError> {
    let target = Target::resolve(&args.connect)?;
    let session = match &target.auth {
        Auth::Key(key) => target.log_in(key, &*target.tls()?).await?.0,
        Auth::Session { token, .. } => token.clone(),
        Auth::Anonymous => {
            return Err(CliError::Usage(
                "console needs a session: pass --key KEYFILE (the node's owner-key.json works), \
                 or log in once with 'heterogen login --key KEYFILE'"
                    .into(),
            ));
        }
    };
    let link = format!("{}/console/#session={session}", target.endpoints.http);
    super::format::print_raw(&format!("{link}\n"))?;
    if !args.no_open && crate::client::open_in_browser(&link) {
        eprintln!("heterogen: opened the console in your browser");
    }
    Ok(())
}
