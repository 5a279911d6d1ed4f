//! Workers' secrets over WebFIX against a real node: `setWorkerSecret`, `listWorkerSecrets`,
//! `deleteWorkerSecret` with their errors and the Owner role; a running script reads
//! `Stels.secrets` (and `Deno.env.get`) and sees changes without a restart; the value never
//! comes back in any method's answer, in the worker's log or its last error; `deleteWorker`
//! takes the secrets with it; a node with another key than the cluster's refuses secrets and
//! says why, until it has the right key or resets; a broken key file stops a node.

mod common;

use common::{TestNode, eventually, quick_runtime, sid};
use heterogen::auth::gliesereum::Wallet;
use heterogen::store::Key;
use serde_json::{Value, json};

/// A value no script, record or log line holds by chance.
const VALUE: &str = "sk-live-5f1c9d2e7a";

/// Calls `method` with `session` in the `stels-session` header.
async fn call_as(node: &TestNode, session: &str, method: &str, body: Value) -> (u16, Value) {
    let response = node
        .http
        .post(node.url())
        .header("stels-session", session)
        .json(&json!({"webfix": "1.0", "method": method, "body": body}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Every answer a client can get about workers, as text.
async fn every_answer(node: &TestNode, id: &str) -> String {
    let mut all = String::new();
    for (method, body) in [
        ("listWorkers", json!({})),
        ("getWorkerStats", json!({})),
        ("listNodes", json!({})),
        ("listWorkerSecrets", json!({"sid": id})),
        ("getWorkerLogs", json!({"sid": id})),
        ("getLeaderInfo", json!({"workerId": id})),
    ] {
        let (_, reply) = node.call(method, body).await;
        all.push_str(&reply.to_string());
    }
    all
}

#[tokio::test]
async fn secrets_are_set_listed_and_deleted_with_specific_errors() {
    let node = TestNode::start().await;
    let id = sid(&node.create_worker(json!({})).await);

    let (status, set) = node
        .call(
            "setWorkerSecret",
            json!({"sid": id, "name": "API_KEY", "value": VALUE}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["sid"], id.as_str());
    assert_eq!(set["name"], "API_KEY");
    assert_eq!(set["created"], true);
    assert!(set["updatedAt"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(!set.to_string().contains(VALUE));
    let (_, again) = node
        .call(
            "setWorkerSecret",
            json!({"sid": id, "name": "API_KEY", "value": "v2-value"}),
        )
        .await;
    assert_eq!(again["created"], false, "{again}");
    node.call(
        "setWorkerSecret",
        json!({"sid": id, "name": "A_FIRST", "value": "x"}),
    )
    .await;

    let (status, listed) = node.call("listWorkerSecrets", json!({"sid": id})).await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["API_KEY", "A_FIRST"]);
    assert_eq!(
        listed["secrets"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["name", "updatedAt"]
    );

    let bad = [
        (
            json!({"sid": id, "name": "1ABC", "value": "v"}),
            400,
            "name must be 1 to 64",
        ),
        (
            json!({"sid": id, "name": "A-B", "value": "v"}),
            400,
            "name must be",
        ),
        (
            json!({"sid": id, "name": "N".repeat(65), "value": "v"}),
            400,
            "name must be",
        ),
        (
            json!({"sid": id, "name": "OK", "value": ""}),
            400,
            "value must not be empty",
        ),
        (
            json!({"sid": id, "name": "OK", "value": 7}),
            400,
            "value must be a string",
        ),
        (json!({"sid": id, "name": "OK"}), 400, "value must be a string"),
        (json!({"sid": id, "value": "v"}), 400, "name must be a string"),
        (
            json!({"name": "OK", "value": "v"}),
            400,
            "sid must be a worker id",
        ),
        (
            json!({"sid": id, "name": "OK", "value": "v".repeat(32 * 1024 + 1)}),
            400,
            "value is 32769 bytes; a secret holds at most 32768 bytes",
        ),
        (
            json!({"sid": "no-such-worker", "name": "OK", "value": "v"}),
            404,
            "Worker not found",
        ),
    ];
    for (body, status, needle) in bad {
        let (got, reply) = node.call("setWorkerSecret", body.clone()).await;
        assert_eq!(got, status, "{reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(needle), "{needle:?} not in {error:?}");
    }
    let (_, too_big) = node
        .call(
            "setWorkerSecret",
            json!({"sid": id, "name": "OK", "value": "v".repeat(40_000)}),
        )
        .await;
    assert_eq!(
        (too_big["size"].clone(), too_big["max"].clone()),
        (json!(40_000), json!(32_768))
    );

    let (status, reply) = node.call("listWorkerSecrets", json!({"sid": "nope"})).await;
    assert_eq!((status, reply), (404, json!({"error": "Worker not found"})));
    let (status, reply) = node
        .call("deleteWorkerSecret", json!({"sid": id, "name": "NOT_SET"}))
        .await;
    assert_eq!((status, reply), (404, json!({"error": "Secret not found"})));
    let (status, reply) = node
        .call("deleteWorkerSecret", json!({"sid": "nope", "name": "API_KEY"}))
        .await;
    assert_eq!((status, reply), (404, json!({"error": "Worker not found"})));
    let (status, reply) = node
        .call("deleteWorkerSecret", json!({"sid": id, "name": "API_KEY"}))
        .await;
    assert_eq!((status, reply), (200, json!({"sid": id, "name": "API_KEY"})));
    let (_, listed) = node.call("listWorkerSecrets", json!({"sid": id})).await;
    assert_eq!(
        listed["secrets"],
        json!([{"name": "A_FIRST", "updatedAt": listed["secrets"][0]["updatedAt"]}])
    );

    // At most 100 a worker; replacing one is still allowed at the limit.
    for i in 1..100 {
        let (status, reply) = node
            .call(
                "setWorkerSecret",
                json!({"sid": id, "name": format!("S{i}"), "value": "v"}),
            )
            .await;
        assert_eq!(status, 200, "{i}: {reply}");
    }
    let (status, reply) = node
        .call(
            "setWorkerSecret",
            json!({"sid": id, "name": "ONE_MORE", "value": "v"}),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("already has 100 secrets"),
        "{reply}"
    );
    let (status, _) = node
        .call(
            "setWorkerSecret",
            json!({"sid": id, "name": "S1", "value": "again"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn only_owners_manage_secrets() {
    let owner = Wallet::generate();
    let stranger = Wallet::generate();
    let node = TestNode::start_with(|c| {
        c.open = false;
        c.owners = vec![owner.address().to_string()];
    })
    .await;
    let owner_session = node.login(&owner).await;
    let stranger_session = node.login(&stranger).await;
    let (status, entry) = call_as(&node, &owner_session, "setWorker", json!({})).await;
    assert_eq!(status, 200, "{entry}");
    let id = sid(&entry);
    let calls = [
        ("setWorkerSecret", json!({"sid": id, "name": "K", "value": VALUE})),
        ("listWorkerSecrets", json!({"sid": id})),
        ("deleteWorkerSecret", json!({"sid": id, "name": "K"})),
    ];
    for (method, body) in &calls {
        let (status, reply) = call_as(&node, &stranger_session, method, body.clone()).await;
        assert_eq!((status, reply), (403, json!({"error": "Forbidden"})), "{method}");
        let (status, _) = node.call(method, body.clone()).await;
        assert_eq!(status, 401, "{method} without a session");
    }
    for (method, body) in &calls {
        let (status, reply) = call_as(&node, &owner_session, method, body.clone()).await;
        assert_eq!(status, 200, "{method}: {reply}");
    }
}

#[tokio::test]
async fn a_running_script_reads_its_secrets_live_and_never_shows_them() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .create_worker(json!({
            "priority": "high",
            "scriptContent": r#"
                const s = Stels.secrets;
                const key = s.API_KEY;
                const shown = key === undefined ? "none" : key.split("").reverse().join("");
                logger.info(`reversed=${shown} keys=${JSON.stringify(Object.keys(s))} deno=${Deno.env.get("API_KEY") === key}`);
                logger.info("plain", key, JSON.stringify({ key }));
                await Stels.sleep(30);
            "#,
        }))
        .await;
    let id = sid(&entry);
    let (status, _) = node
        .call(
            "setWorkerSecret",
            json!({"sid": id, "name": "API_KEY", "value": VALUE}),
        )
        .await;
    assert_eq!(status, 200);
    node.call(
        "setWorkerSecret",
        json!({"sid": id, "name": "OTHER", "value": "o"}),
    )
    .await;
    node.set_active(&entry, true).await;
    let reversed: String = VALUE.chars().rev().collect();
    let lines = node
        .wait_for_log(
            &id,
            &format!("reversed={reversed} keys=[\"API_KEY\",\"OTHER\"] deno=true"),
        )
        .await;
    let plain = lines.iter().find(|l| l.contains("plain")).unwrap();
    assert!(plain.ends_with("plain *** {\"key\":\"***\"}\n"), "{plain}");

    // A new value reaches the running script without a restart.
    node.call(
        "setWorkerSecret",
        json!({"sid": id, "name": "API_KEY", "value": "second-value"}),
    )
    .await;
    node.wait_for_log(&id, "reversed=eulav-dnoces").await;
    node.call("deleteWorkerSecret", json!({"sid": id, "name": "API_KEY"}))
        .await;
    node.wait_for_log(&id, "reversed=none keys=[\"OTHER\"] deno=true")
        .await;

    let answers = every_answer(&node, &id).await;
    assert!(!answers.contains(VALUE) && !answers.contains("second-value"));
    for line in node.log_lines(&id) {
        assert!(!line.contains(VALUE) && !line.contains("second-value"), "{line}");
    }
}

#[tokio::test]
async fn an_error_holding_a_secret_is_masked_in_the_log_and_the_stats() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .create_worker(json!({
            "mode": "single",
            "scriptContent": r#"throw new Error("cannot log in with " + Stels.secrets.TOKEN);"#,
        }))
        .await;
    let id = sid(&entry);
    node.call(
        "setWorkerSecret",
        json!({"sid": id, "name": "TOKEN", "value": VALUE}),
    )
    .await;
    node.set_active(&entry, true).await;
    node.wait_for_log(&id, "cannot log in with ***").await;
    let stats = eventually(10, "lastError in the stats", || async {
        node.worker_stats(&id)
            .await
            .filter(|w| w["lastError"].is_string())
    })
    .await;
    assert_eq!(stats["lastError"], "Error: cannot log in with ***", "{stats}");
    let answers = every_answer(&node, &id).await;
    assert!(!answers.contains(VALUE), "{answers}");
}

#[tokio::test]
async fn deleting_a_worker_deletes_its_secrets() {
    let node = TestNode::start().await;
    let id = sid(&node.create_worker(json!({})).await);
    let keep = sid(&node.create_worker(json!({})).await);
    for (worker, name) in [(&id, "A"), (&id, "B"), (&keep, "C")] {
        let (status, _) = node
            .call(
                "setWorkerSecret",
                json!({"sid": worker, "name": name, "value": VALUE}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = node.call("deleteWorker", json!({"sid": id})).await;
    assert_eq!(status, 200);
    let store = node.running().store();
    let under = |sid: &str| Key::of(&["ami", "secret", sid]);
    let left = store.list(&under(&id), Default::default()).await.unwrap();
    assert!(left.entries.is_empty(), "{:?}", left.entries);
    let kept = store.list(&under(&keep), Default::default()).await.unwrap();
    assert_eq!(kept.entries.len(), 1);
    let (status, _) = node.call("listWorkerSecrets", json!({"sid": id})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_node_with_another_key_refuses_secrets_and_says_why() {
    // Two nodes on one store, the second without a copy of the first one's key file.
    let first = TestNode::start_with(quick_runtime).await;
    let second = TestNode::start_on(first.running().store().clone(), |c| {
        quick_runtime(c);
        c.nid = "s-0002".into();
    })
    .await;
    let entry = first
        .create_worker(json!({
            "priority": "high",
            "scriptContent": "logger.info('has A:', Stels.secrets.A !== undefined); await Stels.sleep(30);",
        }))
        .await;
    let id = sid(&entry);
    let (status, _) = first
        .call("setWorkerSecret", json!({"sid": id, "name": "A", "value": VALUE}))
        .await;
    assert_eq!(status, 200);

    let (status, reply) = second
        .call("setWorkerSecret", json!({"sid": id, "name": "B", "value": VALUE}))
        .await;
    assert_eq!(status, 503, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.starts_with("This node cannot seal secrets: "), "{error}");
    assert!(
        error.contains("is not the key this cluster's secrets are sealed with"),
        "{error}"
    );
    assert!(error.contains("copy that node's file here"), "{error}");
    assert!(error.contains("first used by node s-0001"), "{error}");
    // Names need no key.
    let (status, listed) = second.call("listWorkerSecrets", json!({"sid": id})).await;
    assert_eq!((status, listed["secrets"][0]["name"].clone()), (200, json!("A")));

    // The worker runs on both; only the node with the cluster's key gives it its secrets.
    first.set_active(&entry, true).await;
    first.wait_for_log(&id, "has A: true").await;
    second
        .wait_for_log(&id, "Stels.secrets cannot be read on this node: ")
        .await;
}

#[tokio::test]
async fn a_lost_key_is_replaced_only_with_reset_and_a_bad_key_file_stops_the_node() {
    let mut node = TestNode::start().await;
    let id = sid(&node.create_worker(json!({})).await);
    node.call("setWorkerSecret", json!({"sid": id, "name": "A", "value": VALUE}))
        .await;
    node.shutdown().await;
    let dir = node.dir.path().to_path_buf();
    let key_file = dir.join("secrets-key");
    let original = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(original.trim().len(), 64);
    let client = reqwest::Client::new();

    // A file that is no key at all stops the node.
    std::fs::write(&key_file, "not a key\n").unwrap();
    let error = heterogen::start(common::test_config(&dir))
        .await
        .err()
        .expect("a node with a broken key file started")
        .to_string();
    assert!(error.starts_with("cannot use the secrets key: "), "{error}");
    assert!(error.contains("is not a secrets key file"), "{error}");

    // The key lost and a new one made: the node refuses secrets…
    std::fs::remove_file(&key_file).unwrap();
    let node = heterogen::start(common::test_config(&dir)).await.unwrap();
    let url = format!("http://{}/", node.local_addr());
    let body = json!({"sid": id, "name": "A", "value": "v"});
    let (status, reply) = common::call_url(&client, &url, "setWorkerSecret", body.clone()).await;
    assert_eq!(status, 503, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("--secrets-key-reset"),
        "{reply}"
    );
    node.shutdown().await.unwrap();
    // …and takes them again with the right key.
    std::fs::write(&key_file, &original).unwrap();
    let node = heterogen::start(common::test_config(&dir)).await.unwrap();
    let url = format!("http://{}/", node.local_addr());
    let (status, _) = common::call_url(&client, &url, "setWorkerSecret", body.clone()).await;
    assert_eq!(status, 200);
    node.shutdown().await.unwrap();

    // Reset: the secrets sealed with the lost key are deleted, the new key is the cluster's.
    std::fs::write(&key_file, format!("{}\n", "cd".repeat(32))).unwrap();
    let mut config = common::test_config(&dir);
    config.secrets_key_reset = true;
    let node = heterogen::start(config).await.unwrap();
    let url = format!("http://{}/", node.local_addr());
    let (_, listed) = common::call_url(&client, &url, "listWorkerSecrets", json!({"sid": id})).await;
    assert_eq!(listed["secrets"], json!([]), "{listed}");
    node.shutdown().await.unwrap();
    // …and a plain start with it takes secrets from then on.
    let node = heterogen::start(common::test_config(&dir)).await.unwrap();
    let url = format!("http://{}/", node.local_addr());
    let (status, _) = common::call_url(&client, &url, "setWorkerSecret", body).await;
    assert_eq!(status, 200);
    node.shutdown().await.unwrap();
}
