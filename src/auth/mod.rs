//! Who is calling, and whether they may.
//!
//! Wallet login (`connectionNode`) and persisted sessions are not built yet (issue #4): until
//! then every caller is let through, and [`authorize`] is the one place where the session and
//! role checks (W-AUTH-2, W-AUTH-3) will go.

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

/// Decides whether `caller` may use something that needs `access`.
pub fn authorize(node: &NodeState, caller: &Caller, access: Access) -> Result<(), ApiError> {
    match access {
        Access::Public => Ok(()),
        // Without wallet login there is nothing to check a session against yet; `--open` and
        // the default behave alike until issue #4 adds sessions here.
        Access::Owner => {
            let _ = (node, caller);
            Ok(())
        }
    }
}
