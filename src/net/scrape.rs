//! The metrics listener (`--metrics-listen`): `GET /metrics` in the Prometheus text format, and
//! the same `/healthz` and `/readyz` as the API's listener, for a scraper or an orchestrator
//! that should not reach the API.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use super::{NetState, health};

/// What the metrics listener serves from.
#[derive(Clone)]
struct Scrape {
    registry: Arc<Registry>,
}

/// The routes of the metrics listener.
pub fn metrics_router(node: Arc<NetState>, registry: Arc<Registry>) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Scrape { registry });
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(node)
        .merge(metrics)
}

async fn metrics(State(scrape): State<Scrape>) -> Response {
    match crate::metrics::encode(&scrape.registry) {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
