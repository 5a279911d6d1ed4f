//! WebFIX 1.0: the JSON envelope of every request and the shape of every reply.

mod envelope;
mod error;

pub use envelope::{Envelope, InvalidEnvelope, RequestId, parse_envelope};
pub use error::{ApiError, ErrorShape, JsonBody, Reply, ws_frame};

/// The protocol version this node speaks.
pub const WEBFIX_VERSION: &str = "1.0";
