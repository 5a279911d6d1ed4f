//! Live streams over WebSocket (W-STR-1..4, W-WS-4, W-WS-5): stats, logs with resumable
//! cursors, node events, lagged notices for a client that stops reading, and the existing
//! client's sonar channel.

mod common;

use std::time::Duration;

use common::{TestNode, Ws, quick_runtime, sid, ws_call, ws_next};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The next pushed frame (`value` present), skipping answers; fails after 10 s.
async fn next_push(ws: &mut Ws) -> Value {
    loop {
        let frame = ws_next(ws).await;
        if frame.get("value").is_some() || frame.get("type").is_some() {
            return frame;
        }
    }
}

async fn subscribe(ws: &mut Ws, id: u64, body: Value) -> Value {
    let frame = ws_call(ws, json!(id), "subscribe", body).await;
    assert_eq!(frame["status"], 200, "{frame}");
    frame["result"].clone()
}

#[tokio::test]
async fn stats_are_pushed_at_the_interval_until_unsubscribed() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.nid = "s-0009".into();
    })
    .await;
    node.start_worker(json!({"scriptContent": "await Stels.sleep(20);"}))
        .await;
    let mut ws = node.ws("/").await;
    let result = subscribe(&mut ws, 1, json!({"stream": "stats", "interval": 100})).await;
    assert_eq!(result["stream"], "stats");
    let id = result["subscription"].as_str().unwrap().to_string();
    let started = tokio::time::Instant::now();
    let mut pushes = 0;
    while pushes < 5 {
        let frame = next_push(&mut ws).await;
        let value = &frame["value"];
        assert_eq!(value["channel"], "ami.stats.s-0009");
        assert_eq!(value["module"], "stats");
        assert_eq!(value["widget"], "widget.ami.stats.s-0009");
        assert!(value["raw"]["totalWorkers"].is_u64());
        assert!(value["timestamp"].is_i64());
        pushes += 1;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "pushed faster than the interval"
    );
    let frame = ws_call(&mut ws, json!(2), "unsubscribe", json!({"subscription": id})).await;
    assert_eq!(frame["status"], 200);
    // Drain what was already queued, then nothing more comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while tokio::time::timeout(Duration::from_millis(50), ws_next(&mut ws))
        .await
        .is_ok()
    {}
    assert!(
        tokio::time::timeout(Duration::from_millis(400), ws_next(&mut ws))
            .await
            .is_err(),
        "pushes after unsubscribe"
    );
    let frame = ws_call(&mut ws, json!(3), "unsubscribe", json!({"subscription": id})).await;
    assert_eq!(frame["status"], 404);
}

#[tokio::test]
async fn bad_subscriptions_are_refused() {
    let node = TestNode::start().await;
    let mut ws = node.ws("/").await;
    for (body, needle) in [
        (json!({}), "stream must be one of stats, logs, events"),
        (json!({"stream": "weather"}), "stream must be one of"),
        (json!({"stream": "stats", "interval": 50}), "from 100 to 86400000"),
        (
            json!({"stream": "stats", "interval": 86_400_001u64}),
            "from 100 to 86400000",
        ),
        (json!({"stream": "logs"}), "sid must be a worker id"),
        (
            json!({"stream": "logs", "sid": uuid::Uuid::new_v4().to_string(), "since": "x"}),
            "since must be",
        ),
    ] {
        let frame = ws_call(&mut ws, json!(1), "subscribe", body.clone()).await;
        assert_eq!(frame["status"], 400, "{body}");
        assert!(frame["error"].as_str().unwrap().contains(needle), "{frame}");
    }
    let (status, body) = node.call("subscribe", json!({"stream": "stats"})).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("WebSocket"));
}

fn cursor_of(frame: &Value) -> u64 {
    frame["value"]["raw"]["cursor"].as_u64().unwrap()
}

#[tokio::test]
async fn a_resumed_log_subscription_has_no_gap_and_no_duplicate() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"scriptContent": "logger.info('line', Date.now());", "priority": "high"}))
        .await;
    let sid = sid(&entry);
    let mut ws = node.ws("/").await;
    subscribe(&mut ws, 1, json!({"stream": "logs", "sid": sid, "since": 0})).await;
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let frame = next_push(&mut ws).await;
        assert_eq!(frame["value"]["channel"], format!("ami.logs.{sid}"));
        assert_eq!(frame["value"]["module"], "logs");
        let raw = &frame["value"]["raw"];
        assert_eq!(raw["sid"], sid.as_str());
        assert!(raw["content"].as_str().unwrap().ends_with('\n'));
        assert!(["INFO", "DEBUG", "WARN", "ERROR"].contains(&raw["level"].as_str().unwrap()));
        seen.push(cursor_of(&frame));
    }
    // The connection drops; the client reconnects later and resumes from its last cursor.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = node.ws("/").await;
    let last = *seen.last().unwrap();
    let result = subscribe(&mut ws, 2, json!({"stream": "logs", "sid": sid, "since": last})).await;
    assert!(result["cursor"].as_u64().unwrap() > last);
    while seen.len() < 60 {
        seen.push(cursor_of(&next_push(&mut ws).await));
    }
    let expected: Vec<u64> = (seen[0]..seen[0] + seen.len() as u64).collect();
    assert_eq!(seen, expected, "gap or duplicate across the resume");
    assert_eq!(seen[0], 1);
}

#[tokio::test]
async fn events_report_starts_reloads_stops_and_auto_stops() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.errors.critical_stop_after = 2;
    })
    .await;
    let mut ws = node.ws("/").await;
    subscribe(&mut ws, 1, json!({"stream": "events"})).await;
    let entry = node
        .start_worker(json!({"scriptContent": "await Stels.sleep(60000);"}))
        .await;
    let sid = sid(&entry);
    // Saves are announced too (with the record); this test follows the runs only.
    let next_event = async |ws: &mut Ws| loop {
        let frame = next_push(ws).await;
        assert_eq!(frame["value"]["module"], "events");
        assert_eq!(frame["value"]["channel"], "ami.events.s-0001");
        let raw = frame["value"]["raw"].clone();
        if raw["type"] != "saved" {
            break raw;
        }
    };
    let started = next_event(&mut ws).await;
    assert_eq!(
        (started["type"].as_str(), started["sid"].as_str()),
        (Some("started"), Some(sid.as_str()))
    );
    let entry = node.set_script(&entry, "throw new TypeError('bad');").await;
    let mut kinds = Vec::new();
    while !kinds.contains(&"auto-stopped".to_string()) {
        let event = next_event(&mut ws).await;
        if event["type"] == "auto-stopped" {
            assert!(
                event["reason"].as_str().unwrap().contains("2 critical errors"),
                "{event}"
            );
        }
        kinds.push(event["type"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds[..3], ["reloaded", "stopped", "started"], "{kinds:?}");
    node.set_script(&entry, "await Stels.sleep(60000);").await;
    // The fix starts it again. (If the new script reaches the supervisor before it has taken
    // note of the auto-stop, the change is also announced as a reload of the ending run.)
    let mut event = next_event(&mut ws).await;
    if event["type"] == "reloaded" {
        event = next_event(&mut ws).await;
    }
    assert_eq!(event["type"], "started");
}

#[tokio::test]
async fn a_client_that_stops_reading_gets_a_lagged_notice_and_delays_nobody() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.ws.outbound_bytes = 64 * 1024;
        c.runtime.log_ring_lines = 50;
        c.runtime.log_history_lines = 100;
        c.runtime.log_rate = 1_000_000;
    })
    .await;
    let loud = "for (let i = 0; i < 200; i++) logger.info('x'.repeat(200), i); await Stels.sleep(5);";
    let entry = node
        .start_worker(json!({"scriptContent": loud, "priority": "critical"}))
        .await;
    let sid = sid(&entry);
    let mut slow = node.ws("/").await;
    subscribe(&mut slow, 1, json!({"stream": "logs", "sid": sid})).await;
    // The slow client reads nothing for a while; another client is served promptly meanwhile.
    let mut fast = node.ws("/").await;
    for i in 0..20 {
        let started = tokio::time::Instant::now();
        let frame = ws_call(&mut fast, json!(i), "getWorkerStats", json!({})).await;
        assert_eq!(frame["status"], 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a slow consumer delayed another client"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Now it reads: somewhere in what comes is an explicit notice of what it missed.
    let mut notice = None;
    for _ in 0..20_000 {
        let frame = next_push(&mut slow).await;
        if frame["type"] == "lagged" {
            notice = Some(frame);
            break;
        }
    }
    let notice = notice.expect("no lagged notice");
    assert_eq!(notice["stream"], "logs");
    assert!(notice["dropped"].as_u64().unwrap() > 0, "{notice}");
    // And lines keep coming after it, in order.
    let a = cursor_of(&next_push(&mut slow).await);
    let b = cursor_of(&next_push(&mut slow).await);
    assert!(b > a);
}

#[tokio::test]
async fn the_existing_clients_sonar_channel_is_pushed_every_second() {
    let node = TestNode::start_with(quick_runtime).await;
    node.start_worker(
        json!({"scriptContent": "await Stels.sleep(20);", "scope": "local", "executionMode": "leader"}),
    )
    .await;
    node.create_worker(json!({})).await;
    let mut ws = node.ws("/").await;
    for channel in ["sonar", "runtime"] {
        let frame = json!({"webfix": "testnet", "method": "subscribe", "channel": channel});
        ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }
    let mut frame = next_push(&mut ws).await;
    for _ in 0..10 {
        let total = &frame["value"]["raw"]["nodes"]["s-0001"]["raw"]["currentNode"]["workers"]["total"];
        if *total == 2 {
            break;
        }
        frame = next_push(&mut ws).await;
    }
    let value = &frame["value"];
    assert_eq!(value["channel"], "testnet.runtime.sonar");
    let raw = &value["raw"];
    assert_eq!(raw["totalNodes"], 1);
    let workers = &raw["nodes"]["s-0001"]["raw"]["currentNode"]["workers"];
    assert_eq!(
        (
            workers["active"].clone(),
            workers["local"].clone(),
            workers["network"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(raw["network"]["totalWorkers"], 2);
    assert!(frame.get("error").is_none() && frame.get("message").is_none());
    // About one per second.
    let started = tokio::time::Instant::now();
    next_push(&mut ws).await;
    next_push(&mut ws).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn streams_need_the_owner_role() {
    let owner = heterogen::auth::gliesereum::Wallet::generate();
    let stranger = heterogen::auth::gliesereum::Wallet::generate();
    let node = TestNode::start_with(|c| {
        c.open = false;
        c.owners = vec![owner.address()];
    })
    .await;
    let session = node.login(&stranger).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/?session={session}", node.addr))
        .await
        .unwrap();
    let frame = ws_call(&mut ws, json!(1), "subscribe", json!({"stream": "stats"})).await;
    assert_eq!(frame["status"], 403);
}
