//! The network face of a node: one listener and its accept loop (header and idle deadlines,
//! caps on connections still doing HTTP) serving HTTP (`POST /`) and WebSocket (`GET /`,
//! `GET /ws`) with CORS on every route, and the browser console (`GET /console/`).

mod console;
mod http;
mod listener;
mod outbound;
mod serve;
mod ws;

pub use http::{json_response, router, session_of};
pub use listener::bind;
pub use outbound::{Closed, Outbound, TrySendError};
pub use serve::{PendingLimits, ServeSettings, serve};
pub use ws::{ConnectionSlots, owner_reserve};

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
