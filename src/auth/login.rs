//! The checks of a signed login (`connectionNode`) or developer-access request, exactly as the
//! existing web client builds it (stels-client.md §2.4, §2.6, §2.8; W-AUTH-1, W-AUTH-5).

use std::time::Duration;

use serde_json::{Map, Value};

use super::gliesereum::{TxError, address_from_public_key, verify_transaction_details};

/// Largest `data` of a login transaction: it holds four short fields.
pub const MAX_LOGIN_DATA_BYTES: usize = 4096;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginAction {
    /// `connectionNode`: a session for any wallet.
    Login,
    /// `requestDeveloperAccess`: a session for an owner's wallet.
    DeveloperAccess,
}

impl LoginAction {
    fn name(self) -> &'static str {
        match self {
            LoginAction::Login => "LOGIN_REQUEST",
            LoginAction::DeveloperAccess => "DEVELOPER_REQUEST",
        }
    }
}

/// A verified request: the wallet address and what identifies the signed request.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedLogin {
    /// The wallet that signed.
    pub address: String,
    /// Lower-case hex SHA-256 of the signed data, computed here: the replay mark. Never the
    /// client's `hash` string, which the same login can spell several ways.
    pub digest: String,
}

/// Why a login request is not accepted: malformed ones are told apart from well-formed ones
/// that fail a check ("malformed before cryptographic").
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Not a well-formed login request.
    #[error("Invalid login request: {0}")]
    Malformed(String),
    /// Well formed, but not acceptable (signature, wallet, network, freshness).
    #[error("Login refused: {0}")]
    Refused(String),
    /// The signed transaction itself is malformed or fails a cryptographic check.
    #[error("Login refused: {0}")]
    Transaction(TxError),
}

impl LoginError {
    /// Whether the request was malformed rather than refused on its merits.
    pub fn is_malformed(&self) -> bool {
        match self {
            LoginError::Malformed(_) => true,
            LoginError::Refused(_) => false,
            LoginError::Transaction(e) => e.is_malformed(),
        }
    }
}

fn bad(message: impl Into<String>) -> LoginError {
    LoginError::Malformed(message.into())
}

fn refused(message: impl Into<String>) -> LoginError {
    LoginError::Refused(message.into())
}

/// The object holding `transaction`: `body.payload.body` as the web client sends it, or the
/// body itself (requestDeveloperAccess, and simpler clients).
fn inner_body(body: &Map<String, Value>) -> Result<&Map<String, Value>, LoginError> {
    if body.contains_key("transaction") {
        return Ok(body);
    }
    match body.get("payload").and_then(|p| p.get("body")) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(bad("body.payload.body must be an object")),
        None => Err(bad("body.payload.body.transaction is required")),
    }
}

/// Verifies a signed request for `action` on `network` (§2.6 steps 1–5) at wall time `now_ms`.
pub fn verify_login(
    body: &Map<String, Value>,
    action: LoginAction,
    network: &str,
    window: Duration,
    now_ms: i64,
) -> Result<VerifiedLogin, LoginError> {
    let inner = inner_body(body)?;
    let tx = match inner.get("transaction") {
        Some(tx @ Value::Object(_)) => tx,
        Some(_) => return Err(bad("transaction must be an object")),
        None => return Err(bad("transaction is required")),
    };
    let wallet_address = match inner.get("walletAddress") {
        Some(Value::String(a)) => a.as_str(),
        Some(_) => return Err(bad("walletAddress must be a string")),
        None => return Err(bad("walletAddress is required")),
    };
    // Size first: a huge `data` is refused before any hashing.
    let data = match tx.get("data") {
        Some(Value::String(d)) if d.len() > MAX_LOGIN_DATA_BYTES => {
            return Err(bad(format!(
                "transaction data exceeds {MAX_LOGIN_DATA_BYTES} bytes"
            )));
        }
        Some(Value::String(d)) => d.as_str(),
        Some(_) => return Err(bad("transaction data must be a string")),
        None => return Err(bad("transaction data is required")),
    };
    let verified = verify_transaction_details(tx).map_err(LoginError::Transaction)?;
    let address = verified.address;
    if address != wallet_address {
        return Err(refused("walletAddress does not match the signing key"));
    }
    if tx.get("to").and_then(Value::as_str) != Some(address.as_str()) {
        return Err(refused(
            "a login transaction must be sent to the wallet's own address",
        ));
    }
    match inner.get("publicKey") {
        None | Some(Value::Null) => {}
        Some(Value::String(key)) => {
            let bytes = hex::decode(key).map_err(|_| bad("publicKey is not hex"))?;
            let derived = address_from_public_key(&bytes).map_err(|e| bad(format!("publicKey: {e}")))?;
            if derived != address {
                return Err(refused("publicKey does not match the signing key"));
            }
        }
        Some(_) => return Err(bad("publicKey must be a string")),
    }
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(data) else {
        return Err(bad("transaction data is not a JSON object"));
    };
    if fields.get("action").and_then(Value::as_str) != Some(action.name()) {
        return Err(refused(format!("transaction action must be {}", action.name())));
    }
    match fields.get("network").and_then(Value::as_str) {
        Some(n) if n == network => {}
        Some(n) => {
            return Err(refused(format!(
                "the transaction is for network {n:?}; this node serves {network:?}"
            )));
        }
        None => return Err(bad("transaction data has no network")),
    }
    if fields.get("walletAddress").and_then(Value::as_str) != Some(address.as_str()) {
        return Err(refused("transaction data names another wallet"));
    }
    let timestamp = match fields.get("timestamp") {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(t) => t,
            None if n.is_f64() => return Err(bad("transaction data timestamp must be whole milliseconds")),
            None => return Err(refused("the transaction is dated in the future; check the clock")),
        },
        _ => return Err(bad("transaction data has no numeric timestamp")),
    };
    check_freshness(timestamp, now_ms, window)?;
    Ok(VerifiedLogin {
        address,
        digest: hex::encode(verified.digest),
    })
}

/// W-AUTH-5: `timestamp` (the client's clock) within `window` of `now`, either way. Saturating,
/// so any i64 a client sends gets a refusal, never an overflow.
fn check_freshness(timestamp: i64, now: i64, window: Duration) -> Result<(), LoginError> {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let age = now.saturating_sub(timestamp);
    if age > window_ms {
        return Err(refused(format!(
            "the transaction was signed {} s ago; sign a new one",
            age / 1000
        )));
    }
    if age.saturating_neg() > window_ms {
        return Err(refused("the transaction is dated in the future; check the clock"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::gliesereum::{Wallet, create_signed_transaction};

    fn now_ms() -> i64 {
        crate::clock::Clock::system().wall_ms()
    }
    use serde_json::json;

    const WINDOW: Duration = Duration::from_secs(300);

    fn body_with_data_timestamp(wallet: &Wallet, timestamp: &str) -> Map<String, Value> {
        let data = format!(
            "{{\"action\":\"LOGIN_REQUEST\",\"timestamp\":{timestamp},\"network\":\"testnet\",\"walletAddress\":\"{}\"}}",
            wallet.address()
        );
        let tx = create_signed_transaction(wallet, &wallet.address(), 0, 1, Some(&data), now_ms());
        let Value::Object(body) = json!({"transaction": tx, "walletAddress": wallet.address()}) else {
            unreachable!()
        };
        body
    }

    #[test]
    fn freshness_saturates_at_every_extreme() {
        let now = 1_700_000_000_000;
        assert!(check_freshness(now, now, WINDOW).is_ok());
        assert!(check_freshness(now - 300_000, now, WINDOW).is_ok());
        assert!(check_freshness(now + 300_000, now, WINDOW).is_ok());
        for (timestamp, clock) in [
            (i64::MIN, now),
            (i64::MIN, i64::MAX),
            (i64::MAX, now),
            (i64::MAX, i64::MIN),
            (0, i64::MAX),
            (-1, now),
            (now - 300_001, now),
            (now + 300_001, now),
        ] {
            let err = check_freshness(timestamp, clock, WINDOW).unwrap_err();
            assert!(!err.is_malformed(), "{timestamp} at {clock}: {err}");
        }
        // A window too large for i64 milliseconds accepts everything without overflowing.
        assert!(check_freshness(i64::MIN, i64::MAX, Duration::MAX).is_ok());
    }

    #[test]
    fn extreme_login_timestamps_get_a_clear_refusal() {
        let wallet = Wallet::generate();
        let now = now_ms().to_string();
        let ok = verify_login(
            &body_with_data_timestamp(&wallet, &now),
            LoginAction::Login,
            "testnet",
            WINDOW,
            now_ms(),
        );
        assert_eq!(ok.unwrap().address, wallet.address());
        for (timestamp, status, needle) in [
            ("-9223372036854775808", 401, "sign a new one"),
            ("9223372036854775807", 401, "future"),
            ("18446744073709551615", 401, "future"),
            ("1e300", 400, "whole milliseconds"),
            ("-1e300", 400, "whole milliseconds"),
            ("1700000000000.5", 400, "whole milliseconds"),
            ("\"1700000000000\"", 400, "numeric timestamp"),
        ] {
            let body = body_with_data_timestamp(&wallet, timestamp);
            let err = verify_login(&body, LoginAction::Login, "testnet", WINDOW, now_ms()).unwrap_err();
            assert_eq!(err.is_malformed(), status == 400, "{timestamp}: {err}");
            assert!(err.to_string().contains(needle), "{timestamp}: {err}");
        }
    }

    #[test]
    fn the_replay_digest_is_computed_not_copied() {
        let wallet = Wallet::generate();
        let mut body = body_with_data_timestamp(&wallet, &now_ms().to_string());
        let first = verify_login(&body, LoginAction::Login, "testnet", WINDOW, now_ms()).unwrap();
        let hash = body["transaction"]["hash"].as_str().unwrap().to_string();
        assert_eq!(first.digest, hash);
        body["transaction"]["hash"] = Value::from(hash.to_uppercase());
        let upper = verify_login(&body, LoginAction::Login, "testnet", WINDOW, now_ms()).unwrap();
        assert_eq!(upper.digest, first.digest);
    }
}
