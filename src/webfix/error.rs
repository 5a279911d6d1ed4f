//! Every failure a client can see, with its status code, in one place (W-ENV-2..4, W-HTTP-2).

use std::fmt::Write;

use serde_json::{Map, Value, json};

use super::{RequestId, WEBFIX_VERSION};

/// How an error body is shaped on HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorShape {
    /// Protocol-level, a failure of the envelope rather than of a method:
    /// `{"webfix":"1.0","error":{"code":…,"message":…}}`.
    Protocol {
        /// The `code` in the body.
        code: u16,
    },
    /// Method-level: `{"error":"<text>", …extra}`.
    Method,
}

/// A failed request: status code, message and optional extra fields (`details`, `missing`).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status (and `status` of a WebSocket error frame).
    pub status: u16,
    /// What the client reads.
    pub message: String,
    /// More fields beside the message (`details`, `missing`, `retryAfter`).
    pub extra: Map<String, Value>,
    /// How the body is shaped.
    pub shape: ErrorShape,
}

impl ApiError {
    /// A method error `{"error": message}` with this status.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            extra: Map::new(),
            shape: ErrorShape::Method,
        }
    }

    /// Adds a field beside `error`.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(field.to_string(), value.into());
        self
    }

    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// W-UPD-3 style: `Invalid request body: <reason>`.
    pub fn invalid_body(reason: impl std::fmt::Display) -> Self {
        Self::new(400, format!("Invalid request body: {reason}"))
    }

    /// A store failure: 503 when the store could not read or write (a full disk, an I/O
    /// error, a deadline: retry later), 500 for anything else.
    pub fn storage(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Unavailable(_) => {
                tracing::error!(%error, "store unavailable");
                Self::new(
                    503,
                    format!("Storage unavailable ({error}); nothing was written, retry later"),
                )
            }
            crate::store::StoreError::Timeout(_) => {
                tracing::error!(%error, "store call timed out");
                Self::new(
                    503,
                    format!("Storage did not answer in time ({error}); read the record before retrying"),
                )
            }
            other => Self::internal(other),
        }
    }

    /// A script that cannot be stored or printed: 400, with line and column for a syntax error
    /// (W-SET-3).
    pub fn script(error: crate::workers::validate::ScriptError) -> Self {
        use crate::workers::validate::ScriptError;
        let message = error.to_string();
        match error {
            ScriptError::Syntax(e) => Self::bad_request(message)
                .with("details", e.to_string())
                .with("line", e.line)
                .with("column", e.column),
            ScriptError::Minifier(_) => Self::internal(message),
            ScriptError::Empty | ScriptError::TooLarge { .. } => Self::bad_request(message),
        }
    }

    /// Settings of a new worker that cannot be used (`setWorker`): 400 naming the field.
    pub fn settings(error: crate::workers::validate::SettingsError) -> Self {
        Self::bad_request(error.to_string())
    }

    /// Settings inside an `updateWorker` `raw` that cannot be used: 400 naming `raw.<field>`.
    pub fn raw_settings(error: crate::workers::validate::SettingsError) -> Self {
        use crate::workers::validate::SettingsError;
        match error {
            SettingsError::Field(f) => Self::invalid_body(format!("raw.{} {}", f.field, f.reason)),
            SettingsError::Rule(message) => Self::bad_request(message),
        }
    }

    /// A secret that cannot be set, listed or deleted: 404 for an unknown worker or secret,
    /// 400 naming what is wrong with the request, 409 when the worker kept changing.
    pub fn secret(error: crate::secrets::SecretError) -> Self {
        use crate::secrets::SecretError;
        match error {
            SecretError::WorkerNotFound | SecretError::SecretNotFound => Self::new(404, error.to_string()),
            SecretError::ValueTooLarge { size, max } => {
                Self::invalid_body(&error).with("size", size).with("max", max)
            }
            SecretError::BadName(_) | SecretError::EmptyValue => Self::invalid_body(error),
            SecretError::TooMany { max } => Self::bad_request(error.to_string()).with("max", max),
            SecretError::Busy(_) => Self::new(409, error.to_string()),
            SecretError::KeyRefused(_) => Self::new(503, error.to_string()),
            SecretError::Store(e) => Self::storage(e),
            SecretError::Seal => Self::internal(error),
        }
    }

    /// A caller who may not go on: 401, 403, or the store's failure.
    pub fn auth(error: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match error {
            AuthError::Unauthorized => Self::new(401, "Unauthorized"),
            AuthError::Forbidden => Self::new(403, "Forbidden"),
            AuthError::Store(e) => Self::storage(e),
        }
    }

    /// A login request not accepted: 400 when malformed, 401 when refused on its merits.
    pub fn login(error: crate::auth::login::LoginError) -> Self {
        Self::new(if error.is_malformed() { 400 } else { 401 }, error.to_string())
    }

    /// A 500 that tells the client nothing more (the cause is logged).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "internal error");
        Self::new(500, "Internal server error")
    }

    fn protocol(status: u16, code: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            extra: Map::new(),
            shape: ErrorShape::Protocol { code },
        }
    }

    /// W-ENV-2.
    pub fn invalid_structure() -> Self {
        Self::protocol(400, 400, "Invalid WebFIX request structure")
    }

    /// W-ENV-3.
    pub fn method_not_found() -> Self {
        Self::protocol(404, 13, "WebFIX method not found")
    }

    /// W-ENV-4.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        Self::protocol(
            408,
            408,
            format!("Request body not received within {} ms", limit.as_millis()),
        )
    }

    /// A 413: the body is over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::protocol(
            413,
            413,
            format!("Request body exceeds the limit of {limit} bytes"),
        )
    }

    /// Refused because the node holds its configured maximum of connections.
    pub fn at_capacity(max: usize) -> Self {
        Self::protocol(
            503,
            503,
            format!("Node is at its limit of {max} WebSocket connections; retry later"),
        )
    }

    /// Refused because this source address holds its maximum of WebSockets.
    pub fn too_many_from_address(max: usize) -> Self {
        Self::protocol(
            429,
            429,
            format!("This address holds its limit of {max} WebSocket connections; close one first"),
        )
    }

    /// Refused because this non-owner wallet holds its maximum of WebSockets.
    pub fn too_many_for_wallet(max: usize) -> Self {
        Self::protocol(
            429,
            429,
            format!("This wallet holds its limit of {max} WebSocket connections; close one first"),
        )
    }

    /// Refused because only the slots kept for owner sessions are left.
    pub fn owner_reserve(max: usize, reserved: usize) -> Self {
        Self::protocol(
            503,
            503,
            format!(
                "Node is at its limit of {max} WebSocket connections for non-owners \
                 (the last {reserved} are kept for owners); retry later"
            ),
        )
    }

    /// The HTTP body of this error.
    pub fn http_body(&self) -> Value {
        match self.shape {
            ErrorShape::Protocol { code } => {
                json!({"webfix": WEBFIX_VERSION, "error": {"code": code, "message": self.message}})
            }
            ErrorShape::Method => {
                let mut body = Map::new();
                body.insert("error".into(), Value::String(self.message.clone()));
                body.extend(self.extra.clone());
                Value::Object(body)
            }
        }
    }
}

/// The JSON text of a successful answer, assembled once; stored values inside it are their
/// stored bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonBody(String);

impl JsonBody {
    /// Text assembled from JSON pieces; the caller vouches that it is one JSON value.
    pub fn assembled(text: String) -> Self {
        JsonBody(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The JSON text, without a copy.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<Value> for JsonBody {
    fn from(value: Value) -> Self {
        JsonBody(value.to_string())
    }
}

/// The outcome of one request: a status and the bare result, or an error.
pub type Reply = Result<(u16, JsonBody), ApiError>;

/// The WebSocket response frame for `reply` (W-WS-2): the HTTP status and, on success, exactly
/// the HTTP body as `result`; on failure the error text in `error` beside any extra fields.
pub fn ws_frame(id: Option<&RequestId>, reply: Reply) -> String {
    let id = id.map_or(Value::Null, RequestId::to_json);
    match reply {
        Ok((status, result)) => {
            // The frame is built around the result's own buffer (which usually has room for
            // it): a large result is moved once, never parsed or copied to a new allocation.
            let mut frame = result.into_string();
            let mut head = String::with_capacity(64);
            let _ = write!(
                head,
                r#"{{"webfix":"{WEBFIX_VERSION}","id":{id},"status":{status},"result":"#
            );
            frame.insert_str(0, &head);
            frame.push('}');
            frame
        }
        Err(error) => {
            let mut frame = Map::new();
            frame.insert("webfix".into(), Value::from(WEBFIX_VERSION));
            frame.insert("id".into(), id);
            frame.insert("status".into(), Value::from(error.status));
            frame.insert("error".into(), Value::String(error.message));
            if let ErrorShape::Protocol { code } = error.shape {
                frame.insert("code".into(), Value::from(code));
            }
            for (k, v) in error.extra {
                frame.entry(k).or_insert(v);
            }
            Value::Object(frame).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_bodies() {
        assert_eq!(
            ApiError::invalid_structure().http_body(),
            json!({"webfix":"1.0","error":{"code":400,"message":"Invalid WebFIX request structure"}})
        );
        assert_eq!(
            ApiError::method_not_found().http_body(),
            json!({"webfix":"1.0","error":{"code":13,"message":"WebFIX method not found"}})
        );
        assert_eq!(
            ApiError::bad_request("Script minification failed")
                .with("details", "x")
                .http_body(),
            json!({"error":"Script minification failed","details":"x"})
        );
    }

    #[test]
    fn ws_frames() {
        let id = RequestId::Num(7.into());
        assert_eq!(
            ws_frame(Some(&id), Ok((200, json!([]).into()))),
            r#"{"webfix":"1.0","id":7,"status":200,"result":[]}"#
        );
        assert_eq!(
            ws_frame(
                None,
                Ok((201, JsonBody::assembled(r#"{"b":1.50,"a":2}"#.to_string())))
            ),
            r#"{"webfix":"1.0","id":null,"status":201,"result":{"b":1.50,"a":2}}"#
        );
        assert_eq!(
            ws_frame(Some(&id), Err(ApiError::new(409, "conflict"))),
            r#"{"webfix":"1.0","id":7,"status":409,"error":"conflict"}"#
        );
    }

    #[test]
    fn store_failures_map_to_503_or_500() {
        use crate::store::StoreError;
        let full = ApiError::storage(StoreError::Unavailable(
            "No space left on device (os error 28)".into(),
        ));
        assert_eq!(full.status, 503);
        assert_eq!(
            full.message,
            "Storage unavailable (storage backend failed: No space left on device (os error 28)); \
             nothing was written, retry later"
        );
        let corrupt = ApiError::storage(StoreError::Corrupt("x".into()));
        assert_eq!(
            (corrupt.status, corrupt.message.as_str()),
            (500, "Internal server error")
        );
    }
}
