//! The etcd backend while its etcd goes away and comes back: calls fail within their deadline
//! with a kind the layers above act on, and a watch that lived through the outage resumes from
//! the last change it delivered, missing none.
#![cfg(feature = "etcd")]

#[path = "common/etcd.rs"]
mod etcd_cluster;

use std::time::Duration;

use futures_util::StreamExt;
use heterogen::store::etcd::EtcdStore;
use heterogen::store::{AtomicWrite, CommitOutcome, Key, ListOptions, Store, WatchEvent};
use serde_json::json;

async fn put(store: &EtcdStore, key: &Key, n: i64) {
    let outcome = store
        .commit(AtomicWrite::new().set(key.clone(), json!(n)))
        .await
        .unwrap();
    assert!(matches!(outcome, CommitOutcome::Committed(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_after_etcd_restarts_and_calls_meanwhile_fail_quickly() {
    let mut cluster = etcd_cluster::EtcdCluster::start(1).await;
    let mut options = cluster.options("/outage/");
    options.call_timeout = Duration::from_secs(10);
    let store = EtcdStore::connect(options).await.unwrap();
    let prefix = Key::of(&["w"]);
    let start = store
        .list(&prefix, ListOptions::default())
        .await
        .unwrap()
        .revision;
    let mut watch = store.watch(&prefix, start).await.unwrap();
    put(&store, &prefix.child("a"), 1).await;

    cluster.members[0].kill();
    let began = tokio::time::Instant::now();
    let refused = store.get(&prefix.child("a")).await;
    assert!(
        matches!(&refused, Err(e) if e.is_transient()),
        "a read while etcd is down: {refused:?}"
    );
    assert!(
        began.elapsed() <= Duration::from_secs(11),
        "the call outlived its deadline"
    );
    cluster.members[0].restart();
    cluster.wait_ready().await;
    put(&store, &prefix.child("b"), 2).await;
    put(&store, &prefix.child("a"), 3).await;

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(15), watch.next())
            .await
            .expect("the watch stalled after etcd came back")
            .expect("the watch ended")
            .expect("the watch failed instead of resuming");
        let WatchEvent::Put(entry) = event else {
            panic!("unexpected {event:?}")
        };
        seen.push((entry.key.last_str().unwrap().to_owned(), entry.value));
    }
    assert_eq!(
        seen,
        [
            ("a".into(), json!(1).into()),
            ("b".into(), json!(2).into()),
            ("a".into(), json!(3).into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_etcd_fails_with_the_endpoints_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = heterogen::store::etcd::EtcdOptions::new(vec![format!("127.0.0.1:{port}")], "/x/");
    options.call_timeout = Duration::from_secs(1);
    let Err(error) = EtcdStore::connect(options).await else {
        panic!("connected to nothing")
    };
    let message = error.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(error.is_transient(), "{error:?}");
}
