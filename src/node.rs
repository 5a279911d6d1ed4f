//! Building, running and stopping a node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{Api, NodeInfo};
use crate::auth::Gate;
use crate::auth::session::Sessions;
use crate::auth::throttle::LoginThrottle;
use crate::clock::Clock;
use crate::cluster::coordinator::{Coordinator, StoreCoordinator};
use crate::cluster::membership::{Claim, JoinError, Membership, NodeList, NodeLoad, NodeRecord};
use crate::config::{NodeConfig, StoreChoice};
use crate::metrics::{Metrics, Scraped};
use crate::net::{self, ConnectionSlots, NetState};
use crate::runtime::engine::{NodeIdentity, SecretReader, SecretSource};
use crate::runtime::pool::{JsPool, MinShares};
use crate::runtime::quickjs::QuickJsEngine;
use crate::runtime::supervisor::{RuntimeShared, Supervisor};
use crate::secrets::{KeyClaim, SecretBook, SecretRepo, SecretsKey, WorkerSecrets};
use crate::store::fjall::FjallStore;
use crate::store::{ExpiryLeases, MeteredStore, Store};
use crate::streams::logs::LogBook;
use crate::streams::stats::StatsBoard;
use crate::streams::{Hub, SonarFeed};
use crate::workers::WorkerRepo;

/// How long shutdown waits for WebSockets to take their close frames.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Descriptors kept back from WebSockets for the store, HTTP and logs.
const RESERVED_FDS: u64 = 256;

/// Why a node could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create data directory {path}: {source}")]
    /// The data directory cannot be created.
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    #[error("cannot open the store: {0}")]
    /// A store could not be opened or flushed.
    Store(#[from] crate::store::StoreError),
    #[error("cannot use the cluster store: {0}")]
    /// The configured cluster store cannot be used (etcd does not answer, a TLS file is
    /// unreadable, the binary lacks etcd support): a setup problem, not a crash.
    StoreUnreachable(String),
    #[error("node id {nid:?} is taken: {detail}")]
    /// Another live node of the cluster already uses this nid.
    NidTaken {
        /// The nid asked for.
        nid: String,
        /// Who holds it.
        detail: String,
    },
    /// `--tls-cert`/`--tls-key` cannot be used.
    #[error("{0}")]
    Tls(#[from] crate::net::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    /// The listen address cannot be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    /// The accept loop failed.
    Serve(std::io::Error),
    #[error("cannot use the owner key: {0}")]
    /// The owner key file could not be read or created.
    OwnerKey(#[from] crate::auth::keyfile::KeyFileError),
    /// The node's own wallet key file cannot be read or created.
    #[error("cannot use the node key: {0}")]
    NodeKey(crate::auth::keyfile::KeyFileError),
    /// The secrets key file cannot be read or created (or the store not asked about it): a
    /// setup problem, not a crash.
    #[error("cannot use the secrets key: {0}")]
    SecretsKey(#[from] crate::secrets::KeyError),
}

/// The key file a node without `--owners` (and without `--open`) creates in its data directory
/// and logs in with, so that a first start is usable at once.
pub const OWNER_KEY_FILE: &str = "owner-key.json";

/// The node's own wallet key file (`Stels.wallet`) in its data directory, unless `--node-key`
/// names another; created at first start.
pub const NODE_KEY_FILE: &str = "node-key.json";

/// A started node.
pub struct RunningNode {
    /// What the transports share (and, through it, the API and the stream hub).
    net: Arc<NetState>,
    /// The cluster store.
    store: Arc<dyn Store>,
    /// This node's own store.
    local_store: Arc<dyn Store>,
    /// The console link of a first-start owner (see [`OWNER_KEY_FILE`]).
    console_link: Option<String>,
    server: JoinHandle<()>,
    /// The metrics listener's address and server, with `--metrics-listen`.
    metrics_server: Option<(SocketAddr, JoinHandle<()>)>,
    /// Runs the workers placed on this node.
    supervisor: Supervisor,
    /// This node's record in the cluster's node list.
    membership: Arc<Membership>,
    /// Follows workers' secrets in the store until shutdown.
    secrets_task: JoinHandle<()>,
}

/// Raises the soft descriptor limit to the hard one; returns the limit now in force.
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the file-descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

/// Opens the cluster store `config.store` chose (the embedded one under `data_dir/cluster`, or
/// etcd) and the node-local store under `data_dir/local` (`Stels.local`), binds the listener
/// and starts serving.
pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    let store = match &config.store {
        StoreChoice::Fjall => {
            let store = open_fjall(&config, "cluster").await?;
            if config.fsync {
                tracing::info!(dir = %config.data_dir.display(), "store: embedded fjall; every commit is fsynced");
            } else {
                tracing::warn!(
                    dir = %config.data_dir.display(),
                    "store: embedded fjall with fsync OFF: acknowledged writes survive a process crash, not a power loss"
                );
            }
            store
        }
        StoreChoice::Etcd(settings) => open_etcd(settings).await?,
    };
    start_with_store(config, store).await
}

#[cfg(feature = "etcd")]
async fn open_etcd(settings: &crate::config::EtcdSettings) -> Result<Arc<dyn Store>, NodeError> {
    use crate::store::etcd::{EtcdOptions, EtcdStore, EtcdTls};
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path)
            .map_err(|e| NodeError::StoreUnreachable(format!("cannot read {}: {e}", path.display())))
    };
    let mut options = EtcdOptions::new(settings.endpoints.clone(), settings.prefix.clone());
    options.call_timeout = settings.call_timeout;
    options.user = settings.user.clone();
    if settings.tls() {
        let identity_pem = match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        options.tls = Some(EtcdTls {
            ca_pem: settings.ca.as_ref().map(read).transpose()?,
            identity_pem,
        });
    }
    let store = EtcdStore::connect(options)
        .await
        .map_err(|e| NodeError::StoreUnreachable(e.to_string()))?;
    tracing::info!(
        endpoints = %settings.endpoints.join(","),
        prefix = %settings.prefix,
        tls = settings.tls(),
        "store: etcd"
    );
    Ok(Arc::new(store))
}

#[cfg(not(feature = "etcd"))]
async fn open_etcd(_: &crate::config::EtcdSettings) -> Result<Arc<dyn Store>, NodeError> {
    Err(NodeError::StoreUnreachable(
        "this binary was built without etcd support: build it with `cargo build --release --features etcd` (needs protoc)".into(),
    ))
}

async fn open_fjall(config: &NodeConfig, name: &str) -> Result<Arc<dyn Store>, NodeError> {
    let dir = config.data_dir.join(name);
    std::fs::create_dir_all(&dir).map_err(|source| NodeError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    let fsync = config.fsync;
    let store = tokio::task::spawn_blocking(move || FjallStore::open(&dir, fsync))
        .await
        .map_err(|e| {
            NodeError::Store(crate::store::StoreError::Backend {
                backend: "fjall",
                message: format!("the task opening the store failed: {e}"),
            })
        })??;
    Ok(Arc::new(store))
}

/// Starts a node on a cluster store opened by the caller (another backend, a wrapped one, or
/// one shared by several nodes in a test); the local store is opened under `data_dir/local`.
pub async fn start_with_store(config: NodeConfig, store: Arc<dyn Store>) -> Result<RunningNode, NodeError> {
    let local_store = open_fjall(&config, "local").await?;
    start_with_stores(config, store, local_store).await
}

/// Starts a node on a cluster store and a local store (`Stels.local`, log history) opened by
/// the caller.
pub async fn start_with_stores(
    mut config: NodeConfig,
    store: Arc<dyn Store>,
    local_store: Arc<dyn Store>,
) -> Result<RunningNode, NodeError> {
    let first_owner = adopt_first_owner(&mut config)?;
    let (mut registry, metrics) = Metrics::register();
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store, metrics.store.clone()));
    let fd_limit = raise_fd_limit();
    // Past the descriptor limit accepts would fail with EMFILE; refusing with 503 is clearer.
    let capacity = usize::try_from(fd_limit.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
    let max_connections = config.max_connections.min(capacity);
    tracing::info!(
        max_connections,
        configured = config.max_connections,
        fd_limit,
        "WebSocket connection capacity (the smaller of --max-connections and the descriptor limit)"
    );
    let pending = net::PendingLimits::effective(&config.http, fd_limit, RESERVED_FDS);
    tracing::info!(
        max_pending = pending.total,
        max_pending_per_ip = pending.per_ip,
        configured = config.http.max_pending,
        configured_per_ip = config.http.max_pending_per_ip,
        "HTTP connections not yet upgraded or done, in total (at most half the descriptors left) \
         and per address (at most half of that); more are closed at accept"
    );
    if config.open {
        tracing::warn!("--open: authentication is OFF; anyone who reaches this port may manage workers");
    }

    let tls = match &config.tls {
        Some(paths) => Some(Arc::new(net::TlsFiles::load(&paths.cert, &paths.key)?)),
        None => None,
    };
    let listener = net::bind(config.listen).map_err(|source| NodeError::Bind {
        addr: config.listen,
        source,
    })?;
    let local_addr = listener.local_addr().map_err(|source| NodeError::Bind {
        addr: config.listen,
        source,
    })?;
    let api_url = config.api_url(local_addr);
    let ws_url = match api_url.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", api_url.trim_start_matches("http://")),
    };
    let clock = Clock::system();
    // Cancelled at shutdown (or a kill), and when the start fails from here on: it ends the
    // tasks that follow the store.
    let shutdown = CancellationToken::new();
    let cancel_on_failure = shutdown.clone().drop_guard();
    // Before anything runs, so that the first runs already read their secrets.
    let (secret_repo, secret_book, secrets_task) = open_secrets(&config, &store, &clock, &shutdown).await?;
    // Before anything runs: a node whose nid a live node holds must not start workers.
    let membership = join_cluster(&config, &store, &local_store, &api_url, &ws_url).await?;
    let node_identity = Arc::new(node_identity(&config, &clock)?);
    let stats = Arc::new(StatsBoard::new(clock.clone()));
    let logs = Arc::new(
        LogBook::persistent(
            local_store.clone(),
            config.runtime.log_ring_lines,
            config.runtime.log_history_lines,
            config.runtime.log_rate,
        )
        .with_clock(clock.clone()),
    );
    let pool = JsPool::start_niced(
        config.runtime.js_threads,
        tokio::runtime::Handle::current(),
        MinShares::default(),
        config.runtime.js_nice,
    );
    tracing::info!(threads = pool.threads(), "JS pool started");
    let pool_queued = pool.queued_reader();
    let events = Arc::new(crate::streams::EventBus::new(&config.nid, clock.clone()));
    // Entries vanish within a reaper interval (at most a second) of their time.
    let granularity = config.reaper_interval.min(Duration::from_secs(1));
    let net_expiry = Arc::new(ExpiryLeases::new(store.clone(), granularity, clock.clone()));
    let local_expiry = Arc::new(ExpiryLeases::new(local_store.clone(), granularity, clock.clone()));
    let coordinator: Arc<dyn Coordinator> = Arc::new(StoreCoordinator::new(
        store.clone(),
        config.nid.clone(),
        config.runtime.lease_duration,
        clock.clone(),
    ));
    let supervisor = Supervisor::start(Arc::new(RuntimeShared {
        events: events.clone(),
        config: config.clone(),
        workers: WorkerRepo::new(store.clone()),
        store: store.clone(),
        local: local_store.clone(),
        net_expiry: net_expiry.clone(),
        local_expiry,
        coordinator: coordinator.clone(),
        clock: clock.clone(),
        pool,
        engine: Arc::new(QuickJsEngine::new()),
        stats: stats.clone(),
        logs: logs.clone(),
        running: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        metrics: metrics.runs.clone(),
        node: node_identity,
        secrets: Arc::new(secret_book),
    }));
    let sessions = Arc::new(Sessions::new(
        store.clone(),
        net_expiry,
        config.session_idle,
        clock.clone(),
    ));
    let throttle = Arc::new(LoginThrottle::new(
        config.login_max_failures,
        config.logins_per_wallet,
        config.logins_per_ip,
    ));
    let workers = WorkerRepo::new(store.clone());
    let api = Arc::new(Api {
        info: NodeInfo {
            nid: config.nid.clone(),
            network: config.network.clone(),
            title: config.title.clone(),
            api_url,
            ws_url,
            open: config.open,
            login_window: config.login_window,
            kv_quota_bytes: config.runtime.kv_quota_bytes,
        },
        gate: Gate::new(sessions.clone(), config.owners.iter().cloned(), config.open),
        workers: workers.clone(),
        sessions: sessions.clone(),
        throttle,
        nodes: NodeList::new(store.clone()),
        coordinator,
        stats: stats.clone(),
        logs: logs.clone(),
        net_kv: store.clone(),
        local_kv: local_store.clone(),
        clock: clock.clone(),
        requests: metrics.requests.clone(),
        logins: metrics.logins.clone(),
        secrets: secret_repo,
    });
    let hub = Hub {
        events,
        logs,
        stats: stats.clone(),
        stats_feed: Default::default(),
        sonar_feed: SonarFeed::new(
            &config.network,
            &config.nid,
            workers,
            NodeList::new(store.clone()),
            stats,
            clock.clone(),
        ),
    };
    let state = Arc::new(NetState {
        api,
        hub,
        connections: ConnectionSlots::new(max_connections),
        tasks: TaskTracker::new(),
        shutdown: shutdown.clone(),
        local_addr,
        config,
        connection_metrics: metrics.connections.clone(),
        stream_metrics: metrics.streams.clone(),
    });
    state.tasks.spawn(expire_periodically(
        vec![store.clone(), local_store.clone()],
        state.config.reaper_interval,
        state.api.clock.clone(),
        shutdown.clone(),
    ));
    state.tasks.spawn(keep_membership(
        membership.clone(),
        state.clone(),
        shutdown.clone(),
    ));
    let settings = net::ServeSettings {
        header_timeout: state.config.http.header_timeout,
        idle_timeout: state.config.http.idle_timeout,
        pending,
        tls: tls.clone(),
    };
    tokio::spawn(reload_on_hangup(tls.clone(), shutdown.clone()));
    let metrics_server = match state.config.metrics_listen {
        None => None,
        Some(addr) => {
            let listener = net::bind(addr).map_err(|source| NodeError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| NodeError::Bind { addr, source })?;
            Metrics::add_scraped(&mut registry, scraped(&state, pool_queued, &store));
            let router = net::metrics_router(state.clone(), Arc::new(registry));
            // The metrics listener stays plain: it belongs on a private network.
            let plain = net::ServeSettings {
                tls: None,
                ..settings.clone()
            };
            let server = tokio::spawn(net::serve(
                listener,
                router,
                plain,
                metrics.connections.clone(),
                shutdown.clone(),
            ));
            tracing::info!(addr = %bound, "metrics listening");
            Some((bound, server))
        }
    };
    let server = tokio::spawn(net::serve(
        listener,
        net::router(state.clone()),
        settings,
        metrics.connections.clone(),
        shutdown,
    ));
    tracing::info!(addr = %local_addr, nid = %state.config.nid, network = %state.config.network, "node listening");
    let console_link = match first_owner {
        Some(address) => {
            let login = sessions.create(&address).await?;
            Some(format!(
                "{}/console/#session={}",
                state.api.info.api_url, login.session
            ))
        }
        None => None,
    };
    cancel_on_failure.disarm();
    Ok(RunningNode {
        net: state,
        store,
        local_store,
        console_link,
        server,
        metrics_server,
        supervisor,
        membership,
        secrets_task,
    })
}

/// Reads the TLS certificate and key again at each SIGHUP until shutdown; a pair that does
/// not load leaves the previous one in use.
/// Reloads the TLS certificate on every SIGHUP. Without TLS a SIGHUP is still taken (and
/// logged), so that a `systemctl reload` or a stray hangup never ends the node.
async fn reload_on_hangup(tls: Option<Arc<net::TlsFiles>>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "cannot watch for SIGHUP; the TLS certificate will not be reloaded");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hangups.recv() => {
                if got.is_none() {
                    return;
                }
                match tls.as_ref().map(|tls| tls.reload()) {
                    None => tracing::info!("SIGHUP: nothing to reload (no --tls-cert)"),
                    Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                    Some(Err(error)) => tracing::error!(%error, "SIGHUP: TLS certificate not reloaded; the previous one stays in use"),
                }
            }
        }
    }
}

/// The readings of the node's metrics that are taken when scraped.
fn scraped(
    state: &Arc<NetState>,
    pool_queued: impl Fn() -> [usize; 4] + Send + Sync + 'static,
    store: &Arc<dyn Store>,
) -> Scraped {
    let (net, stats, tally, store) = (
        Arc::clone(state),
        Arc::clone(&state.api.stats),
        state.hub.logs.tally(),
        Arc::clone(store),
    );
    Scraped {
        websockets_open: Some(Box::new(move || net.connections.open() as u64)),
        workers: Some(Box::new(move || stats.states().to_vec())),
        log_lines: Some(Box::new(move || {
            let (written, dropped) = tally.read();
            vec![("written", written), ("dropped", dropped)]
        })),
        store_syncs: store
            .journal_syncs()
            .is_some()
            .then(|| Box::new(move || store.journal_syncs().unwrap_or(0)) as crate::metrics::Reading),
        pool_queued: Some(Box::new(move || {
            let [critical, high, normal, low] = pool_queued();
            [
                ("critical", critical),
                ("high", high),
                ("normal", normal),
                ("low", low),
            ]
            .into_iter()
            .map(|(priority, n)| (priority, n as u64))
            .collect()
        })),
    }
}

/// Puts this node in the cluster's node list; refused when a live node holds its nid.
async fn join_cluster(
    config: &NodeConfig,
    store: &Arc<dyn Store>,
    local_store: &Arc<dyn Store>,
    api_url: &str,
    ws_url: &str,
) -> Result<Arc<Membership>, NodeError> {
    let now = Clock::system().wall_ms();
    let record = NodeRecord {
        nid: config.nid.clone(),
        api_url: api_url.into(),
        ws_url: ws_url.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_at: now,
        updated_at: now,
        boot: uuid::Uuid::new_v4().to_string(),
        load: NodeLoad::default(),
    };
    // The embedded store is this process's alone; on etcd, only this node's own previous run
    // (whose boot id its data directory keeps) may be replaced.
    let boot_key = crate::store::Key::of(&["node", "boot"]);
    let claim = match config.store {
        StoreChoice::Fjall => Claim::Exclusive,
        StoreChoice::Etcd(_) => Claim::Shared {
            previous_boot: local_store
                .get(&boot_key)
                .await?
                .entry
                .and_then(|e| e.value.deserialize::<String>().ok()),
        },
    };
    let boot = record.boot.clone();
    let joined = Membership::join(store.clone(), record, config.membership_ttl, claim).await;
    if joined.is_ok() {
        let write = crate::store::AtomicWrite::new().set(boot_key, serde_json::Value::String(boot));
        local_store.commit(write).await?;
    }
    match joined {
        Ok(membership) => Ok(Arc::new(membership)),
        Err(e @ JoinError::Taken { .. }) => Err(NodeError::NidTaken {
            nid: config.nid.clone(),
            detail: format!("{e}; give this node another --nid"),
        }),
        Err(JoinError::Store(e)) => Err(NodeError::Store(e)),
    }
}

/// Renews this node's membership and publishes its load, until shutdown.
async fn keep_membership(membership: Arc<Membership>, state: Arc<NetState>, shutdown: CancellationToken) {
    let interval = membership.refresh_interval();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let stats = state.hub.stats.snapshot();
        let load = NodeLoad {
            connections: u64::try_from(state.connections.open()).unwrap_or(u64::MAX),
            ..state.hub.stats.totals()
        }
        .with_workers(
            stats
                .get("workers")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten(),
        );
        if let Err(e) = membership.refresh(load, state.api.clock.wall_ms()).await {
            tracing::warn!(error = %e, "could not renew this node's membership; retrying");
        }
    }
}

/// The key file a setting names, or `default_name` in the data directory (made if missing, so
/// that the key can be created there at first start).
fn key_file(
    config: &NodeConfig,
    given: Option<&std::path::Path>,
    default_name: &str,
) -> Result<std::path::PathBuf, NodeError> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    Ok(config.data_dir.join(default_name))
}

/// A node nobody could log in to (no owners, not `--open`) takes the wallet of
/// `data_dir/owner-key.json` as its owner, creating the file on a first start. Returns its address.
fn adopt_first_owner(config: &mut NodeConfig) -> Result<Option<String>, NodeError> {
    if config.open || !config.owners.is_empty() {
        return Ok(None);
    }
    let path = key_file(config, None, OWNER_KEY_FILE)?;
    let (wallet, created) = crate::auth::keyfile::read_or_create(&path)?;
    let address = wallet.address().to_string();
    tracing::info!(
        key = %path.display(),
        %address,
        created,
        "no --owners given: this wallet is the owner (log in with the console link below, or with the key file)"
    );
    config.owners.push(address.clone());
    Ok(Some(address))
}

/// The node's wallet for scripts: `--node-key`, or the one in the data directory, created at
/// first start.
fn node_identity(config: &NodeConfig, clock: &Clock) -> Result<NodeIdentity, NodeError> {
    let path = key_file(config, config.node_key.as_deref(), NODE_KEY_FILE)?;
    let (wallet, created) = crate::auth::keyfile::read_or_create(&path).map_err(NodeError::NodeKey)?;
    tracing::info!(
        key = %path.display(),
        address = %wallet.address(),
        created,
        "node wallet (Stels.wallet to scripts)"
    );
    Ok(NodeIdentity {
        wallet: Arc::new(wallet),
        start_time_ms: u64::try_from(clock.wall_ms()).unwrap_or(0),
    })
}

/// The secrets key (`--secrets-key`, or the one in the data directory, created at first start),
/// checked against the one the cluster's secrets are sealed with, and the book of opened
/// secrets that follows the store until `stop`. A node with another key runs, but refuses
/// secrets: `setWorkerSecret` answers 503 and scripts reading `Stels.secrets` get an error, both
/// saying why and what to do — unless `--secrets-key-reset` deletes every stored secret and
/// makes this key the cluster's. A key file that cannot be read or made stops the node.
async fn open_secrets(
    config: &NodeConfig,
    store: &Arc<dyn Store>,
    clock: &Clock,
    stop: &CancellationToken,
) -> Result<(SecretRepo, SecretBook, JoinHandle<()>), NodeError> {
    let path = key_file(config, config.secrets_key.as_deref(), crate::secrets::KEY_FILE)?;
    let (key, created) = SecretsKey::read_or_create(&path)?;
    let key = Arc::new(key);
    let mut repo = SecretRepo::new(store.clone(), key.clone());
    let now = clock.wall_ms();
    let claim = match repo.claim_key(&path, &config.nid, now).await {
        Err(mismatch @ crate::secrets::KeyError::Mismatch { .. }) if !config.secrets_key_reset => {
            let reason = mismatch.to_string();
            tracing::error!(
                error = %reason,
                "this node refuses secrets: none can be set through it and its workers cannot read theirs"
            );
            repo.refuse_sealing(&reason);
            return Ok((repo, SecretBook::refusing(&reason), tokio::spawn(async {})));
        }
        Err(crate::secrets::KeyError::Mismatch { stored, .. }) => {
            let deleted = repo
                .reset_key(&config.nid, now)
                .await
                .map_err(crate::secrets::KeyError::Store)?;
            tracing::warn!(
                deleted,
                previous = %stored,
                fingerprint = %key.fingerprint(),
                "--secrets-key-reset: every stored secret was deleted; this node's key is now the cluster's"
            );
            KeyClaim::Recorded
        }
        other => other?,
    };
    tracing::info!(
        key = %path.display(),
        fingerprint = %key.fingerprint(),
        created,
        first_in_cluster = claim == KeyClaim::Recorded,
        "secrets key (every node of the cluster needs this same file)"
    );
    let (book, task) = SecretBook::follow(store.clone(), key, stop.clone()).await?;
    Ok((repo, book, task))
}

/// The runtime reads a worker's secrets through its own traits; the secrets module knows
/// nothing of the runtime, so the node joins them here.
impl SecretSource for SecretBook {
    fn for_worker(&self, sid: &str) -> Arc<dyn SecretReader> {
        Arc::new(self.worker(sid))
    }
}

impl SecretReader for WorkerSecrets {
    fn get(&self, name: &str) -> Option<String> {
        WorkerSecrets::get(self, name)
    }
    fn values(&self) -> Vec<String> {
        WorkerSecrets::values(self)
    }
    fn names(&self) -> Vec<String> {
        WorkerSecrets::names(self)
    }
    fn mask<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        WorkerSecrets::mask(self, text)
    }
    fn unavailable(&self) -> Option<String> {
        self.refused().map(str::to_string)
    }
}

/// Every `every` until `stop`: expired sessions, login replay marks and scripts' expiring keys
/// are deleted (not only hidden), and expired script entries leave their worker's KV quota.
async fn expire_periodically(
    stores: Vec<Arc<dyn Store>>,
    every: Duration,
    clock: Clock,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for store in &stores {
            crate::store::reap_all_expired(store.as_ref(), &stop).await;
            crate::runtime::sdk::kv_quota::sweep_round(store.as_ref(), clock.wall_ms()).await;
        }
    }
}

impl RunningNode {
    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.net.local_addr
    }

    /// `http://ADDR` or, with TLS, `https://ADDR`: where the node listens.
    pub fn listening_url(&self) -> String {
        self.net.config.listening_url(self.net.local_addr)
    }

    /// The address of the metrics listener (`--metrics-listen`), if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|(addr, _)| *addr)
    }

    /// `http://…/console/#session=…` when this node made its own owner (no `--owners`):
    /// a link that logs a browser in as that owner.
    pub fn console_link(&self) -> Option<&str> {
        self.console_link.as_deref()
    }

    /// What the transports share: the API, the stream hub, the connections (for tests and
    /// embedding).
    pub fn net(&self) -> &Arc<NetState> {
        &self.net
    }

    /// The cluster store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// This node's own store (`Stels.local`, log history).
    pub fn local_store(&self) -> &Arc<dyn Store> {
        &self.local_store
    }

    /// The log lines of every worker run here.
    pub fn logs(&self) -> &Arc<LogBook> {
        &self.net.hub.logs
    }

    /// Stops accepting, closes every WebSocket with 1001, waits for them, flushes the store.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        tracing::info!("shutting down");
        self.net.shutdown.cancel();
        let served = self.server.await;
        if let Some((_, metrics)) = self.metrics_server {
            let _ = metrics.await;
        }
        self.net.tasks.close();
        if tokio::time::timeout(CLOSE_GRACE, self.net.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.net.connections.open(),
                "some WebSockets did not close in time"
            );
        }
        self.supervisor.shutdown().await;
        tracing::info!("workers stopped");
        // Cancelled with the rest: it lets go of the store.
        let _ = self.secrets_task.await;
        self.membership.leave().await;
        self.store.flush().await?;
        self.local_store.flush().await?;
        tracing::info!("stores flushed; node stopped");
        served.map_err(|join| NodeError::Serve(std::io::Error::other(join)))
    }

    /// Stops at once, as a crash would (for failover tests): no close frames are awaited, no
    /// lease is released, nothing is flushed beyond what every commit already made durable.
    pub fn kill(self) {
        self.server.abort();
        if let Some((_, metrics)) = &self.metrics_server {
            metrics.abort();
        }
        self.net.shutdown.cancel();
        self.secrets_task.abort();
        self.supervisor.kill();
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> Result<(), NodeError> {
        wait_for_signal().await;
        self.shutdown().await
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
