//! `Stels.wallet`, `Stels.blockchain`, the web and Deno basics (worker-sdk.md S-11, S-12, S-15)
//! in workers of a real node: each script reports what it saw through its log.

mod common;

use common::{TestNode, quick_runtime, sid};
use heterogen::auth::gliesereum;
use serde_json::{Value, json};

/// Runs `script` once with `dependencies`; the JSON the script logged after `result `.
async fn result_of(node: &TestNode, dependencies: Value, script: &str) -> Value {
    let entry = node
        .start_worker(json!({"scriptContent": script, "mode": "single", "dependencies": dependencies}))
        .await;
    let sid = sid(&entry);
    let lines = node.wait_for_log(&sid, "result ").await;
    let line = lines.iter().find(|l| l.contains("result ")).unwrap();
    let json = line.split_once("result ").unwrap().1.trim();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[tokio::test]
async fn the_node_wallet_is_made_at_first_start_and_kept() {
    let node = TestNode::start_with(quick_runtime).await;
    let key_file = node.dir.path().join("node-key.json");
    let script = r#"const w = Stels.wallet;
        logger.info("result " + JSON.stringify({ address: w.address, publicKey: w.publicKey, number: w.number,
          signature: w.sign("from the node"), startTime: Stels.startTime, now: Date.now() }));"#;
    let seen = result_of(&node, json!([]), script).await;
    let wallet = heterogen::auth::keyfile::read(&key_file).unwrap();
    assert_eq!(seen["address"], wallet.address());
    assert_eq!(seen["publicKey"], wallet.public_compressed_hex());
    assert_eq!(seen["number"], wallet.number());
    assert!(gliesereum::verify_signature(
        "from the node",
        seen["signature"].as_str().unwrap(),
        &wallet.public_compressed_hex()
    ));
    let started = seen["startTime"].as_u64().unwrap();
    assert!(started <= seen["now"].as_u64().unwrap() && started > 1_700_000_000_000);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the node key is the owner's alone");
    }
}

#[tokio::test]
async fn a_given_node_key_is_used() {
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("mine.json");
    let wallet = gliesereum::Wallet::generate();
    heterogen::auth::keyfile::write_new(&path, &wallet).unwrap();
    let node_key = path.clone();
    let node = TestNode::start_with(move |c| {
        quick_runtime(c);
        c.node_key = Some(node_key);
    })
    .await;
    let seen = result_of(
        &node,
        json!([]),
        r#"logger.info("result " + JSON.stringify(Stels.wallet.address));"#,
    )
    .await;
    assert_eq!(seen, wallet.address());
    assert!(!node.dir.path().join("node-key.json").exists());
}

#[tokio::test]
async fn blockchain_transactions_from_a_worker_verify_as_logins_do() {
    let node = TestNode::start_with(quick_runtime).await;
    let script = r#"const b = Stels.blockchain;
        const w = b.createWallet();
        const tx = b.createSignedTransaction(w, Stels.wallet.address, 10, 1, JSON.stringify({ note: "paid" }));
        logger.info("result " + JSON.stringify({ w, tx, valid: b.validateTransaction(tx) }));"#;
    let seen = result_of(&node, json!(["gliesereum"]), script).await;
    assert_eq!(seen["valid"], true);
    let verified = gliesereum::verify_transaction_details(&seen["tx"]).unwrap();
    assert_eq!(verified.address, seen["w"]["address"]);
    assert_eq!((verified.amount, verified.fee), (10, 1));
    assert_eq!(verified.data.as_deref(), Some(r#"{"note":"paid"}"#));
    let imported = gliesereum::Wallet::from_private_hex(seen["w"]["privateKey"].as_str().unwrap()).unwrap();
    assert_eq!(imported.address(), seen["w"]["address"]);
}

#[tokio::test]
async fn without_the_dependency_blockchain_is_a_critical_error_that_says_why() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"scriptContent": "Stels.blockchain.createWallet();", "mode": "single", "dependencies": []}))
        .await;
    let sid = sid(&entry);
    let stats = common::eventually(10, "a critical error counted", || async {
        node.worker_stats(&sid)
            .await
            .filter(|s| s["criticalErrors"].as_u64() >= Some(1))
    })
    .await;
    assert_eq!(
        stats["lastError"],
        "TypeError: Stels.blockchain needs the dependency \"gliesereum\": add it to the worker's dependencies"
    );
    assert_eq!(stats["lastErrorType"], "critical");
    assert_eq!(stats["networkErrors"], 0, "{stats}");
}

#[tokio::test]
async fn web_and_deno_basics_work_in_a_worker() {
    let node = TestNode::start_with(quick_runtime).await;
    let script = r#"const url = new URL("/api/v1?symbol=BTCUSDT", "https://api.example.com");
        url.searchParams.set("limit", "5");
        const id = crypto.randomUUID();
        const text = new TextDecoder().decode(new TextEncoder().encode("grüße"));
        const clone = structuredClone({ at: new Date(0), list: [1, 2] });
        const controller = new AbortController();
        controller.abort();
        const usage = Deno.memoryUsage();
        let serve;
        try { Deno.serve(() => new Response("x")); } catch (e) { serve = e.message; }
        logger.info("result " + JSON.stringify({ url: url.href, id: id.length, text, clone: clone.at instanceof Date,
          aborted: controller.signal.aborted, heap: usage.heapUsed > 0, load: Deno.loadavg().length,
          secret: Deno.env.get("PATH") ?? null, serve, b64: btoa("ok"),
          from: await Array.fromAsync([Promise.resolve(1), 2]) }));"#;
    let seen = result_of(&node, json!([]), script).await;
    assert_eq!(
        seen,
        json!({"url": "https://api.example.com/api/v1?symbol=BTCUSDT&limit=5", "id": 36, "text": "grüße",
            "clone": true, "aborted": true, "heap": true, "load": 3, "secret": null,
            "serve": "Deno.serve is not available on this node (workers cannot listen for HTTP requests)",
            "b64": "b2s=", "from": [1, 2]})
    );
}

#[tokio::test]
async fn globals_a_script_never_names_are_not_defined_for_it() {
    let node = TestNode::start_with(quick_runtime).await;
    let seen = result_of(
        &node,
        json!([]),
        r#"const names = Object.keys(globalThis);
           logger.info("result " + JSON.stringify([typeof globalThis["Text" + "Encoder"], names.includes("fe" + "tch"),
             names.includes("De" + "no"), typeof URL]));"#,
    )
    .await;
    assert_eq!(seen, json!(["undefined", false, false, "function"]));
}

#[tokio::test]
async fn a_timer_never_fires_into_the_next_run() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"mode": "loop", "priority": "high", "dependencies": [],
            "scriptContent": r#"globalThis.n = (globalThis.n || 0) + 1;
                if (n === 1) { setTimeout(() => logger.info("late timer fired"), 100); logger.info("first run over"); }
                else if (n === 2) { await Stels.sleep(400); logger.info("second run over"); }
                else await Stels.sleep(60000);"#}))
        .await;
    let sid = sid(&entry);
    let lines = node.wait_for_log(&sid, "second run over").await;
    assert!(lines.iter().any(|l| l.contains("first run over")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("late timer fired")), "{lines:?}");
}
