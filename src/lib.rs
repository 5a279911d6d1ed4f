//! # Heterogen
//!
//! A node stores JavaScript *workers* in a key-value store and serves their management over
//! WebFIX 1.0, on WebSocket first and HTTP `POST /` for compatibility.
//!
//! What it is not (yet): workers do not run (the JS runtime is issue #3), there is no wallet
//! login (issue #4: every caller is let through until then), and no cluster backend (etcd).
//!
//! # Layout
//! - [`config`]: flags, `HETEROGEN_*` environment, TOML file.
//! - [`node`]: builds a node from a config; graceful shutdown.
//! - [`net`]: the one listener and its accept loop (HTTP deadlines, pending-connection caps);
//!   HTTP routes and the WebSocket connection loop.
//! - [`webfix`]: the request envelope and every error's status and shape.
//! - [`api`]: one file per WebFIX method, and [`api::dispatch`].
//! - [`auth`]: the one place where callers are authorised.
//! - [`store`]: the [`store::Store`] trait and its embedded fjall backend.
//! - [`workers`]: worker records, validation, minification.
//! - [`runtime`]: per-node worker statistics.
//!
//! # Limits
//! A request or WebSocket message is at most `--max-request-bytes` (1 MiB by default);
//! a stored entry at most 64 KiB.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
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
pub use node::{NodeState, RunningNode, start, start_with_store, start_with_stores};
