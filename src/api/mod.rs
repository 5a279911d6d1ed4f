//! WebFIX methods: the [`Method`] enum, [`dispatch`], and one file per method.
//!
//! Every transport (HTTP `POST /`, WebSocket frames) ends here, so a method behaves the same
//! whichever way it arrives.

mod compat;
mod connection_node;
mod delete_worker;
mod delete_worker_secret;
mod format_script;
mod get_leader_info;
mod get_worker_logs;
mod get_worker_stats;
mod list_nodes;
mod list_worker_secrets;
mod list_workers;
mod set_worker;
mod set_worker_secret;
mod stop_all_workers;
mod update_worker;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::session::Sessions;
use crate::auth::throttle::LoginThrottle;
use crate::auth::{Access, Caller, Gate};
use crate::clock::Clock;
use crate::cluster::coordinator::Coordinator;
use crate::cluster::membership::NodeList;
use crate::secrets::SecretRepo;
use crate::store::Store;
use crate::streams::logs::LogBook;
use crate::streams::stats::StatsBoard;
use crate::webfix::{ApiError, Envelope, Reply};
use crate::workers::WorkerRepo;

/// Every method this node answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Creates an inactive worker (W-SET-1..9).
    SetWorker,
    /// Every worker record (W-LIST-1..2).
    ListWorkers,
    /// Replaces a worker's `raw` with optimistic locking (W-UPD-1..5).
    UpdateWorker,
    /// Deactivates every worker (W-STOP-1..3).
    StopAllWorkers,
    /// Removes a worker: its record, and on every node its run, lease, logs and stats.
    DeleteWorker,
    /// What this node runs (W-STATS-1).
    GetWorkerStats,
    /// Who leads a leader-mode worker (W-LEAD-1..2).
    GetLeaderInfo,
    /// A worker's log lines after a cursor.
    GetWorkerLogs,
    /// Every live node of the cluster.
    ListNodes,
    /// A script printed for reading (the console's view of a minified script).
    FormatScript,
    /// Sets one secret of a worker (the value is never sent back).
    SetWorkerSecret,
    /// The names of a worker's secrets, never their values.
    ListWorkerSecrets,
    /// Deletes one secret of a worker.
    DeleteWorkerSecret,
    /// The existing client calls it at start-up; this node holds no assets.
    AssetList,
    /// The existing client calls it at start-up; this node holds no exchange accounts.
    ListAccounts,
    /// Wallet login (W-AUTH-1).
    ConnectionNode,
    /// A logged-in wallet asks for the developer (Owner) role.
    RequestDeveloperAccess,
}

/// What a node tells clients about itself.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// This node's id (`--nid`).
    pub nid: String,
    /// The network it serves (`--network`); logins must name it.
    pub network: String,
    /// Its display name (`--title`).
    pub title: String,
    /// The URL clients use for HTTP calls.
    pub api_url: String,
    /// The WebSocket URL matching `api_url`.
    pub ws_url: String,
    /// `--open`: everyone is treated as an owner.
    pub open: bool,
    /// How far a signed login's timestamp may be from now (W-AUTH-5).
    pub login_window: Duration,
    /// Bytes each worker may hold in each script KV (`getWorkerStats`' `kvQuotaBytes`).
    pub kv_quota_bytes: u64,
}

/// The handles the methods work with; [`dispatch`] hands each method only those it uses.
pub struct Api {
    /// What the node tells clients about itself.
    pub info: NodeInfo,
    /// Who may call what.
    pub gate: Gate,
    /// The worker records.
    pub workers: WorkerRepo,
    /// Sessions handed out by logins.
    pub sessions: Arc<Sessions>,
    /// Login limits per source address and wallet.
    pub throttle: Arc<LoginThrottle>,
    /// The cluster's live nodes (`listNodes`).
    pub nodes: NodeList,
    /// Leader elections (`getLeaderInfo`).
    pub coordinator: Arc<dyn Coordinator>,
    /// What `getWorkerStats` reports.
    pub stats: Arc<StatsBoard>,
    /// Every worker's log lines (`getWorkerLogs`).
    pub logs: Arc<LogBook>,
    /// The cluster KV (`Stels.net`), for the workers' quota usage.
    pub net_kv: Arc<dyn Store>,
    /// This node's KV (`Stels.local`), for the workers' quota usage.
    pub local_kv: Arc<dyn Store>,
    /// Wall time for timestamps.
    pub clock: Clock,
    /// Requests by method and status, with their latency.
    pub requests: crate::metrics::RequestMetrics,
    /// Logins by outcome.
    pub logins: crate::metrics::LoginMetrics,
    /// Workers' secrets, sealed with the node key.
    pub secrets: SecretRepo,
}

impl Method {
    /// Every method with its name on the wire.
    const ALL: [(&'static str, Method); 17] = [
        ("setWorker", Method::SetWorker),
        ("listWorkers", Method::ListWorkers),
        ("updateWorker", Method::UpdateWorker),
        ("stopAllWorkers", Method::StopAllWorkers),
        ("deleteWorker", Method::DeleteWorker),
        ("getWorkerStats", Method::GetWorkerStats),
        ("getLeaderInfo", Method::GetLeaderInfo),
        ("getWorkerLogs", Method::GetWorkerLogs),
        ("listNodes", Method::ListNodes),
        ("formatScript", Method::FormatScript),
        ("setWorkerSecret", Method::SetWorkerSecret),
        ("listWorkerSecrets", Method::ListWorkerSecrets),
        ("deleteWorkerSecret", Method::DeleteWorkerSecret),
        ("assetList", Method::AssetList),
        ("listAccounts", Method::ListAccounts),
        ("connectionNode", Method::ConnectionNode),
        ("requestDeveloperAccess", Method::RequestDeveloperAccess),
    ];

    /// The method named `name`, if this node has it (W-ENV-3).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    /// Every method's name on the wire.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Method::ALL.iter().map(|(name, _)| *name)
    }

    /// The method's name on the wire.
    pub fn name(self) -> &'static str {
        Method::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("unknown", |(n, _)| *n)
    }

    /// Who may call this method.
    pub fn access(self) -> Access {
        match self {
            Method::AssetList | Method::ConnectionNode => Access::Public,
            Method::RequestDeveloperAccess => Access::Session,
            _ => Access::Owner,
        }
    }
}

/// Runs one request to completion.
pub async fn dispatch(api: &Api, caller: &Caller, request: &Envelope) -> Reply {
    let started = std::time::Instant::now();
    let method = Method::from_name(&request.method);
    let reply = run(api, caller, request, method).await;
    let status = match &reply {
        Ok((status, _)) => *status,
        Err(error) => {
            tracing::debug!(method = %request.method, status = error.status, error = %error.message, "request failed");
            error.status
        }
    };
    api.requests
        .observe(method.map_or("unknown", Method::name), status, started.elapsed());
    if matches!(
        method,
        Some(Method::ConnectionNode | Method::RequestDeveloperAccess)
    ) {
        if reply.is_ok() {
            api.logins.succeeded();
        } else {
            api.logins.failed();
        }
    }
    reply
}

/// Authorises the caller for `method` (the request's, looked up), parses the body into the
/// method's command and applies it with the handles it uses.
async fn run(api: &Api, caller: &Caller, request: &Envelope, method: Option<Method>) -> Reply {
    if matches!(request.method.as_str(), "subscribe" | "unsubscribe") {
        return Err(ApiError::bad_request(
            "Subscriptions need a WebSocket connection (GET / or /ws)",
        ));
    }
    let method = method.ok_or_else(ApiError::method_not_found)?;
    let principal = api
        .gate
        .authorize(caller, method.access())
        .await
        .map_err(ApiError::auth)?;
    let body = &request.body;
    let desk = || connection_node::Desk {
        info: &api.info,
        gate: &api.gate,
        sessions: &api.sessions,
        throttle: &api.throttle,
        clock: &api.clock,
    };
    match method {
        Method::SetWorker => {
            set_worker::SetWorker::parse(body)?
                .apply(&api.workers, &api.info.nid, &api.clock)
                .await
        }
        Method::ListWorkers => list_workers::apply(&api.workers).await,
        Method::UpdateWorker => {
            update_worker::UpdateWorker::parse(body)?
                .apply(&api.workers, &api.clock)
                .await
        }
        Method::StopAllWorkers => stop_all_workers::apply(&api.workers, &api.clock).await,
        Method::DeleteWorker => {
            delete_worker::DeleteWorker::parse(body)?
                .apply(&api.workers, &api.secrets)
                .await
        }
        Method::GetWorkerStats => {
            let kv = get_worker_stats::KvUsage {
                net: api.net_kv.as_ref(),
                local: api.local_kv.as_ref(),
                quota: api.info.kv_quota_bytes,
            };
            get_worker_stats::apply(&api.stats, kv).await
        }
        Method::GetLeaderInfo => {
            get_leader_info::GetLeaderInfo::parse(body)?
                .apply(api.coordinator.as_ref(), &api.clock)
                .await
        }
        Method::GetWorkerLogs => {
            get_worker_logs::GetWorkerLogs::parse(body)?
                .apply(&api.workers, &api.logs)
                .await
        }
        Method::ListNodes => list_nodes::apply(&api.nodes, &api.info.nid).await,
        Method::FormatScript => format_script::FormatScript::parse(body)?.apply().await,
        Method::SetWorkerSecret => {
            set_worker_secret::SetWorkerSecret::parse(body)?
                .apply(&api.secrets, &api.clock)
                .await
        }
        Method::ListWorkerSecrets => {
            list_worker_secrets::ListWorkerSecrets::parse(body)?
                .apply(&api.secrets)
                .await
        }
        Method::DeleteWorkerSecret => {
            delete_worker_secret::DeleteWorkerSecret::parse(body)?
                .apply(&api.secrets)
                .await
        }
        Method::AssetList => compat::asset_list(&api.info.network, &api.clock),
        Method::ListAccounts => compat::list_accounts(),
        Method::ConnectionNode => connection_node::connection_node(&desk(), caller, body).await,
        Method::RequestDeveloperAccess => {
            connection_node::request_developer_access(&desk(), caller, &principal, body).await
        }
    }
}

/// The record of `raw` as a store value, refused when it exceeds the entry limit (W-SET-8).
fn worker_record(raw: crate::workers::WorkerScript) -> Result<crate::workers::WorkerRecord, ApiError> {
    crate::workers::WorkerRecord::new(crate::workers::WorkerData::new(raw))
        .map_err(|e| ApiError::bad_request(e.to_string()).with("size", e.size))
}
