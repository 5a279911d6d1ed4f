//! The client side of a node, for the command line: logging in with a wallet, console links.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::auth::gliesereum::{Wallet, login_request_body};

/// Why a login did not give a session.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {source}")]
    /// Nothing answers at the URL.
    Unreachable {
        /// The URL tried.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    #[error("{url} is not a heterogen node: {reason}")]
    /// Something answers, but not a node.
    NotANode {
        /// The URL tried.
        url: String,
        /// What gave it away.
        reason: String,
    },
    #[error("cannot use the CA certificate {path}: {reason}")]
    /// `--ca` cannot be read or holds no certificate.
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    #[error("login refused ({status}): {message}")]
    /// The node refused the login.
    Refused {
        /// Its status.
        status: u16,
        /// Its message.
        message: String,
    },
}

/// The TLS settings of the command-line client: the public certificate authorities, and the
/// one in `ca` (PEM) for a node with a private or self-signed certificate.
pub fn tls_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        let bad = |reason: String| ClientError::Ca {
            path: path.to_path_buf(),
            reason,
        };
        for cert in crate::pem::certificates(path).map_err(bad)? {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Ca {
            path: ca.map(Path::to_path_buf).unwrap_or_default(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Logs in to the node at `url` (its HTTP URL) over `tls` (see [`tls_config`]) and returns the
/// session token. The node's network name is read from the node first, so the signed request
/// names the right one.
pub async fn login(url: &str, wallet: &Wallet, tls: &ClientConfig) -> Result<String, ClientError> {
    let url = url.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .build()
        .map_err(|source| ClientError::Unreachable {
            url: url.to_string(),
            source,
        })?;
    let unreachable = |source| ClientError::Unreachable {
        url: url.to_string(),
        source,
    };
    let not_a_node = |reason: String| ClientError::NotANode {
        url: url.to_string(),
        reason,
    };
    let info: Value = http
        .get(format!("{url}/"))
        .send()
        .await
        .map_err(unreachable)?
        .json()
        .await
        .map_err(|e| not_a_node(e.to_string()))?;
    let network = info
        .get("network")
        .and_then(Value::as_str)
        .ok_or_else(|| not_a_node("no network in its answer".into()))?;
    let socket = info.get("websocket").and_then(Value::as_str).unwrap_or_default();
    let request = login_request_body(
        wallet,
        "LOGIN_REQUEST",
        network,
        chrono::Utc::now().timestamp_millis(),
        url,
        socket,
    );
    let response = http
        .post(format!("{url}/"))
        .json(&request)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.map_err(|e| not_a_node(e.to_string()))?;
    match body.pointer("/raw/session").and_then(Value::as_str) {
        Some(session) if status == 200 => Ok(session.to_string()),
        _ => Err(ClientError::Refused {
            status,
            message: body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no session in the answer")
                .to_string(),
        }),
    }
}

/// Starts the person's browser on `link` without waiting for it: `$BROWSER`, else `open` on
/// macOS, else `xdg-open` where a display exists. Returns whether one was started.
pub fn open_in_browser(link: &str) -> bool {
    let program = match std::env::var("BROWSER") {
        Ok(browser) if !browser.trim().is_empty() => browser,
        _ if cfg!(target_os = "macos") => "open".to_string(),
        _ if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() => {
            "xdg-open".to_string()
        }
        _ => return false,
    };
    std::process::Command::new(program)
        .arg(link)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
