//! `getWorkerLogs`: a worker's log lines after a cursor, from memory or the stored history.
//! A sid without a worker record is 404 and allocates nothing.

use serde_json::{Map, Value, json};

use crate::streams::logs::LogBook;
use crate::webfix::{ApiError, Reply};
use crate::workers::WorkerRepo;

/// Lines returned at most per call.
const MAX_LIMIT: u64 = 10_000;

/// `getWorkerLogs {sid, since?, limit?}`, checked.
pub struct GetWorkerLogs {
    sid: String,
    /// The cursor to read after (0: from the oldest line kept).
    since: u64,
    limit: usize,
}

impl GetWorkerLogs {
    pub fn parse(body: &Map<String, Value>) -> Result<GetWorkerLogs, ApiError> {
        let sid = match body.get("sid").and_then(Value::as_str) {
            Some(sid) if uuid::Uuid::try_parse(sid).is_ok() => sid.to_string(),
            _ => return Err(ApiError::invalid_body("sid must be a worker id (UUID)")),
        };
        let since = match body.get("since") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| ApiError::invalid_body("since must be a log cursor (a number)"))?,
        };
        let limit = match body.get("limit") {
            None | Some(Value::Null) => 1000,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_body(format!(
                        "limit must be between 1 and {MAX_LIMIT}"
                    )));
                }
            },
        };
        Ok(GetWorkerLogs {
            sid,
            since,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        })
    }

    /// The lines, once the worker is known to exist (an unknown sid allocates nothing).
    pub async fn apply(self, workers: &WorkerRepo, logs: &LogBook) -> Reply {
        let GetWorkerLogs { sid, since, limit } = self;
        if workers.get(&sid).await.map_err(ApiError::storage)?.is_none() {
            return Err(ApiError::new(404, "Worker not found"));
        }
        let (lines, dropped) = logs.read(&sid, since, limit).await;
        let next = lines.last().map_or(since, |l| l.cursor);
        let lines: Vec<Value> = lines.iter().map(|l| l.to_json(&sid)).collect();
        Ok((
            200,
            json!({"sid": sid, "lines": lines, "next": next, "dropped": dropped}).into(),
        ))
    }
}
