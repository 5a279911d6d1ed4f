//! The request envelope `{webfix, method, params?, body?, id?}` (W-ENV-1, W-ENV-2).

use serde_json::{Map, Value};

use super::ApiError;

/// A WebSocket request id: a string or a number chosen by the client (W-WS-2).
#[derive(Clone, Debug, PartialEq)]
pub enum RequestId {
    /// A string id.
    Str(String),
    /// A numeric id.
    Num(serde_json::Number),
}

impl RequestId {
    /// The id as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            RequestId::Str(s) => Value::String(s.clone()),
            RequestId::Num(n) => Value::Number(n.clone()),
        }
    }
}

/// A structurally valid request.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The `webfix` field as sent (`"1.0"` on HTTP; the existing client sends `"testnet"` on WS).
    pub webfix: String,
    /// The method name.
    pub method: String,
    /// Positional parameters (unused by every method here; kept as sent).
    pub params: Vec<Value>,
    /// The body object; an absent or `null` body is an empty object.
    pub body: Map<String, Value>,
    /// Present on WebSocket requests.
    pub id: Option<RequestId>,
    /// `channel` of the existing client's `{"method":"subscribe","channel":…}` frames (W-WS-5).
    pub channel: Option<String>,
}

/// A request that is not a WebFIX envelope. Every such failure is the one W-ENV-2 error,
/// since a client cannot act differently on the finer reasons.
#[derive(Debug, PartialEq)]
pub struct InvalidEnvelope {
    /// The request's `id`, when it could be read, so the client can match the error.
    pub id: Option<RequestId>,
}

impl InvalidEnvelope {
    /// The error to answer with.
    pub fn error(&self) -> ApiError {
        ApiError::invalid_structure()
    }
}

/// Parses raw bytes into an [`Envelope`].
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, InvalidEnvelope> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        tracing::debug!(error = %e, "request is not JSON");
        InvalidEnvelope { id: None }
    })?;
    let Value::Object(mut object) = value else {
        return Err(InvalidEnvelope { id: None });
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(RequestId::Str(s)),
        Some(Value::Number(n)) => Some(RequestId::Num(n)),
        Some(_) => return Err(InvalidEnvelope { id: None }),
    };
    let fail = |id: Option<RequestId>| Err(InvalidEnvelope { id });
    let webfix = match object.remove("webfix") {
        Some(Value::String(s)) => s,
        _ => return fail(id),
    };
    let method = match object.remove("method") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return fail(id),
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return fail(id),
    };
    let body = match object.remove("body") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return fail(id),
    };
    let channel = match object.remove("channel") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(Envelope {
        webfix,
        method,
        params,
        body,
        id,
        channel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Envelope {
        parse_envelope(text.as_bytes()).unwrap()
    }

    fn err(text: &str) -> ApiError {
        parse_envelope(text.as_bytes()).unwrap_err().error()
    }

    #[test]
    fn params_and_body_are_optional() {
        let e = ok(r#"{"webfix":"1.0","method":"listWorkers"}"#);
        assert!(e.params.is_empty() && e.body.is_empty() && e.id.is_none());
        let e = ok(r#"{"webfix":"1.0","method":"x","params":["a"],"body":{"k":1},"id":"r1"}"#);
        assert_eq!(e.params, vec![Value::from("a")]);
        assert_eq!(e.id, Some(RequestId::Str("r1".into())));
    }

    #[test]
    fn structure_errors() {
        for bad in [
            "not json",
            "[]",
            "7",
            r#"{"method":"x"}"#,
            r#"{"webfix":1,"method":"x"}"#,
            r#"{"webfix":"1.0"}"#,
            r#"{"webfix":"1.0","method":5}"#,
            r#"{"webfix":"1.0","method":"x","params":{}}"#,
            r#"{"webfix":"1.0","method":"x","body":[]}"#,
            r#"{"webfix":"1.0","method":"x","id":{}}"#,
        ] {
            assert_eq!(err(bad).status, 400, "{bad}");
        }
    }

    #[test]
    fn id_survives_a_structure_error() {
        let InvalidEnvelope { id } = parse_envelope(br#"{"id":9,"method":"x"}"#).unwrap_err();
        assert_eq!(id, Some(RequestId::Num(9.into())));
    }
}
