//! `heterogen login` and `heterogen logout`: saved sessions, one per profile.

use clap::Args;
use serde_json::json;

use super::format;
use super::target::{Target, profile_flag};
use super::{CliError, ConnectArgs};

/// `heterogen login --key KEYFILE [--url URL] [--profile NAME]`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Prints `{profile, url, address, session, file}` as JSON instead of the bare session.
    #[arg(long)]
    pub json: bool,
    /// Where the node is, the key file to log in with, and the profile to save.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `heterogen logout [--profile NAME]`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The profile to forget.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn login(args: LoginArgs) -> Result<(), CliError> {
    let Some(key) = args.connect.key.clone() else {
        return Err(CliError::Usage(
            "login needs --key KEYFILE (a wallet key from 'heterogen wallet new', or the node's owner-key.json)"
                .into(),
        ));
    };
    let target = Target::resolve_for_login(&args.connect)?;
    let tls = target.tls()?;
    let (session, address) = target.log_in(&key, &tls).await?;
    let file = target.save_session(session.clone(), address.clone())?;
    eprintln!(
        "heterogen: logged in to {} as {address}; saved as profile {:?} in {} (commands use it{})",
        target.url,
        target.profile,
        file.display(),
        if profile_flag(&target.profile).is_empty() {
            " by default".to_string()
        } else {
            format!(" with{}", profile_flag(&target.profile))
        }
    );
    if args.json {
        return format::print_json(&json!({
            "profile": target.profile,
            "url": target.url,
            "address": address,
            "session": session,
            "file": file,
        }));
    }
    format::print_raw(&format!("{session}\n"))
}

pub fn logout(args: LogoutArgs) -> Result<(), CliError> {
    let name = args
        .connect
        .profile
        .clone()
        .unwrap_or_else(|| super::profile::DEFAULT_PROFILE.to_string());
    if super::profile::remove(&name)? {
        eprintln!("heterogen: forgot the saved login {name:?}");
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "there is no saved login named {name:?}"
        )))
    }
}
