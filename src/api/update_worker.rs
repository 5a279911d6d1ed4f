//! `updateWorker` (W-UPD-1..5): replaces a worker's `raw` as a whole, with optimistic locking.

use serde_json::{Map, Value};

use super::worker_record;
use crate::clock::Clock;
use crate::store::Versionstamp;
use crate::webfix::{ApiError, JsonBody, Reply};
use crate::workers::WorkerRepo;
use crate::workers::validate::{Identity, Settings, prepare_script};

/// Fields `raw` must carry: a missing one would be lost by the replacement (W-UPD-2).
const REQUIRED: &[&str] = &[
    "sid",
    "nid",
    "active",
    "mode",
    "note",
    "script",
    "dependencies",
    "version",
];

const CONFLICT: &str = "Update Worker Error: version mismatch or not found";

/// `updateWorker {channel, raw, versionstamp?}`, checked.
pub struct UpdateWorker {
    sid: String,
    /// The record's versionstamp the client read; `None`: the current one.
    expected: Option<Versionstamp>,
    nid: String,
    note: String,
    version: String,
    active: bool,
    settings: Settings,
    /// The script as sent (minified when applied).
    script: Option<Value>,
}

impl UpdateWorker {
    pub fn parse(body: &Map<String, Value>) -> Result<UpdateWorker, ApiError> {
        let sid = match body.get("channel") {
            Some(Value::String(channel)) => channel
                .strip_prefix("ami.worker.")
                .filter(|sid| uuid::Uuid::try_parse(sid).is_ok())
                .ok_or_else(|| {
                    ApiError::invalid_body("channel must be \"ami.worker.<sid>\" with a UUID sid")
                })?,
            Some(_) => return Err(ApiError::invalid_body("channel must be a string")),
            None => return Err(ApiError::invalid_body("channel is required")),
        };
        let raw = match body.get("raw") {
            Some(Value::Object(raw)) => raw,
            Some(_) => return Err(ApiError::invalid_body("raw must be an object")),
            None => return Err(ApiError::invalid_body("raw is required")),
        };
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|f| raw.get(*f).is_none_or(Value::is_null))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::bad_request("Invalid request body").with("missing", missing));
        }
        let expected = match body.get("versionstamp") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                Versionstamp::parse(s)
                    .ok_or_else(|| ApiError::invalid_body("versionstamp must be 20 hexadecimal digits"))?,
            ),
            Some(_) => return Err(ApiError::invalid_body("versionstamp must be a string")),
        };

        let text = |field: &str| match raw.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(ApiError::invalid_body(format!("raw.{field} must be a string"))),
        };
        let raw_sid = text("sid")?;
        if raw_sid != sid {
            return Err(ApiError::invalid_body(
                "raw.sid does not match the sid in channel",
            ));
        }
        let nid = text("nid")?;
        let note = text("note")?;
        let version = text("version")?;
        let Some(active) = raw.get("active").and_then(Value::as_bool) else {
            return Err(ApiError::invalid_body("raw.active must be a boolean"));
        };
        let settings = Settings::read(raw).map_err(ApiError::raw_settings)?;
        Ok(UpdateWorker {
            sid: sid.to_string(),
            expected,
            nid,
            note,
            version,
            active,
            settings,
            script: raw.get("script").cloned(),
        })
    }

    /// Minifies the script and replaces the record if it still has the expected versionstamp.
    pub async fn apply(self, workers: &WorkerRepo, clock: &Clock) -> Reply {
        let UpdateWorker {
            sid,
            expected,
            nid,
            note,
            version,
            active,
            settings,
            script,
        } = self;
        let script = prepare_script(script.as_ref()).await.map_err(ApiError::script)?;
        let new_raw = settings.into_worker(Identity {
            sid: sid.clone(),
            nid,
            active,
            note,
            script,
            version,
            timestamp: clock.wall_ms(),
        });
        let record = worker_record(new_raw)?;
        let expected = match expected {
            Some(stamp) => stamp,
            None => match workers.get(&sid).await.map_err(ApiError::storage)? {
                Some(current) => current.versionstamp,
                None => return Err(ApiError::new(409, CONFLICT)),
            },
        };
        match workers
            .put(record, Some(expected))
            .await
            .map_err(ApiError::storage)?
        {
            Some(entry) => {
                tracing::info!(%sid, active, "worker updated");
                Ok((200, JsonBody::assembled(entry.to_json_text())))
            }
            None => Err(ApiError::new(409, CONFLICT)),
        }
    }
}
