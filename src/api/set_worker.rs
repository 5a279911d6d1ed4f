//! `setWorker` (W-SET-1..9): creates an inactive worker from a script.

use serde_json::{Map, Value};

use super::worker_record;
use crate::clock::Clock;
use crate::webfix::{ApiError, JsonBody, Reply};
use crate::workers::WorkerRepo;
use crate::workers::validate::{Identity, Settings, prepare_script};

/// The script of a worker created without one.
const DEFAULT_SCRIPT: &str = "\nlogger.info(\"Worker script initialized!\");\n";
const DEFAULT_VERSION: &str = "1.19.2";

/// `setWorker {scriptContent?, …settings}`, checked.
pub struct SetWorker {
    settings: Settings,
    /// The script as sent, or the default one (minified when applied).
    script: Value,
}

impl SetWorker {
    pub fn parse(body: &Map<String, Value>) -> Result<SetWorker, ApiError> {
        let settings = Settings::read(body).map_err(ApiError::settings)?;
        let script = body
            .get("scriptContent")
            .cloned()
            .unwrap_or_else(|| Value::String(DEFAULT_SCRIPT.into()));
        Ok(SetWorker { settings, script })
    }

    /// Minifies the script and stores a new inactive worker owned by node `nid`.
    pub async fn apply(self, workers: &WorkerRepo, nid: &str, clock: &Clock) -> Reply {
        let SetWorker { settings, script } = self;
        let script = prepare_script(Some(&script)).await.map_err(ApiError::script)?;
        let sid = uuid::Uuid::new_v4().to_string();
        let timestamp = clock.wall_ms();
        let note = settings
            .note
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                let iso = chrono::DateTime::from_timestamp_millis(timestamp)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                format!("Worker script Stels SDK {sid} - {iso}")
            });
        let version = settings.version.clone().unwrap_or_else(|| DEFAULT_VERSION.into());
        let raw = settings.into_worker(Identity {
            sid: sid.clone(),
            nid: nid.to_string(),
            active: false,
            note,
            script,
            version,
            timestamp,
        });
        match workers
            .put(worker_record(raw)?, None)
            .await
            .map_err(ApiError::storage)?
        {
            Some(entry) => {
                tracing::info!(%sid, "worker created");
                Ok((200, JsonBody::assembled(entry.to_json_text())))
            }
            // A fresh v4 UUID that already exists means the random source is broken.
            None => Err(ApiError::internal(format!("generated sid {sid} already exists"))),
        }
    }
}
