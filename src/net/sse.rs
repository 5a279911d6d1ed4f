//! `GET /api/worker/logs/stream?sid=…&follow=true|false[&since=cursor]` (W-STR-6), framed exactly as the
//! existing client parses it (stels-client.md §5): LF only, one `data: {json}` line per event,
//! events `connected`, `log` (`content`), `complete`, `error`; `: ping` comments keep idle
//! streams alive (axum's `Sse` with its keep-alive). Each event is written as soon as it exists
//! (no buffering).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{NetState, json_response, session_of};
use crate::auth::{Access, Caller};
use crate::streams::logs::{KEEP_ALIVE, LogRing, wait_after};
use crate::webfix::ApiError;

/// Events buffered for a slow reader before the producer waits.
const QUEUE: usize = 64;
/// Lines read per step.
const BATCH: usize = 256;

fn event(value: Value) -> Event {
    Event::default().data(value.to_string())
}

/// What a stream asks for: `sid` (a worker id), `follow` (`true|1` by default, or `false|0`)
/// and `since`, the cursor to start after (0 by default: every line kept). Other parameters
/// (`session`) are not its business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamQuery {
    /// The worker.
    pub sid: String,
    /// Keep the stream open for new lines.
    pub follow: bool,
    /// The cursor to start after.
    pub since: u64,
}

impl StreamQuery {
    /// Parses the query of `uri`; the error is the message for a 400. A repeated parameter
    /// counts by its last value.
    pub fn parse(uri: &Uri) -> Result<StreamQuery, String> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|_| "Invalid query string".to_string())?;
        let param = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let sid = match param("sid") {
            Some(sid) if uuid::Uuid::try_parse(sid).is_ok() => sid.to_string(),
            _ => return Err("Invalid sid: expected a worker id (UUID)".into()),
        };
        let follow = match param("follow") {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => return Err(format!("Invalid follow {other:?}: expected true or false")),
        };
        let since = match param("since") {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                format!(
                    "Invalid since {text:?}: expected a log cursor (0 to {})",
                    u64::MAX
                )
            })?,
        };
        Ok(StreamQuery { sid, follow, since })
    }

    /// The query string that parses back to `self`.
    pub fn to_query(&self) -> String {
        format!("sid={}&follow={}&since={}", self.sid, self.follow, self.since)
    }
}

/// The handler. An unknown worker is 404 and allocates nothing.
pub async fn logs_stream(
    State(node): State<Arc<NetState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let caller = Caller {
        session: session_of(&headers, uri.query()),
        peer: Some(peer),
    };
    if let Err(error) = node.api.gate.authorize(&caller, Access::Owner).await {
        let error = ApiError::auth(error);
        return json_response(error.status, &error.http_body());
    }
    let query = match StreamQuery::parse(&uri) {
        Ok(query) => query,
        Err(message) => return json_response(400, &json!({ "error": message })),
    };
    // Only a follower needs the ring (to wake on new lines); the history is read without it.
    let known = if query.follow {
        node.hub
            .logs
            .open_known(&node.api.workers, &query.sid)
            .await
            .map(|ring| ring.map(Some))
    } else {
        node.api
            .workers
            .get(&query.sid)
            .await
            .map(|record| record.map(|_| None))
    };
    let ring = match known {
        Ok(Some(ring)) => ring,
        Ok(None) => return json_response(404, &json!({"error": "Worker not found"})),
        Err(e) => {
            let error = ApiError::storage(e);
            return json_response(error.status, &error.http_body());
        }
    };
    node.connection_metrics
        .opened(crate::metrics::ConnectionKind::Sse);
    let (tx, rx) = mpsc::channel::<Event>(QUEUE);
    tokio::spawn(produce(node, query, ring, tx));
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let events = Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("ping"));
    (
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, "no-cache, no-transform"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        events,
    )
        .into_response()
}

/// Writes the stream's events until it ends or the reader goes away (a failed send).
/// Reads `BATCH` lines at a time, so a reader holds at most that many plus `QUEUE` events.
/// `ring` is the worker's ring when following.
async fn produce(
    node: Arc<NetState>,
    query: StreamQuery,
    ring: Option<Arc<LogRing>>,
    tx: mpsc::Sender<Event>,
) {
    let StreamQuery { sid, follow, since } = query;
    if tx
        .send(event(json!({"type": "connected", "sid": sid, "follow": follow})))
        .await
        .is_err()
    {
        return;
    }
    let mut newest = ring.as_ref().map(|ring| ring.subscribe());
    let mut cursor = since;
    loop {
        let (lines, gone) = node.hub.logs.read(&sid, cursor, BATCH).await;
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
        let Some(newest) = newest.as_mut() else {
            let _ = tx.send(event(json!({"type": "complete"}))).await;
            return;
        };
        tokio::select! {
            _ = node.shutdown.cancelled() => {
                let _ = tx.send(event(json!({"type": "complete", "reason": "node shutting down"}))).await;
                return;
            }
            more = wait_after(newest, cursor) => if !more { return },
            // A reader that went away ends the stream even while the worker is quiet.
            () = tx.closed() => return,
        }
    }
}
