//! `--tls-cert`/`--tls-key`: the node speaks https and wss with a certificate made for the test
//! (by a CA of its own), refuses plain HTTP on that port, and on SIGHUP switches to a renewed
//! certificate for new connections while a WebSocket opened before goes on working.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::eventually;
use common::process::{NodeProcess, spawn_node};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

/// A CA and a certificate it signed for `localhost` and 127.0.0.1: (CA PEM, cert PEM, key PEM).
fn issue() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn list_over_https(client: &reqwest::Client, node: &NodeProcess) -> reqwest::Result<u16> {
    let url = format!("https://{}/", node.addr);
    let envelope = json!({"webfix": "1.0", "method": "listWorkers"});
    Ok(client.post(url).json(&envelope).send().await?.status().as_u16())
}

type Wss = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

async fn wss(node: &NodeProcess, ca_pem: &str) -> Wss {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(node.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/ws", node.addr.port());
    let (ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    ws
}

async fn wss_call(ws: &mut Wss, id: u64) -> Value {
    let request = json!({"webfix": "1.0", "method": "listWorkers", "id": id}).to_string();
    ws.send(Message::text(request)).await.unwrap();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no answer over wss")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// `heterogen call listWorkers --url wss://localhost:PORT [--ca FILE]`: (exit code, stdout, stderr).
async fn cli_call(node: &NodeProcess, ca: Option<&std::path::Path>) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_heterogen"));
    command
        .args(["call", "listWorkers", "--url"])
        .arg(format!("wss://localhost:{}", node.addr.port()))
        .env_remove("HETEROGEN_URL")
        .env_remove("HETEROGEN_CA")
        .env_remove("HETEROGEN_KEY");
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the CLI hung")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn https_and_wss_with_a_certificate_renewed_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (first_ca, cert, key) = issue();
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let args = [
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ];
    let node = spawn_node(&dir.path().join("data"), &args).await;

    let trusting_first = https_client(&first_ca);
    assert_eq!(list_over_https(&trusting_first, &node).await.unwrap(), 200);
    let plain = reqwest::Client::new()
        .post(format!("http://{}/", node.addr))
        .json(&json!({"webfix": "1.0", "method": "listWorkers"}))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP on the TLS port: {plain:?}");
    // The command-line client over wss, trusting the node's CA with --ca, and not without it.
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &first_ca).unwrap();
    let (code, stdout, stderr) = cli_call(&node, Some(&ca_path)).await;
    assert_eq!((code, stdout.trim()), (0, "[]"), "{stderr}");
    let (code, _, stderr) = cli_call(&node, None).await;
    assert_ne!(code, 0);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    let mut open_before = wss(&node, &first_ca).await;
    let answer = wss_call(&mut open_before, 1).await;
    assert_eq!(
        (answer["id"].clone(), answer["status"].clone()),
        (json!(1), json!(200))
    );

    // Renewed: another CA's certificate in the same files, then SIGHUP.
    let (second_ca, cert, key) = issue();
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let pid = node.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let trusting_second = https_client(&second_ca);
    eventually(10, "new connections to get the renewed certificate", || async {
        // A fresh client each time: no connection kept from before the reload.
        let fresh = https_client(&second_ca);
        (list_over_https(&fresh, &node).await.ok() == Some(200)).then_some(())
    })
    .await;
    assert_eq!(list_over_https(&trusting_second, &node).await.unwrap(), 200);
    assert!(
        list_over_https(&https_client(&first_ca), &node).await.is_err(),
        "the old certificate is no longer served"
    );
    let answer = wss_call(&mut open_before, 2).await;
    assert_eq!(
        answer["status"], 200,
        "the WebSocket from before the reload: {answer}"
    );
    assert!(node.child.id().is_some(), "SIGHUP did not stop the node");
}
