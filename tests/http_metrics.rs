//! `--metrics-listen`: `/metrics` in the Prometheus text format, every line well formed, the
//! counters moving with traffic; `/healthz` and `/readyz` there too; the Grafana dashboard only
//! uses metrics the node exports. Without the flag the API's listener has no `/metrics`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::{TestNode, eventually, quick_runtime, sid};
use serde_json::json;

/// One sample: the series (name and labels as written) and its value.
type Samples = BTreeMap<String, f64>;

/// Parses the text strictly: `# HELP name text`, `# TYPE name kind`, or `name{k="v",…} value`.
/// Returns the samples and the names with a TYPE line.
fn parse(text: &str) -> (Samples, Vec<String>) {
    let mut samples = Samples::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(valid_name(name), "HELP of a bad name: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(valid_name(name), "{line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.push(name.to_owned());
            continue;
        }
        assert!(!line.starts_with('#'), "an unknown comment: {line}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "{line}");
        assert!(name.starts_with("heterogen_"), "{line}");
        let labels = &series[name.len()..];
        if !labels.is_empty() {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels: {line}"));
            for pair in inner.split(',') {
                let (key, quoted) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                assert!(valid_name(key), "{line}");
                assert!(
                    quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                    "{line}"
                );
            }
        }
        assert!(
            typed.iter().any(|t| name == t
                || name
                    .strip_prefix(t.as_str())
                    .is_some_and(|s| ["_bucket", "_sum", "_count", "_total"].contains(&s))),
            "a sample without its TYPE: {line}"
        );
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "twice: {line}"
        );
    }
    (samples, typed)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn scrape(http: &reqwest::Client, addr: SocketAddr) -> (Samples, Vec<String>) {
    let response = http.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    parse(&response.text().await.unwrap())
}

fn value(samples: &Samples, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_are_well_formed_and_move_with_traffic() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.max_connections = 1;
        c.runtime.errors.critical_stop_after = 3;
    })
    .await;
    let addr = node.running().metrics_addr().expect("a metrics listener");
    let http = reqwest::Client::new();
    let (before, _) = scrape(&http, addr).await;
    let listed = r#"heterogen_requests_total{method="listWorkers",status="200"}"#;
    assert_eq!(value(&before, listed), 0.0);

    for _ in 0..3 {
        let (status, _) = node.call("listWorkers", json!({})).await;
        assert_eq!(status, 200);
    }
    let (status, _) = node.call("listWorker", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = node.call("connectionNode", json!({"nonsense": true})).await;
    assert_eq!(status, 400);
    let mut ws = node.ws("/ws").await;
    let subscribed = common::ws_call(&mut ws, json!(1), "subscribe", json!({"stream": "events"})).await;
    assert_eq!(subscribed["status"], 200, "{subscribed}");
    let url = format!("ws://{}/ws", node.addr);
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(refused.is_err(), "a second WebSocket past --max-connections 1");
    let failing = node
        .start_worker(json!({"scriptContent": "throw new Error('always');", "priority": "high"}))
        .await;
    let failing = sid(&failing);
    eventually(
        10,
        "the failing worker to be stopped by the error rules",
        || async {
            let stats = node.worker_stats(&failing).await?;
            stats["haltedReason"].is_string().then_some(())
        },
    )
    .await;

    let (after, typed) = scrape(&http, addr).await;
    assert_eq!(value(&after, listed), 3.0);
    assert_eq!(
        value(
            &after,
            r#"heterogen_requests_total{method="unknown",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            r#"heterogen_request_duration_seconds_count{method="listWorkers"}"#
        ),
        3.0
    );
    assert_eq!(value(&after, r#"heterogen_logins_total{outcome="failure"}"#), 1.0);
    assert_eq!(value(&after, "heterogen_websockets_open"), 1.0);
    assert!(value(&after, r#"heterogen_connections_opened_total{kind="websocket"}"#) >= 1.0);
    // Kept-alive: the calls share a connection; the WebSocket came on one of its own.
    assert!(value(&after, r#"heterogen_connections_opened_total{kind="http"}"#) >= 2.0);
    assert!(value(&after, r#"heterogen_worker_runs_total{priority="high"}"#) >= 2.0);
    let errors = r#"heterogen_worker_errors_total{priority="high",kind="critical"}"#;
    assert_eq!(value(&after, errors), 3.0);
    assert_eq!(
        value(&after, r#"heterogen_worker_auto_stops_total{priority="high"}"#),
        1.0
    );
    assert_eq!(value(&after, r#"heterogen_workers{state="halted"}"#), 1.0);
    let events = r#"heterogen_stream_frames_total{stream="events",outcome="sent"}"#;
    assert!(value(&after, events) >= 2.0, "saved and started at least");
    let refused = r#"heterogen_connections_refused_total{kind="websocket",reason="capacity"}"#;
    assert_eq!(value(&after, refused), 1.0);
    assert!(value(&after, r#"heterogen_pool_wait_seconds_count{priority="high"}"#) >= 1.0);
    // setWorker and updateWorker committed.
    assert!(value(&after, "heterogen_store_commit_duration_seconds_count") >= 2.0);
    assert!(value(&after, r#"heterogen_worker_log_lines_total{outcome="written"}"#) >= 1.0);
    let workers: f64 = ["running", "idle", "halted"]
        .iter()
        .map(|state| value(&after, &format!(r#"heterogen_workers{{state="{state}"}}"#)))
        .sum();
    assert_eq!(workers, 1.0);

    for (path, text) in [("healthz", "ok\n"), ("readyz", "ready\n")] {
        let response = http.get(format!("http://{addr}/{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), text);
    }
    let on_api = http.get(format!("{}metrics", node.url())).send().await.unwrap();
    assert_eq!(on_api.status(), 404, "metrics are not on the API's listener");

    // The dashboard shows only what the node exports.
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../docs/grafana-dashboard.json")).expect("the dashboard is JSON");
    let exported = |word: &str| {
        typed.iter().any(|t| {
            word == t
                || word
                    .strip_prefix(t.as_str())
                    .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        })
    };
    let mut used = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("heterogen_") {
                    used += 1;
                    assert!(exported(word), "{word} in the dashboard is not exported");
                }
            }
        }
    }
    assert!(used >= 10, "the dashboard uses {used} metrics");
}

#[tokio::test]
async fn without_the_flag_there_is_no_metrics_listener() {
    let node = TestNode::start().await;
    assert_eq!(node.running().metrics_addr(), None);
}
