//! `formatScript`: a stored (minified) script printed for reading, which minifies back to the
//! same stored text; syntax errors as in `setWorker`; owners only.

mod common;

use common::{TestNode, raw};
use serde_json::json;

const SOURCE: &str = "// counts\nlet round = 0;\nwhile (!shouldStop()) {\n  round += 1;\n  if (round % 2) { logger.info(`odd ${round}`); } else { await Stels.sleep(10); }\n}\nreturn round;\n";

#[tokio::test]
async fn a_stored_script_reads_as_lines_and_minifies_back_to_itself() {
    let node = TestNode::start().await;
    let stored = raw(&node.create_worker(json!({"scriptContent": SOURCE})).await)["script"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!stored.contains('\n'), "stored minified: {stored}");

    let (status, body) = node.call("formatScript", json!({"script": stored})).await;
    assert_eq!(status, 200, "{body}");
    let readable = body["script"].as_str().unwrap();
    assert!(
        readable.lines().count() >= 6,
        "one statement per line:\n{readable}"
    );
    assert!(
        readable.contains("\twhile") || readable.contains("while (!shouldStop())"),
        "{readable}"
    );

    let again = raw(&node.create_worker(json!({"scriptContent": readable})).await)["script"].clone();
    assert_eq!(again, json!(stored), "the readable text is the same program");
}

#[tokio::test]
async fn a_script_that_does_not_parse_is_refused_with_its_line() {
    let node = TestNode::start().await;
    let (status, body) = node
        .call("formatScript", json!({"script": "logger.info(1);\nlet x = ;\n"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Script minification failed");
    assert_eq!(body["line"], 2);

    let (status, body) = node.call("formatScript", json!({"script": 7})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn only_owners_may_ask() {
    let node = TestNode::start_with(|c| {
        c.open = false;
        c.owners = vec!["gq8vij8cqueDyuGypUF7hbo9hyLqdy9jKz".into()];
    })
    .await;
    let (status, _) = node.call("formatScript", json!({"script": "let a = 1;"})).await;
    assert_eq!(status, 401);
}
