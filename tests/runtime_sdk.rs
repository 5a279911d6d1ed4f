//! The script SDK over a real node (worker-sdk.md S-1..S-10, S-20, S-21): each script runs as
//! an activated worker and reports what it saw through its log.

mod common;

use std::time::Duration;

use common::{TestNode, quick_runtime, sid};
use heterogen::store::Key;
use serde_json::{Value, json};

/// Runs `script` once (single mode) and returns the worker's sid once it logged `done`.
async fn run_script(node: &TestNode, script: &str) -> String {
    let entry = node
        .start_worker(json!({"scriptContent": script, "mode": "single", "priority": "high"}))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "done").await;
    sid
}

fn lines_with(node: &TestNode, sid: &str, needle: &str) -> Vec<String> {
    node.log_lines(sid)
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

#[tokio::test]
async fn logger_levels_and_argument_formatting() {
    let node = TestNode::start_with(quick_runtime).await;
    let sid = run_script(
        &node,
        r#"logger.info("a", 1, {x: 1}, [1, 2], new TypeError("t"), null, true);
           logger.warn("w"); logger.error("e"); logger.debug("d");
           console.log("console is silent"); console.error("this too");
           logger.info("done");"#,
    )
    .await;
    let lines = node.log_lines(&sid);
    let joined = lines.join("");
    assert!(
        joined.contains(r#"[INFO] a 1 {"x":1} [1,2] TypeError: t null true"#),
        "{joined}"
    );
    for tag in ["[WARN] w", "[ERROR] e", "[DEBUG] d"] {
        assert!(joined.contains(tag), "{tag} missing in {joined}");
    }
    assert!(
        !joined.contains("silent") && !joined.contains("this too"),
        "console must not log: {joined}"
    );
    // Each line: "[ISO time] [LEVEL] message\n".
    for line in &lines {
        assert!(line.ends_with('\n'), "{line:?}");
        let time = &line[1..line.find(']').unwrap()];
        chrono::DateTime::parse_from_rfc3339(time).unwrap();
    }
}

#[tokio::test]
async fn sleep_waits_and_config_is_read_only() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.nid = "s-0042".into();
        c.network = "mainnet".into();
    })
    .await;
    let sid = run_script(
        &node,
        r#"const t = Date.now(); await Stels.sleep(150);
           logger.info("slept", Date.now() - t >= 140);
           const c = Stels.config;
           logger.info("config", JSON.stringify({nid: c.nid, network: c.network, sid: c.sid, executionMode: c.executionMode,
             priority: c.priority, mode: c.mode, version: c.version, workers: c.workers, leaseEpoch: c.leaseEpoch,
             same: config === Stels.config, title: typeof c.title, tick: typeof c.tick}));
           try { Stels.config.nid = "evil"; } catch (e) {}
           logger.info("nid after write", Stels.config.nid);
           logger.info("done");"#,
    )
    .await;
    assert_eq!(lines_with(&node, &sid, "slept true").len(), 1);
    let line = lines_with(&node, &sid, "[INFO] config ").pop().unwrap();
    let json_text = &line[line.find("config ").unwrap() + 7..].trim_end();
    let seen: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(
        seen,
        json!({"nid":"s-0042","network":"mainnet","sid":sid,"executionMode":"parallel","priority":"high","mode":"single",
               "version":"1.19.2","workers":1,"leaseEpoch":null,"same":true,"title":"string","tick":"number"})
    );
    assert_eq!(lines_with(&node, &sid, "nid after write s-0042").len(), 1);
}

#[tokio::test]
async fn should_stop_and_signal_see_a_deactivation() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"mode": "single", "scriptContent": r#"
            signal.addEventListener("abort", () => logger.info("abort event", signal.aborted));
            logger.info("before", shouldStop(), signal.aborted);
            while (!shouldStop()) { await Stels.sleep(60000); }
            logger.info("loop left", shouldStop());"#}))
        .await;
    let sid = sid(&entry);
    node.wait_for_log(&sid, "before false false").await;
    node.set_active(&entry, false).await;
    node.wait_for_log(&sid, "loop left true").await;
    node.wait_for_log(&sid, "abort event true").await;
}

#[tokio::test]
async fn net_and_local_kv_from_scripts() {
    let node = TestNode::start_with(quick_runtime).await;
    let sid = run_script(
        &node,
        r#"const set = await Stels.net.set(["market", "ticker", "BTC"], {price: 101.5});
           logger.info("set", set.ok, set.versionstamp.length);
           const got = await Stels.net.get(["market", "ticker", "BTC"]);
           logger.info("get", got.value.price, got.versionstamp === set.versionstamp);
           logger.info("absent", JSON.stringify(await Stels.net.get(["nope"])));
           await Stels.net.set(["market", "ticker", "ETH"], {price: 3});
           const keys = [];
           for await (const e of Stels.net.list({prefix: ["market", "ticker"]})) keys.push(e.key.join("/"));
           logger.info("list", keys.join(","));
           const ok = await Stels.net.atomic().check({key: ["market", "ticker", "BTC"], versionstamp: set.versionstamp})
             .set(["market", "ticker", "BTC"], {price: 102}).commit();
           const stale = await Stels.net.atomic().check({key: ["market", "ticker", "BTC"], versionstamp: set.versionstamp})
             .set(["market", "ticker", "BTC"], {price: 0}).commit();
           logger.info("atomic", ok.ok, stale.ok);
           await Stels.net.delete(["market", "ticker", "ETH"]);
           await Stels.local.set(["health", "s"], {ok: true});
           try { await Stels.net.set(["big"], "x".repeat(70000)); } catch (e) { logger.info("too big", e.name); }
           try { await Stels.net.set("notakey", 1); } catch (e) { logger.info("bad key", e.name); }
           logger.info("done");"#,
    )
    .await;
    for needle in [
        "set true 20",
        "get 101.5 true",
        r#"absent {"key":["nope"],"value":null,"versionstamp":null}"#,
        "atomic true false",
        "too big TypeError",
        "bad key TypeError",
    ] {
        assert_eq!(
            lines_with(&node, &sid, needle).len(),
            1,
            "{needle}: {:?}",
            node.log_lines(&sid)
        );
    }
    assert!(lines_with(&node, &sid, "list market/ticker/BTC,market/ticker/ETH").len() == 1);
    // Visible in the cluster store under the script namespace, and nowhere else.
    let (store, local_store) = (node.running().store(), node.running().local_store());
    let btc = store
        .get(&Key::of(&["kv", "market", "ticker", "BTC"]))
        .await
        .unwrap()
        .entry
        .unwrap();
    assert_eq!(btc.value, json!({"price": 102}));
    assert!(
        store
            .get(&Key::of(&["kv", "market", "ticker", "ETH"]))
            .await
            .unwrap()
            .entry
            .is_none()
    );
    assert!(
        store
            .get(&Key::of(&["market", "ticker", "BTC"]))
            .await
            .unwrap()
            .entry
            .is_none()
    );
    // Stels.local is this node's own store.
    assert!(
        local_store
            .get(&Key::of(&["kv", "health", "s"]))
            .await
            .unwrap()
            .entry
            .is_some()
    );
    assert!(
        store
            .get(&Key::of(&["kv", "health", "s"]))
            .await
            .unwrap()
            .entry
            .is_none()
    );
}

#[tokio::test]
async fn one_workers_writes_are_visible_to_another() {
    let node = TestNode::start_with(quick_runtime).await;
    run_script(
        &node,
        r#"await Stels.webfix({brain: Stels.net, method: "set", channel: ["signals", "s1"],
        module: "signal", raw: {side: "buy"}, timestamp: 7}); logger.info("done");"#,
    )
    .await;
    let reader = run_script(
        &node,
        r#"const r = await Stels.webfix({brain: Stels.net, method: "get", channel: ["signals", "s1"], module: "signal"});
           logger.info("read", r.value.raw.side, r.value.module, r.value.timestamp, JSON.stringify(r.value.channel));
           logger.info("done");"#,
    )
    .await;
    assert_eq!(
        lines_with(&node, &reader, r#"read buy signal 7 ["signals","s1"]"#).len(),
        1,
        "{:?}",
        node.log_lines(&reader)
    );
}

#[tokio::test]
async fn fetch_reaches_a_local_server_and_failures_are_network_errors() {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/price", get(|| async { axum::Json(json!({"last": 42.5})) }))
        .route("/echo", post(|body: String| async move { format!("got {body}") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // A port with nothing listening.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();

    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        // Loopback is refused unless named.
        c.runtime.fetch_allowed_hosts = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    let script = format!(
        r#"const r = await fetch("http://{addr}/price");
           const body = await r.json();
           logger.info("get", r.status, r.ok, body.last, r.headers.get("content-type"));
           const p = await fetch("http://{addr}/echo", {{method: "POST", body: "hi", headers: {{"x-a": "1"}}}});
           logger.info("post", p.status, await p.text());
           try {{ await fetch("http://{closed}/"); }} catch (e) {{ logger.info("refused", e.name); }}
           logger.info("done");"#
    );
    let sid = run_script(&node, &script).await;
    for needle in [
        "get 200 true 42.5 application/json",
        "post 200 got hi",
        "refused NetworkError",
    ] {
        assert_eq!(
            lines_with(&node, &sid, needle).len(),
            1,
            "{needle}: {:?}",
            node.log_lines(&sid)
        );
    }

    // An uncaught fetch failure counts as a network error (W-RUN-3).
    let entry = node
        .start_worker(
            json!({"scriptContent": format!("await fetch('http://{closed}/');"), "priority": "critical"}),
        )
        .await;
    let failing = common::sid(&entry);
    let stats = common::eventually(10, "a network error", || async {
        node.worker_stats(&failing)
            .await
            .filter(|w| w["networkErrors"].as_u64().unwrap() >= 1)
    })
    .await;
    assert_eq!(stats["lastErrorType"], "network");
    assert_eq!(stats["criticalErrors"], 0);
}

#[tokio::test]
async fn fetch_obeys_the_allowed_hosts() {
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.fetch_allowed_hosts = Some(vec!["example.invalid".into()]);
        c.runtime.fetch_timeout = Duration::from_secs(2);
    })
    .await;
    let sid = run_script(
        &node,
        r#"try { await fetch("http://127.0.0.1:9/"); } catch (e) { logger.info("blocked", e.name, e.message); }
           logger.info("done");"#,
    )
    .await;
    assert_eq!(
        lines_with(&node, &sid, "blocked NetworkError host not allowed").len(),
        1,
        "{:?}",
        node.log_lines(&sid)
    );
}

#[tokio::test]
async fn scripts_have_no_file_system_process_or_modules() {
    let node = TestNode::start_with(quick_runtime).await;
    let sid = run_script(
        &node,
        r#"logger.info("globals", typeof Deno, typeof process, typeof require, typeof std, typeof os);
           try { await import("fs"); logger.info("imported"); } catch (e) { logger.info("import refused"); }
           try { Deno.readTextFile("/etc/passwd"); } catch (e) { logger.info("deno", e.name); }
           logger.info("done");"#,
    )
    .await;
    for needle in [
        "globals object undefined undefined undefined undefined",
        "import refused",
        "deno TypeError",
    ] {
        assert_eq!(
            lines_with(&node, &sid, needle).len(),
            1,
            "{needle}: {:?}",
            node.log_lines(&sid)
        );
    }
}
