//! The checks of a signed login (`connectionNode`) or developer-access request, exactly as the
//! existing web client builds it (stels-client.md §2.4, §2.6, §2.8; W-AUTH-1, W-AUTH-5).

use std::time::Duration;

use serde_json::{Map, Value};

use super::gliesereum::{address_from_public_key, verify_transaction};
use crate::webfix::ApiError;
use crate::workers::model::now_ms;

/// Largest `data` of a login transaction: it holds four short fields.
pub const MAX_LOGIN_DATA_BYTES: usize = 4096;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginAction {
    Login,
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

/// A verified request: the wallet address and the transaction hash (for replay checks).
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedLogin {
    pub address: String,
    pub hash: String,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(400, format!("Invalid login request: {}", message.into()))
}

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(401, format!("Login refused: {}", message.into()))
}

/// The object holding `transaction`: `body.payload.body` as the web client sends it, or the
/// body itself (requestDeveloperAccess, and simpler clients).
fn inner_body(body: &Map<String, Value>) -> Result<&Map<String, Value>, ApiError> {
    if body.contains_key("transaction") {
        return Ok(body);
    }
    match body.get("payload").and_then(|p| p.get("body")) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(bad("body.payload.body must be an object")),
        None => Err(bad("body.payload.body.transaction is required")),
    }
}

/// Verifies a signed request for `action` on `network` (§2.6 steps 1–5).
pub fn verify_login(
    body: &Map<String, Value>,
    action: LoginAction,
    network: &str,
    window: Duration,
) -> Result<VerifiedLogin, ApiError> {
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
    let address =
        verify_transaction(tx).map_err(|e| ApiError::new(e.status(), format!("Login refused: {e}")))?;
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
    let Some(timestamp) = fields.get("timestamp").and_then(Value::as_i64) else {
        return Err(bad("transaction data has no numeric timestamp"));
    };
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let age = now_ms() - timestamp;
    if age > window_ms {
        return Err(refused(format!(
            "the transaction was signed {} s ago; sign a new one",
            age / 1000
        )));
    }
    if -age > window_ms {
        return Err(refused("the transaction is dated in the future; check the clock"));
    }
    let hash = tx
        .get("hash")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(VerifiedLogin { address, hash })
}
