//! The network face of a node: one listener and its accept loop (header and idle deadlines,
//! caps on connections still doing HTTP) serving HTTP (`POST /`) and WebSocket (`GET /`,
//! `GET /ws`) with CORS on every route, and the browser console (`GET /console/`).

mod console;
mod health;
mod http;
mod listener;
mod outbound;
mod scrape;
mod serve;
pub mod sse;
mod subscriptions;
mod tls;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::Api;
use crate::config::NodeConfig;
use crate::streams::Hub;

pub use http::{json_response, router, session_of};
pub use listener::bind;
pub use outbound::{Closed, Outbound, TrySendError};
pub use scrape::metrics_router;
pub use serve::{PendingLimits, ServeSettings, serve};
pub use tls::{TlsError, TlsFiles};
pub use ws::{ConnectionSlots, owner_reserve};

/// What the transports share: the API, the stream hub, and their own limits and state.
pub struct NetState {
    /// The WebFIX methods, whichever transport a request comes on.
    pub api: Arc<Api>,
    /// What subscriptions and the SSE endpoint carry.
    pub hub: Hub,
    /// The transport limits (request size, WebSocket and HTTP settings).
    pub config: NodeConfig,
    /// Open WebSockets against `--max-connections`.
    pub connections: ConnectionSlots,
    /// WebSocket tasks, so shutdown can wait for their close frames.
    pub tasks: TaskTracker,
    /// Cancelled once, when the node starts shutting down.
    pub shutdown: CancellationToken,
    /// The address actually bound.
    pub local_addr: SocketAddr,
    /// Connections opened and refused, for the metrics.
    pub connection_metrics: crate::metrics::ConnectionMetrics,
    /// Stream pushes sent and dropped, for the metrics.
    pub stream_metrics: crate::metrics::StreamMetrics,
}

/// Counts one fewer for `key`, removing it at zero, so a map of counts holds only keys with
/// something open (per-address and per-wallet caps stay bounded by what is open).
fn decrement<K: std::hash::Hash + Eq>(map: &mut std::collections::HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}
