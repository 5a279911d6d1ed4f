//! The store contract (architecture.md §5): what every `Store` backend promises, so that code
//! that works on one node works on a cluster. Each case takes a fresh [`Subject`]; the macro at
//! the end runs every case on fjall and, with the `etcd` feature, on a real etcd process.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use heterogen::store::fjall::{FjallOptions, FjallStore};
use heterogen::store::{
    AtomicWrite, CommitOutcome, Entry, Key, KeyPart, Limit, ListOptions, ListedJson, MAX_KEY_BYTES,
    MAX_VALUE_BYTES, Page, RawJson, Revision, Store, StoreError, Versionstamp, WatchEvent, WatchStream,
    list_all,
};
use serde_json::{Value, json};

/// A fresh, empty store of one backend, and how to compact its history.
struct Subject {
    store: Arc<dyn Store>,
    compact: Box<dyn Fn(Revision) + Send + Sync>,
    /// A lease TTL this backend honours that keeps the lease cases quick.
    short_ttl: Duration,
    /// What must live as long as the store (its directory, its etcd process).
    _keep: Box<dyn std::any::Any + Send>,
}

async fn fjall() -> Subject {
    fjall_with(false)
}

/// fjall with every commit synced: the group-commit path (commits wait for a shared sync and
/// are published to watchers only then).
async fn fjall_fsync() -> Subject {
    fjall_with(true)
}

fn fjall_with(fsync: bool) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let options = FjallOptions {
        fsync,
        ..FjallOptions::default()
    };
    let store = Arc::new(FjallStore::open_with(dir.path(), options).unwrap());
    let compacting = Arc::clone(&store);
    Subject {
        store,
        compact: Box::new(move |revision| compacting.compact_history(revision)),
        short_ttl: Duration::from_millis(100),
        _keep: Box::new(dir),
    }
}

#[cfg(feature = "etcd")]
#[path = "common/etcd.rs"]
mod etcd_cluster;

/// A fresh single-member etcd of its own (revisions start from scratch), under a prefix.
#[cfg(feature = "etcd")]
async fn etcd() -> Subject {
    use heterogen::store::etcd::EtcdStore;
    let cluster = etcd_cluster::EtcdCluster::start(1).await;
    let store = Arc::new(EtcdStore::connect(cluster.options("/contract/")).await.unwrap());
    let compacting = Arc::clone(&store);
    Subject {
        store,
        compact: Box::new(move |revision| {
            let compacting = Arc::clone(&compacting);
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(compacting.compact_history(revision))
            })
            .unwrap();
        }),
        // etcd counts whole seconds; two leave a keep-alive every 500 ms room on a loaded machine.
        short_ttl: Duration::from_secs(2),
        _keep: Box::new(cluster),
    }
}

async fn put(store: &dyn Store, key: &Key, value: Value) -> Versionstamp {
    match store
        .commit(AtomicWrite::new().set(key.clone(), value))
        .await
        .unwrap()
    {
        CommitOutcome::Committed(vs) => vs,
        CommitOutcome::CheckFailed => panic!("unconditional commit failed its checks"),
    }
}

async fn get(store: &dyn Store, key: &Key) -> Option<Entry> {
    store.get(key).await.unwrap().entry
}

async fn list(store: &dyn Store, prefix: &Key, options: ListOptions) -> Page {
    store.list(prefix, options).await.unwrap()
}

fn keys(page: &Page) -> Vec<Key> {
    page.entries.iter().map(|e| e.key.clone()).collect()
}

fn limit(n: usize) -> ListOptions {
    ListOptions {
        limit: Some(n),
        ..ListOptions::default()
    }
}

/// The next `n` changes of `watch`, failing the test on an error or a stall.
async fn changes(watch: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let item = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("the watch stalled")
            .expect("the watch ended");
        out.push(item.unwrap());
    }
    out
}

async fn reads_carry_the_revision_they_saw(s: Subject) {
    let store = s.store.as_ref();
    let key = Key::of(&["ami", "worker", "w1"]);
    let empty = store.get(&key).await.unwrap();
    assert_eq!(empty.entry, None);
    let vs = put(store, &key, json!({"a": 1})).await;
    let got = store.get(&key).await.unwrap();
    let entry = got.entry.unwrap();
    assert_eq!((entry.value, entry.versionstamp), (json!({"a": 1}).into(), vs));
    assert!(got.revision >= Revision::from(vs) && got.revision > empty.revision);
    assert_eq!(vs.to_string().len(), 20);
    let page = list(store, &Key::of(&["ami"]), ListOptions::default()).await;
    assert_eq!(page.revision, got.revision);
    let outcome = store
        .commit(AtomicWrite::new().delete(key.clone()))
        .await
        .unwrap();
    assert!(matches!(outcome, CommitOutcome::Committed(d) if d > vs));
    let gone = store.get(&key).await.unwrap();
    assert_eq!(gone.entry, None);
    assert!(gone.revision > got.revision);
}

async fn the_last_mutation_of_a_key_wins(s: Subject) {
    let store = s.store.as_ref();
    let key = Key::of(&["k"]);
    let write = AtomicWrite::new()
        .set(key.clone(), json!(1))
        .delete(key.clone())
        .set(key.clone(), json!(3));
    store.commit(write).await.unwrap();
    assert_eq!(get(store, &key).await.unwrap().value, json!(3));
    let write = AtomicWrite::new().set(key.clone(), json!(4)).delete(key.clone());
    store.commit(write).await.unwrap();
    assert_eq!(get(store, &key).await, None);
}

async fn checks_pass_or_write_nothing(s: Subject) {
    let store = s.store.as_ref();
    let key = Key::of(&["lease", "w1"]);
    let other = Key::of(&["other"]);
    let write = AtomicWrite::new()
        .check(key.clone(), None)
        .set(key.clone(), json!("a"));
    let CommitOutcome::Committed(vs1) = store.commit(write).await.unwrap() else {
        panic!("an absent check failed on an absent key")
    };
    let write = AtomicWrite::new()
        .check(key.clone(), None)
        .set(key.clone(), json!("b"))
        .set(other.clone(), json!(1));
    assert_eq!(store.commit(write).await.unwrap(), CommitOutcome::CheckFailed);
    assert_eq!(get(store, &key).await.unwrap().value, json!("a"));
    assert_eq!(get(store, &other).await, None);
    let stale = Versionstamp::from_counter(vs1.counter() + 100);
    let write = AtomicWrite::new()
        .check(key.clone(), Some(stale))
        .delete(key.clone());
    assert_eq!(store.commit(write).await.unwrap(), CommitOutcome::CheckFailed);
    let write = AtomicWrite::new()
        .check(key.clone(), Some(vs1))
        .set(key.clone(), json!("c"));
    let CommitOutcome::Committed(vs2) = store.commit(write).await.unwrap() else {
        panic!("the right versionstamp failed its check")
    };
    assert_eq!(
        vs2.counter(),
        vs1.counter() + 1,
        "failed commits take no revision"
    );
    let write = AtomicWrite::new()
        .check(other.clone(), Some(vs2))
        .set(other.clone(), json!(1));
    assert_eq!(store.commit(write).await.unwrap(), CommitOutcome::CheckFailed);
}

async fn concurrent_commits_on_one_versionstamp_have_one_winner(s: Subject) {
    let key = Key::of(&["counter"]);
    let vs = put(s.store.as_ref(), &key, json!(0)).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, key) = (Arc::clone(&s.store), key.clone());
            tokio::spawn(async move {
                let write = AtomicWrite::new().check(key.clone(), Some(vs)).set(key, json!(i));
                store.commit(write).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let CommitOutcome::Committed(won) = task.await.unwrap().unwrap() {
            winners.push(won);
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(
        get(s.store.as_ref(), &key).await.unwrap().versionstamp,
        winners[0]
    );
}

async fn lists_keep_key_order_prefix_and_say_when_more_remain(s: Subject) {
    let store = s.store.as_ref();
    let a = Key::of(&["a"]);
    let mut under = vec![
        a.child("b"),
        a.child("c"),
        a.child("c").child("d"),
        Key(vec![KeyPart::Str("a".into()), KeyPart::Num(-1.0)]),
        Key(vec![KeyPart::Str("a".into()), KeyPart::Num(2.0)]),
        Key(vec![KeyPart::Str("a".into()), KeyPart::Bool(true)]),
    ];
    let outside = [
        a.clone(),
        Key::of(&["a\0"]),
        Key::of(&["a\0", "x"]),
        Key::of(&["ab"]),
        Key::of(&["0"]),
    ];
    for key in under.iter().rev().chain(outside.iter()) {
        put(store, key, json!(key.to_json())).await;
    }
    let all = list(store, &a, ListOptions::default()).await;
    assert_eq!((keys(&all), all.more), (under.clone(), false));
    // Paging at the limits: one short says more, exactly all does not, zero reads nothing.
    let short = list(store, &a, limit(under.len() - 1)).await;
    assert_eq!((short.entries.len(), short.more), (under.len() - 1, true));
    let exact = list(store, &a, limit(under.len())).await;
    assert_eq!((exact.entries.len(), exact.more), (under.len(), false));
    let none = list(store, &a, limit(0)).await;
    assert!(none.entries.is_empty());
    assert_eq!(none.revision, all.revision);
    under.reverse();
    let reverse = ListOptions {
        reverse: true,
        ..ListOptions::default()
    };
    assert_eq!(keys(&list(store, &a, reverse).await), under);
    assert_eq!(
        list(store, &Key::default(), ListOptions::default())
            .await
            .entries
            .len(),
        11
    );
    assert!(
        list(store, &Key::of(&["zzz"]), ListOptions::default())
            .await
            .entries
            .is_empty()
    );
}

async fn pages_resume_after_a_key_both_ways(s: Subject) {
    let store = s.store.as_ref();
    let p = Key::of(&["p"]);
    let under: Vec<Key> = (0..10)
        .map(|i| Key(vec![KeyPart::Str("p".into()), KeyPart::Num(f64::from(i))]))
        .collect();
    for key in &under {
        put(store, key, json!(1)).await;
    }
    put(store, &Key::of(&["q"]), json!(1)).await;
    for reverse in [false, true] {
        let mut seen = Vec::new();
        let mut start_after = None;
        loop {
            let options = ListOptions {
                limit: Some(3),
                reverse,
                start_after: start_after.clone(),
            };
            let page = list(store, &p, options).await;
            start_after = page.entries.last().map(|e| e.key.clone());
            seen.extend(keys(&page));
            if !page.more {
                break;
            }
        }
        let mut expected = under.clone();
        if reverse {
            expected.reverse();
        }
        assert_eq!(seen, expected, "reverse: {reverse}");
    }
}

/// More entries than one request of a remote store returns: an unlimited list is complete, in
/// order, and at one revision; limited pages resume where they stopped.
async fn a_long_list_pages_through_the_store(s: Subject) {
    let store = s.store.as_ref();
    let prefix = Key::of(&["many"]);
    let count = 1000;
    let padding = "p".repeat(900);
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let write = chunk.iter().fold(AtomicWrite::new(), |w, i| {
            w.set(
                prefix.child(&format!("{i:05}")),
                json!({"i": i, "padding": padding}),
            )
        });
        committed(store, write).await;
    }
    let all = list(store, &prefix, ListOptions::default()).await;
    assert!(!all.more);
    let names: Vec<String> = all
        .entries
        .iter()
        .map(|e| e.key.last_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..count).map(|i| format!("{i:05}")).collect();
    assert_eq!(names, expected);
    assert!(
        all.entries
            .iter()
            .all(|e| Revision::from(e.versionstamp) <= all.revision)
    );
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let options = ListOptions {
            limit: Some(300),
            start_after: after.clone(),
            ..ListOptions::default()
        };
        let page = list(store, &prefix, options).await;
        paged.extend(keys(&page));
        after = page.entries.last().map(|e| e.key.clone());
        if !page.more {
            break;
        }
    }
    assert_eq!(paged, keys(&all));
    let reversed = list(
        store,
        &prefix,
        ListOptions {
            reverse: true,
            ..ListOptions::default()
        },
    )
    .await;
    let mut backwards = keys(&reversed);
    backwards.reverse();
    assert_eq!(backwards, keys(&all));
}

async fn a_watch_from_a_list_revision_misses_nothing(s: Subject) {
    let store = Arc::clone(&s.store);
    let prefix = Key::of(&["w"]);
    put(store.as_ref(), &prefix.child("before"), json!(0)).await;
    let listed = list(store.as_ref(), &prefix, ListOptions::default()).await;
    // Writes land between the list and the watch, and while it runs.
    let writer = {
        let (store, prefix) = (Arc::clone(&store), prefix.clone());
        tokio::spawn(async move {
            let mut stamps = Vec::new();
            for i in 0..50 {
                stamps.push(put(store.as_ref(), &prefix.child(&format!("k{}", i % 7)), json!(i)).await);
                put(store.as_ref(), &Key::of(&["elsewhere"]), json!(i)).await;
            }
            stamps
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut watch = store.watch(&prefix, listed.revision).await.unwrap();
    let stamps = writer.await.unwrap();
    let seen: Vec<Versionstamp> = changes(&mut watch, 50)
        .await
        .iter()
        .map(|event| event.revision().versionstamp())
        .collect();
    assert_eq!(
        seen, stamps,
        "every change under the prefix, in commit order, once"
    );
    // A watch from an older revision replays from there.
    let mut again = store.watch(&prefix, listed.revision).await.unwrap();
    let first = changes(&mut again, 1).await;
    assert_eq!(first[0].revision(), Revision::from(stamps[0]));
}

async fn a_watch_reports_puts_and_deletes_of_its_prefix_only(s: Subject) {
    let store = s.store.as_ref();
    let prefix = Key::of(&["w"]);
    let now = list(store, &prefix, limit(0)).await.revision;
    let mut watch = store.watch(&prefix, now).await.unwrap();
    let (x, y) = (prefix.child("x"), prefix.child("y"));
    let vs1 = put(store, &x, json!(1)).await;
    put(store, &Key::of(&["other", "x"]), json!(2)).await;
    put(store, &prefix, json!("the prefix itself")).await;
    let write = AtomicWrite::new()
        .set(y.clone(), json!(3))
        .delete(x.clone())
        .set(Key::of(&["wx"]), json!(4));
    let CommitOutcome::Committed(vs2) = store.commit(write).await.unwrap() else {
        panic!()
    };
    let mut events = changes(&mut watch, 3).await;
    events.sort_by_key(|e| (e.revision(), e.key().encode()));
    assert_eq!(
        events,
        [
            WatchEvent::Put(Entry {
                key: x.clone(),
                value: json!(1).into(),
                versionstamp: vs1
            }),
            WatchEvent::Delete {
                key: x,
                versionstamp: vs2
            },
            WatchEvent::Put(Entry {
                key: y,
                value: json!(3).into(),
                versionstamp: vs2
            }),
        ]
    );
}

async fn a_compacted_start_is_an_error_and_a_relist_recovers(s: Subject) {
    let store = s.store.as_ref();
    let prefix = Key::of(&["c"]);
    let start = list(store, &prefix, limit(0)).await.revision;
    let mut last = Versionstamp::default();
    for i in 0..5 {
        last = put(store, &prefix.child(&i.to_string()), json!(i)).await;
    }
    (s.compact)(Revision::from(last));
    let mut stale = store.watch(&prefix, start).await.unwrap();
    let failure = tokio::time::timeout(Duration::from_secs(5), stale.next())
        .await
        .unwrap()
        .expect("a compacted watch must say so, not end silently");
    assert!(
        matches!(failure, Err(StoreError::Compacted { .. })),
        "{failure:?}"
    );
    // The consumer lists again and watches from the list's revision.
    let relisted = list(store, &prefix, ListOptions::default()).await;
    assert_eq!(relisted.entries.len(), 5);
    let mut watch = store.watch(&prefix, relisted.revision).await.unwrap();
    let next = put(store, &prefix.child("5"), json!(5)).await;
    assert_eq!(changes(&mut watch, 1).await[0].revision(), Revision::from(next));
}

async fn writes_over_the_limits_are_refused_whole(s: Subject) {
    let store = s.store.as_ref();
    let limits = store.limits();
    let small = Key::of(&["small"]);
    put(store, &small, json!(0)).await;
    let too_many = (0..limits.max_operations)
        .fold(AtomicWrite::new().set(small.clone(), json!(1)), |w, i| {
            w.set(Key::of(&["many", &i.to_string()]), json!(i))
        });
    let refused = store.commit(too_many).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::TooLarge {
                limit: Limit::Operations,
                ..
            })
        ),
        "{refused:?}"
    );
    let fits = (1..limits.max_operations).fold(AtomicWrite::new().set(small.clone(), json!(2)), |w, i| {
        w.set(Key::of(&["many", &i.to_string()]), json!(i))
    });
    assert!(matches!(
        store.commit(fits).await.unwrap(),
        CommitOutcome::Committed(_)
    ));
    let big = "v".repeat(MAX_VALUE_BYTES - 2);
    let heavy = (0..limits.max_request_bytes / MAX_VALUE_BYTES + 1).fold(AtomicWrite::new(), |w, i| {
        w.set(Key::of(&["heavy", &i.to_string()]), json!(big))
    });
    let refused = store.commit(heavy.set(small.clone(), json!(3))).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::TooLarge {
                limit: Limit::RequestBytes,
                ..
            })
        ),
        "{refused:?}"
    );
    let full = (0..limits.max_request_bytes / MAX_VALUE_BYTES - 1).fold(AtomicWrite::new(), |w, i| {
        w.set(Key::of(&["full", &i.to_string()]), json!(big))
    });
    committed(store, full).await;
    let big_key = Key::of(&[&"k".repeat(MAX_KEY_BYTES)]);
    let refused = store
        .commit(
            AtomicWrite::new()
                .set(small.clone(), json!(4))
                .set(big_key.clone(), json!(1)),
        )
        .await;
    assert!(matches!(
        refused,
        Err(StoreError::TooLarge {
            limit: Limit::KeyBytes,
            ..
        })
    ));
    let refused = store
        .commit(AtomicWrite::new().set(small.clone(), json!("v".repeat(MAX_VALUE_BYTES))))
        .await;
    assert!(matches!(
        refused,
        Err(StoreError::TooLarge {
            limit: Limit::ValueBytes,
            ..
        })
    ));
    assert_eq!(
        get(store, &small).await.unwrap().value,
        json!(2),
        "nothing of a refused write lands"
    );
    assert!(
        list(store, &Key::of(&["heavy"]), ListOptions::default())
            .await
            .entries
            .is_empty()
    );
    assert_eq!(get(store, &big_key).await, None);
    let at_limit = json!("v".repeat(MAX_VALUE_BYTES - 2));
    put(store, &small, at_limit.clone()).await;
    assert_eq!(get(store, &small).await.unwrap().value, at_limit);
}

/// Watches `prefix` from `after` until `n` deletes arrive, running the store's reaper meanwhile
/// (a no-op where the backend ends leases itself); fails after `within`.
async fn deletes_seen(
    store: &dyn Store,
    prefix: &Key,
    after: Revision,
    n: usize,
    within: Duration,
) -> Vec<(Key, Versionstamp)> {
    let mut watch = store.watch(prefix, after).await.unwrap();
    let mut deleted = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while deleted.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deletes seen: {deleted:?}"
        );
        store.reap_expired(100).await.unwrap();
        if let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(10), watch.next()).await {
            match item.unwrap() {
                WatchEvent::Delete { key, versionstamp } => deleted.push((key, versionstamp)),
                put => panic!("only deletes expected, got {put:?}"),
            }
        }
    }
    deleted
}

async fn committed(store: &dyn Store, write: AtomicWrite) -> Versionstamp {
    match store.commit(write).await.unwrap() {
        CommitOutcome::Committed(vs) => vs,
        CommitOutcome::CheckFailed => panic!("unconditional commit failed its checks"),
    }
}

async fn keys_of_an_ended_lease_vanish_and_watchers_see_the_deletes(s: Subject) {
    let store = s.store.as_ref();
    let prefix = Key::of(&["x"]);
    let lease = store.grant(s.short_ttl).await.unwrap();
    assert!(lease.ttl >= s.short_ttl);
    let other = store.grant(Duration::from_secs(600)).await.unwrap();
    let (a, b, moved, plain, re_set) = (
        prefix.child("a"),
        prefix.child("b"),
        prefix.child("moved"),
        prefix.child("plain"),
        prefix.child("re-set"),
    );
    let mut write = AtomicWrite::new().set(plain.clone(), json!(0));
    for key in [&a, &b, &moved, &re_set] {
        write = write.set_with_lease(key.clone(), json!(1), lease.id);
    }
    let written = committed(store, write).await;
    // Keys that left the lease since stay when it ends.
    committed(
        store,
        AtomicWrite::new().set_with_lease(moved.clone(), json!(2), other.id),
    )
    .await;
    let last = committed(store, AtomicWrite::new().set(re_set.clone(), json!(3))).await;
    assert_eq!(get(store, &a).await.unwrap().value, json!(1));
    let deleted = deletes_seen(
        store,
        &prefix,
        Revision::from(last),
        2,
        s.short_ttl * 20 + Duration::from_secs(5),
    )
    .await;
    let mut keys: Vec<Key> = deleted.iter().map(|(k, _)| k.clone()).collect();
    keys.sort_by_key(|k| k.encode());
    assert_eq!(keys, [a.clone(), b.clone()]);
    assert!(deleted.iter().all(|(_, vs)| *vs > last && *vs > written));
    assert_eq!(get(store, &a).await, None);
    let left = list(store, &prefix, ListOptions::default()).await;
    let mut expected = vec![moved, plain, re_set];
    expected.sort_by_key(|k| k.encode());
    assert_eq!(keys_sorted(&left), expected);
    // An ended lease takes no more keys and cannot be kept alive.
    let refused = store
        .commit(AtomicWrite::new().set_with_lease(a.clone(), json!(4), lease.id))
        .await;
    assert!(
        matches!(refused, Err(StoreError::LeaseNotFound(id)) if id == lease.id),
        "{refused:?}"
    );
    assert_eq!(get(store, &a).await, None);
    let kept = store.keep_alive(lease.id).await;
    assert!(matches!(kept, Err(StoreError::LeaseNotFound(_))), "{kept:?}");
}

fn keys_sorted(page: &Page) -> Vec<Key> {
    let mut keys = keys(page);
    keys.sort_by_key(|k| k.encode());
    keys
}

async fn a_kept_alive_lease_keeps_its_keys(s: Subject) {
    let store = s.store.as_ref();
    let key = Key::of(&["alive"]);
    let lease = store.grant(s.short_ttl).await.unwrap();
    committed(
        store,
        AtomicWrite::new().set_with_lease(key.clone(), json!(1), lease.id),
    )
    .await;
    let until = tokio::time::Instant::now() + s.short_ttl * 3;
    while tokio::time::Instant::now() < until {
        let ttl = store.keep_alive(lease.id).await.unwrap();
        assert!(ttl >= s.short_ttl);
        store.reap_expired(100).await.unwrap();
        assert_eq!(get(store, &key).await.unwrap().value, json!(1));
        tokio::time::sleep(s.short_ttl / 4).await;
    }
    let now = list(store, &key, limit(0)).await.revision;
    let deleted = deletes_seen(
        store,
        &Key::of(&[]),
        now,
        1,
        s.short_ttl * 20 + Duration::from_secs(5),
    )
    .await;
    assert_eq!(deleted[0].0, key);
}

async fn revoking_a_lease_deletes_its_keys_at_once(s: Subject) {
    let store = s.store.as_ref();
    let prefix = Key::of(&["r"]);
    let lease = store.grant(Duration::from_secs(600)).await.unwrap();
    let mut write = AtomicWrite::new().set(prefix.child("plain"), json!(0));
    for i in 0..3 {
        write = write.set_with_lease(prefix.child(&i.to_string()), json!(i), lease.id);
    }
    let written = committed(store, write).await;
    let mut watch = store.watch(&prefix, Revision::from(written)).await.unwrap();
    store.revoke(lease.id).await.unwrap();
    // Gone as soon as revoke returns, without a reaper.
    assert_eq!(
        keys(&list(store, &prefix, ListOptions::default()).await),
        [prefix.child("plain")]
    );
    let events = changes(&mut watch, 3).await;
    assert!(
        events.iter().all(|e| matches!(e, WatchEvent::Delete { .. })),
        "{events:?}"
    );
    store.revoke(lease.id).await.unwrap();
    let refused = store
        .commit(AtomicWrite::new().set_with_lease(prefix.child("late"), json!(1), lease.id))
        .await;
    assert!(
        matches!(refused, Err(StoreError::LeaseNotFound(_))),
        "{refused:?}"
    );
}

async fn a_watch_ends_with_an_error_when_its_store_goes(s: Subject) {
    let prefix = Key::of(&["gone"]);
    let now = list(s.store.as_ref(), &prefix, limit(0)).await.revision;
    let mut watch = s.store.watch(&prefix, now).await.unwrap();
    let Subject { store, compact, .. } = s;
    drop((store, compact));
    let item = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap();
    assert!(matches!(item, Some(Err(StoreError::Unavailable(_)))), "{item:?}");
    assert!(watch.next().await.is_none());
}

/// A value is kept as the text it was written as: reads, lists and watches hand back the same
/// bytes (number spellings, escapes, key order), and limits count those bytes.
async fn values_come_back_as_the_bytes_written(s: Subject) {
    let store = s.store.as_ref();
    let prefix = Key::of(&["raw"]);
    let mut watch = store.watch(&prefix, Revision(0)).await.unwrap();
    let texts: [&[u8]; 4] = [
        br#"{"z":1.50,"a":[1e3,-0,1E-7],"s":"\u00e9\n\ud83d\ude00","n":null}"#,
        "\"caf\u{e9} \u{1F600}\"".as_bytes(),
        b"12345678901234567890123456789",
        b"[true,false,{},[]]",
    ];
    let mut stamps = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let value = RawJson::from_untrusted(text).unwrap();
        stamps.push(committed(store, AtomicWrite::new().set(prefix.child(&i.to_string()), value)).await);
    }
    for (i, text) in texts.iter().enumerate() {
        let entry = get(store, &prefix.child(&i.to_string())).await.unwrap();
        assert_eq!(entry.value.as_str().as_bytes(), *text);
    }
    let page = list(store, &prefix, ListOptions::default()).await;
    let listed: Vec<&[u8]> = page.entries.iter().map(|e| e.value.as_str().as_bytes()).collect();
    assert_eq!(listed, texts);
    let events = changes(&mut watch, texts.len()).await;
    for (event, (text, stamp)) in events.iter().zip(texts.iter().zip(&stamps)) {
        let WatchEvent::Put(entry) = event else {
            panic!("expected a put, got {event:?}");
        };
        assert_eq!(
            (entry.value.as_str().as_bytes(), entry.versionstamp),
            (*text, *stamp)
        );
    }
    // A value of exactly the limit in bytes is accepted; one more byte (of whitespace) is
    // counted and refused.
    let body = "x".repeat(MAX_VALUE_BYTES - 2);
    let exact = RawJson::from_untrusted(format!("\"{body}\"").as_bytes()).unwrap();
    assert_eq!(exact.len(), MAX_VALUE_BYTES);
    committed(store, AtomicWrite::new().set(prefix.child("max"), exact)).await;
    let over = RawJson::from_untrusted(format!(" \"{body}\"").as_bytes()).unwrap();
    let refused = store
        .commit(AtomicWrite::new().set(prefix.child("over"), over))
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::TooLarge {
                limit: Limit::ValueBytes,
                ..
            })
        ),
        "{refused:?}"
    );
}

/// `list_all_json` is the whole prefix as `list_all` reads it, written as one JSON array —
/// past the first few hundred entries, with keys that need escaping, keys of every part kind,
/// and without entries whose lease has ended.
async fn a_whole_prefix_lists_as_json_like_its_entries(s: Subject) {
    let store = s.store.as_ref();
    let prefix = Key::of(&["j"]);
    async fn as_listed(store: &dyn Store) -> (Page, ListedJson) {
        let page = list_all(store, &Key::of(&["j"])).await.unwrap();
        let listed = store.list_all_json(&Key::of(&["j"]), 0).await.unwrap();
        (page, listed)
    }
    for chunk in (0..600).collect::<Vec<_>>().chunks(100) {
        let write = chunk.iter().fold(AtomicWrite::new(), |w, i| {
            let text = format!(r#"{{"i":{i},"f":1.50,"s":"\u00e9"}}"#);
            w.set(
                prefix.child(&format!("{i:04}")),
                RawJson::from_untrusted(text.as_bytes()).unwrap(),
            )
        });
        committed(store, write).await;
    }
    let odd_keys = [
        Key(vec![
            KeyPart::Str("j".into()),
            KeyPart::Str("quote \" back \\ nul \0 tab \t".into()),
        ]),
        Key(vec![
            KeyPart::Str("j".into()),
            KeyPart::Num(-1.5),
            KeyPart::Bool(true),
        ]),
        Key(vec![KeyPart::Str("j".into()), KeyPart::Num(7.0)]),
        Key(vec![KeyPart::Str("j".into()), KeyPart::Bool(false)]),
    ];
    let mut write = AtomicWrite::new()
        .set(Key::of(&["j"]), json!("the prefix itself"))
        .set(Key::of(&["jj"]), json!("a sibling"));
    for key in &odd_keys {
        write = write.set(key.clone(), json!([1, "two", null]));
    }
    committed(store, write).await;
    let lease = store.grant(s.short_ttl).await.unwrap();
    let leased = prefix.child("leased");
    committed(
        store,
        AtomicWrite::new().set_with_lease(leased.clone(), json!(1), lease.id),
    )
    .await;

    let (page, listed) = as_listed(store).await;
    assert_eq!(page.entries.len(), 605);
    assert_eq!(listed.entries, 605);
    assert_eq!(listed.json, Entry::json_array(&page.entries));
    assert_eq!(listed.revision, page.revision);
    let parsed: Value = serde_json::from_str(&listed.json).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 605);
    for key in &odd_keys {
        assert!(
            parsed
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["key"] == key.to_json()),
            "{key}"
        );
    }

    let deadline = tokio::time::Instant::now() + s.short_ttl * 20 + Duration::from_secs(5);
    while get(store, &leased).await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the lease never ended");
        tokio::time::sleep(s.short_ttl / 2).await;
    }
    let (page, listed) = as_listed(store).await;
    assert_eq!(listed.entries, 604);
    assert_eq!(listed.json, Entry::json_array(&page.entries));

    let empty = store
        .list_all_json(&Key::of(&["nothing"]), 1 << 20)
        .await
        .unwrap();
    assert_eq!((empty.json.as_str(), empty.entries), ("[]", 0));
}

macro_rules! contract {
    ($backend:ident: $($case:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::$backend().await).await;
                }
            )+
        }
    };
}

macro_rules! every_case {
    ($backend:ident) => {
        contract!($backend:
            reads_carry_the_revision_they_saw,
            the_last_mutation_of_a_key_wins,
            checks_pass_or_write_nothing,
            concurrent_commits_on_one_versionstamp_have_one_winner,
            lists_keep_key_order_prefix_and_say_when_more_remain,
            pages_resume_after_a_key_both_ways,
            a_long_list_pages_through_the_store,
            a_watch_from_a_list_revision_misses_nothing,
            a_watch_reports_puts_and_deletes_of_its_prefix_only,
            a_compacted_start_is_an_error_and_a_relist_recovers,
            writes_over_the_limits_are_refused_whole,
            keys_of_an_ended_lease_vanish_and_watchers_see_the_deletes,
            a_kept_alive_lease_keeps_its_keys,
            revoking_a_lease_deletes_its_keys_at_once,
            a_watch_ends_with_an_error_when_its_store_goes,
            values_come_back_as_the_bytes_written,
            a_whole_prefix_lists_as_json_like_its_entries,
        );
    };
}

every_case!(fjall);
every_case!(fjall_fsync);
#[cfg(feature = "etcd")]
every_case!(etcd);
