//! The browser console is served from the binary: every file of `web-console/app/` at
//! `/console/…` with its type, the Content-Security-Policy, an ETag honoured with 304, gzip when
//! asked; a browser's `GET /` is sent there; nothing outside the table is ever served.

mod common;

use std::path::{Path, PathBuf};

use common::TestNode;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A GET that does not follow redirects, with the given request headers.
async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_file_is_served_with_its_type_and_the_policy() {
    let node = TestNode::start().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web-console/app");
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(all.len() > 5, "the console has its files");
    for file in all {
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let reply = get(&format!("{}console/{relative}", node.url()), &[]).await;
        assert_eq!(reply.status(), 200, "{relative}");
        let headers = reply.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let kind = headers["content-type"].to_str().unwrap();
        let expected = match relative.rsplit('.').next().unwrap() {
            "js" => "text/javascript",
            "css" => "text/css",
            "html" => "text/html",
            "svg" => "image/svg+xml",
            other => panic!("a console file of an unexpected kind: {other}"),
        };
        assert!(kind.starts_with(expected), "{relative}: {kind}");
        assert_eq!(
            reply.bytes().await.unwrap(),
            std::fs::read(&file).unwrap(),
            "{relative}"
        );
    }
}

#[tokio::test]
async fn a_browser_is_sent_to_the_console_and_other_clients_get_the_node_description() {
    let node = TestNode::start().await;
    let html = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
    let browser = get(&node.url(), &[html]).await;
    assert_eq!(browser.status(), 303);
    assert_eq!(browser.headers()["location"], "/console/");

    let bare = get(&format!("{}console", node.url()), &[]).await;
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/console/");

    let index = get(&format!("{}console/", node.url()), &[]).await;
    assert_eq!(index.status(), 200);
    assert!(index.text().await.unwrap().contains("js/main.js"));

    let json: serde_json::Value = get(&node.url(), &[("accept", "application/json")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["nid"], "s-0001");
    assert_eq!(json["open"], true, "the test node is --open");
    assert!(json["title"].is_string());
}

#[tokio::test]
async fn unknown_and_escaping_paths_are_not_found() {
    let node = TestNode::start().await;
    for path in [
        "nothing.js",
        "../Cargo.toml",
        "..%2FCargo.toml",
        "js/../../Cargo.toml",
        "%2e%2e/src/main.rs",
    ] {
        let reply = get(&format!("{}console/{path}", node.url()), &[]).await;
        assert_eq!(reply.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn an_unchanged_file_is_not_sent_again_and_large_files_go_compressed() {
    let node = TestNode::start().await;
    let url = format!("{}console/vendor/codemirror.js", node.url());
    let first = get(&url, &[]).await;
    let etag = first.headers()["etag"].clone();
    let size = first.bytes().await.unwrap().len();
    let again = get(&url, &[("if-none-match", etag.to_str().unwrap())]).await;
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    let gzipped = get(&url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzipped.status(), 200);
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["etag"], etag);
    let compressed = gzipped.bytes().await.unwrap().len();
    assert!(compressed * 2 < size, "{compressed} of {size} bytes");
}
