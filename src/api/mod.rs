//! WebFIX methods: the [`Method`] enum, [`dispatch`], and one file per method.
//!
//! Every transport (HTTP `POST /`, WebSocket frames) ends here, so a method behaves the same
//! whichever way it arrives.

mod compat;
mod connection_node;
mod format_script;
mod get_leader_info;
mod get_worker_logs;
mod get_worker_stats;
mod list_workers;
mod set_worker;
mod stop_all_workers;
mod update_worker;

use crate::auth::{self, Caller};
use crate::node::NodeState;
use crate::webfix::{ApiError, Envelope, Reply};

/// Every method this node answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    SetWorker,
    ListWorkers,
    UpdateWorker,
    StopAllWorkers,
    GetWorkerStats,
    GetLeaderInfo,
    /// A worker's log lines after a cursor.
    GetWorkerLogs,
    /// A script printed for reading (the console's view of a minified script).
    FormatScript,
    /// The existing client calls it at start-up; this node holds no assets.
    AssetList,
    /// The existing client calls it at start-up; this node holds no exchange accounts.
    ListAccounts,
    /// Wallet login (W-AUTH-1).
    ConnectionNode,
    /// A logged-in wallet asks for the developer (Owner) role.
    RequestDeveloperAccess,
}

/// Who may call a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a session.
    Public,
    /// Any live session.
    Session,
    /// A session whose wallet has the Owner role (W-AUTH-3).
    Owner,
}

impl Method {
    /// The method named `name`, if this node has it (W-ENV-3).
    pub fn from_name(name: &str) -> Option<Method> {
        Some(match name {
            "setWorker" => Method::SetWorker,
            "listWorkers" => Method::ListWorkers,
            "updateWorker" => Method::UpdateWorker,
            "stopAllWorkers" => Method::StopAllWorkers,
            "getWorkerStats" => Method::GetWorkerStats,
            "getLeaderInfo" => Method::GetLeaderInfo,
            "getWorkerLogs" => Method::GetWorkerLogs,
            "formatScript" => Method::FormatScript,
            "assetList" => Method::AssetList,
            "listAccounts" => Method::ListAccounts,
            "connectionNode" => Method::ConnectionNode,
            "requestDeveloperAccess" => Method::RequestDeveloperAccess,
            _ => return None,
        })
    }

    pub fn access(self) -> Access {
        match self {
            Method::AssetList | Method::ConnectionNode => Access::Public,
            Method::RequestDeveloperAccess => Access::Session,
            _ => Access::Owner,
        }
    }
}

/// Runs one request to completion.
pub async fn dispatch(node: &NodeState, caller: &Caller, request: &Envelope) -> Reply {
    if matches!(request.method.as_str(), "subscribe" | "unsubscribe") {
        return Err(ApiError::bad_request(
            "Subscriptions need a WebSocket connection (GET / or /ws)",
        ));
    }
    let method = Method::from_name(&request.method).ok_or_else(ApiError::method_not_found)?;
    let principal = auth::authorize(node, caller, method.access()).await?;
    let body = &request.body;
    let reply = match method {
        Method::SetWorker => set_worker::apply(node, body).await,
        Method::ListWorkers => list_workers::apply(node).await,
        Method::UpdateWorker => update_worker::apply(node, body).await,
        Method::StopAllWorkers => stop_all_workers::apply(node).await,
        Method::GetWorkerStats => get_worker_stats::apply(node).await,
        Method::GetLeaderInfo => get_leader_info::apply(node, body).await,
        Method::GetWorkerLogs => get_worker_logs::apply(node, body).await,
        Method::FormatScript => format_script::apply(body).await,
        Method::AssetList => compat::asset_list(node),
        Method::ListAccounts => compat::list_accounts(),
        Method::ConnectionNode => connection_node::connection_node(node, caller, body).await,
        Method::RequestDeveloperAccess => {
            connection_node::request_developer_access(node, caller, &principal, body).await
        }
    };
    if let Err(error) = &reply {
        tracing::debug!(method = %request.method, status = error.status, error = %error.message, "request failed");
    }
    reply
}

/// The record of `raw` as a store value, refused when it exceeds the entry limit (W-SET-8).
fn worker_value(raw: crate::workers::WorkerScript) -> Result<serde_json::Value, ApiError> {
    let value = crate::workers::WorkerData::new(raw).to_value();
    let size = serde_json::to_vec(&value).map_err(ApiError::internal)?.len();
    if size > crate::store::MAX_VALUE_BYTES {
        return Err(ApiError::bad_request("Worker entry exceeds 64 KiB limit").with("size", size));
    }
    Ok(value)
}
