//! Numbers and keys from scripts are checked (issue #9 defect 10): bad KV arguments throw
//! `TypeError`s that say what is wrong, odd durations neither panic nor hang, and `list` pages
//! through large prefixes.

mod common;

use common::{TestNode, quick_runtime, sid};
use serde_json::json;

#[tokio::test]
async fn bad_kv_arguments_are_type_errors_and_odd_numbers_are_safe() {
    let node = TestNode::start_with(quick_runtime).await;
    let entry = node
        .start_worker(json!({"mode": "single", "priority": "high", "scriptContent": r#"
            const cases = {
              hugeLimit: () => Stels.net.list({prefix: []}, {limit: 1e300}).next(),
              zeroLimit: () => Stels.net.list({prefix: []}, {limit: 0}).next(),
              emptySet: () => Stels.net.set([], 1),
              emptyGet: () => Stels.local.get([]),
              emptyDelete: () => Stels.net.delete([]),
              emptyCheck: () => Stels.net.atomic().check({key: [], versionstamp: null}).commit(),
              infiniteExpiry: () => Stels.net.set(["e"], 1, {expireIn: Infinity}),
              nanExpiry: () => Stels.net.set(["e"], 1, {expireIn: NaN}),
              negativeExpiry: () => Stels.net.set(["e"], 1, {expireIn: -1}),
              longKey: () => Stels.net.set(["k".repeat(2100)], 1),
              bigValue: () => Stels.net.set(["v"], "v".repeat(70 * 1024)),
            };
            for (const [name, call] of Object.entries(cases)) {
              try { await call(); logger.info("case", name, "accepted"); }
              catch (e) { logger.info("case", name, e.name, e.message); }
            }
            // Durations from any number: no panic, no endless wait.
            for (const ms of [NaN, -1, Infinity, 1e300, 1.5]) {
              await Promise.race([Stels.sleep(ms), Stels.sleep(20)]);
            }
            await Stels.net.set(["far"], 1, {expireIn: 1e300});
            logger.info("far future", (await Stels.net.get(["far"])).value);
            const writes = [];
            for (let i = 0; i < 1234; i++) writes.push(Stels.local.set(["many", i], i));
            await Promise.all(writes);
            let count = 0, ordered = true;
            for await (const e of Stels.local.list({prefix: ["many"]})) { ordered = ordered && e.value === count; count++; }
            logger.info("listed", count, ordered);
            logger.info("done");"#}))
        .await;
    let sid = sid(&entry);
    let lines = node.wait_for_log(&sid, "] done").await;
    let case = |name: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("] case {name} ")))
            .unwrap_or_else(|| panic!("{name}: {lines:?}"))
            .clone()
    };
    let expected = [
        (
            "hugeLimit",
            "Stels.net.list: limit must be a positive integer of at most 1000000, got 1e+300",
        ),
        (
            "zeroLimit",
            "Stels.net.list: limit must be a positive integer of at most 1000000, got 0",
        ),
        ("emptySet", "Stels.net.set: key must not be empty"),
        ("emptyGet", "Stels.local.get: key must not be empty"),
        ("emptyDelete", "Stels.net.delete: key must not be empty"),
        ("emptyCheck", "Stels.net.atomic().check: key must not be empty"),
        (
            "infiniteExpiry",
            "Stels.net.set: expireIn must be a finite, non-negative number of milliseconds, got Infinity",
        ),
        (
            "nanExpiry",
            "Stels.net.set: expireIn must be a finite, non-negative number of milliseconds, got NaN",
        ),
        (
            "negativeExpiry",
            "Stels.net.set: expireIn must be a finite, non-negative number of milliseconds, got -1",
        ),
        (
            "longKey",
            "Stels.net.set: key exceeds 2044 bytes when encoded (2102 bytes)",
        ),
        (
            "bigValue",
            "Stels.net.set: value exceeds 64 KiB (71682 bytes as JSON)",
        ),
    ];
    for (name, message) in expected {
        let seen = case(name);
        assert!(
            seen.contains(&format!("case {name} TypeError {message}")),
            "{seen}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("] far future 1")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("] listed 1234 true")),
        "{lines:?}"
    );
    // The node keeps serving.
    let (status, _) = node.call("getWorkerStats", json!({})).await;
    assert_eq!(status, 200);
}
