//! `GET /healthz` and `GET /readyz` for load balancers and orchestrators: no session needed,
//! and nothing in the answer but the verdict.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::NetState;

/// Longest wait for the store's answer to the readiness probe.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Alive: the process accepts and answers HTTP.
pub async fn healthz() -> Response {
    verdict(StatusCode::OK, "ok")
}

/// Ready: not shutting down, and the store (fjall, or etcd across the network) answers a read
/// within [`READY_PROBE_TIMEOUT`].
pub async fn readyz(State(node): State<Arc<NetState>>) -> Response {
    if node.shutdown.is_cancelled() {
        return not_ready();
    }
    match tokio::time::timeout(READY_PROBE_TIMEOUT, node.api.workers.probe()).await {
        Ok(Ok(())) => verdict(StatusCode::OK, "ready"),
        _ => not_ready(),
    }
}

fn not_ready() -> Response {
    verdict(StatusCode::SERVICE_UNAVAILABLE, "not ready")
}

fn verdict(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}
