//! The WebSocket transport (W-WS-1..3, W-WS-5..7).
//!
//! One task per connection reads frames, answers protocol pings, writes queued frames and
//! sends its own pings. Each request runs in its own task, so requests pipeline and answers
//! leave in the order they finish (W-WS-3). Memory per connection is bounded: a small read
//! buffer, a bounded outbound queue, and a cap on requests in flight (past it the connection
//! stops reading until one finishes, which pushes back on the client through TCP).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite;

use super::http::json_response;
use crate::api;
use crate::auth::Caller;
use crate::node::NodeState;
use crate::streams::ConnectionStreams;
use crate::webfix::{ApiError, parse_envelope, ws_frame};

/// Read buffer per connection: tungstenite's 128 KiB default costs ~135 KiB RSS per idle
/// connection; 4 KiB measured 6.6 KiB (architecture.md §3).
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Close code for a restart or shutdown: the existing client reconnects on it (W-WS-6).
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a message over the size limit.
const CLOSE_TOO_BIG: u16 = 1009;

/// Counts open WebSocket connections against `--max-connections`.
pub struct ConnectionSlots {
    /// Connections open now.
    open: AtomicUsize,
    /// The configured maximum.
    max: usize,
}

/// One taken slot; dropping it frees the slot.
pub struct Slot(Arc<NodeState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionSlots {
    pub fn new(max: usize) -> Self {
        ConnectionSlots {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn try_take(node: &Arc<NodeState>) -> Option<Slot> {
        let slots = &node.connections;
        slots
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < slots.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(node.clone()))
    }
}

/// Answers an upgrade request: 503 above the connection limit, else the upgrade with the
/// `webfix` subprotocol selected when offered.
pub fn upgrade(node: Arc<NodeState>, upgrade: WebSocketUpgrade, caller: Caller) -> Response {
    if node.shutdown.is_cancelled() {
        let error = ApiError::new(503, "Node is shutting down");
        return json_response(503, &error.http_body());
    }
    let Some(slot) = ConnectionSlots::try_take(&node) else {
        tracing::warn!(max = node.connections.max, "connection refused: at the limit");
        return json_response(503, &ApiError::at_capacity(node.connections.max).http_body());
    };
    let limit = node.config.max_request_bytes;
    upgrade
        .protocols(["webfix"])
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        // Every send is flushed before the next, so the buffer holds at most one frame; an
        // answer may be far larger than a request (listWorkers of 10,000 workers: ~7 MB).
        .max_write_buffer_size(usize::MAX)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| {
            let tracker = node.tasks.clone();
            tracker.track_future(serve_connection(node, socket, caller, slot))
        })
}

/// What ended a connection, for the log.
#[derive(Debug)]
enum End {
    ClientClosed,
    Shutdown,
    PingTimeout,
    TooBig,
    Failed(String),
}

/// The request machinery of a connection that has sent a request. Created at the first
/// request, not at the upgrade: an idle connection then costs ~1.8 KiB less (tokio's channel
/// allocates its first block of 32 slots up front), see BENCHMARKS.md.
struct Lanes {
    /// Answers waiting to be written; bounded so a client that stops reading stalls only itself.
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Message>,
    /// Requests running for this connection.
    in_flight: Arc<Semaphore>,
    /// Subscriptions of this connection; they end when it does.
    streams: Arc<ConnectionStreams>,
}

impl Lanes {
    fn new(config: &crate::config::NodeConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.ws_outbound_queue);
        Lanes {
            streams: Arc::new(ConnectionStreams::new(tx.clone())),
            tx,
            rx,
            in_flight: Arc::new(Semaphore::new(config.ws_max_in_flight)),
        }
    }

    fn can_read(lanes: &Option<Lanes>) -> bool {
        lanes.as_ref().is_none_or(|l| l.in_flight.available_permits() > 0)
    }

    async fn next_answer(lanes: &mut Option<Lanes>) -> Option<Message> {
        match lanes {
            Some(l) => l.rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

async fn serve_connection(node: Arc<NodeState>, mut socket: WebSocket, caller: Caller, _slot: Slot) {
    let caller = Arc::new(caller);
    let mut lanes: Option<Lanes> = None;
    let interval = node.config.ws_ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong_due = false;

    let end = loop {
        tokio::select! {
            biased;
            _ = node.shutdown.cancelled() => break End::Shutdown,
            Some(frame) = Lanes::next_answer(&mut lanes) => {
                if let Err(e) = socket.send(frame).await {
                    break End::Failed(e.to_string());
                }
            }
            _ = ping.tick() => {
                if pong_due {
                    break End::PingTimeout;
                }
                pong_due = true;
                if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                    break End::Failed(e.to_string());
                }
            }
            // Read only while a request slot is free: past the cap, TCP pushes back on the client.
            received = socket.recv(), if Lanes::can_read(&lanes) => {
                let message = match received {
                    None => break End::ClientClosed,
                    Some(Ok(message)) => message,
                    Some(Err(e)) => break classify(e),
                };
                // Any frame shows the peer is alive.
                pong_due = false;
                let bytes: &[u8] = match &message {
                    Message::Text(text) => text.as_bytes(),
                    Message::Binary(data) => data,
                    Message::Close(_) => break End::ClientClosed,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                let lanes = lanes.get_or_insert_with(|| Lanes::new(&node.config));
                let Ok(permit) = lanes.in_flight.clone().try_acquire_owned() else { continue };
                handle_frame(&node, &caller, lanes, bytes, permit);
            }
        }
    };
    let close = match &end {
        End::Shutdown => Some((CLOSE_GOING_AWAY, "node shutting down".to_string())),
        End::PingTimeout => Some((CLOSE_GOING_AWAY, "no pong received".to_string())),
        End::TooBig => Some((
            CLOSE_TOO_BIG,
            format!(
                "message exceeds the limit of {} bytes",
                node.config.max_request_bytes
            ),
        )),
        End::ClientClosed | End::Failed(_) => None,
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), socket.send(Message::Close(Some(frame)))).await;
    }
    match end {
        End::Failed(error) => tracing::debug!(peer = ?caller.peer, %error, "WebSocket failed"),
        end => tracing::debug!(peer = ?caller.peer, ?end, "WebSocket closed"),
    }
}

fn classify(error: axum::Error) -> End {
    match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(e) if matches!(*e, tungstenite::Error::Capacity(_)) => End::TooBig,
        Ok(e) => End::Failed(e.to_string()),
        Err(e) => End::Failed(e.to_string()),
    }
}

/// Parses one frame and answers it from its own task.
fn handle_frame(
    node: &Arc<NodeState>,
    caller: &Arc<Caller>,
    lanes: &Lanes,
    bytes: &[u8],
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let tx = &lanes.tx;
    let envelope = match parse_envelope(bytes) {
        Ok(envelope) => envelope,
        Err(invalid) => {
            let frame = ws_frame(invalid.id.as_ref(), Err(invalid.error()));
            let tx = tx.clone();
            drop(permit);
            tokio::spawn(async move {
                let _ = tx.send(text_frame(&frame)).await;
            });
            return;
        }
    };
    // The existing client subscribes to its channels without an id and expects no answer
    // (W-WS-5); `sonar` then gets the node summary every second.
    if envelope.method == "subscribe"
        && envelope.id.is_none()
        && let Some(channel) = &envelope.channel
    {
        tracing::debug!(%channel, "channel subscription frame accepted");
        lanes.streams.channel(node, channel);
        return;
    }
    let node = node.clone();
    let caller = caller.clone();
    let tx = tx.clone();
    let streams =
        matches!(envelope.method.as_str(), "subscribe" | "unsubscribe").then(|| lanes.streams.clone());
    tokio::spawn(async move {
        let reply = match streams {
            Some(streams) => streams.request(&node, &caller, &envelope).await,
            None => api::dispatch(&node, &caller, &envelope).await,
        };
        // Freed before the send: the connection task is woken by the frame and must then
        // find the slot free, or it would not read again until something else wakes it.
        drop(permit);
        let _ = tx.send(text_frame(&ws_frame(envelope.id.as_ref(), reply))).await;
    });
}

fn text_frame(value: &Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}
