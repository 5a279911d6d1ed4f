//! The WebSocket transport (W-WS-1..3, W-WS-5..7).
//!
//! One task per connection reads frames, answers protocol pings, writes queued frames and
//! sends its own pings. Each request runs in its own task, so requests pipeline and answers
//! leave in the order they finish (W-WS-3). Memory per connection is bounded: a small read
//! buffer, an outbound queue bounded in bytes (`--ws-outbound-bytes`), and a cap on requests in
//! flight (past it the connection stops reading until one finishes, which pushes back on the
//! client through TCP).
//!
//! A frame the peer does not take never blocks the loop: the flush in progress is polled beside
//! shutdown, pings and reads. A frame the socket
//! has not taken within `--ws-write-timeout-ms`, or a producer that waited that long for room in
//! the queue, closes the connection with 1008. Frames that break the protocol are answered with
//! a close frame before the socket closes: 1007 for text that is not UTF-8, 1002 for protocol
//! violations, 1009 for messages over the size limit.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::{self, error::ProtocolError};

use super::NetState;
use super::http::json_response;
use super::outbound::{Outbound, Reservation, payload_len};
use super::subscriptions::ConnectionStreams;
use crate::api;
use crate::auth::Caller;
use crate::metrics::ConnectionKind;
use crate::webfix::{ApiError, parse_envelope, ws_frame};

/// Read buffer per connection: tungstenite's 128 KiB default costs ~135 KiB RSS per idle
/// connection; 4 KiB measured 6.6 KiB (architecture.md §3).
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Bytes of queued frames handed to the socket before one flush.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Longest wait for a close frame to go out before the socket is dropped (shorter when the
/// write timeout is).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Close code for a restart or shutdown: the existing client reconnects on it (W-WS-6).
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a frame that breaks RFC 6455.
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text message that is not UTF-8.
const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code for a peer that does not take what it asked for.
const CLOSE_POLICY: u16 = 1008;
/// Close code for a message over the size limit.
const CLOSE_TOO_BIG: u16 = 1009;

/// Counts open WebSocket connections against `--max-connections`, and those of non-owner
/// sessions per source address and per wallet.
pub struct ConnectionSlots {
    /// Connections open now.
    open: AtomicUsize,
    /// The configured maximum.
    max: usize,
    /// Open connections of non-owner sessions per source address and per wallet; an entry is
    /// removed when its count drops to zero, so neither map outgrows the open connections.
    tallies: Mutex<Tallies>,
}

#[derive(Default)]
struct Tallies {
    per_ip: HashMap<IpAddr, usize>,
    per_wallet: HashMap<String, usize>,
}

/// What a non-owner slot counts against.
struct Counted {
    ip: Option<IpAddr>,
    wallet: String,
}

/// One taken slot; dropping it frees the slot.
pub struct Slot {
    node: Arc<NetState>,
    /// Boxed: owners' connections (every one on an `--open` node) do not carry the space.
    counted: Option<Box<Counted>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let slots = &self.node.connections;
        slots.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(counted) = &self.counted {
            let mut tallies = slots.tallies();
            if let Some(ip) = counted.ip {
                super::decrement(&mut tallies.per_ip, &ip);
            }
            super::decrement(&mut tallies.per_wallet, &counted.wallet);
        }
    }
}

/// Slots at the top of `max` kept for owner sessions: `percent` of it, rounded up so that any
/// non-zero share keeps at least one.
pub fn owner_reserve(max: usize, percent: u8) -> usize {
    let percent = usize::from(percent);
    let whole_hundreds = max / 100 * percent;
    (whole_hundreds + (max % 100 * percent).div_ceil(100)).min(max)
}

impl ConnectionSlots {
    /// At most `max` WebSockets at once.
    pub fn new(max: usize) -> Self {
        ConnectionSlots {
            open: AtomicUsize::new(0),
            max,
            tallies: Mutex::new(Tallies::default()),
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn tallies(&self) -> MutexGuard<'_, Tallies> {
        self.tallies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_below(&self, ceiling: usize) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < ceiling).then_some(n + 1)
            })
            .is_ok()
    }

    /// A slot for an owner session (every caller with `--open`), checked against
    /// `--max-connections` only; or for the non-owner `wallet`, checked against the per-address
    /// and per-wallet caps and kept out of the owner reserve.
    fn try_take(node: &Arc<NetState>, ip: Option<IpAddr>, wallet: Option<String>) -> Result<Slot, ApiError> {
        let slots = &node.connections;
        let Some(wallet) = wallet else {
            if !slots.take_below(slots.max) {
                return Err(ApiError::at_capacity(slots.max));
            }
            return Ok(Slot {
                node: node.clone(),
                counted: None,
            });
        };
        let limits = &node.config.ws;
        let mut tallies = slots.tallies();
        if let Some(ip) = ip
            && tallies.per_ip.get(&ip).is_some_and(|&n| n >= limits.max_per_ip)
        {
            return Err(ApiError::too_many_from_address(limits.max_per_ip));
        }
        if tallies
            .per_wallet
            .get(&wallet)
            .is_some_and(|&n| n >= limits.max_per_wallet)
        {
            return Err(ApiError::too_many_for_wallet(limits.max_per_wallet));
        }
        let reserved = owner_reserve(slots.max, limits.owner_reserve_percent);
        if !slots.take_below(slots.max - reserved) {
            return Err(if slots.open() >= slots.max {
                ApiError::at_capacity(slots.max)
            } else {
                ApiError::owner_reserve(slots.max, reserved)
            });
        }
        if let Some(ip) = ip {
            *tallies.per_ip.entry(ip).or_default() += 1;
        }
        *tallies.per_wallet.entry(wallet.clone()).or_default() += 1;
        drop(tallies);
        Ok(Slot {
            node: node.clone(),
            counted: Some(Box::new(Counted { ip, wallet })),
        })
    }
}

/// Answers an upgrade request: 503 above the connection limit (or in the owner reserve for a
/// non-owner), 429 above a per-address or per-wallet cap, else the upgrade with the `webfix`
/// subprotocol selected when offered. `non_owner` is the wallet of a session without the
/// Owner role; `None` for owners and for every caller of an `--open` node.
pub fn upgrade(
    node: Arc<NetState>,
    upgrade: WebSocketUpgrade,
    caller: Caller,
    non_owner: Option<String>,
) -> Response {
    if node.shutdown.is_cancelled() {
        node.connection_metrics
            .refused(ConnectionKind::WebSocket, "shutting_down");
        let error = ApiError::new(503, "Node is shutting down");
        return json_response(503, &error.http_body());
    }
    let ip = caller.peer.map(|peer| peer.ip().to_canonical());
    let slot = match ConnectionSlots::try_take(&node, ip, non_owner) {
        Ok(slot) => slot,
        Err(refused) => {
            // 429: a per-address or per-wallet cap; 503: the node's capacity or the owners' reserve.
            let reason = if refused.status == 429 {
                "per_client_cap"
            } else {
                "capacity"
            };
            node.connection_metrics.refused(ConnectionKind::WebSocket, reason);
            tracing::warn!(peer = ?caller.peer, reason = %refused.message, "WebSocket refused");
            return json_response(refused.status, &refused.http_body());
        }
    };
    let limit = node.config.max_request_bytes;
    upgrade
        .protocols(["webfix"])
        .read_buffer_size(READ_BUFFER_BYTES)
        // Queued frames go out in batches of up to this many bytes, one write for many small
        // pushes (a log catch-up is 10,000 frames); each batch is flushed before the next, and
        // its frames' bytes stay reserved in the outbound queue until then. One answer may be
        // far larger than a request (listWorkers of 10,000 workers: ~7 MB).
        .write_buffer_size(WRITE_BATCH_BYTES)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| {
            let tracker = node.tasks.clone();
            let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
            node.connection_metrics.opened(ConnectionKind::WebSocket);
            tracing::debug!(conn, peer = ?caller.peer, "WebSocket opened");
            tracker.track_future(serve_connection(node, socket, caller, slot, conn))
        })
}

/// What ended a connection, for the log and the close frame.
#[derive(Debug)]
enum End {
    ClientClosed,
    Shutdown,
    PingTimeout,
    /// The socket did not take a frame within the write timeout.
    WriteTimeout,
    /// A producer waited the write timeout for room in the outbound queue.
    QueueFull,
    TooBig,
    NotUtf8,
    Protocol(&'static str),
    Failed(String),
}

impl End {
    /// The close frame this end sends, if the socket can still carry one. Reasons never
    /// contain `session`, `expired` or `invalid`: the existing client wipes its wallet on those
    /// (stels-client.md §1.5).
    fn close_frame(&self, config: &crate::config::NodeConfig) -> Option<(u16, String)> {
        let write_ms = config.ws.write_timeout.as_millis();
        Some(match self {
            End::Shutdown => (CLOSE_GOING_AWAY, "node shutting down".to_string()),
            End::PingTimeout => (CLOSE_GOING_AWAY, "no pong received".to_string()),
            End::WriteTimeout => (
                CLOSE_POLICY,
                format!("client not reading: a frame was not taken in {write_ms} ms"),
            ),
            End::QueueFull => (
                CLOSE_POLICY,
                format!("client not reading: outbound queue full for {write_ms} ms"),
            ),
            End::TooBig => (
                CLOSE_TOO_BIG,
                format!("message exceeds the limit of {} bytes", config.max_request_bytes),
            ),
            End::NotUtf8 => (CLOSE_INVALID_PAYLOAD, "text message is not UTF-8".to_string()),
            End::Protocol(what) => (CLOSE_PROTOCOL_ERROR, (*what).to_string()),
            End::ClientClosed | End::Failed(_) => return None,
        })
    }
}

/// The request machinery of a connection that has sent a request. Created at the first
/// request, not at the upgrade, so an idle connection carries none of it (BENCHMARKS.md).
struct Lanes {
    /// Answers and pushes waiting to be written, bounded in bytes.
    outbound: Outbound,
    /// Requests running for this connection.
    in_flight: Arc<Semaphore>,
    /// Subscriptions of this connection; they end when it does.
    streams: Arc<ConnectionStreams>,
}

impl Lanes {
    fn new(config: &crate::config::NodeConfig) -> Self {
        let outbound = Outbound::new(config.ws.outbound_bytes, config.ws.write_timeout);
        Lanes {
            streams: Arc::new(ConnectionStreams::new(outbound.clone())),
            outbound,
            in_flight: Arc::new(Semaphore::new(config.ws_max_in_flight)),
        }
    }

    fn try_slot(&self) -> Option<RequestSlot> {
        let permit = self.in_flight.clone().try_acquire_owned().ok()?;
        Some(RequestSlot {
            _permit: permit,
            outbound: self.outbound.clone(),
        })
    }

    async fn woken(lanes: &Option<Lanes>) {
        match lanes {
            Some(l) => l.outbound.woken().await,
            None => std::future::pending().await,
        }
    }
}

/// One of a connection's `ws_max_in_flight` request slots. Freeing it wakes the connection
/// task, which may have stopped reading for want of one.
struct RequestSlot {
    _permit: OwnedSemaphorePermit,
    outbound: Outbound,
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.outbound.wake();
    }
}

/// A frame handed to the socket and not yet flushed.
struct Writing {
    /// The batch's bytes in the outbound queue, freed once it is flushed.
    _reservations: Vec<Reservation>,
    /// The connection is closed if the frame is not flushed by then. Boxed: it exists only
    /// while a frame is being written, and an idle connection should not carry it.
    deadline: Pin<Box<Sleep>>,
}

impl Writing {
    fn new(reservations: Vec<Reservation>, write_timeout: Duration) -> Self {
        Writing {
            _reservations: reservations,
            deadline: Box::pin(tokio::time::sleep(write_timeout)),
        }
    }

    async fn expired(writing: &mut Option<Writing>) {
        match writing {
            Some(w) => w.deadline.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

/// Hands the socket an owed ping and then queued frames, up to [`WRITE_BATCH_BYTES`], for one
/// flush. Only while the socket takes them without waiting: a peer that reads nothing must
/// never block the loop here (the flush that follows is polled beside everything else).
/// `None` when there was nothing to send.
async fn start_batch(
    socket: &mut WebSocket,
    lanes: Option<&Lanes>,
    ping_owed: &mut bool,
) -> Result<Option<Vec<Reservation>>, axum::Error> {
    let mut reservations = Vec::new();
    let mut started = false;
    let mut bytes = 0;
    while bytes < WRITE_BATCH_BYTES {
        let ready = std::future::poll_fn(|cx| Poll::Ready(socket.poll_ready_unpin(cx))).await;
        match ready {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(e),
            // Bytes of an earlier batch are still buffered: flushing them comes first.
            Poll::Pending => {
                started = true;
                break;
            }
        }
        let message = if std::mem::take(ping_owed) {
            Message::Ping(Default::default())
        } else if let Some(queued) = lanes.and_then(|l| l.outbound.pop()) {
            reservations.push(queued.reservation);
            queued.message
        } else {
            break;
        };
        bytes += payload_len(&message);
        socket.start_send_unpin(message)?;
        started = true;
    }
    Ok(started.then_some(reservations))
}

/// What the socket did: one future polls both directions, as they share the socket.
enum SocketEvent {
    Flushed(Result<(), axum::Error>),
    Received(Option<Result<Message, axum::Error>>),
}

fn socket_event<'a>(
    socket: &'a mut WebSocket,
    flush: bool,
    read: bool,
) -> impl Future<Output = SocketEvent> + 'a {
    std::future::poll_fn(move |cx| {
        if flush && let Poll::Ready(flushed) = socket.poll_flush_unpin(cx) {
            return Poll::Ready(SocketEvent::Flushed(flushed));
        }
        if read && let Poll::Ready(received) = socket.poll_next_unpin(cx) {
            return Poll::Ready(SocketEvent::Received(received));
        }
        Poll::Pending
    })
}

/// Numbers the WebSockets of this process, for the `conn` field of their log lines.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

async fn serve_connection(
    node: Arc<NetState>,
    mut socket: WebSocket,
    caller: Caller,
    _slot: Slot,
    conn: u64,
) {
    let caller = Arc::new(caller);
    let mut lanes: Option<Lanes> = None;
    let write_timeout = node.config.ws.write_timeout;
    let interval = node.config.ws_ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong_due = false;
    // A ping waits for the frame being written; it goes out before the next queued one.
    let mut ping_owed = false;
    let mut writing: Option<Writing> = None;
    // The request slot the next request will run in (once the connection has lanes).
    let mut next_slot: Option<RequestSlot> = None;

    let end = loop {
        if let Some(lanes) = &lanes {
            if lanes.outbound.stalled() {
                break End::QueueFull;
            }
            if next_slot.is_none() {
                next_slot = lanes.try_slot();
            }
        }
        if writing.is_none() {
            match start_batch(&mut socket, lanes.as_ref(), &mut ping_owed).await {
                Ok(None) => {}
                Ok(Some(reservations)) => writing = Some(Writing::new(reservations, write_timeout)),
                Err(e) => break End::Failed(e.to_string()),
            }
        }
        // Read only while a request slot is free: past the cap, TCP pushes back on the client.
        let read = lanes.is_none() || next_slot.is_some();
        tokio::select! {
            biased;
            _ = node.shutdown.cancelled() => break End::Shutdown,
            event = socket_event(&mut socket, writing.is_some(), read) => match event {
                SocketEvent::Flushed(Ok(())) => writing = None,
                SocketEvent::Flushed(Err(e)) => break End::Failed(e.to_string()),
                SocketEvent::Received(received) => {
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
                    let Some(slot) = next_slot.take().or_else(|| lanes.try_slot()) else { continue };
                    handle_frame(&node, &caller, lanes, bytes, slot);
                }
            },
            _ = Writing::expired(&mut writing) => break End::WriteTimeout,
            _ = ping.tick() => {
                if pong_due {
                    break End::PingTimeout;
                }
                pong_due = true;
                ping_owed = true;
            }
            // A frame was queued, a producer stalled or a request slot was freed.
            _ = Lanes::woken(&lanes) => {}
        }
    };
    // Producers stop at once; what is still queued is not sent.
    if let Some(lanes) = &lanes {
        lanes.outbound.close();
    }
    let close_wait = CLOSE_WAIT.min(write_timeout);
    match end.close_frame(&node.config) {
        Some((code, reason)) => {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            };
            // Behind a frame the peer does not take, this waits out `close_wait` and gives up.
            let _ = tokio::time::timeout(close_wait, socket.send(Message::Close(Some(frame)))).await;
        }
        // Flushes the reply tungstenite queued to the peer's close frame.
        None if matches!(end, End::ClientClosed) => {
            let _ = tokio::time::timeout(close_wait, socket.flush()).await;
        }
        None => {}
    }
    match end {
        End::Failed(error) => tracing::debug!(conn, peer = ?caller.peer, %error, "WebSocket failed"),
        end => tracing::debug!(conn, peer = ?caller.peer, ?end, "WebSocket closed"),
    }
}

fn classify(error: axum::Error) -> End {
    let error = match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(error) => *error,
        Err(other) => return End::Failed(other.to_string()),
    };
    match error {
        tungstenite::Error::Capacity(_) => End::TooBig,
        tungstenite::Error::Utf8(_) => End::NotUtf8,
        // The peer dropped the TCP connection: nothing can be sent any more.
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::ClientClosed,
        tungstenite::Error::Protocol(violation) => End::Protocol(protocol_reason(&violation)),
        other => End::Failed(other.to_string()),
    }
}

/// A close reason for each frame-level violation, worded here rather than taken from
/// tungstenite's messages (some of which say "invalid").
fn protocol_reason(violation: &ProtocolError) -> &'static str {
    match violation {
        ProtocolError::NonZeroReservedBits => "reserved bits set without an extension",
        ProtocolError::UnmaskedFrameFromClient => "client frame not masked",
        ProtocolError::FragmentedControlFrame => "fragmented control frame",
        ProtocolError::ControlFrameTooBig => "control frame over 125 bytes",
        ProtocolError::UnknownControlFrameType(_) => "reserved control opcode",
        ProtocolError::UnknownDataFrameType(_) => "reserved data opcode",
        ProtocolError::InvalidOpcode(_) => "unknown opcode",
        ProtocolError::UnexpectedContinueFrame => "continuation frame with nothing to continue",
        ProtocolError::ExpectedFragment(_) => "new message before the last one ended",
        ProtocolError::InvalidCloseSequence => "malformed close frame",
        ProtocolError::ReceivedAfterClosing => "frame received after close",
        _ => "protocol violation",
    }
}

/// Parses one frame and answers it from its own task.
fn handle_frame(node: &Arc<NetState>, caller: &Arc<Caller>, lanes: &Lanes, bytes: &[u8], slot: RequestSlot) {
    let envelope = match parse_envelope(bytes) {
        Ok(envelope) => envelope,
        Err(invalid) => {
            let frame = ws_frame(invalid.id.as_ref(), Err(invalid.error()));
            let outbound = lanes.outbound.clone();
            tokio::spawn(async move {
                let _ = outbound.send(text_frame(frame)).await;
                drop(slot);
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
    let outbound = lanes.outbound.clone();
    let streams =
        matches!(envelope.method.as_str(), "subscribe" | "unsubscribe").then(|| lanes.streams.clone());
    tokio::spawn(async move {
        let reply = match streams {
            Some(streams) => streams.request(&node, &caller, &envelope).await,
            None => api::dispatch(&node.api, &caller, &envelope).await,
        };
        let frame = text_frame(ws_frame(envelope.id.as_ref(), reply));
        // The slot is held until the answer is queued: a client that does not read fills its
        // queue, its request tasks wait here, and the connection stops reading from it.
        let _ = outbound.send(frame).await;
        drop(slot);
    });
}

fn text_frame(frame: String) -> Message {
    Message::Text(Utf8Bytes::from(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_reserve_rounds_up_and_never_exceeds_the_maximum() {
        assert_eq!(owner_reserve(100_000, 5), 5_000);
        assert_eq!(owner_reserve(10, 5), 1);
        assert_eq!(owner_reserve(10, 0), 0);
        assert_eq!(owner_reserve(1, 50), 1);
        assert_eq!(owner_reserve(usize::MAX, 50), usize::MAX / 2 + 1);
        assert_eq!(owner_reserve(19, 5), 1);
        assert_eq!(owner_reserve(20, 10), 2);
    }

    #[test]
    fn no_close_reason_reads_as_a_lost_session_to_the_existing_client() {
        let config = crate::config::NodeConfig::new(std::path::Path::new("/tmp"));
        let mut reasons: Vec<String> = [
            End::Shutdown,
            End::PingTimeout,
            End::WriteTimeout,
            End::QueueFull,
            End::TooBig,
            End::NotUtf8,
        ]
        .iter()
        .filter_map(|end| end.close_frame(&config).map(|(_, reason)| reason))
        .collect();
        let violations = [
            ProtocolError::NonZeroReservedBits,
            ProtocolError::UnmaskedFrameFromClient,
            ProtocolError::FragmentedControlFrame,
            ProtocolError::ControlFrameTooBig,
            ProtocolError::UnknownControlFrameType(11),
            ProtocolError::UnknownDataFrameType(3),
            ProtocolError::InvalidOpcode(16),
            ProtocolError::UnexpectedContinueFrame,
            ProtocolError::InvalidCloseSequence,
            ProtocolError::ReceivedAfterClosing,
            ProtocolError::HandshakeIncomplete,
        ];
        reasons.extend(violations.iter().map(|v| protocol_reason(v).to_string()));
        for reason in reasons {
            assert!(reason.len() <= 123, "{reason}");
            for word in ["session", "expired", "invalid", "unauthorized"] {
                assert!(!reason.contains(word), "{reason}");
            }
        }
    }
}
