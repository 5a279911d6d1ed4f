//! Prometheus metrics (`--metrics-listen`), from `prometheus-client`.
//!
//! [`Metrics::register`] creates the counters and histograms that the layers update as things
//! happen, each layer holding only its own handle ([`RequestMetrics`], [`ConnectionMetrics`],
//! [`LoginMetrics`], [`RunMetrics`], [`StoreMetrics`]). What the node already counts elsewhere
//! (workers by state, open WebSockets, log lines, journal syncs, the JS pool's queues) is read
//! when scraped, through [`Scraped`]. Every label takes values from a fixed set, so no client can
//! grow a metric family: an unknown method is counted as `unknown`.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry, Unit};

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The prefix of every metric name.
const PREFIX: &str = "heterogen";

/// The handles the layers update.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// WebFIX requests.
    pub requests: RequestMetrics,
    /// Connections accepted and refused.
    pub connections: ConnectionMetrics,
    /// Wallet logins.
    pub logins: LoginMetrics,
    /// Worker runs.
    pub runs: RunMetrics,
    /// The cluster store.
    pub store: StoreMetrics,
    /// Stream pushes.
    pub streams: StreamMetrics,
}

impl Metrics {
    /// A registry with every metric of a node registered, and the handles to update them; the
    /// readings of [`Scraped`] join it once their sources exist ([`Metrics::add_scraped`]).
    pub fn register() -> (Registry, Metrics) {
        let mut registry = Registry::with_prefix(PREFIX);
        let metrics = Metrics {
            requests: RequestMetrics::register(&mut registry),
            connections: ConnectionMetrics::register(&mut registry),
            logins: LoginMetrics::register(&mut registry),
            runs: RunMetrics::register(&mut registry),
            store: StoreMetrics::register(&mut registry),
            streams: StreamMetrics::register(&mut registry),
        };
        (registry, metrics)
    }

    /// Adds the readings taken at each scrape.
    pub fn add_scraped(registry: &mut Registry, scraped: Scraped) {
        registry.register_collector(Box::new(scraped));
    }
}

/// The registry in the Prometheus text format (version 0.0.4).
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}

/// `metric`, registered under `name` (in `unit`, when it has one); a handle to it is returned.
fn registered<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> M {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric.clone()),
        None => registry.register(name, help, metric.clone()),
    }
    metric
}

/// A histogram of durations from 100 µs to about 6.5 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

fn durations<L: Clone + std::hash::Hash + Eq>() -> Durations<L> {
    Family::new_with_constructor(duration_histogram as fn() -> Histogram)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodStatus {
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

/// WebFIX requests by method and status, and their latency by method.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    total: Family<MethodStatus, Counter>,
    duration: Durations<MethodLabel>,
}

impl RequestMetrics {
    fn register(registry: &mut Registry) -> Self {
        RequestMetrics {
            total: registered(
                registry,
                "requests",
                "WebFIX requests answered, by method and status",
                None,
                Family::default(),
            ),
            duration: registered(
                registry,
                "request_duration",
                "Time from a request's arrival to its answer, by method",
                Some(Unit::Seconds),
                durations(),
            ),
        }
    }

    /// One answered request; `method` is one of the node's method names, or `unknown`.
    pub fn observe(&self, method: &'static str, status: u16, took: Duration) {
        self.total.get_or_create(&MethodStatus { method, status }).inc();
        self.duration
            .get_or_create(&MethodLabel { method })
            .observe(took.as_secs_f64());
    }
}

/// The kinds of connection counted.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ConnectionKind {
    /// A TCP connection accepted by the listener (HTTP, possibly upgraded later).
    Http,
    /// A WebSocket upgrade that succeeded.
    WebSocket,
    /// A server-sent events log stream.
    Sse,
}

impl ConnectionKind {
    fn label(self) -> &'static str {
        match self {
            ConnectionKind::Http => "http",
            ConnectionKind::WebSocket => "websocket",
            ConnectionKind::Sse => "sse",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindReason {
    kind: &'static str,
    reason: &'static str,
}

/// Connections opened by kind, and refused by kind and reason.
#[derive(Clone, Debug)]
pub struct ConnectionMetrics {
    opened: Family<KindLabel, Counter>,
    refused: Family<KindReason, Counter>,
}

impl ConnectionMetrics {
    fn register(registry: &mut Registry) -> Self {
        ConnectionMetrics {
            opened: registered(
                registry,
                "connections_opened",
                "Connections accepted: TCP connections (http), WebSocket upgrades, SSE log streams",
                None,
                Family::default(),
            ),
            refused: registered(
                registry,
                "connections_refused",
                "Connections refused, by kind and reason",
                None,
                Family::default(),
            ),
        }
    }

    /// One connection of `kind` accepted.
    pub fn opened(&self, kind: ConnectionKind) {
        self.opened.get_or_create(&KindLabel { kind: kind.label() }).inc();
    }

    /// One connection of `kind` refused; `reason` comes from a fixed set.
    pub fn refused(&self, kind: ConnectionKind, reason: &'static str) {
        self.refused
            .get_or_create(&KindReason {
                kind: kind.label(),
                reason,
            })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Wallet logins that opened a session, and those refused.
#[derive(Clone, Debug)]
pub struct LoginMetrics {
    total: Family<OutcomeLabel, Counter>,
}

impl LoginMetrics {
    fn register(registry: &mut Registry) -> Self {
        LoginMetrics {
            total: registered(
                registry,
                "logins",
                "Wallet logins, by outcome (success, failure)",
                None,
                Family::default(),
            ),
        }
    }

    /// A login that opened a session.
    pub fn succeeded(&self) {
        self.total
            .get_or_create(&OutcomeLabel { outcome: "success" })
            .inc();
    }

    /// A login refused (any reason: signature, replay, window, rate limit, network).
    pub fn failed(&self) {
        self.total
            .get_or_create(&OutcomeLabel { outcome: "failure" })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabel {
    priority: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityKind {
    priority: &'static str,
    kind: &'static str,
}

/// Worker runs, their errors and auto-stops, by priority; the JS pool's queue waits.
#[derive(Clone, Debug)]
pub struct RunMetrics {
    runs: Family<PriorityLabel, Counter>,
    errors: Family<PriorityKind, Counter>,
    auto_stops: Family<PriorityLabel, Counter>,
    queue_wait: Durations<PriorityLabel>,
}

impl RunMetrics {
    fn register(registry: &mut Registry) -> Self {
        RunMetrics {
            runs: registered(
                registry,
                "worker_runs",
                "Worker script executions started, by priority",
                None,
                Family::default(),
            ),
            errors: registered(
                registry,
                "worker_errors",
                "Worker script executions that failed, by priority and kind (network, critical)",
                None,
                Family::default(),
            ),
            auto_stops: registered(
                registry,
                "worker_auto_stops",
                "Workers stopped on this node by the error rules, by priority",
                None,
                Family::default(),
            ),
            queue_wait: registered(
                registry,
                "pool_wait",
                "Time a worker waited for a JS pool thread before it ran, by priority",
                Some(Unit::Seconds),
                durations(),
            ),
        }
    }

    /// One execution started.
    pub fn run(&self, priority: &'static str) {
        self.runs.get_or_create(&PriorityLabel { priority }).inc();
    }

    /// One execution failed; `kind` is `network` or `critical`.
    pub fn error(&self, priority: &'static str, kind: &'static str) {
        self.errors.get_or_create(&PriorityKind { priority, kind }).inc();
    }

    /// A worker stopped by the error rules.
    pub fn auto_stop(&self, priority: &'static str) {
        self.auto_stops.get_or_create(&PriorityLabel { priority }).inc();
    }

    /// A wait for a JS pool thread.
    pub fn waited(&self, priority: &'static str, took: Duration) {
        self.queue_wait
            .get_or_create(&PriorityLabel { priority })
            .observe(took.as_secs_f64());
    }
}

/// Commits to the cluster store and how long they took (until durable, with fsync).
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    commit: Histogram,
    failed: Counter,
}

impl StoreMetrics {
    fn register(registry: &mut Registry) -> Self {
        StoreMetrics {
            commit: registered(
                registry,
                "store_commit_duration",
                "Time of one commit to the cluster store, until it is acknowledged",
                Some(Unit::Seconds),
                duration_histogram(),
            ),
            failed: registered(
                registry,
                "store_commit_failures",
                "Commits to the cluster store that failed (unavailable, timed out, refused)",
                None,
                Counter::default(),
            ),
        }
    }

    /// One commit that returned (applied or with a failed check) after `took`.
    pub fn committed(&self, took: Duration) {
        self.commit.observe(took.as_secs_f64());
    }

    /// One commit that failed.
    pub fn failed(&self) {
        self.failed.inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamOutcome {
    stream: &'static str,
    outcome: &'static str,
}

/// Pushes of the `stats`, `logs`, `events` and `sonar` streams: sent to a subscriber's queue,
/// or dropped because the subscriber fell behind (a skipped stats snapshot, lines or events it
/// was told it lagged).
#[derive(Clone, Debug)]
pub struct StreamMetrics {
    frames: Family<StreamOutcome, Counter>,
}

impl StreamMetrics {
    fn register(registry: &mut Registry) -> Self {
        StreamMetrics {
            frames: registered(
                registry,
                "stream_frames",
                "Stream pushes, by stream and outcome (sent, dropped for a subscriber's lag)",
                None,
                Family::default(),
            ),
        }
    }

    /// One push queued for a subscriber.
    pub fn sent(&self, stream: &'static str) {
        self.frames
            .get_or_create(&StreamOutcome {
                stream,
                outcome: "sent",
            })
            .inc();
    }

    /// `count` pushes a subscriber did not get.
    pub fn dropped(&self, stream: &'static str, count: u64) {
        self.frames
            .get_or_create(&StreamOutcome {
                stream,
                outcome: "dropped",
            })
            .inc_by(count);
    }
}

/// A number read when scraped.
pub type Reading = Box<dyn Fn() -> u64 + Send + Sync>;
/// Numbers by label value, read when scraped.
pub type Readings = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// What the node counts elsewhere, read at each scrape; unset readings are left out.
#[derive(Default)]
pub struct Scraped {
    /// WebSockets open now.
    pub websockets_open: Option<Reading>,
    /// Workers known to this node by state (`running`, `idle`, `halted`).
    pub workers: Option<Readings>,
    /// Worker log lines written, and dropped by the rate limit.
    pub log_lines: Option<Readings>,
    /// Journal syncs of the embedded store.
    pub store_syncs: Option<Reading>,
    /// Runs waiting for a JS pool thread now, by priority.
    pub pool_queued: Option<Readings>,
}

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scraped")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(read) = &self.websockets_open {
            encode_reading(
                &mut encoder,
                "websockets_open",
                "WebSockets open now",
                gauge(read()),
            )?;
        }
        if let Some(read) = &self.workers {
            let help = "Workers this node knows, by state (running, idle, halted)";
            encode_readings(
                &mut encoder,
                "workers",
                help,
                read(),
                |state| StateLabel { state },
                gauge,
            )?;
        }
        if let Some(read) = &self.log_lines {
            let help = "Worker log lines, by outcome (written, dropped by the rate limit)";
            let label = |outcome| OutcomeLabel { outcome };
            encode_readings(
                &mut encoder,
                "worker_log_lines",
                help,
                read(),
                label,
                ConstCounter::new,
            )?;
        }
        if let Some(read) = &self.store_syncs {
            let help = "Journal syncs of the embedded store (one covers every commit waiting for it)";
            encode_reading(&mut encoder, "store_fsyncs", help, ConstCounter::new(read()))?;
        }
        if let Some(read) = &self.pool_queued {
            let help = "Runs waiting for a JS pool thread now, by priority";
            let label = |priority| PriorityLabel { priority };
            encode_readings(&mut encoder, "pool_queued", help, read(), label, gauge)?;
        }
        Ok(())
    }
}

/// A gauge of a reading.
fn gauge(value: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

/// One unlabelled metric read at this scrape.
fn encode_reading(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A family read at this scrape: each reading as `metric` makes it, under the labels `label`
/// makes of its label value.
fn encode_readings<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    readings: Vec<(&'static str, u64)>,
    label: impl Fn(&'static str) -> L,
    metric: impl Fn(u64) -> M,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric(0).metric_type())?;
    for (value_label, value) in readings {
        let labels = label(value_label);
        metric(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions_and_readings_are_scraped() {
        let scraped = Scraped {
            websockets_open: Some(Box::new(|| 3)),
            workers: Some(Box::new(|| vec![("running", 2), ("idle", 1), ("halted", 0)])),
            store_syncs: Some(Box::new(|| 9)),
            ..Scraped::default()
        };
        let (mut registry, metrics) = Metrics::register();
        Metrics::add_scraped(&mut registry, scraped);
        metrics
            .requests
            .observe("listWorkers", 200, Duration::from_millis(3));
        metrics.logins.failed();
        metrics.store.committed(Duration::from_micros(250));
        let text = encode(&registry).unwrap();
        for line in [
            "heterogen_requests_total{method=\"listWorkers\",status=\"200\"} 1",
            "heterogen_request_duration_seconds_count{method=\"listWorkers\"} 1",
            "heterogen_logins_total{outcome=\"failure\"} 1",
            "heterogen_store_commit_duration_seconds_count 1",
            "heterogen_websockets_open 3",
            "heterogen_workers{state=\"running\"} 2",
            "heterogen_store_fsyncs_total 9",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
