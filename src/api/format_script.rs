//! `formatScript` (beyond the seed): a script printed for reading, one statement per line.
//!
//! The store holds minified scripts (W-SET-3); the browser console shows a worker written
//! elsewhere (CLI, STELS client) through this, so a person edits readable code. Owner only;
//! the script is parsed exactly as `setWorker` parses it, with the same errors.

use serde_json::{Map, Value, json};

use crate::webfix::{ApiError, Reply};
use crate::workers::validate::readable_script;

/// `formatScript {script}`.
pub struct FormatScript {
    script: String,
}

impl FormatScript {
    pub fn parse(body: &Map<String, Value>) -> Result<FormatScript, ApiError> {
        match body.get("script") {
            Some(Value::String(script)) => Ok(FormatScript {
                script: script.clone(),
            }),
            _ => Err(ApiError::invalid_body("script must be a string")),
        }
    }

    pub async fn apply(self) -> Reply {
        let script = readable_script(&self.script).await.map_err(ApiError::script)?;
        Ok((200, json!({ "script": script }).into()))
    }
}
