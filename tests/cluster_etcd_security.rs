//! A node on an etcd that demands TLS client certificates, or a user and password: with the
//! right settings it runs; without them it refuses to start (exit 2) and says what is missing.
#![cfg(feature = "etcd")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::etcd::EtcdCluster;
use common::process::refused_start;
use common::process::spawn_node;
use serde_json::json;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=heterogen-test-ca",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            dir,
            &[
                &["req"][..],
                &ec,
                &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={name}")],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "1",
                "-extfile",
                ext,
            ],
        );
    }
}

async fn works(node: &common::process::NodeProcess) {
    let client = reqwest::Client::new();
    let (status, reply) =
        common::call_url(&client, &node.url(), "setWorker", json!({"scriptContent": "1"})).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = common::call_url(&client, &node.url(), "listNodes", json!({})).await;
    assert_eq!((status, reply["total"].clone()), (200, json!(1)), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    let etcd = EtcdCluster::start_tls(&[
        "--cert-file".into(),
        file("server.crt"),
        "--key-file".into(),
        file("server.key"),
        "--trusted-ca-file".into(),
        file("ca.crt"),
        "--client-cert-auth".into(),
    ]);
    let store = format!("etcd://{}", etcd.members[0].endpoint());
    let (ca, cert, key) = (file("ca.crt"), file("client.crt"), file("client.key"));
    let tls = [
        "--store",
        store.as_str(),
        "--etcd-ca",
        &ca,
        "--etcd-cert",
        &cert,
        "--etcd-key",
        &key,
    ];

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", etcd.members[0].client_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "etcd did not listen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(dir.path(), &tls).await;
    works(&node).await;

    let other = tempfile::tempdir().unwrap();
    let (code, stderr) = refused_start(
        other.path(),
        &["--store", &store, "--etcd-ca", &ca, "--etcd-timeout-ms", "1000"],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&etcd.members[0].endpoint()), "{stderr}");
    let (code, stderr) = refused_start(
        other.path(),
        &["--store", &store, "--etcd-timeout-ms", "1000"],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "plain text to a TLS etcd: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_and_password_from_the_environment() {
    let etcd = EtcdCluster::start(1).await;
    let endpoint = format!("http://{}", etcd.members[0].endpoint());
    for args in [
        &["user", "add", "root:root-secret"][..],
        &["role", "add", "heterogen"][..],
        &[
            "role",
            "grant-permission",
            "heterogen",
            "readwrite",
            "/heterogen/",
            "--prefix=true",
        ][..],
        &["user", "add", "node:node-secret"][..],
        &["user", "grant-role", "node", "heterogen"][..],
        &["auth", "enable"][..],
    ] {
        let output = Command::new("etcdctl")
            .args(["--endpoints", &endpoint])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let store = format!("etcd://{}", etcd.members[0].endpoint());
    let dir = tempfile::tempdir().unwrap();

    let (code, stderr) = refused_start(dir.path(), &["--store", &store], &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("HETEROGEN_ETCD_USER"), "{stderr}");
    let wrong = [
        ("HETEROGEN_ETCD_USER", "node"),
        ("HETEROGEN_ETCD_PASSWORD", "guess"),
    ];
    let (code, stderr) = refused_start(dir.path(), &["--store", &store], &wrong).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("credentials"), "{stderr}");

    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_heterogen"));
    command
        .env("HETEROGEN_ETCD_USER", "node")
        .env("HETEROGEN_ETCD_PASSWORD", "node-secret");
    let node = common::process::spawn_with_command(
        command,
        dir.path(),
        &["--open", "--fsync", "false", "--store", &store],
    )
    .await;
    works(&node).await;
}
