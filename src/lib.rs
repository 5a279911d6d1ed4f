//! # Heterogen
//!
//! A node stores JavaScript *workers* in a key-value store and serves their management over
//! WebFIX 1.0, on WebSocket first and HTTP `POST /` for compatibility.
//!
//! Workers run in QuickJS isolates on a priority JS pool; wallets log in with signed Gliesereum
//! requests; live stats, events and logs are pushed over WebSocket. Not yet: a cluster backend
//! (etcd) — nodes share a store only inside one process.
//!
//! # Layout
//! - [`config`]: flags, `HETEROGEN_*` environment, TOML file.
//! - [`node`]: builds a node from a config; graceful shutdown.
//! - [`net`]: the one listener and its accept loop (HTTP deadlines, pending-connection caps);
//!   HTTP routes, SSE, and the WebSocket connection loop with its byte-bounded outbound queue.
//! - [`webfix`]: the request envelope and every error's status and shape.
//! - [`api`]: one file per WebFIX method, and [`api::dispatch`].
//! - [`auth`]: wallets, login checks, sessions, login limits; the one place callers are authorised.
//! - [`store`]: the [`store::Store`] trait, its embedded fjall backend, and the expiry reaper.
//! - [`workers`]: worker records, validation, minification.
//! - [`cluster`]: placement and leader leases.
//! - [`runtime`]: the JS pool, the engine, the supervisor, the script SDK, logs and stats.
//! - [`streams`]: the stats, logs and events subscriptions.
//! - [`logging`]: the node's own log, which never blocks or panics.
//!
//! # Limits
//! Every limit a stranger or a script meets is listed, with its default and setting, in
//! `SECURITY.md`. A request or WebSocket message is at most `--max-request-bytes` (1 MiB by
//! default); a stored entry at most 64 KiB.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod logging;
pub mod net;
pub mod node;
pub mod runtime;
pub mod store;
pub mod streams;
pub mod webfix;
pub mod workers;

pub use config::NodeConfig;
pub use node::{RunningNode, start, start_with_store, start_with_stores};
