//! Routes, CORS, and the HTTP transport of WebFIX (W-HTTP-1..3, W-ENV-4).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use super::{NetState, console, health, sse, ws};
use crate::api;
use crate::auth::{AuthError, Caller, Principal};
use crate::webfix::{ApiError, WEBFIX_VERSION, parse_envelope};

/// Header carrying the session on HTTP (matched case-insensitively, W-HTTP-1).
pub const SESSION_HEADER: &str = "stels-session";

/// Every route of a node.
pub fn router(node: Arc<NetState>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static(SESSION_HEADER),
            header::AUTHORIZATION,
        ])
        .allow_private_network(true)
        .max_age(std::time::Duration::from_secs(600));
    Router::new()
        .route("/", get(root_get).post(root_post))
        .route("/ws", get(ws_get))
        .route("/api/worker/logs/stream", get(sse::logs_stream))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/console", get(console::redirect_to_console))
        .route("/console/", get(console::index))
        .route("/console/{*path}", get(console::file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors)
        .with_state(node)
}

/// A JSON reply with `status`.
pub fn json_response(status: u16, body: &Value) -> Response {
    json_text_response(status, body.to_string())
}

/// A response whose body is this JSON text.
fn json_text_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.status, &error.http_body())
}

/// The session a request carries, from the header (HTTP and WS) or `?session=` (WS).
pub fn session_of(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok())
        && !value.is_empty()
    {
        return Some(value.to_string());
    }
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("session="))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

async fn root_post(
    State(node): State<Arc<NetState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let limit = node.config.max_request_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return error_response(&ApiError::too_large(limit));
    }
    let caller = Caller {
        session: session_of(request.headers(), None),
        peer: Some(peer),
    };
    let deadline = node.config.http.body_timeout;
    let Ok(read) = tokio::time::timeout(deadline, Limited::new(request.into_body(), limit).collect()).await
    else {
        tracing::debug!(%peer, "request body not received in time");
        return error_response(&ApiError::body_timeout(deadline));
    };
    let bytes = match read {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return error_response(&ApiError::too_large(limit));
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "request body read failed");
            return error_response(&ApiError::bad_request("Could not read the request body"));
        }
    };
    let envelope = match parse_envelope(&bytes) {
        Ok(envelope) => envelope,
        Err(invalid) => return error_response(&invalid.error()),
    };
    match api::dispatch(&node.api, &caller, &envelope).await {
        Ok((status, body)) => json_text_response(status, body.into_string()),
        Err(error) => error_response(&error),
    }
}

type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

/// `GET /`: a WebSocket upgrade; for a browser, the way to the console; else a short
/// description of the node.
async fn root_get(
    State(node): State<Arc<NetState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request_uri: axum::http::Uri,
    upgrade: Upgrade,
) -> Response {
    if upgrade.is_err() && !headers.contains_key(header::UPGRADE) {
        if console::wants_html(&headers) {
            return console::redirect(StatusCode::SEE_OTHER);
        }
        return json_response(
            200,
            &json!({
                "name": "heterogen",
                "version": env!("CARGO_PKG_VERSION"),
                "webfix": WEBFIX_VERSION,
                "nid": node.config.nid,
                "network": node.config.network,
                "title": node.config.title,
                "open": node.config.open,
                "websocket": node.api.info.ws_url,
            }),
        );
    }
    ws_get(State(node), ConnectInfo(peer), headers, request_uri, upgrade).await
}

/// `GET /ws`: WebSocket only.
async fn ws_get(
    State(node): State<Arc<NetState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request_uri: axum::http::Uri,
    upgrade: Upgrade,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let status = rejection.status().as_u16();
            return json_response(
                if status == 405 { 426 } else { status },
                &json!({"webfix": WEBFIX_VERSION, "error": {"code": status, "message": format!("WebSocket upgrade required: {}", rejection.body_text())}}),
            );
        }
    };
    let caller = Caller {
        session: session_of(&headers, request_uri.query()),
        peer: Some(peer),
    };
    // W-WS-6: an unknown session is refused at the upgrade — the existing client's intended
    // path back to its login screen. Roles are checked per request on the open socket; here
    // the role decides only which connection caps apply.
    let mut non_owner = None;
    if !node.config.open {
        match node.api.gate.principal(&caller).await {
            Ok(Some(Principal::Wallet { address, owner })) => {
                if !owner {
                    non_owner = Some(address);
                }
            }
            Ok(Some(Principal::Anyone)) => {}
            Ok(None) => {
                tracing::debug!(%peer, "WebSocket refused: no live session");
                node.connection_metrics
                    .refused(crate::metrics::ConnectionKind::WebSocket, "no_session");
                return json_response(401, &ApiError::auth(AuthError::Unauthorized).http_body());
            }
            Err(error) => {
                let error = ApiError::storage(error);
                return json_response(error.status, &error.http_body());
            }
        }
    }
    ws::upgrade(node, upgrade, caller, non_owner)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    json_response(
        404,
        &json!({"webfix": WEBFIX_VERSION, "error": {"code": 404, "message": format!("No route for {method} {}", uri.path())}}),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    json_response(
        405,
        &json!({"webfix": WEBFIX_VERSION, "error": {"code": 405, "message": format!("{method} is not allowed on {}; use POST for WebFIX requests", uri.path())}}),
    )
}
