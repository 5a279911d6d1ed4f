//! Issue #9, defect 7: expired sessions and login replay marks are deleted from the store by the
//! node's reaper (`--reaper-interval-ms`, shrunk here with the session idle time and the login
//! window; a replay mark lives twice the window plus 1 s), not only hidden; watchers of the store
//! see the deletes.

mod common;

use std::time::Duration;

use common::TestNode;
use futures_util::StreamExt;
use heterogen::auth::gliesereum::Wallet;
use heterogen::store::{Key, WatchEvent};

#[tokio::test]
async fn expired_sessions_and_replay_marks_are_deleted() {
    let owner = Wallet::generate();
    let address = owner.address();
    let node = TestNode::start_with(move |c| {
        c.open = false;
        c.owners = vec![address];
        c.reaper_interval = Duration::from_millis(50);
        c.session_idle = Duration::from_millis(300);
        c.login_window = Duration::from_millis(500);
    })
    .await;
    let store = node.running().store().clone();
    let mut watch = common::watch_from_now(store.as_ref(), &Key::of(&["ami"])).await;
    let session = node.login(&owner).await;
    assert_eq!(list_workers(&node, &session).await, 200);

    let mut written = Vec::new();
    let mut deleted = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(6));
    tokio::pin!(deadline);
    while !(written.len() == 2 && deleted.len() == 2) {
        tokio::select! {
            _ = &mut deadline => panic!("not deleted in time: written {written:?}, deleted {deleted:?}"),
            event = watch.next() => match event.unwrap().unwrap() {
                WatchEvent::Put(entry) => {
                    let ours = [["ami", "session"], ["ami", "login"]];
                    assert!(ours.iter().any(|p| entry.key.has_prefix(&Key::of(p))), "{entry:?}");
                    if !written.contains(&entry.key) {
                        written.push(entry.key);
                    }
                }
                WatchEvent::Delete { key, .. } => deleted.push(key),
            },
        }
    }
    written.sort_by_key(|k| k.encode());
    deleted.sort_by_key(|k| k.encode());
    assert_eq!(written, deleted);
    for prefix in [["ami", "session"], ["ami", "login"]] {
        assert!(
            store
                .list(&Key::of(&prefix), Default::default())
                .await
                .unwrap()
                .entries
                .is_empty()
        );
    }
    // The session is gone for the client too.
    assert_eq!(list_workers(&node, &session).await, 401);
}

async fn list_workers(node: &TestNode, session: &str) -> u16 {
    let response = node
        .http
        .post(node.url())
        .header("stels-session", session)
        .json(&serde_json::json!({"webfix":"1.0","method":"listWorkers"}))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}
