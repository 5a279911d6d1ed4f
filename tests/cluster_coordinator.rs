//! Leader election and fencing on the store's leases and compares (`StoreCoordinator`), on a
//! real embedded store shared by several candidates, as nodes of one cluster share it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use heterogen::clock::Clock;
use heterogen::cluster::coordinator::{Campaign, Coordinator, StoreCoordinator, Term, leader_key};
use heterogen::store::fjall::FjallStore;
use heterogen::store::{AtomicWrite, CommitOutcome, Key, Store, StoreError, WatchEvent};
use serde_json::json;

const SID: &str = "6f1c1b7e-0000-4000-8000-000000000001";

struct Cluster {
    store: Arc<FjallStore>,
    _dir: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FjallStore::open(dir.path(), false).unwrap());
    Cluster { store, _dir: dir }
}

impl Cluster {
    fn node(&self, nid: &str, lease: Duration) -> StoreCoordinator {
        StoreCoordinator::new(self.store.clone(), nid.to_string(), lease, Clock::system())
    }
}

async fn elected(node: &StoreCoordinator) -> Term {
    match node.campaign(SID).await.unwrap() {
        Campaign::Elected(term) => term,
        held => panic!("not elected: {held:?}"),
    }
}

#[tokio::test]
async fn one_holder_at_a_time_and_each_new_holder_raises_the_epoch() {
    let c = cluster();
    let (a, b) = (
        c.node("a", Duration::from_secs(60)),
        c.node("b", Duration::from_secs(60)),
    );
    let mut term_a = elected(&a).await;
    assert_eq!(term_a.epoch, 1);
    let Campaign::Held { leader, ends_in } = b.campaign(SID).await.unwrap() else {
        panic!("b must not be elected while a leads")
    };
    assert_eq!(leader, "a");
    assert!(
        ends_in > Duration::from_secs(50) && ends_in <= Duration::from_secs(60),
        "{ends_in:?}"
    );
    a.renew(&mut term_a).await.unwrap();
    let shown = b.leader(SID).await.unwrap().unwrap();
    assert_eq!(
        (shown.leader.as_str(), shown.epoch, shown.worker_id.as_str()),
        ("a", Some(1), SID)
    );
    assert!(shown.renewed_at >= shown.timestamp);

    a.resign(&term_a).await.unwrap();
    assert_eq!(b.leader(SID).await.unwrap(), None, "resigning hands over at once");
    let term_b = elected(&b).await;
    assert_eq!(term_b.epoch, 2);
    let renewed = a.renew(&mut term_a).await;
    assert!(matches!(renewed, Err(StoreError::Conflict(_))), "{renewed:?}");
}

#[tokio::test]
async fn a_fenced_write_fails_once_a_newer_term_has_begun() {
    let c = cluster();
    let (a, b) = (
        c.node("a", Duration::from_secs(60)),
        c.node("b", Duration::from_secs(60)),
    );
    let term_a = elected(&a).await;
    let key = Key::of(&["kv", "price"]);
    let write = |v: i32| AtomicWrite::new().set(key.clone(), json!(v));
    assert!(matches!(
        a.fenced_commit(&term_a, write(1)).await.unwrap(),
        CommitOutcome::Committed(_)
    ));
    // A check of the caller's own that fails is a plain CheckFailed, not a lost term.
    let stale = write(2).check(key.clone(), None);
    assert_eq!(
        a.fenced_commit(&term_a, stale).await.unwrap(),
        CommitOutcome::CheckFailed
    );

    a.resign(&term_a).await.unwrap();
    let term_b = elected(&b).await;
    let refused = a.fenced_commit(&term_a, write(3)).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(c.store.get(&key).await.unwrap().entry.unwrap().value, json!(1));
    assert!(matches!(
        b.fenced_commit(&term_b, write(4)).await.unwrap(),
        CommitOutcome::Committed(_)
    ));
}

#[tokio::test]
async fn a_silent_leader_is_replaced_after_its_lease_and_watchers_see_it_go() {
    let c = cluster();
    let lease = Duration::from_millis(200);
    let (a, b) = (c.node("a", lease), c.node("b", lease));
    let mut term_a = elected(&a).await;
    let from = c.store.get(&leader_key(SID)).await.unwrap().revision;
    let mut watch = c.store.watch(&Key::of(&["ami", "leader"]), from).await.unwrap();
    // a stops renewing (a dead node): its record goes when the lease ends.
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            c.store.reap_expired(100).await.unwrap();
            if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(20), watch.next()).await {
                break event.unwrap();
            }
        }
    })
    .await
    .expect("the leader record was never deleted");
    assert!(
        matches!(&gone, WatchEvent::Delete { key, .. } if *key == leader_key(SID)),
        "{gone:?}"
    );
    let term_b = elected(&b).await;
    assert_eq!(term_b.epoch, 2);
    let renewed = a.renew(&mut term_a).await;
    assert!(matches!(renewed, Err(StoreError::Conflict(_))), "{renewed:?}");
}

#[tokio::test]
async fn a_restarted_node_continues_its_own_live_term() {
    let c = cluster();
    let term = elected(&c.node("a", Duration::from_secs(60))).await;
    // The same node after a restart: a new coordinator, the old term's lease still alive.
    let again = elected(&c.node("a", Duration::from_secs(60))).await;
    assert_eq!(again.epoch, term.epoch);
    let Campaign::Held { leader, .. } = c.node("b", Duration::from_secs(60)).campaign(SID).await.unwrap()
    else {
        panic!("b must not be elected")
    };
    assert_eq!(leader, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_campaigns_elect_exactly_one() {
    let c = cluster();
    let nodes: Vec<_> = (0..8)
        .map(|i| Arc::new(c.node(&format!("n{i}"), Duration::from_secs(60))))
        .collect();
    let campaigns = futures_util::future::join_all(nodes.iter().map(|n| {
        let n = n.clone();
        async move { n.campaign(SID).await.unwrap() }
    }))
    .await;
    let winners: Vec<_> = campaigns
        .iter()
        .filter_map(|c| match c {
            Campaign::Elected(term) => Some(term.epoch),
            Campaign::Held { .. } => None,
        })
        .collect();
    assert_eq!(winners, [1]);
}
