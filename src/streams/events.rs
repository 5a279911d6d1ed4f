//! Node events (W-STR-1): workers started, stopped, reloaded, finished, auto-stopped with their
//! reason; leader leases gained and lost; worker records saved (with the record) or deleted, and
//! `resync` when the store watch restarted (a live view then lists again). Serialised once,
//! shared by every subscriber.

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{Frame, push_frame};
use crate::clock::Clock;
use crate::store::{Entry, RawJson};

/// Events kept for subscribers that fall behind; past it they get a lagged notice.
const CAPACITY: usize = 1024;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A run began on this node.
    Started,
    /// A run was stopped.
    Stopped,
    /// A run was replaced by one with the new script (hot reload).
    Reloaded,
    /// A `single` run returned.
    Finished,
    /// The error rules stopped the worker (W-RUN-4).
    AutoStopped,
    /// This node took the worker's leader lease.
    LeaderGained,
    /// This node lost or gave up the worker's leader lease.
    LeaderLost,
    /// A worker record was written (with the record).
    Saved,
    /// A worker record was deleted.
    Deleted,
    /// The node re-read every record after its watch failed: views should reload.
    Resync,
}

impl EventKind {
    /// The `type` of the event.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Stopped => "stopped",
            EventKind::Reloaded => "reloaded",
            EventKind::Finished => "finished",
            EventKind::AutoStopped => "auto-stopped",
            EventKind::LeaderGained => "leader-gained",
            EventKind::LeaderLost => "leader-lost",
            EventKind::Saved => "saved",
            EventKind::Deleted => "deleted",
            EventKind::Resync => "resync",
        }
    }
}

/// The node's event channel.
pub struct EventBus {
    /// Stamps the events.
    clock: Clock,
    channel: String,
    tx: broadcast::Sender<Frame>,
}

impl EventBus {
    /// The events of node `nid`, stamped by `clock`.
    pub fn new(nid: &str, clock: Clock) -> Self {
        EventBus {
            clock,
            channel: format!("ami.events.{nid}"),
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Publishes an event about worker `sid`; `detail` adds fields (`reason`, `epoch`, …).
    pub fn emit(&self, kind: EventKind, sid: &str, detail: Value) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let now = self.clock.wall_ms();
        let mut raw = json!({"type": kind.as_str(), "sid": sid, "timestamp": now});
        if let (Some(raw), Value::Object(detail)) = (raw.as_object_mut(), detail) {
            raw.extend(detail);
        }
        let _ = self.tx.send(push_frame(&self.channel, "events", raw, now));
    }

    /// Publishes `saved` for worker `sid` with its record as `listWorkers` gives it, the value
    /// as stored.
    pub fn emit_saved(&self, sid: &str, entry: &Entry) {
        #[derive(serde::Serialize)]
        struct Saved<'a> {
            r#type: &'static str,
            sid: &'a str,
            timestamp: i64,
            entry: RawJson,
        }
        if self.tx.receiver_count() == 0 {
            return;
        }
        let now = self.clock.wall_ms();
        let raw = Saved {
            r#type: EventKind::Saved.as_str(),
            sid,
            timestamp: now,
            entry: RawJson::assembled(entry.to_json_text()),
        };
        let _ = self.tx.send(push_frame(&self.channel, "events", raw, now));
    }

    /// Whether anyone listens: callers skip building an event's detail when nobody does.
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Every event from now on (a receiver that falls behind is told how many it missed).
    pub fn subscribe(&self) -> broadcast::Receiver<Frame> {
        self.tx.subscribe()
    }
}
