//! `GET /api/worker/logs/stream?sid=…&follow=true|false` (W-STR-6), framed exactly as the
//! existing client parses it (stels-client.md §5): LF only, one `data: {json}` line per event,
//! events `connected`, `log` (`content`), `complete`, `error`; `: ping` comments keep idle
//! streams alive. Each event is written as soon as it exists (no buffering).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::Access;
use crate::auth::{self, Caller};
use crate::net::{json_response, session_of};
use crate::node::NodeState;
use crate::runtime::logs::{KEEP_ALIVE, wait_after};

/// Events buffered for a slow reader before the producer waits.
const QUEUE: usize = 64;
/// Lines read per step.
const BATCH: usize = 256;

fn event(value: Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// The handler.
pub async fn logs_stream(
    State(node): State<Arc<NodeState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let caller = Caller {
        session: session_of(&headers, uri.query()),
        peer: Some(peer),
    };
    if let Err(error) = auth::authorize(&node, &caller, Access::Owner).await {
        return json_response(error.status, &error.http_body());
    }
    let sid = match params.get("sid") {
        Some(sid) if uuid::Uuid::try_parse(sid).is_ok() => sid.clone(),
        _ => return json_response(400, &json!({"error": "Invalid sid: expected a worker id (UUID)"})),
    };
    let follow = match params.get("follow").map(String::as_str) {
        None | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => {
            return json_response(
                400,
                &json!({"error": format!("Invalid follow {other:?}: expected true or false")}),
            );
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    tokio::spawn(produce(node, sid, follow, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, Infallible>(bytes), rx))
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache, no-transform"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Writes the stream's events until it ends or the reader goes away (a failed send).
async fn produce(node: Arc<NodeState>, sid: String, follow: bool, tx: mpsc::Sender<Bytes>) {
    if tx
        .send(event(json!({"type": "connected", "sid": sid, "follow": follow})))
        .await
        .is_err()
    {
        return;
    }
    let ring = node.logs.open(&sid).await;
    let mut newest = ring.subscribe();
    let mut cursor = 0;
    loop {
        let (lines, gone) = node.logs.read(&sid, cursor, BATCH).await;
        if gone > 0 {
            // Lines starting with '#' are shown as comments by the client.
            let note = format!("# {gone} earlier lines are no longer kept\n");
            if tx
                .send(event(json!({"type": "log", "content": note})))
                .await
                .is_err()
            {
                return;
            }
        }
        let full = lines.len() == BATCH;
        for line in lines {
            cursor = line.cursor;
            let frame = event(json!({"type": "log", "content": line.content, "cursor": line.cursor}));
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        if full {
            continue;
        }
        if !follow {
            let _ = tx.send(event(json!({"type": "complete"}))).await;
            return;
        }
        tokio::select! {
            _ = node.shutdown.cancelled() => {
                let _ = tx.send(event(json!({"type": "complete", "reason": "node shutting down"}))).await;
                return;
            }
            more = wait_after(&mut newest, cursor) => if !more { return },
            _ = tokio::time::sleep(KEEP_ALIVE) => {
                if tx.send(Bytes::from_static(b": ping\n\n")).await.is_err() {
                    return;
                }
            }
        }
    }
}
