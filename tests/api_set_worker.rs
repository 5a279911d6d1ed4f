//! `setWorker`: W-SET-1..9, and the entry shape of W-T-1/W-T-2.

mod common;

use common::{TestNode, raw};
use serde_json::{Value, json};

fn is_versionstamp(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 20
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[tokio::test]
async fn defaults_and_generated_fields() {
    let node = TestNode::start_with(|c| c.nid = "s-0007".into()).await;
    let before = chrono::Utc::now().timestamp_millis();
    let entry = node.create_worker(json!({})).await;
    let r = raw(&entry);
    let sid = r["sid"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(sid).unwrap();
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(entry["key"], json!(["ami", "worker", sid]));
    assert_eq!(entry["value"]["channel"], format!("ami.worker.{sid}"));
    assert_eq!(entry["value"]["module"], "worker");
    assert_eq!(entry["value"]["widget"], format!("widget.ami.worker.{sid}"));
    assert!(
        is_versionstamp(&entry["versionstamp"]),
        "{}",
        entry["versionstamp"]
    );
    assert_eq!(r["nid"], "s-0007");
    assert_eq!(r["active"], false);
    assert_eq!(r["mode"], "loop");
    assert_eq!(r["scope"], "network");
    assert_eq!(r["executionMode"], "parallel");
    assert_eq!(r["priority"], "normal");
    assert_eq!(r["accountId"], Value::Null);
    assert_eq!(r["assignedNode"], Value::Null);
    assert_eq!(r["dependencies"], json!(["gliesereum"]));
    assert_eq!(r["version"], "1.19.2");
    assert_eq!(r["script"], "logger.info(`Worker script initialized!`);");
    let ts = r["timestamp"].as_i64().unwrap();
    assert!(ts >= before && ts <= chrono::Utc::now().timestamp_millis());
    assert_eq!(entry["value"]["timestamp"], ts);
    // Wire order as the existing client shows it.
    let keys: Vec<&str> = entry["value"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["channel", "module", "widget", "raw", "timestamp"]);
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "sid",
            "nid",
            "active",
            "mode",
            "scope",
            "executionMode",
            "priority",
            "accountId",
            "assignedNode",
            "note",
            "script",
            "dependencies",
            "version",
            "timestamp"
        ]
    );
    // W-SET-2: the default note names the sid and an ISO time.
    let note = r["note"].as_str().unwrap();
    let prefix = format!("Worker script Stels SDK {sid} - ");
    assert!(note.starts_with(&prefix), "{note}");
    chrono::DateTime::parse_from_rfc3339(&note[prefix.len()..]).unwrap();
}

#[tokio::test]
async fn every_field_is_taken_and_the_script_is_minified() {
    let node = TestNode::start().await;
    let entry = node
        .create_worker(json!({
            "scriptContent": "// a comment\nconst   greeting = 'hi';\n\nlogger.info(greeting);\nawait Stels.sleep(10);\nreturn;\n",
            "dependencies": [],
            "version": "2.0.0",
            "executionMode": "exclusive",
            "assignedNode": "s-0002",
            "priority": "critical",
            "mode": "single",
            "scope": "network",
            "accountId": "acc-1",
            "note": "my worker",
        }))
        .await;
    let r = raw(&entry);
    assert_eq!(r["executionMode"], "exclusive");
    assert_eq!(r["assignedNode"], "s-0002");
    assert_eq!(r["priority"], "critical");
    assert_eq!(r["mode"], "single");
    assert_eq!(r["accountId"], "acc-1");
    assert_eq!(r["note"], "my worker");
    assert_eq!(r["version"], "2.0.0");
    assert_eq!(r["dependencies"], json!([]));
    let script = r["script"].as_str().unwrap();
    assert!(
        !script.contains("a comment") && !script.contains("   "),
        "{script}"
    );
    assert!(
        script.contains("greeting") && script.contains("await Stels.sleep(10)"),
        "{script}"
    );
    // W-SET-3b: the stored script sent back is the same script.
    let again = node.create_worker(json!({"scriptContent": script})).await;
    assert_eq!(raw(&again)["script"], script);
}

#[tokio::test]
async fn local_scope_with_leader_is_accepted() {
    let node = TestNode::start().await;
    let entry = node
        .create_worker(json!({"scope": "local", "executionMode": "leader", "assignedNode": "x"}))
        .await;
    assert_eq!(raw(&entry)["scope"], "local");
    assert_eq!(
        raw(&entry)["assignedNode"],
        Value::Null,
        "assignedNode is stored only for exclusive"
    );
}

#[tokio::test]
async fn a_script_that_does_not_parse_names_line_and_column() {
    let node = TestNode::start().await;
    let (status, body) = node
        .call(
            "setWorker",
            json!({"scriptContent": "const a = 1;\nconst b = ;\n"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Script minification failed");
    let details = body["details"].as_str().unwrap();
    assert!(details.contains("line 2"), "{details}");
    assert_eq!(body["line"], 2);
    assert!(body["column"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn bad_input_gets_its_specific_error() {
    let node = TestNode::start().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"scriptContent": ""}), "Invalid script content"),
        (json!({"scriptContent": "   \n"}), "Invalid script content"),
        (json!({"scriptContent": 12}), "Invalid script content"),
        (json!({"scriptContent": null}), "Invalid script content"),
        (json!({"scriptContent": ["x"]}), "Invalid script content"),
        (
            json!({"executionMode": "exclusive"}),
            "Exclusive mode requires assignedNode parameter",
        ),
        (
            json!({"executionMode": "exclusive", "assignedNode": "  "}),
            "Exclusive mode requires assignedNode parameter",
        ),
        (
            json!({"scope": "local"}),
            "Local scope workers can only use leader execution mode",
        ),
        (
            json!({"scope": "local", "executionMode": "exclusive", "assignedNode": "s-1"}),
            "Local scope workers can only use leader execution mode",
        ),
        (
            json!({"dependencies": ["gliesereum", "lodash"]}),
            "Unknown dependency: lodash",
        ),
        (
            json!({"executionMode": "everywhere"}),
            "Invalid executionMode: \"everywhere\" is not one of parallel, leader, exclusive",
        ),
        (
            json!({"priority": "urgent"}),
            "Invalid priority: \"urgent\" is not one of critical, high, normal, low",
        ),
        (
            json!({"mode": "forever"}),
            "Invalid mode: \"forever\" is not one of loop, single",
        ),
        (
            json!({"scope": "global"}),
            "Invalid scope: \"global\" is not one of local, network",
        ),
        (
            json!({"priority": 1}),
            "Invalid priority: must be one of critical, high, normal, low",
        ),
        (
            json!({"dependencies": "gliesereum"}),
            "Invalid dependencies: must be an array of strings",
        ),
        (
            json!({"dependencies": [1]}),
            "Invalid dependencies: must be an array of strings",
        ),
        (json!({"version": 2}), "Invalid version: must be a string"),
        (json!({"note": {}}), "Invalid note: must be a string"),
        (json!({"accountId": 5}), "Invalid accountId: must be a string"),
    ];
    for (body, message) in cases {
        let (status, reply) = node.call("setWorker", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(reply, json!({"error": message}), "{body}");
    }
    let (_, list) = node.call("listWorkers", json!({})).await;
    assert_eq!(list, json!([]), "a refused create wrote something");
}

#[tokio::test]
async fn an_entry_over_64_kib_is_refused() {
    let node = TestNode::start().await;
    // 70 KiB of string data survives minification.
    let script = format!(
        "const data = \"{}\";\nlogger.info(data.length);",
        "ab".repeat(35 * 1024)
    );
    let (status, body) = node.call("setWorker", json!({"scriptContent": script})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Worker entry exceeds 64 KiB limit");
    // A 40 KiB script is fine.
    let script = format!(
        "const data = \"{}\";\nlogger.info(data.length);",
        "ab".repeat(20 * 1024)
    );
    assert_eq!(
        node.call("setWorker", json!({"scriptContent": script})).await.0,
        200
    );
}

#[tokio::test]
async fn versionstamps_increase_with_every_write() {
    let node = TestNode::start().await;
    let mut last = String::new();
    for _ in 0..20 {
        let entry = node.create_worker(json!({})).await;
        let stamp = entry["versionstamp"].as_str().unwrap().to_string();
        assert!(stamp > last, "{stamp} <= {last}");
        last = stamp;
    }
}
