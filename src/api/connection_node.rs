//! `connectionNode` (W-AUTH-1) and `requestDeveloperAccess`: a signed request from a Gliesereum
//! wallet buys a session. Failed attempts are counted per source address and limited; so are
//! successful ones, per wallet and per source address.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::NodeInfo;
use crate::auth::login::{LoginAction, verify_login};
use crate::auth::session::Sessions;
use crate::auth::throttle::LoginLimit;
use crate::auth::throttle::LoginThrottle;
use crate::auth::{Caller, Gate, Principal};
use crate::clock::Clock;
use crate::webfix::{ApiError, Reply};

/// What a login needs: the node's description, the owners, sessions and login limits.
pub struct Desk<'a> {
    pub info: &'a NodeInfo,
    pub gate: &'a Gate,
    pub sessions: &'a Sessions,
    pub throttle: &'a LoginThrottle,
    pub clock: &'a Clock,
}

/// How much longer than twice the login window a replay mark is kept.
const REPLAY_MARK_MARGIN: Duration = Duration::from_secs(1);

pub async fn connection_node(desk: &Desk<'_>, caller: &Caller, body: &Map<String, Value>) -> Reply {
    signed_session(desk, caller, body, LoginAction::Login).await
}

/// A non-owner gets a clear 403; an owner gets a fresh session with `developer: true`.
pub async fn request_developer_access(
    desk: &Desk<'_>,
    caller: &Caller,
    principal: &Principal,
    body: &Map<String, Value>,
) -> Reply {
    if let Principal::Wallet {
        address,
        owner: false,
    } = principal
    {
        return Err(ApiError::new(
            403,
            format!(
                "Developer access is granted by the node's operator: ask them to add {address} to --owners"
            ),
        ));
    }
    signed_session(desk, caller, body, LoginAction::DeveloperAccess).await
}

async fn signed_session(
    desk: &Desk<'_>,
    caller: &Caller,
    body: &Map<String, Value>,
    action: LoginAction,
) -> Reply {
    let ip = caller.peer.map(|p| p.ip());
    if let Some(ip) = ip
        && let Err(wait) = desk.throttle.check(ip)
    {
        return Err(too_many(format!("Too many failed logins from {ip}"), wait));
    }
    let result = verify_and_open(desk, ip, body, action).await;
    if let (Err(e), Some(ip)) = (&result, ip)
        && matches!(e.status, 400 | 401)
    {
        desk.throttle.fail(ip);
        tracing::info!(%ip, status = e.status, error = %e.message, "login refused");
    }
    result
}

/// 429 with the wait in the message and as `retryAfter` (seconds).
fn too_many(what: String, wait: Duration) -> ApiError {
    let secs = wait.as_secs().max(1);
    ApiError::new(429, format!("{what}; retry in {secs} s")).with("retryAfter", secs)
}

fn over_limit(limit: LoginLimit, address: &str, ip: Option<IpAddr>) -> ApiError {
    let what = match (limit, ip) {
        (LoginLimit::Wallet(_), _) => format!("Too many logins of wallet {address}"),
        (LoginLimit::Source(_), Some(ip)) => format!("Too many logins from {ip}"),
        (LoginLimit::Source(_), None) => "Too many logins from this address".to_string(),
    };
    too_many(what, limit.wait())
}

async fn verify_and_open(
    desk: &Desk<'_>,
    ip: Option<IpAddr>,
    body: &Map<String, Value>,
    action: LoginAction,
) -> Reply {
    let now = desk.clock.wall_ms();
    let login = verify_login(body, action, &desk.info.network, desk.info.login_window, now)
        .map_err(ApiError::login)?;
    // Checked before the replay mark is spent, so a refused login can be sent again later.
    desk.throttle
        .check_login(&login.address, ip)
        .map_err(|limit| over_limit(limit, &login.address, ip))?;
    // A signed request buys one session: a replay within the freshness window is refused, on
    // every node of the cluster (the mark lives in the shared store). The mark is the digest
    // computed here, so no other spelling of the same request gets past it. It outlives the
    // request's acceptance: a request dated up to a window ahead is accepted until a window
    // after its date (plus a margin for the millisecond at the edge and clock steps).
    let keep = desk
        .info
        .login_window
        .saturating_mul(2)
        .saturating_add(REPLAY_MARK_MARGIN);
    let fresh = desk
        .sessions
        .claim_login(&login.digest, &login.address, keep)
        .await
        .map_err(ApiError::storage)?;
    if !fresh {
        return Err(ApiError::new(
            401,
            "Login refused: this signed request was already used; sign a new one",
        ));
    }
    // Counted only for logins that will get a session; a replay never uses up a wallet's logins.
    desk.throttle
        .record_login(&login.address, ip)
        .map_err(|limit| over_limit(limit, &login.address, ip))?;
    let session = desk
        .sessions
        .create(&login.address)
        .await
        .map_err(ApiError::storage)?;
    let developer = desk.info.open || desk.gate.is_owner(&login.address);
    tracing::info!(address = %login.address, developer, "session opened");
    Ok((
        200,
        json!({"raw": {
            "session": session.session,
            "token": session.token,
            "info": {
                "network": desk.info.network,
                "title": desk.info.title,
                "nid": desk.info.nid,
                "api": desk.info.api_url,
                "connector": {"socket": desk.info.ws_url, "protocols": ["webfix"]},
                "developer": developer,
                "address": login.address,
            },
        }})
        .into(),
    ))
}
