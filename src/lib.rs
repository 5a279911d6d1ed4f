//! # Heterogen
//!
//! A node stores JavaScript *workers* in a key-value store and serves their management over
//! WebFIX 1.0, on WebSocket first and HTTP `POST /` for compatibility.
//!
//! Workers run in QuickJS isolates on a priority JS pool; wallets log in with signed Gliesereum
//! requests; live stats, events and logs are pushed over WebSocket and SSE. The store contract
//! ([`store::Store`]) is shaped for a cluster (revisions, fallible watches from a revision,
//! leases, limits, one error enum); its embedded backend is fjall. Not yet: the etcd backend,
//! so nodes share a store only inside one process.
//!
//! # Layout (arrows point down only; `scripts/module-deps.sh` checks it)
//! - [`node`]: assembles a node from a config; graceful shutdown. Nothing depends on it.
//! - [`net`]: every transport — the listener and its accept loop (HTTP deadlines, pending
//!   caps), HTTP routes, WebSocket connections with their byte-bounded queue and
//!   subscriptions, SSE, the browser console's files.
//! - [`api`]: one file per WebFIX method, each a typed command; [`api::dispatch`] hands each
//!   only the handles it uses. [`webfix`]: the envelope, and every layer's error mapped to a
//!   status in one place.
//! - [`auth`]: wallets, login checks, sessions, login limits, and the [`auth::Gate`] every
//!   method and stream passes.
//! - [`workers`]: worker records and their repository, validation, minification.
//! - [`cluster`]: placement, and election and fencing behind [`cluster::coordinator::Coordinator`].
//! - [`streams`]: the transport-neutral hub — log book, stats board, events, shared feeds.
//! - [`runtime`]: the JS pool, the engine, the supervisor, the script SDK.
//! - [`secrets`]: workers' secrets — the key file, sealed records beside the worker records,
//!   and the book of opened values the node hands the runtime (which never names this module).
//! - [`store`]: the [`store::Store`] contract, its fjall backend, expiry leases.
//! - [`clock`]: the one source of time, pausable in tests. [`config`]: flags, environment,
//!   TOML. [`logging`]: the node's own log. [`cli`], [`client`]: the command-line client.
//!
//! # Limits
//! Every limit a stranger or a script meets is listed, with its default and setting, in
//! `SECURITY.md`. A request or WebSocket message is at most `--max-request-bytes` (1 MiB by
//! default); a stored entry at most 64 KiB.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod node;
pub mod pem;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod streams;
pub mod webfix;
pub mod workers;

pub use config::NodeConfig;
pub use node::{NodeError, RunningNode, start, start_with_store, start_with_stores};
