//! Who is calling, and whether they may (worker-api.md §3).
//!
//! - [`gliesereum`]: wallet keys, addresses, the gls-det-1 canonical JSON, transaction checks.
//! - [`login`]: the checks of a signed login (or developer-access) request.
//! - [`session`]: sessions handed out by `connectionNode`, persisted in the store.
//! - [`throttle`]: failed logins limited per source address; successful ones per wallet and address.
//!
//! [`Gate::authorize`] is the one place every method and stream passes through.

pub mod gliesereum;
pub mod keyfile;
pub mod login;
mod room;
pub mod session;
pub mod throttle;

use std::collections::HashSet;
use std::sync::Arc;

use crate::store::StoreError;
use session::Sessions;

/// Who may call a method or open a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a session.
    Public,
    /// Any live session.
    Session,
    /// A session whose wallet has the Owner role (W-AUTH-3).
    Owner,
}

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
    Wallet {
        /// The wallet's address.
        address: String,
        /// Whether it has the Owner role.
        owner: bool,
    },
}

/// Why a caller may not go on.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// W-AUTH-2: no, unknown or expired session.
    #[error("Unauthorized")]
    Unauthorized,
    /// W-AUTH-3: a valid session without the needed role.
    #[error("Forbidden")]
    Forbidden,
    /// The session could not be looked up.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The one gate every method and stream passes: sessions, and the owners' wallets.
#[derive(Clone)]
pub struct Gate {
    sessions: Arc<Sessions>,
    /// Wallet addresses with the Owner role (`--owners`).
    owners: Arc<HashSet<String>>,
    /// `--open`: no checks at all.
    open: bool,
}

impl Gate {
    /// A gate over `sessions` for `owners`; with `open`, everyone passes.
    pub fn new(sessions: Arc<Sessions>, owners: impl IntoIterator<Item = String>, open: bool) -> Gate {
        Gate {
            sessions,
            owners: Arc::new(owners.into_iter().collect()),
            open,
        }
    }

    /// Whether `address` has the Owner role.
    pub fn is_owner(&self, address: &str) -> bool {
        self.owners.contains(address)
    }

    /// The wallet behind `caller`'s session, if the session is live.
    pub async fn principal(&self, caller: &Caller) -> Result<Option<Principal>, StoreError> {
        let Some(session) = &caller.session else {
            return Ok(None);
        };
        let found = self.sessions.lookup(session).await?;
        Ok(found.map(|s| {
            let owner = self.is_owner(&s.address);
            Principal::Wallet {
                address: s.address,
                owner,
            }
        }))
    }

    /// Decides whether `caller` may use something that needs `access`.
    pub async fn authorize(&self, caller: &Caller, access: Access) -> Result<Principal, AuthError> {
        if access == Access::Public || self.open {
            return Ok(Principal::Anyone);
        }
        match self.principal(caller).await? {
            None => Err(AuthError::Unauthorized),
            Some(principal @ Principal::Wallet { owner: true, .. }) => Ok(principal),
            Some(principal) if access == Access::Session => Ok(principal),
            Some(_) => Err(AuthError::Forbidden),
        }
    }
}
