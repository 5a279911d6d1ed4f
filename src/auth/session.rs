//! Sessions (W-AUTH-2, W-AUTH-4): opaque tokens handed out by `connectionNode`, persisted in the
//! store so they survive a restart (and are valid on every node of a cluster), expiring after a
//! configurable idle time.
//!
//! The store keeps only the SHA-256 of a session token (`["ami","session",<hash>]`), so a copy
//! of the data directory holds no usable session. Activity extends a session; to avoid a write
//! per request, the stored expiry is refreshed at most once per [`TOUCH_EVERY`] of the idle time.
//! Stored sessions and login replay marks (`["ami","login",<digest>]`) are attached to the
//! store's shared expiry leases, so they vanish by themselves on every backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::Digest;

use crate::clock::Clock;
use crate::store::{AtomicWrite, CommitOutcome, ExpiryLeases, Key, Store, StoreError};

/// Fraction of the idle time after which activity is written back to the store.
const TOUCH_EVERY: u32 = 24;
/// Sessions kept in memory at most; past it expired ones go first, then the longest idle
/// (they are read back from the store on their next use).
const MAX_CACHED: usize = 100_000;

/// A session as the node knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The wallet address that logged in.
    pub address: String,
    /// Last activity (ms since the epoch).
    pub last_seen: i64,
    /// When `last_seen` was last written to the store.
    persisted_seen: i64,
}

/// A new session's secrets, returned once to the client.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// The session token the client sends back.
    pub session: String,
    /// A second random value the existing client stores as its token.
    pub token: String,
}

/// Session storage with an in-memory cache in front of the store.
pub struct Sessions {
    store: Arc<dyn Store>,
    /// Leases of `store` that stored sessions and replay marks are attached to.
    expiry: Arc<ExpiryLeases>,
    idle: Duration,
    clock: Clock,
    max_cached: usize,
    cache: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    // Two v4 UUIDs: 244 random bits from the OS generator, URL-safe as hex.
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn digest(session: &str) -> String {
    hex::encode(sha2::Sha256::digest(session.as_bytes()))
}

fn key(hash: &str) -> Key {
    Key::of(&["ami", "session", hash])
}

fn login_mark_key(digest: &str) -> Key {
    Key::of(&["ami", "login", digest])
}

fn idle_ms(idle: Duration) -> i64 {
    i64::try_from(idle.as_millis()).unwrap_or(i64::MAX)
}

impl Sessions {
    /// Sessions on `store`, expiring after `idle` without activity by `clock`; `expiry` must
    /// grant its leases on the same store.
    pub fn new(store: Arc<dyn Store>, expiry: Arc<ExpiryLeases>, idle: Duration, clock: Clock) -> Self {
        Self::with_max_cached(store, expiry, idle, clock, MAX_CACHED)
    }

    fn with_max_cached(
        store: Arc<dyn Store>,
        expiry: Arc<ExpiryLeases>,
        idle: Duration,
        clock: Clock,
        max_cached: usize,
    ) -> Self {
        Sessions {
            store,
            expiry,
            idle,
            clock,
            max_cached: max_cached.max(1),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Caches `session` under `hash`, making room first if the cache is full.
    fn remember(&self, hash: String, session: Session, now: i64) {
        let mut cache = self.cache();
        if !cache.contains_key(&hash) {
            let idle = idle_ms(self.idle);
            super::room::make_room(
                &mut cache,
                self.max_cached,
                |s| now.saturating_sub(s.last_seen) > idle,
                |s| Some(s.last_seen),
            );
        }
        cache.insert(hash, session);
    }

    /// Stores the session record under `hash`, attached to a lease that outlives the idle time.
    async fn store_record(
        &self,
        hash: &str,
        address: &str,
        created: i64,
        last_seen: i64,
    ) -> Result<(), StoreError> {
        let idle = u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX);
        let lease = self.expiry.lease_for(idle).await?;
        let value = json!({"address": address, "createdAt": created, "lastSeen": last_seen});
        self.store
            .commit(AtomicWrite::new().set_with_lease(key(hash), value, lease.id))
            .await?;
        Ok(())
    }

    /// Marks the signed login request with `digest` as used for `keep`, for `address`; `false`
    /// when it was already used (a replay), on any node sharing the store.
    pub async fn claim_login(&self, digest: &str, address: &str, keep: Duration) -> Result<bool, StoreError> {
        let keep = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        let lease = self.expiry.lease_for(keep).await?;
        let mark = login_mark_key(digest);
        let write = AtomicWrite::new().check(mark.clone(), None).set_with_lease(
            mark,
            json!({"address": address}),
            lease.id,
        );
        Ok(self.store.commit(write).await? != CommitOutcome::CheckFailed)
    }

    /// Creates a session for `address`; acknowledged only once stored.
    pub async fn create(&self, address: &str) -> Result<NewSession, StoreError> {
        let session = random_hex();
        let hash = digest(&session);
        let now = self.clock.wall_ms();
        self.store_record(&hash, address, now, now).await?;
        self.remember(
            hash,
            Session {
                address: address.to_string(),
                last_seen: now,
                persisted_seen: now,
            },
            now,
        );
        Ok(NewSession {
            session,
            token: random_hex(),
        })
    }

    /// The live session `session`, extended by this use; `None` when unknown or expired.
    pub async fn lookup(&self, session: &str) -> Result<Option<Session>, StoreError> {
        if session.is_empty() || session.len() > 256 {
            return Ok(None);
        }
        let hash = digest(session);
        let now = self.clock.wall_ms();
        let idle = idle_ms(self.idle);
        let cached = self.cache().get(&hash).cloned();
        let mut current = match cached {
            Some(s) => s,
            None => {
                let Some(entry) = self.store.get(&key(&hash)).await?.entry else {
                    return Ok(None);
                };
                let value = entry.value.parse().unwrap_or_default();
                let address = value
                    .get("address")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let last_seen = value.get("lastSeen").and_then(Value::as_i64).unwrap_or(0);
                Session {
                    address,
                    last_seen,
                    persisted_seen: last_seen,
                }
            }
        };
        if now.saturating_sub(current.last_seen) > idle {
            self.cache().remove(&hash);
            return Ok(None);
        }
        current.last_seen = now;
        if now.saturating_sub(current.persisted_seen) > idle / i64::from(TOUCH_EVERY) {
            let created = match self.store.get(&key(&hash)).await?.entry {
                Some(entry) => entry
                    .value
                    .parse()
                    .unwrap_or_default()
                    .get("createdAt")
                    .and_then(Value::as_i64)
                    .unwrap_or(now),
                // Expired in the store meanwhile (another node saw no activity either).
                None => {
                    self.cache().remove(&hash);
                    return Ok(None);
                }
            };
            self.store_record(&hash, &current.address, created, now).await?;
            current.persisted_seen = now;
        }
        self.remember(hash, current.clone(), now);
        Ok(Some(current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fjall::{FjallOptions, FjallStore};

    /// A store for tests on tokio's paused clock: without a call deadline, which the paused
    /// clock would reach while a disk thread works.
    fn paused_store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        let options = FjallOptions {
            fsync: false,
            call_timeout: None,
            ..FjallOptions::default()
        };
        Arc::new(FjallStore::open_with(dir.path(), options).unwrap())
    }

    /// Wall time that follows tokio's paused clock, from the real time now.
    fn paused_clock() -> Clock {
        Clock::following_tokio(Clock::system().wall_ms())
    }

    fn sessions_on(store: Arc<dyn Store>, idle: Duration, clock: &Clock) -> Sessions {
        let expiry = Arc::new(ExpiryLeases::new(
            store.clone(),
            Duration::from_millis(50),
            clock.clone(),
        ));
        Sessions::new(store, expiry, idle, clock.clone())
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_persist_expire_and_are_url_safe() {
        let clock = paused_clock();
        let dir = tempfile::tempdir().unwrap();
        let store = paused_store(&dir);
        let sessions = sessions_on(store.clone(), Duration::from_millis(300), &clock);
        let new = sessions.create("gAddr").await.unwrap();
        assert!(new.session.bytes().all(|b| b.is_ascii_hexdigit()) && new.session.len() == 64);
        assert!(!new.token.is_empty() && new.token != new.session);
        assert_eq!(
            sessions.lookup(&new.session).await.unwrap().unwrap().address,
            "gAddr"
        );
        // A fresh cache (another node, or after a restart) finds it in the store.
        let other = sessions_on(store.clone(), Duration::from_millis(300), &clock);
        assert!(other.lookup(&new.session).await.unwrap().is_some());
        assert!(other.lookup("nope").await.unwrap().is_none());
        // The raw token is not what is stored.
        let stored = store
            .list(&Key::of(&["ami", "session"]), Default::default())
            .await
            .unwrap()
            .entries;
        assert!(
            stored
                .iter()
                .all(|e| e.key.last_str() != Some(new.session.as_str()))
        );
        // Idle too long: gone.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(sessions.lookup(&new.session).await.unwrap().is_none());
        assert!(
            sessions_on(store, Duration::from_millis(300), &clock)
                .lookup(&new.session)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn activity_keeps_a_session_alive() {
        let clock = paused_clock();
        let dir = tempfile::tempdir().unwrap();
        let store = paused_store(&dir);
        let sessions = sessions_on(store.clone(), Duration::from_millis(400), &clock);
        let new = sessions.create("gAddr").await.unwrap();
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(sessions.lookup(&new.session).await.unwrap().is_some());
        }
        // And the store copy was kept alive too.
        assert!(
            sessions_on(store, Duration::from_millis(400), &clock)
                .lookup(&new.session)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_drops_expired_and_idle_sessions_first() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FjallStore::open(dir.path(), false).unwrap());
        let clock = Clock::system();
        let sessions = Sessions::with_max_cached(
            store.clone(),
            Arc::new(ExpiryLeases::new(store, Duration::from_millis(50), clock.clone())),
            Duration::from_secs(60),
            clock.clone(),
            20,
        );
        let mut created = Vec::new();
        for i in 0..100 {
            created.push(sessions.create(&format!("g{i}")).await.unwrap().session);
            assert!(sessions.cache().len() <= 20);
        }
        // Evicted sessions are still valid: they are read back from the store.
        assert_eq!(sessions.lookup(&created[0]).await.unwrap().unwrap().address, "g0");
        assert!(sessions.cache().len() <= 20);
        // Expired entries are the first to go when room is needed.
        let now = clock.wall_ms();
        {
            let mut cache = sessions.cache();
            cache.clear();
            for i in 0..20 {
                let last_seen = if i < 5 { now - 61_000 } else { now };
                cache.insert(
                    format!("h{i}"),
                    Session {
                        address: format!("a{i}"),
                        last_seen,
                        persisted_seen: last_seen,
                    },
                );
            }
        }
        sessions.create("fresh").await.unwrap();
        let cache = sessions.cache();
        assert_eq!(cache.len(), 16);
        assert!((0..5).all(|i| !cache.contains_key(&format!("h{i}"))));
        assert!((5..20).all(|i| cache.contains_key(&format!("h{i}"))));
    }
}
