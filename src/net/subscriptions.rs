//! Live streams over WebSocket (worker-api.md §5): `subscribe`/`unsubscribe` for `stats`,
//! `logs` and node `events`, and the existing client's `sonar` channel, carried from the
//! [`streams`](crate::streams) hub onto one connection.
//!
//! Pushed frames are `{"value":{"channel","module","widget","raw","timestamp"}}` (W-WS-4).
//! Memory stays bounded whatever a client does (W-STR-4): every subscription writes into its
//! connection's one queue, bounded in bytes. Stats and sonar use `try_send` — a full queue skips
//! that snapshot and the next tick sends the newest; logs wait for room (a wait past the write
//! timeout closes the connection) and read by cursor from the
//! worker's ring, so a reader that falls behind the ring gets `{"type":"lagged","dropped":N}`
//! and goes on without gaps it does not know about; events come from a broadcast channel whose
//! overruns are reported the same way. One slow client only ever waits on its own queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{NetState, Outbound, TrySendError};
use crate::auth::{Access, Caller};
use crate::streams::{Frame, push_frame};
use crate::webfix::{ApiError, Envelope, Reply};

/// Subscriptions one connection may hold at once.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// Shortest stats interval (W-STR-1).
pub const MIN_STATS_INTERVAL: Duration = Duration::from_millis(100);
/// Longest stats interval: a day (the spec sets no maximum; a number without one is not
/// accepted from a client).
pub const MAX_STATS_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Log lines read per step while catching up (each step is one range scan from the cursor, so
/// a subscription holds at most this many lines besides its connection's queue).
const LOG_BATCH: usize = 256;

/// A published frame as a WebSocket text message, without copying it.
pub fn text_message(frame: Frame) -> Message {
    // A frame is built from a `String`, so it is always UTF-8.
    Message::Text(Utf8Bytes::try_from(frame.into_bytes()).unwrap_or_default())
}

fn lagged(subscription: &str, stream: &str, dropped: u64) -> Message {
    let notice =
        json!({"type": "lagged", "dropped": dropped, "subscription": subscription, "stream": stream});
    Message::Text(Utf8Bytes::from(notice.to_string()))
}

/// The streams of one WebSocket connection. Dropped with the connection, which ends them all.
pub struct ConnectionStreams {
    /// The connection's outbound queue, bounded in bytes.
    tx: Outbound,
    /// Cancelled when the connection ends.
    closed: CancellationToken,
    /// Live subscriptions by id.
    active: std::sync::Mutex<HashMap<String, CancellationToken>>,
    next_id: AtomicU64,
    /// Whether the existing client's sonar channel is being pushed already.
    sonar: std::sync::atomic::AtomicBool,
}

impl Drop for ConnectionStreams {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

impl ConnectionStreams {
    pub fn new(tx: Outbound) -> Self {
        ConnectionStreams {
            tx,
            closed: CancellationToken::new(),
            active: std::sync::Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            sonar: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The existing client's `{"method":"subscribe","channel":…}` (W-WS-5): `sonar` gets the
    /// node summary every second; other channels are accepted and carry nothing.
    pub fn channel(&self, node: &Arc<NetState>, channel: &str) {
        if channel == "sonar" && !self.sonar.swap(true, Ordering::AcqRel) {
            tokio::spawn(sonar_task(
                node.clone(),
                self.tx.clone(),
                self.closed.child_token(),
            ));
        }
    }

    /// `subscribe` / `unsubscribe` requests.
    pub async fn request(&self, node: &Arc<NetState>, caller: &Caller, envelope: &Envelope) -> Reply {
        node.api
            .gate
            .authorize(caller, Access::Owner)
            .await
            .map_err(ApiError::auth)?;
        match envelope.method.as_str() {
            "unsubscribe" => self.unsubscribe(&envelope.body),
            _ => self.subscribe(node, &envelope.body).await,
        }
    }

    fn unsubscribe(&self, body: &Map<String, Value>) -> Reply {
        let Some(id) = body.get("subscription").and_then(Value::as_str) else {
            return Err(ApiError::invalid_body("subscription must be a string"));
        };
        match self.active().remove(id) {
            Some(cancel) => {
                cancel.cancel();
                Ok((200, json!({"subscription": id, "unsubscribed": true}).into()))
            }
            None => Err(ApiError::new(
                404,
                format!("No subscription {id} on this connection"),
            )),
        }
    }

    async fn subscribe(&self, node: &Arc<NetState>, body: &Map<String, Value>) -> Reply {
        let stream = body.get("stream").and_then(Value::as_str).unwrap_or_default();
        let start: Box<dyn FnOnce(String, CancellationToken) + Send>;
        let mut extra = Map::new();
        match stream {
            "stats" => {
                let interval = match body.get("interval") {
                    None | Some(Value::Null) => Duration::from_secs(1),
                    Some(v) => match v.as_u64() {
                        Some(ms)
                            if (MIN_STATS_INTERVAL..=MAX_STATS_INTERVAL)
                                .contains(&Duration::from_millis(ms)) =>
                        {
                            Duration::from_millis(ms)
                        }
                        _ => {
                            return Err(ApiError::invalid_body(
                                "interval must be a number of milliseconds, from 100 to 86400000",
                            ));
                        }
                    },
                };
                extra.insert("interval".into(), json!(interval.as_millis() as u64));
                let (node, tx) = (node.clone(), self.tx.clone());
                start = Box::new(move |_, cancel| {
                    tokio::spawn(stats_task(node, tx, cancel, interval));
                });
            }
            "logs" => {
                let sid = match body.get("sid").and_then(Value::as_str) {
                    Some(sid) if uuid::Uuid::try_parse(sid).is_ok() => sid.to_string(),
                    _ => return Err(ApiError::invalid_body("sid must be a worker id (UUID)")),
                };
                let since = match body.get("since") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .ok_or_else(|| ApiError::invalid_body("since must be a log cursor (a number)"))?,
                    ),
                };
                // An unknown worker gets no ring (nothing allocated).
                let ring = node
                    .hub
                    .logs
                    .open_known(&node.api.workers, &sid)
                    .await
                    .map_err(ApiError::storage)?
                    .ok_or_else(|| ApiError::new(404, "Worker not found"))?;
                let since = since.unwrap_or_else(|| ring.next_cursor().saturating_sub(1));
                extra.insert("sid".into(), json!(sid));
                extra.insert("cursor".into(), json!(ring.next_cursor()));
                let (node, tx) = (node.clone(), self.tx.clone());
                start = Box::new(move |id, cancel| {
                    tokio::spawn(logs_task(node, tx, cancel, id, sid, since));
                });
            }
            "events" => {
                let (rx, tx) = (node.hub.events.subscribe(), self.tx.clone());
                let metrics = node.stream_metrics.clone();
                start = Box::new(move |id, cancel| {
                    tokio::spawn(events_task(rx, tx, cancel, id, metrics));
                });
            }
            _ => {
                return Err(ApiError::invalid_body(
                    "stream must be one of stats, logs, events",
                ));
            }
        }
        let id = format!("s{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        {
            let mut active = self.active();
            if active.len() >= MAX_SUBSCRIPTIONS {
                return Err(ApiError::new(
                    429,
                    format!(
                        "This connection already holds {MAX_SUBSCRIPTIONS} subscriptions; unsubscribe first"
                    ),
                ));
            }
            let cancel = self.closed.child_token();
            active.insert(id.clone(), cancel.clone());
            start(id.clone(), cancel);
        }
        let mut result = Map::new();
        result.insert("subscription".into(), json!(id));
        result.insert("stream".into(), json!(stream));
        result.extend(extra);
        Ok((200, Value::Object(result).into()))
    }
}

async fn stats_task(node: Arc<NetState>, tx: Outbound, cancel: CancellationToken, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                // A full queue skips this snapshot: the next one is newer (W-STR-4).
                let frame = node.hub.stats_feed.frame(&node.api.info.nid, &node.hub.stats, &node.api.clock);
                match tx.try_send(text_message(frame)) {
                    Ok(()) => node.stream_metrics.sent("stats"),
                    Err(TrySendError::Closed) => break,
                    Err(TrySendError::Full) => node.stream_metrics.dropped("stats", 1),
                }
            }
        }
    }
}

async fn sonar_task(node: Arc<NetState>, tx: Outbound, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                let frame = node.hub.sonar_feed.frame().await;
                match tx.try_send(text_message(frame)) {
                    Ok(()) => node.stream_metrics.sent("sonar"),
                    Err(TrySendError::Closed) => break,
                    Err(TrySendError::Full) => node.stream_metrics.dropped("sonar", 1),
                }
            }
        }
    }
}

async fn logs_task(
    node: Arc<NetState>,
    tx: Outbound,
    cancel: CancellationToken,
    id: String,
    sid: String,
    mut cursor: u64,
) {
    // Opened by `subscribe`; a worker deleted since then has none, and nothing is re-created.
    let ring = node.hub.logs.ring(&sid);
    let mut newest = ring.subscribe();
    let channel = format!("ami.logs.{sid}");
    loop {
        let (lines, gone) = node.hub.logs.read(&sid, cursor, LOG_BATCH).await;
        if gone > 0 {
            node.stream_metrics.dropped("logs", gone);
            let sent = tokio::select! {
                _ = cancel.cancelled() => return,
                sent = tx.send(lagged(&id, "logs", gone)) => sent,
            };
            if sent.is_err() {
                return;
            }
        }
        let full = lines.len() == LOG_BATCH;
        for line in lines {
            cursor = line.cursor;
            let now = node.api.clock.wall_ms();
            let frame = text_message(push_frame(&channel, "logs", line.wire(&sid), now));
            // Waiting here slows only this subscription; the ring goes on without it.
            let sent = tokio::select! {
                _ = cancel.cancelled() => return,
                sent = tx.send(frame) => sent,
            };
            if sent.is_err() {
                return;
            }
            node.stream_metrics.sent("logs");
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            more = crate::streams::logs::wait_after(&mut newest, cursor) => if !more { return },
        }
    }
}

async fn events_task(
    mut rx: broadcast::Receiver<Frame>,
    tx: Outbound,
    cancel: CancellationToken,
    id: String,
    metrics: crate::metrics::StreamMetrics,
) {
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => return,
            event = rx.recv() => match event {
                Ok(frame) => {
                    metrics.sent("events");
                    text_message(frame)
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    metrics.dropped("events", n);
                    lagged(&id, "events", n)
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let sent = tokio::select! {
            _ = cancel.cancelled() => return,
            sent = tx.send(message) => sent,
        };
        if sent.is_err() {
            return;
        }
    }
}
