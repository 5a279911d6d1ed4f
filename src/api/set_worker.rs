//! `setWorker` (W-SET-1..9): creates an inactive worker from a script.

use serde_json::{Map, Value};

use super::worker_value;
use crate::node::NodeState;
use crate::store::{AtomicWrite, CommitOutcome, Entry};
use crate::webfix::{ApiError, Reply};
use crate::workers::WorkerScript;
use crate::workers::model::{entry_json, now_ms, worker_key};
use crate::workers::validate::{Settings, SettingsError, prepare_script};

/// The script of a worker created without one.
const DEFAULT_SCRIPT: &str = "\nlogger.info(\"Worker script initialized!\");\n";
const DEFAULT_VERSION: &str = "1.19.2";

pub async fn apply(node: &NodeState, body: &Map<String, Value>) -> Reply {
    let settings = Settings::read(body).map_err(|e| match e {
        SettingsError::Field(f) => ApiError::bad_request(format!("Invalid {}: {}", f.field, f.reason)),
        SettingsError::Rule(message) => ApiError::bad_request(message),
    })?;
    let default_script = Value::String(DEFAULT_SCRIPT.into());
    let script = prepare_script(Some(body.get("scriptContent").unwrap_or(&default_script)))
        .await
        .map_err(ApiError::script)?;

    let sid = uuid::Uuid::new_v4().to_string();
    let timestamp = now_ms();
    let note = settings.note.filter(|n| !n.is_empty()).unwrap_or_else(|| {
        let iso = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        format!("Worker script Stels SDK {sid} - {iso}")
    });
    let raw = WorkerScript {
        sid: sid.clone(),
        nid: node.config.nid.clone(),
        active: false,
        mode: settings.mode,
        scope: settings.scope,
        execution_mode: settings.execution_mode,
        priority: settings.priority,
        account_id: settings.account_id,
        assigned_node: settings.assigned_node,
        note,
        script,
        dependencies: settings.dependencies,
        version: settings.version.unwrap_or_else(|| DEFAULT_VERSION.into()),
        timestamp,
    };
    let key = worker_key(&sid);
    let value = worker_value(raw)?;
    let write = AtomicWrite::new()
        .check(key.clone(), None)
        .set(key.clone(), value.clone());
    match node.store.commit(write).await.map_err(ApiError::storage)? {
        CommitOutcome::Committed(versionstamp) => {
            tracing::info!(%sid, "worker created");
            Ok((
                200,
                entry_json(Entry {
                    key,
                    value,
                    versionstamp,
                }),
            ))
        }
        // A fresh v4 UUID that already exists means the random source is broken.
        CommitOutcome::CheckFailed => Err(ApiError::internal(format!("generated sid {sid} already exists"))),
    }
}
