//! Who is calling, and whether they may (worker-api.md §3).
//!
//! - [`gliesereum`]: wallet keys, addresses, the gls-det-1 canonical JSON, transaction checks.
//! - [`login`]: the checks of a signed login (or developer-access) request.
//! - [`session`]: sessions handed out by `connectionNode`, persisted in the store.
//! - [`throttle`]: failed logins limited per source address; successful ones per wallet and address.
//!
//! [`authorize`] is the one place every method and stream passes through.

pub mod gliesereum;
pub mod keyfile;
pub mod login;
mod room;
pub mod session;
pub mod throttle;

use crate::api::Access;
use crate::node::NodeState;
use crate::webfix::ApiError;

/// The caller of one request, as the transport saw it.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The `stels-session` header or `?session=` value, if any.
    pub session: Option<String>,
    /// Source address, for logs and rate limits.
    pub peer: Option<std::net::SocketAddr>,
}

/// Who a request turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Principal {
    /// No check was needed (a public method, or a node started with `--open`).
    Anyone,
    /// A logged-in wallet.
    Wallet { address: String, owner: bool },
}

/// W-AUTH-2: no, unknown or expired session.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized")
}

/// W-AUTH-3: a valid session without the needed role.
pub fn forbidden() -> ApiError {
    ApiError::new(403, "Forbidden")
}

/// The wallet behind `caller`'s session, if the session is live.
pub async fn session_principal(node: &NodeState, caller: &Caller) -> Result<Option<Principal>, ApiError> {
    let Some(session) = &caller.session else {
        return Ok(None);
    };
    let found = node.sessions.lookup(session).await.map_err(ApiError::storage)?;
    Ok(found.map(|s| {
        let owner = node.config.is_owner(&s.address);
        Principal::Wallet {
            address: s.address,
            owner,
        }
    }))
}

/// Decides whether `caller` may use something that needs `access`.
pub async fn authorize(node: &NodeState, caller: &Caller, access: Access) -> Result<Principal, ApiError> {
    if access == Access::Public || node.config.open {
        return Ok(Principal::Anyone);
    }
    match session_principal(node, caller).await? {
        None => Err(unauthorized()),
        Some(principal @ Principal::Wallet { owner: true, .. }) => Ok(principal),
        Some(principal) if access == Access::Session => Ok(principal),
        Some(_) => Err(forbidden()),
    }
}
