//! Stored values as the JSON text they were written as.
//!
//! A value is serialised once, when it is written, and from then on travels as that text: a
//! read hands out the stored bytes, a watch event shares them, and an answer frame embeds them
//! without parsing them into a tree and serialising the tree again. Code that needs the fields
//! parses explicitly ([`RawJson::parse`], [`RawJson::deserialize`]).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;

/// One JSON value held as its compact serialised text. Cloning shares the text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Arc<str>);

impl RawJson {
    /// The text of `value`.
    pub fn from_value(value: &Value) -> Self {
        RawJson(Arc::from(value.to_string()))
    }

    /// The JSON text of anything serialisable.
    pub fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        Ok(RawJson(Arc::from(serde_json::to_string(value)?)))
    }

    /// Takes `text` as JSON after checking that it is exactly one JSON value: for bytes from
    /// outside this process (another writer's etcd entries).
    pub fn from_untrusted(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice::<IgnoredAny>(bytes)?;
        let text = simdutf8::basic::from_utf8(bytes).map_err(serde::de::Error::custom)?;
        Ok(RawJson(Arc::from(text)))
    }

    /// Takes `text` as JSON without parsing it: for text this process serialised itself and a
    /// checksummed store kept (the embedded backend's own records). It must still be UTF-8.
    pub(crate) fn from_trusted(bytes: &[u8]) -> Result<Self, simdutf8::basic::Utf8Error> {
        Ok(RawJson(Arc::from(simdutf8::basic::from_utf8(bytes)?)))
    }

    /// Assembled JSON text (an answer built from other [`RawJson`] pieces); the caller vouches
    /// that it is one JSON value.
    pub(crate) fn assembled(text: String) -> Self {
        RawJson(Arc::from(text))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Bytes of JSON text.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty (never, for a value built by this type's constructors).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value as a tree.
    pub fn parse(&self) -> serde_json::Result<Value> {
        serde_json::from_str(&self.0)
    }

    /// The value as a `T`, read straight from the text.
    pub fn deserialize<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.0)
    }
}

/// Embeds the text in a serde output. This checks the text again (serde_json offers no way to
/// trust it), so paths that carry many or large values write [`RawJson::as_str`] directly.
impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl From<Value> for RawJson {
    fn from(value: Value) -> Self {
        RawJson::from_value(&value)
    }
}

impl From<&Value> for RawJson {
    fn from(value: &Value) -> Self {
        RawJson::from_value(value)
    }
}

/// Equal when the text parses to `other` (key order of objects counts, as it is kept).
impl PartialEq<Value> for RawJson {
    fn eq(&self, other: &Value) -> bool {
        self.parse().is_ok_and(|value| value == *other)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_survives_byte_for_byte() {
        let text = br#"{"b":1.50,"a":[1e3,"\u00e9"],"c":-0}"#;
        let raw = RawJson::from_untrusted(text).unwrap();
        assert_eq!(raw.as_str().as_bytes(), text);
        assert_eq!(raw.parse().unwrap()["b"], json!(1.5));
    }

    #[test]
    fn untrusted_text_must_be_one_json_value() {
        for bad in [&b""[..], b"{", b"1 2", b"[1,]", b"\"\xff\"", b"nul"] {
            assert!(RawJson::from_untrusted(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_compare_by_content() {
        assert_eq!(RawJson::from(json!({"a": [1, 2]})), json!({"a": [1, 2]}));
        assert_ne!(RawJson::from(json!(1)), json!(2));
    }
}
