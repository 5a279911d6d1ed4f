//! Group commit on the embedded store with fsync: many writers at once all get their commits,
//! in one order that watchers see whole, while the journal is synced fewer times than there are
//! commits (commits that arrive during a sync share the next one). That each acknowledged commit
//! survives `kill -9` is `process_kill9_durability`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use heterogen::store::fjall::{FjallOptions, FjallStore};
use heterogen::store::{AtomicWrite, CommitOutcome, Key, Revision, Store, WatchEvent};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_syncs_and_watchers_see_each_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let options = FjallOptions {
        fsync: true,
        ..FjallOptions::default()
    };
    let store = Arc::new(FjallStore::open_with(dir.path(), options).unwrap());
    let mut watch = store.watch(&Key::of(&["g"]), Revision(0)).await.unwrap();
    let (writers, each) = (64, 8);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut stamps = Vec::new();
                for i in 0..each {
                    let write = AtomicWrite::new().set(Key::of(&["g", &format!("{w}-{i}")]), json!(i));
                    match store.commit(write).await.unwrap() {
                        CommitOutcome::Committed(vs) => stamps.push(vs),
                        CommitOutcome::CheckFailed => panic!("no checks to fail"),
                    }
                }
                stamps
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    let commits = writers * each;
    assert_eq!(acknowledged.len(), commits);
    let syncs = store.journal_syncs();
    eprintln!("{syncs} journal syncs for {commits} commits");
    assert!(
        syncs >= 1 && (syncs as usize) < commits,
        "{syncs} syncs for {commits} commits"
    );

    let mut seen = Vec::new();
    while seen.len() < commits {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("the watch stalled")
            .unwrap()
            .unwrap();
        let WatchEvent::Put(entry) = event else {
            panic!("a delete")
        };
        seen.push(entry.versionstamp);
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "watch order is commit order"
    );
    acknowledged.sort();
    assert_eq!(seen, acknowledged, "every acknowledged commit, once");
}
