//! [`Frame`]: one pushed message, serialised once and shared by every subscriber and transport.

use bytes::Bytes;

/// A serialised JSON push frame. Always UTF-8 (it is only built from strings), cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Frame(Bytes);

impl Frame {
    /// The frame holding `json`.
    pub fn from_json_text(json: String) -> Frame {
        Frame(Bytes::from(json))
    }

    /// The serialised JSON.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The serialised JSON, without a copy.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The serialised JSON as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A pushed frame: `{"value":{channel, module, widget, raw, timestamp}}` (W-WS-4), stamped
/// `timestamp` (ms since the epoch).
pub fn push_frame(channel: &str, module: &str, raw: impl serde::Serialize, timestamp: i64) -> Frame {
    #[derive(serde::Serialize)]
    struct Push<'a, R> {
        value: PushValue<'a, R>,
    }
    #[derive(serde::Serialize)]
    struct PushValue<'a, R> {
        channel: &'a str,
        module: &'a str,
        widget: String,
        raw: R,
        timestamp: i64,
    }
    // Written straight from borrowed fields: a log catch-up builds 10,000 of these.
    let frame = Push {
        value: PushValue {
            channel,
            module,
            widget: format!("widget.{channel}"),
            raw,
            timestamp,
        },
    };
    Frame::from_json_text(serde_json::to_string(&frame).unwrap_or_default())
}
