//! The SSE log endpoint (W-STR-6) parsed the way the existing client parses it, `getWorkerLogs`,
//! and log history surviving a restart (W-STR-5).

mod common;

use std::time::Duration;

use common::{TestNode, quick_runtime, sid};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// The existing client's parser: split the byte stream on "\n\n", then on "\n", and keep only
/// lines that start with exactly "data: ".
struct SseReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
    raw: String,
}

impl SseReader {
    async fn open(node: &TestNode, query: &str, session: Option<&str>) -> Result<SseReader, u16> {
        let mut request = node
            .http
            .get(format!("http://{}/api/worker/logs/stream?{query}", node.addr));
        if let Some(session) = session {
            request = request.header("stels-session", session);
        }
        let response = request.send().await.unwrap();
        if !response.status().is_success() {
            return Err(response.status().as_u16());
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Ok(SseReader {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            raw: String::new(),
        })
    }

    /// The next event's JSON, or `None` at the end of the stream.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                for line in block.split('\n') {
                    if let Some(data) = line.strip_prefix("data: ") {
                        return Some(serde_json::from_str(data).unwrap());
                    }
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("stream stalled")?;
            let text = String::from_utf8(chunk.unwrap().to_vec()).unwrap();
            self.raw.push_str(&text);
            self.buffer.push_str(&text);
        }
    }
}

async fn logging_worker(node: &TestNode, lines: usize) -> String {
    let script = format!("for (let i = 0; i < {lines}; i++) logger.info('line', i); logger.info('done');");
    let entry = node
        .start_worker(json!({"scriptContent": script, "mode": "single"}))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "done").await;
    sid
}

#[tokio::test]
async fn follow_false_sends_the_log_then_complete() {
    let node = TestNode::start_with(quick_runtime).await;
    let sid = logging_worker(&node, 5).await;
    let mut sse = SseReader::open(&node, &format!("sid={sid}&follow=false"), None)
        .await
        .unwrap();
    let connected = sse.next().await.unwrap();
    assert_eq!(
        (connected["type"].clone(), connected["sid"].clone()),
        (json!("connected"), json!(sid))
    );
    let mut contents = Vec::new();
    loop {
        let event = sse.next().await.unwrap();
        match event["type"].as_str().unwrap() {
            "log" => contents.push(event["content"].as_str().unwrap().to_string()),
            "complete" => break,
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(sse.next().await.is_none(), "the stream must end after complete");
    assert!(!sse.raw.contains('\r'), "LF only");
    for block in sse.raw.split_terminator("\n\n") {
        assert!(
            block.starts_with("data: {") && !block.contains('\n'),
            "one data line per event: {block:?}"
        );
    }
    for i in 0..5 {
        assert!(
            contents
                .iter()
                .any(|c| c.ends_with(&format!("[INFO] line {i}\n"))),
            "{contents:?}"
        );
    }
    assert!(contents.iter().all(|c| c.starts_with('[') && c.ends_with('\n')));
}

#[tokio::test]
async fn follow_true_sends_history_then_new_lines() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"scriptContent": "logger.info('tick', Date.now()); await Stels.sleep(50);", "priority": "high"}))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "tick").await;
    let mut sse = SseReader::open(&node, &format!("sid={sid}&follow=true"), None)
        .await
        .unwrap();
    assert_eq!(sse.next().await.unwrap()["type"], "connected");
    let mut ticks = 0;
    while ticks < 10 {
        let event = sse.next().await.unwrap();
        assert_eq!(event["type"], "log");
        if event["content"].as_str().unwrap().contains("[INFO] tick") {
            ticks += 1;
        }
    }
}

#[tokio::test]
async fn the_stream_checks_its_input_and_the_caller() {
    let owner = heterogen::auth::gliesereum::Wallet::generate();
    let node = TestNode::start_with(|c| {
        c.open = false;
        c.owners = vec![owner.address()];
    })
    .await;
    let sid = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        SseReader::open(&node, &format!("sid={sid}"), None).await.err(),
        Some(401)
    );
    assert_eq!(
        SseReader::open(&node, &format!("sid={sid}"), Some("nope"))
            .await
            .err(),
        Some(401)
    );
    let session = node.login(&owner).await;
    assert_eq!(
        SseReader::open(&node, "sid=not-a-uuid", Some(&session))
            .await
            .err(),
        Some(400)
    );
    assert_eq!(
        SseReader::open(&node, &format!("sid={sid}&follow=maybe"), Some(&session))
            .await
            .err(),
        Some(400)
    );
    // A worker that does not exist is 404.
    assert_eq!(
        SseReader::open(&node, &format!("sid={sid}"), Some(&session))
            .await
            .err(),
        Some(404)
    );
    let record = json!({"raw": {"sid": sid}});
    node.running()
        .store()
        .commit(heterogen::store::AtomicWrite::new().set(heterogen::workers::model::worker_key(&sid), record))
        .await
        .unwrap();
    // The session may also come as ?session= (EventSource cannot set headers).
    let mut sse = SseReader::open(&node, &format!("sid={sid}&follow=false&session={session}"), None)
        .await
        .unwrap();
    assert_eq!(sse.next().await.unwrap()["type"], "connected");
    assert_eq!(sse.next().await.unwrap()["type"], "complete");
}

#[tokio::test]
async fn get_worker_logs_pages_by_cursor() {
    let node = TestNode::start_with(quick_runtime).await;
    let sid = logging_worker(&node, 30).await;
    let (status, page) = node.call("getWorkerLogs", json!({"sid": sid, "limit": 10})).await;
    assert_eq!(status, 200, "{page}");
    let lines = page["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 10);
    assert_eq!(lines[0]["cursor"], 1);
    assert_eq!(page["next"], 10);
    let (_, rest) = node
        .call("getWorkerLogs", json!({"sid": sid, "since": page["next"]}))
        .await;
    let rest = rest["lines"].as_array().unwrap();
    assert_eq!(rest[0]["cursor"], 11);
    assert!(
        rest.iter()
            .any(|l| l["content"].as_str().unwrap().contains("[INFO] done"))
    );
    for (body, status) in [
        (json!({}), 400),
        (json!({"sid": sid, "limit": 0}), 400),
        (json!({"sid": sid, "since": -1}), 400),
    ] {
        assert_eq!(node.call("getWorkerLogs", body.clone()).await.0, status, "{body}");
    }
}

#[tokio::test]
async fn log_history_survives_a_restart_and_cursors_continue() {
    let mut node = TestNode::start_with(quick_runtime).await;
    let sid = logging_worker(&node, 20).await;
    // Let the history writer catch up before the restart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, before) = node.call("getWorkerLogs", json!({"sid": sid})).await;
    node.shutdown().await;
    let dir = node.dir.path().to_path_buf();
    let mut config = common::test_config(&dir);
    quick_runtime(&mut config);
    let restarted = heterogen::start(config).await.unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://{}/", restarted.local_addr()))
        .json(&json!({"webfix":"1.0","method":"getWorkerLogs","body":{"sid": sid}}))
        .send()
        .await
        .unwrap();
    let after: Value = response.json().await.unwrap();
    let (before, after) = (
        before["lines"].as_array().unwrap(),
        after["lines"].as_array().unwrap(),
    );
    assert_eq!(
        after[..before.len()],
        before[..],
        "history changed across the restart"
    );
    // The (single-mode, still active) worker runs again on the restarted node: its new lines
    // continue the cursors.
    if let Some(next) = after.get(before.len()) {
        assert_eq!(next["cursor"], before.len() as u64 + 1);
        assert!(next["content"].as_str().unwrap().contains("Worker started"));
    }
    restarted.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_worker_over_its_log_rate_loses_lines_and_is_told_how_many() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.log_rate = 50;
    })
    .await;
    let script = "for (let i = 0; i < 500; i++) logger.info('spam', i);\nawait Stels.sleep(300);\nlogger.info('done');";
    let entry = node
        .start_worker(json!({"scriptContent": script, "mode": "single"}))
        .await;
    let sid = sid(&entry);
    let lines = node.wait_for_log(&sid, "done").await;
    let spam = lines.iter().filter(|l| l.contains("[INFO] spam")).count();
    assert!(spam <= 60, "{spam} lines passed a 50 lines/s limit");
    let notice = lines
        .iter()
        .find(|l| l.contains("log lines dropped"))
        .expect("no dropped-lines notice");
    assert!(
        notice.contains("[WARN]") && notice.contains("over the limit of 50 lines/s"),
        "{notice}"
    );
}
