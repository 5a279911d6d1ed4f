//! One WebFIX WebSocket to a node: requests matched to answers by id, pushes queued.

use std::collections::VecDeque;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::target::{Auth, Target, root_cause, unreachable};
use super::{CliError, ConnectArgs, REQUEST_TIMEOUT};

/// Pushes kept while waiting for an answer; older ones are dropped past this.
const MAX_QUEUED_PUSHES: usize = 10_000;

/// An open WebFIX connection.
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// `--url` as given, for messages.
    url: String,
    next_id: u64,
    /// Frames that arrived while waiting for an answer and are not answers.
    pushes: VecDeque<Value>,
}

impl Connection {
    /// Logs in when `--key` is given (or uses `--session`, or the saved profile's session),
    /// then opens the WebSocket with the `webfix` subprotocol.
    pub async fn open(args: &ConnectArgs) -> Result<Connection, CliError> {
        let target = Target::resolve(args)?;
        let tls = target.tls()?;
        let mut ws_url = target.endpoints.ws.clone();
        let session = match &target.auth {
            Auth::Key(key) => Some(target.log_in(key, &tls).await?.0),
            Auth::Session { token, .. } => Some(token.clone()),
            Auth::Anonymous => None,
        };
        if let Some(session) = session {
            ws_url.query_pairs_mut().append_pair("session", &session);
        }
        let mut request = ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| CliError::Usage(format!("--url {:?} is not usable: {e}", target.url)))?;
        request.headers_mut().insert(
            "sec-websocket-protocol",
            tungstenite::http::HeaderValue::from_static("webfix"),
        );
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(tls)),
        );
        let (ws, _) = tokio::time::timeout(REQUEST_TIMEOUT, connect)
            .await
            .map_err(|_| {
                CliError::Unreachable(format!(
                    "cannot reach {}: no answer within {} s — is the address right, and the node running?",
                    target.url,
                    REQUEST_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| connect_error(&target, e))?;
        Ok(Connection {
            ws,
            url: target.url,
            next_id: 1,
            pushes: VecDeque::new(),
        })
    }

    /// Calls `method`; the result on a 2xx answer, else [`CliError::Status`].
    pub async fn call(&mut self, method: &str, body: Option<Value>) -> Result<Value, CliError> {
        let frame = self.request(method, body).await?;
        let status = frame.get("status").and_then(Value::as_u64).unwrap_or(0);
        match frame.get("result") {
            Some(result) if (200..300).contains(&status) => Ok(result.clone()),
            _ => Err(CliError::Status {
                status: u16::try_from(status).unwrap_or(0),
                frame,
            }),
        }
    }

    /// Sends a request and waits (at most [`REQUEST_TIMEOUT`]) for the frame with its id.
    pub async fn request(&mut self, method: &str, body: Option<Value>) -> Result<Value, CliError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = json!({"webfix": "1.0", "method": method, "params": [], "id": id});
        if let Some(body) = body {
            frame["body"] = body;
        }
        let sent = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.ws.send(Message::Text(frame.to_string().into())),
        )
        .await;
        match sent {
            Err(_) => return Err(self.timeout(method)),
            Ok(Err(e)) => return Err(self.lost(e)),
            Ok(Ok(())) => {}
        }
        let wait = async {
            loop {
                let frame = self.read().await?;
                if frame.get("id").and_then(Value::as_u64) == Some(id) {
                    return Ok(frame);
                }
                // Answers to nothing we asked (there are none) are dropped; pushes are kept.
                if frame.get("id").is_none() {
                    if self.pushes.len() >= MAX_QUEUED_PUSHES {
                        self.pushes.pop_front();
                    }
                    self.pushes.push_back(frame);
                }
            }
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, wait).await;
        match answer {
            Ok(answer) => answer,
            Err(_) => Err(self.timeout(method)),
        }
    }

    /// The next frame that is not an answer (a push), waiting as long as it takes.
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn next_push(&mut self) -> Result<Value, CliError> {
        if let Some(frame) = self.pushes.pop_front() {
            return Ok(frame);
        }
        loop {
            let frame = self.read().await?;
            if frame.get("id").is_none() {
                return Ok(frame);
            }
        }
    }

    /// Subscribes with `body` and hands each push of that subscription to `on_push` until
    /// Ctrl-C (a normal end) or a failure.
    pub async fn follow(
        &mut self,
        body: Value,
        mut on_push: impl FnMut(&Value) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        let answer = self.call("subscribe", Some(body)).await?;
        let subscription = answer.get("subscription").cloned();
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            let frame = tokio::select! {
                _ = &mut ctrl_c => return Ok(()),
                frame = self.next_push() => frame?,
            };
            if let (Some(ours), Some(theirs)) = (&subscription, frame.get("subscription"))
                && ours != theirs
            {
                continue;
            }
            on_push(&frame)?;
        }
    }

    /// Closes the connection politely (best effort, briefly).
    pub async fn close(mut self) {
        let close = async {
            let _ = self.ws.close(None).await;
            while let Some(Ok(_)) = self.ws.next().await {}
        };
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), close).await;
    }

    /// The next JSON text frame. Pings are answered by tungstenite while reading.
    async fn read(&mut self) -> Result<Value, CliError> {
        loop {
            let message = match self.ws.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(self.lost(e)),
                None => {
                    return Err(CliError::Lost(format!(
                        "the node at {} closed the connection",
                        self.url
                    )));
                }
            };
            match message {
                Message::Text(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(frame) => return Ok(frame),
                    Err(_) => continue,
                },
                Message::Close(frame) => {
                    let why = frame
                        .map(|f| {
                            let reason = f.reason.to_string();
                            if reason.is_empty() {
                                format!(" (code {})", u16::from(f.code))
                            } else {
                                format!(" (code {}: {reason})", u16::from(f.code))
                            }
                        })
                        .unwrap_or_default();
                    return Err(CliError::Lost(format!(
                        "the node at {} closed the connection{why}",
                        self.url
                    )));
                }
                _ => continue,
            }
        }
    }

    fn timeout(&self, method: &str) -> CliError {
        CliError::Failed(format!(
            "no answer to {method} from {} within {} s",
            self.url,
            REQUEST_TIMEOUT.as_secs()
        ))
    }

    fn lost(&self, error: tungstenite::Error) -> CliError {
        CliError::Lost(format!("connection to {} lost: {error}", self.url))
    }
}

/// A clear message for a failed WebSocket handshake.
fn connect_error(target: &Target, error: tungstenite::Error) -> CliError {
    let url = &target.url;
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let text = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice::<Value>(body).ok())
                .and_then(|body| error_text(&body))
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("refused").to_string());
            if status.as_u16() == 401 {
                let hint = target.refused_hint();
                CliError::Failed(format!("{url} refused the connection (401 {text}): {hint}"))
            } else {
                CliError::Failed(format!(
                    "{url} refused the connection ({} {text})",
                    status.as_u16()
                ))
            }
        }
        tungstenite::Error::Url(tungstenite::error::UrlError::TlsFeatureNotEnabled) => CliError::Failed(
            format!("cannot connect to {url}: this build has no TLS support for wss://"),
        ),
        tungstenite::Error::Url(e) => CliError::Usage(format!("--url {url:?} is not usable: {e}")),
        tungstenite::Error::Io(e) => unreachable(url, &e),
        tungstenite::Error::Tls(e) => {
            CliError::Failed(format!("cannot connect to {url}: TLS: {}", root_cause(&e)))
        }
        other => CliError::Failed(format!("cannot connect to {url}: {other}")),
    }
}

/// The `error` text of a node's answer (`"text"` or `{"message": "text"}`).
pub(crate) fn error_text(body: &Value) -> Option<String> {
    match body.get("error")? {
        Value::String(text) => Some(text.clone()),
        Value::Object(object) => object.get("message").and_then(Value::as_str).map(str::to_string),
        other => Some(other.to_string()),
    }
}
