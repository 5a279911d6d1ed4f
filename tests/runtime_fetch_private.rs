//! Scripts cannot reach the node itself or other non-public addresses through `fetch` unless
//! the operator names the host exactly in `--fetch-allow` (S-10, issue #9 defect 12).

mod common;

use common::{TestNode, quick_runtime, sid};
use serde_json::json;

/// A loopback HTTP server with `/secret` and `/to-localhost` (a redirect to `localhost`).
async fn local_server() -> std::net::SocketAddr {
    use axum::response::Redirect;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        axum::Router::new()
            .route("/secret", get(|| async { "secret" }))
            .route(
                "/to-localhost",
                get(move || async move {
                    Redirect::temporary(&format!("http://localhost:{}/secret", addr.port()))
                }),
            );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Runs `script` once; returns its log lines once it logged `done`.
async fn run(node: &TestNode, script: &str) -> Vec<String> {
    let entry = node
        .start_worker(json!({"scriptContent": script, "mode": "single", "priority": "high"}))
        .await;
    node.wait_for_log(&sid(&entry), "] done").await
}

/// A script line that logs `label` and the outcome of fetching `url`.
fn attempt(label: &str, url: &str) -> String {
    format!(
        r#"try {{ const r = await fetch("{url}"); logger.info("{label} ok", r.status, await r.text()); }}
           catch (e) {{ logger.info("{label} failed", e.name, e.message); }}"#
    )
}

fn line<'a>(lines: &'a [String], label: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(&format!("] {label} ")))
        .unwrap_or_else(|| panic!("no line for {label}: {lines:?}"))
}

#[tokio::test]
async fn loopback_is_refused_by_default_and_reachable_only_when_named() {
    let server = local_server().await;
    let port = server.port();
    {
        let node = TestNode::start_with(quick_runtime).await;
        let node_port = node.addr.port();
        let script = [
            attempt("server", &format!("http://127.0.0.1:{port}/secret")),
            attempt("node", &format!("http://127.0.0.1:{node_port}/")),
            attempt("localhost", &format!("http://localhost:{port}/secret")),
            attempt("v6", &format!("http://[::1]:{node_port}/")),
            "logger.info('done');".into(),
        ]
        .join("\n");
        let lines = run(&node, &script).await;
        for label in ["server", "node", "v6"] {
            let seen = line(&lines, label);
            assert!(
                seen.contains(&format!("{label} failed NetworkError refused: ")),
                "{seen}"
            );
            assert!(seen.contains("loopback address"), "{seen}");
            assert!(seen.contains("named in --fetch-allow"), "{seen}");
        }
        let seen = line(&lines, "localhost");
        assert!(
            seen.contains("localhost failed NetworkError refused: localhost resolves to "),
            "{seen}"
        );
        assert!(seen.contains("loopback address"), "{seen}");
    }

    // Named exactly: reachable. A wildcard keeps public hosts open but opens no loopback
    // name, so a redirect to `localhost` (not named) is refused on that hop.
    let node = TestNode::start_with(|c| {
        quick_runtime(c);
        c.runtime.fetch_allowed_hosts = Some(vec!["*".into(), "127.0.0.1".into()]);
    })
    .await;
    let script = [
        attempt("server", &format!("http://127.0.0.1:{port}/secret")),
        attempt("redirect", &format!("http://127.0.0.1:{port}/to-localhost")),
        attempt("localhost", &format!("http://localhost:{port}/secret")),
        "logger.info('done');".into(),
    ]
    .join("\n");
    let lines = run(&node, &script).await;
    assert!(
        line(&lines, "server").contains("server ok 200 secret"),
        "{lines:?}"
    );
    for label in ["redirect", "localhost"] {
        let seen = line(&lines, label);
        assert!(
            seen.contains(&format!(
                "{label} failed NetworkError refused: localhost resolves to "
            )),
            "{seen}"
        );
    }
}
