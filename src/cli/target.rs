//! Which node a command talks to and as whom: `--url`, `--key`, `--session` and the saved
//! profile, resolved once per command.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls::ClientConfig;
use url::Url;

use super::profile::{self, DEFAULT_PROFILE, Profile};
use super::{CliError, ConnectArgs, DEFAULT_URL};

/// The WebSocket and HTTP addresses of a node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// `ws(s)://host[:port]/path[?query]`.
    pub ws: Url,
    /// `http(s)://host[:port]`, for logging in.
    pub http: String,
}

/// Reads a node URL given as `ws`, `wss`, `http` or `https` into its WebSocket and HTTP forms.
pub(crate) fn endpoints(url: &str) -> Result<Endpoints, CliError> {
    let bad = |why: &str| CliError::Usage(format!("--url {url:?} {why} (expected ws://host:port)"));
    let mut ws = Url::parse(url.trim()).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    let (ws_scheme, http_scheme) = match ws.scheme() {
        "ws" | "http" => ("ws", "http"),
        "wss" | "https" => ("wss", "https"),
        _ => return Err(bad("has an unsupported scheme")),
    };
    if ws.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    ws.set_scheme(ws_scheme)
        .map_err(|()| bad("has an unsupported scheme"))?;
    ws.set_fragment(None);
    let mut http = ws.clone();
    http.set_scheme(http_scheme)
        .map_err(|()| bad("has an unsupported scheme"))?;
    Ok(Endpoints {
        ws,
        http: http.origin().ascii_serialization(),
    })
}

/// How a command proves who it is.
#[derive(Debug)]
pub(crate) enum Auth {
    /// Log in afresh with this wallet key file.
    Key(PathBuf),
    /// A session from `--session`, or from the profile named.
    Session { token: String, profile: Option<String> },
    /// No session: the node must be `--open`.
    Anonymous,
}

/// A resolved `ConnectArgs`.
#[derive(Debug)]
pub(crate) struct Target {
    /// The URL as the person gave it (or the profile holds), for messages.
    pub url: String,
    pub endpoints: Endpoints,
    pub ca: Option<PathBuf>,
    pub auth: Auth,
    /// The profile name in use (`default` when none was named).
    pub profile: String,
}

impl Target {
    /// `--key` first, then `--session`, then the profile's session when it belongs to this
    /// node. A profile named with `--profile` must exist; the default one may not.
    pub fn resolve(args: &ConnectArgs) -> Result<Target, CliError> {
        Target::resolve_with(args, true)
    }

    /// As [`Target::resolve`], for `login`, which creates the profile it names.
    pub fn resolve_for_login(args: &ConnectArgs) -> Result<Target, CliError> {
        Target::resolve_with(args, false)
    }

    fn resolve_with(args: &ConnectArgs, named_must_exist: bool) -> Result<Target, CliError> {
        let name = args
            .profile
            .clone()
            .unwrap_or_else(|| DEFAULT_PROFILE.to_string());
        let saved = profile::load(&name)?;
        if saved.is_none() && args.profile.is_some() && named_must_exist {
            return Err(CliError::Usage(format!(
                "no saved login named {name:?}; create it with 'heterogen login --profile {name} --key KEYFILE'"
            )));
        }
        let url = args
            .url
            .clone()
            .or_else(|| saved.as_ref().map(|p| p.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        let endpoints = endpoints(&url)?;
        // A session belongs to the node that issued it.
        let saved = saved.filter(|p| endpoints_of(p).is_some_and(|e| e == endpoints));
        let ca = args
            .ca
            .clone()
            .or_else(|| saved.as_ref().and_then(|p| p.ca.clone()));
        let auth = match (&args.key, &args.session, saved) {
            (Some(key), _, _) => Auth::Key(key.clone()),
            (None, Some(token), _) => Auth::Session {
                token: token.clone(),
                profile: None,
            },
            (None, None, Some(saved)) => Auth::Session {
                token: saved.session,
                profile: Some(name.clone()),
            },
            (None, None, None) => Auth::Anonymous,
        };
        Ok(Target {
            url,
            endpoints,
            ca,
            auth,
            profile: name,
        })
    }

    /// The TLS settings for this node (the public CAs and `--ca`).
    pub fn tls(&self) -> Result<Arc<ClientConfig>, CliError> {
        crate::client::tls_config(self.ca.as_deref()).map_err(|e| CliError::Usage(e.to_string()))
    }

    /// Logs in with the wallet key file `key`: the session and the wallet's address.
    pub async fn log_in(
        &self,
        key: &std::path::Path,
        tls: &ClientConfig,
    ) -> Result<(String, String), CliError> {
        let wallet = crate::auth::keyfile::read(key).map_err(|e| CliError::Failed(e.to_string()))?;
        let session = crate::client::login(&self.endpoints.http, &wallet, tls)
            .await
            .map_err(|e| match e {
                crate::client::ClientError::Unreachable { source, .. } => {
                    unreachable(&self.url, &root_cause(&source))
                }
                other => CliError::Failed(format!("cannot log in to {}: {other}", self.url)),
            })?;
        Ok((session, wallet.address()))
    }

    /// What to do when the node refused this command's session (401).
    pub fn refused_hint(&self) -> String {
        match &self.auth {
            Auth::Key(_) => {
                "the session from --key was not accepted; try again, or check the node's --owners".into()
            }
            Auth::Session {
                profile: Some(name), ..
            } => format!(
                "the session saved in profile {name:?} was refused (it expired, or the node no longer \
                 knows it); log in again with 'heterogen login{} --key KEYFILE'",
                profile_flag(name)
            ),
            Auth::Session { profile: None, .. } => {
                "the --session token was refused (expired or unknown)".into()
            }
            Auth::Anonymous => "the node needs a session: log in once with 'heterogen login --key KEYFILE' \
                 (a wallet among the node's --owners), pass --key KEYFILE, or start the node with --open"
                .into(),
        }
    }

    /// Saves `session` for this node under this target's profile name.
    pub fn save_session(&self, session: String, address: String) -> Result<PathBuf, CliError> {
        let ca = match &self.ca {
            Some(ca) => Some(
                std::path::absolute(ca)
                    .map_err(|e| CliError::Failed(format!("cannot resolve {}: {e}", ca.display())))?,
            ),
            None => None,
        };
        profile::save(
            &self.profile,
            Profile {
                url: self.url.clone(),
                session,
                address,
                ca,
            },
        )
    }
}

/// ` --profile NAME`, or nothing for the default profile.
pub(crate) fn profile_flag(name: &str) -> String {
    if name == DEFAULT_PROFILE {
        String::new()
    } else {
        format!(" --profile {name}")
    }
}

fn endpoints_of(profile: &Profile) -> Option<Endpoints> {
    endpoints(&profile.url).ok()
}

/// Nothing answered at `url`: what happened, and what to do about it.
pub(crate) fn unreachable(url: &str, error: &dyn std::fmt::Display) -> CliError {
    CliError::Unreachable(format!(
        "cannot reach {url}: {error} — is a node running? start one with 'heterogen serve'"
    ))
}

/// The innermost cause of `error` ("Connection refused (os error 111)" rather than "error
/// sending request"), which is the part a person can act on.
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_ws_and_http_endpoints() {
        let e = endpoints("ws://127.0.0.1:8088").unwrap();
        assert_eq!(e.ws.as_str(), "ws://127.0.0.1:8088/");
        assert_eq!(e.http, "http://127.0.0.1:8088");
        let e = endpoints("https://node.example/ws?x=1#frag").unwrap();
        assert_eq!(e.ws.as_str(), "wss://node.example/ws?x=1");
        assert_eq!(e.http, "https://node.example");
        let e = endpoints("WS://h:1?a=b").unwrap();
        assert_eq!(e.ws.as_str(), "ws://h:1/?a=b");
        let e = endpoints("http://[::1]:8088").unwrap();
        assert_eq!(e.ws.as_str(), "ws://[::1]:8088/");
        assert_eq!(e.http, "http://[::1]:8088");
        assert!(matches!(endpoints("127.0.0.1:8088"), Err(CliError::Usage(_))));
        assert!(matches!(endpoints("ftp://h"), Err(CliError::Usage(_))));
        assert!(matches!(endpoints("ws://"), Err(CliError::Usage(_))));
    }

    #[test]
    fn sessions_go_into_the_query() {
        let mut url = endpoints("ws://h/?x=1").unwrap().ws;
        url.query_pairs_mut().append_pair("session", "a b");
        assert_eq!(url.as_str(), "ws://h/?x=1&session=a+b");
    }
}
