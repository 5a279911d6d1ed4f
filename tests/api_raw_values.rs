//! Stored values travel as the bytes they were stored as (issue 13): `setWorker`,
//! `updateWorker` and `listWorkers` over WebSocket and HTTP, and the `events` stream, all carry
//! a worker record's stored text byte for byte; a script's KV value is stored as the JSON text
//! the script produced and read back unchanged.

mod common;

use common::{TestNode, Ws, quick_runtime, sid, ws_next_text};
use futures_util::SinkExt;
use heterogen::store::Key;
use heterogen::workers::model::worker_key;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Sends a request and returns the answer frame's text; pushes that arrive first go to `pushes`.
async fn call_text(
    ws: &mut Ws,
    pushes: &mut Vec<String>,
    id: u64,
    method: &str,
    body: serde_json::Value,
) -> String {
    let frame = json!({"webfix": "1.0", "method": method, "body": body, "id": id});
    ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    loop {
        let text = ws_next_text(ws).await;
        if text.starts_with(&format!(r#"{{"webfix":"1.0","id":{id},"#)) {
            return text;
        }
        pushes.push(text);
    }
}

/// The stored record of `sid` as `{key, value, versionstamp}` text, the value as stored.
async fn stored_entry_text(node: &TestNode, sid: &str) -> String {
    let entry = node
        .running()
        .store()
        .get(&worker_key(sid))
        .await
        .unwrap()
        .entry
        .unwrap();
    let mut text = String::new();
    entry.write_json(&mut text);
    text
}

fn answer(id: u64, result: &str) -> String {
    format!(r#"{{"webfix":"1.0","id":{id},"status":200,"result":{result}}}"#)
}

#[tokio::test]
async fn a_record_reaches_every_reader_as_its_stored_bytes() {
    let node = TestNode::start_with(quick_runtime).await;
    let mut ws = node.ws("/ws").await;
    let mut pushes = Vec::new();
    let subscribed = call_text(&mut ws, &mut pushes, 1, "subscribe", json!({"stream": "events"})).await;
    assert!(subscribed.contains(r#""status":200"#), "{subscribed}");

    // Text that serialisers spell in different ways: non-ASCII, control characters, a line
    // separator, markup, a large integer and a float with an exponent.
    let body = json!({
        "note": "caf\u{e9} \u{1F600} \u{1} \u{2028} </script>",
        "big": 12_345_678_901_234_567_890u64,
        "ratio": 1.5e300,
    });
    let created = call_text(&mut ws, &mut pushes, 2, "setWorker", body).await;
    let value: serde_json::Value = serde_json::from_str(&created).unwrap();
    let sid = sid(&value["result"]);
    let entry = stored_entry_text(&node, &sid).await;
    assert!(entry.contains("caf\u{e9} \u{1F600}"), "stored as UTF-8: {entry}");
    assert_eq!(created, answer(2, &entry));

    let listed = call_text(&mut ws, &mut pushes, 3, "listWorkers", json!({})).await;
    assert_eq!(listed, answer(3, &format!("[{entry}]")));

    let envelope = json!({"webfix": "1.0", "method": "listWorkers", "body": {}});
    let http = node.http.post(node.url()).json(&envelope).send().await.unwrap();
    assert_eq!(http.status(), 200);
    assert_eq!(http.text().await.unwrap(), format!("[{entry}]"));

    let saved = match pushes.iter().find(|text| text.contains(r#""type":"saved""#)) {
        Some(text) => text.clone(),
        None => loop {
            let text = ws_next_text(&mut ws).await;
            if text.contains(r#""type":"saved""#) {
                break text;
            }
        },
    };
    assert!(saved.contains(&format!(r#""entry":{entry}"#)), "{saved}\n{entry}");

    let mut raw = value["result"]["value"]["raw"].clone();
    raw["note"] = json!("second \u{e9}");
    let update = json!({"channel": value["result"]["value"]["channel"], "raw": raw});
    let updated = call_text(&mut ws, &mut pushes, 4, "updateWorker", update).await;
    let entry = stored_entry_text(&node, &sid).await;
    assert!(entry.contains("second \u{e9}"), "{entry}");
    assert_eq!(updated, answer(4, &entry));
}

#[tokio::test]
async fn a_script_value_is_stored_as_the_json_the_script_wrote() {
    let node = TestNode::start_with(quick_runtime).await;
    let script = r#"
        const value = { z: 1.5, a: "caf\u00e9 \u2028", list: [1e21, -0, 0.1], nested: { b: null, a: true } };
        await Stels.net.set(["probe"], value);
        const back = (await Stels.net.get(["probe"])).value;
        logger.info("wrote " + JSON.stringify(value));
        logger.info("read " + JSON.stringify(back));
    "#;
    let entry = node
        .start_worker(json!({"scriptContent": script, "mode": "single"}))
        .await;
    let id = sid(&entry);
    let lines = node.wait_for_log(&id, "read ").await;
    let after = |marker: &str| {
        let line = lines.iter().find_map(|l| l.split_once(marker)).unwrap().1;
        line.trim_end().to_string()
    };
    let (wrote, read) = (after("wrote "), after("read "));
    assert_eq!(read, wrote, "the script reads back what it wrote");
    let stored = node
        .running()
        .store()
        .get(&Key::of(&["kv", "probe"]))
        .await
        .unwrap()
        .entry
        .unwrap();
    // JavaScript spells 1e21 as `1e+21`, which a parse and re-serialise would have changed.
    assert!(wrote.contains("1e+21"), "{wrote}");
    assert_eq!(stored.value.as_str(), wrote, "stored as the script's JSON text");
}
