//! `formatScript` (beyond the seed): a script printed for reading, one statement per line.
//!
//! The store holds minified scripts (W-SET-3); the browser console shows a worker written
//! elsewhere (CLI, STELS client) through this, so a person edits readable code. Owner only;
//! the script is parsed exactly as `setWorker` parses it, with the same errors.

use serde_json::{Map, Value, json};

use crate::webfix::{ApiError, Reply};
use crate::workers::validate::readable_script;

pub async fn apply(body: &Map<String, Value>) -> Reply {
    let Some(Value::String(script)) = body.get("script") else {
        return Err(ApiError::invalid_body("script must be a string"));
    };
    Ok((
        200,
        json!({"script": readable_script(script).await.map_err(ApiError::script)?}),
    ))
}
