//! `updateWorker`: W-UPD-1..5, the optimistic-locking race, and W-UPD-6's store watch.

mod common;

use std::sync::Arc;

use common::{TestNode, raw, sid};
use futures_util::StreamExt;
use heterogen::store::{Key, WatchEvent};
use serde_json::{Value, json};

fn update_body(entry: &Value, change: impl FnOnce(&mut Value)) -> Value {
    let mut r = raw(entry);
    change(&mut r);
    json!({"channel": entry["value"]["channel"], "raw": r})
}

#[tokio::test]
async fn raw_is_replaced_as_a_whole() {
    let node = TestNode::start().await;
    let entry = node
        .create_worker(json!({"priority": "high", "accountId": "a1", "note": "first"}))
        .await;
    let body = update_body(&entry, |r| {
        r["active"] = json!(true);
        r["note"] = json!("second");
        r["nid"] = json!("s-0099");
        r.as_object_mut().unwrap().remove("priority");
        r.as_object_mut().unwrap().remove("accountId");
        r["timestamp"] = json!(1);
    });
    let (status, updated) = node.call("updateWorker", body).await;
    assert_eq!(status, 200, "{updated}");
    let r = raw(&updated);
    assert_eq!(r["active"], true);
    assert_eq!(r["note"], "second");
    assert_eq!(r["nid"], "s-0099");
    assert_eq!(
        r["priority"], "normal",
        "an absent optional field takes its default"
    );
    assert_eq!(r["accountId"], Value::Null);
    assert!(
        r["timestamp"].as_i64().unwrap() >= raw(&entry)["timestamp"].as_i64().unwrap(),
        "server sets timestamp"
    );
    assert!(updated["versionstamp"].as_str().unwrap() > entry["versionstamp"].as_str().unwrap());
    let (_, list) = node.call("listWorkers", json!({})).await;
    assert_eq!(list, json!([updated]));
}

#[tokio::test]
async fn a_raw_missing_fields_is_refused_and_nothing_is_lost() {
    let node = TestNode::start().await;
    let entry = node.create_worker(json!({})).await;
    let channel = entry["value"]["channel"].clone();
    let (status, body) = node
        .call(
            "updateWorker",
            json!({"channel": channel, "raw": {"active": true}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "Invalid request body", "missing": ["sid", "nid", "mode", "note", "script", "dependencies", "version"]})
    );
    let (_, list) = node.call("listWorkers", json!({})).await;
    assert_eq!(list, json!([entry]), "the refused update changed the record");
}

#[tokio::test]
async fn malformed_requests_name_the_problem() {
    let node = TestNode::start().await;
    let entry = node.create_worker(json!({})).await;
    let good = update_body(&entry, |_| {});
    let with = |change: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        change(&mut b);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"raw": raw(&entry)}),
            "Invalid request body: channel is required",
        ),
        (
            with(&|b| b["channel"] = json!(5)),
            "Invalid request body: channel must be a string",
        ),
        (
            with(&|b| b["channel"] = json!("ami.worker.not-a-uuid")),
            "Invalid request body: channel must be \"ami.worker.<sid>\" with a UUID sid",
        ),
        (
            with(&|b| b["channel"] = json!("worker.x")),
            "Invalid request body: channel must be \"ami.worker.<sid>\" with a UUID sid",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("raw");
            }),
            "Invalid request body: raw is required",
        ),
        (
            with(&|b| b["raw"] = json!("x")),
            "Invalid request body: raw must be an object",
        ),
        (
            with(&|b| b["raw"]["sid"] = json!(uuid::Uuid::new_v4().to_string())),
            "Invalid request body: raw.sid does not match the sid in channel",
        ),
        (
            with(&|b| b["raw"]["active"] = json!("yes")),
            "Invalid request body: raw.active must be a boolean",
        ),
        (
            with(&|b| b["raw"]["nid"] = json!(1)),
            "Invalid request body: raw.nid must be a string",
        ),
        (
            with(&|b| b["raw"]["note"] = json!([])),
            "Invalid request body: raw.note must be a string",
        ),
        (
            with(&|b| b["raw"]["mode"] = json!("often")),
            "Invalid request body: raw.mode \"often\" is not one of loop, single",
        ),
        (
            with(&|b| b["raw"]["dependencies"] = json!(["nope"])),
            "Unknown dependency: nope",
        ),
        (
            with(&|b| b["raw"]["script"] = json!("")),
            "Invalid script content",
        ),
        (with(&|b| b["raw"]["script"] = json!(3)), "Invalid script content"),
        (
            with(&|b| b["raw"]["executionMode"] = json!("exclusive")),
            "Exclusive mode requires assignedNode parameter",
        ),
        (
            with(&|b| b["versionstamp"] = json!("xyz")),
            "Invalid request body: versionstamp must be 20 hexadecimal digits",
        ),
        (
            with(&|b| b["versionstamp"] = json!(7)),
            "Invalid request body: versionstamp must be a string",
        ),
    ];
    for (body, message) in cases {
        let (status, reply) = node.call("updateWorker", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(reply["error"], message, "{body}");
    }
    let (status, reply) = node
        .call("updateWorker", with(&|b| b["raw"]["script"] = json!("let x = ;")))
        .await;
    assert_eq!(
        (status, reply["error"].clone()),
        (400, json!("Script minification failed"))
    );
    let (_, list) = node.call("listWorkers", json!({})).await;
    assert_eq!(list, json!([entry]));
}

#[tokio::test]
async fn stale_versionstamps_and_unknown_sids_are_409() {
    let node = TestNode::start().await;
    let entry = node.create_worker(json!({})).await;
    let conflict = json!({"error": "Update Worker Error: version mismatch or not found"});
    // With the current versionstamp: accepted.
    let mut body = update_body(&entry, |r| r["note"] = json!("v2"));
    body["versionstamp"] = entry["versionstamp"].clone();
    let (status, updated) = node.call("updateWorker", body.clone()).await;
    assert_eq!(status, 200);
    // The same (now stale) versionstamp again: refused.
    assert_eq!(node.call("updateWorker", body).await, (409, conflict.clone()));
    // An unknown sid.
    let other = uuid::Uuid::new_v4().to_string();
    let body = update_body(&updated, |r| r["sid"] = json!(other));
    let body = json!({"channel": format!("ami.worker.{other}"), "raw": body["raw"]});
    assert_eq!(node.call("updateWorker", body).await, (409, conflict));
}

#[tokio::test]
async fn of_eight_concurrent_updates_with_one_versionstamp_exactly_one_wins() {
    let node = Arc::new(TestNode::start().await);
    let entry = node.create_worker(json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = node.clone();
        let mut body = update_body(&entry, |r| r["note"] = json!(format!("writer {i}")));
        body["versionstamp"] = entry["versionstamp"].clone();
        tasks.push(tokio::spawn(async move { node.call("updateWorker", body).await }));
    }
    let mut statuses = Vec::new();
    let mut winner = None;
    for task in tasks {
        let (status, reply) = task.await.unwrap();
        if status == 200 {
            winner = Some(reply);
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 409, 409, 409, 409, 409, 409, 409]);
    let (_, list) = node.call("listWorkers", json!({})).await;
    assert_eq!(list, json!([winner.unwrap()]));
}

#[tokio::test]
async fn without_a_versionstamp_concurrent_updates_never_lose_a_write_silently() {
    let node = Arc::new(TestNode::start().await);
    let entry = node.create_worker(json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = node.clone();
        let body = update_body(&entry, |r| r["note"] = json!(format!("writer {i}")));
        tasks.push(tokio::spawn(async move { node.call("updateWorker", body).await }));
    }
    let mut last_ok = Vec::new();
    for task in tasks {
        let (status, reply) = task.await.unwrap();
        assert!(status == 200 || status == 409, "{status} {reply}");
        if status == 200 {
            last_ok.push(reply);
        }
    }
    assert!(!last_ok.is_empty());
    // The stored record is the newest acknowledged one.
    last_ok.sort_by(|a, b| a["versionstamp"].as_str().cmp(&b["versionstamp"].as_str()));
    let (_, list) = node.call("listWorkers", json!({})).await;
    assert_eq!(list[0], *last_ok.last().unwrap());
}

#[tokio::test]
async fn the_store_watch_reports_each_update() {
    let node = TestNode::start().await;
    let entry = node.create_worker(json!({})).await;
    let store = node.running().store().clone();
    let mut watch = common::watch_from_now(store.as_ref(), &Key::of(&["ami", "worker"])).await;
    let (status, updated) = node
        .call("updateWorker", update_body(&entry, |r| r["active"] = json!(true)))
        .await;
    assert_eq!(status, 200);
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WatchEvent::Put(seen) = event else {
        panic!("expected a put, got {event:?}")
    };
    assert_eq!(seen.key.last_str(), Some(sid(&entry).as_str()));
    assert_eq!(
        seen.versionstamp.to_string(),
        updated["versionstamp"].as_str().unwrap()
    );
    assert_eq!(seen.value.parse().unwrap()["raw"]["active"], true);
}
