//! A [`Store`] that times its commits for the node's metrics and otherwise passes every call
//! through unchanged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    AtomicWrite, CommitOutcome, Got, Key, Lease, LeaseId, Limits, ListOptions, ListedJson, Page, Reaped,
    Revision, Store, StoreResult, WatchStream,
};
use crate::metrics::StoreMetrics;

/// `inner`, its commits counted in `metrics`.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: StoreMetrics,
}

impl MeteredStore {
    /// Times the commits of `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: StoreMetrics) -> Self {
        MeteredStore { inner, metrics }
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &Key) -> StoreResult<Got> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &Key, options: ListOptions) -> StoreResult<Page> {
        self.inner.list(prefix, options).await
    }

    async fn list_all_json(&self, prefix: &Key, reserve: usize) -> StoreResult<ListedJson> {
        self.inner.list_all_json(prefix, reserve).await
    }

    async fn commit(&self, write: AtomicWrite) -> StoreResult<CommitOutcome> {
        let started = Instant::now();
        let outcome = self.inner.commit(write).await;
        match &outcome {
            Ok(_) => self.metrics.committed(started.elapsed()),
            Err(_) => self.metrics.failed(),
        }
        outcome
    }

    async fn watch(&self, prefix: &Key, after: Revision) -> StoreResult<WatchStream> {
        self.inner.watch(prefix, after).await
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }

    async fn grant(&self, ttl: Duration) -> StoreResult<Lease> {
        self.inner.grant(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
        self.inner.keep_alive(lease).await
    }

    async fn revoke(&self, lease: LeaseId) -> StoreResult<()> {
        self.inner.revoke(lease).await
    }

    fn journal_syncs(&self) -> Option<u64> {
        self.inner.journal_syncs()
    }

    async fn flush(&self) -> StoreResult<()> {
        self.inner.flush().await
    }

    async fn reap_expired(&self, max: usize) -> StoreResult<Reaped> {
        self.inner.reap_expired(max).await
    }
}
