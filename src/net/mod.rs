//! The network face of a node: one listener and its accept loop (header and idle deadlines,
//! caps on connections still doing HTTP) serving HTTP (`POST /`) and WebSocket (`GET /`,
//! `GET /ws`) with CORS on every route.

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
