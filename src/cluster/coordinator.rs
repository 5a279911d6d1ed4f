//! Election and fencing of leader-mode workers (W-LE-1..4) behind one [`Coordinator`], so that a
//! backend with native election can implement it directly. [`StoreCoordinator`] builds it on
//! any [`Store`]'s leases and compares.
//!
//! Records, per worker `sid`:
//! - `["ami","leader",sid]`: who leads (a [`LeaderRecord`]), attached to the leader's store
//!   lease, so it vanishes — and watchers see it go — when the leader stops renewing;
//! - `["ami","leader-epoch",sid]`: `{epoch}`, never leased: the fencing number, raised by every
//!   change of holder. A fenced write compares this record's versionstamp, so it fails once a
//!   newer term has begun anywhere in the cluster.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::store::{
    AtomicWrite, CommitOutcome, Key, LeaseId, RawJson, Store, StoreError, StoreResult, Versionstamp,
};

/// The key of the leader record of worker `sid`.
pub fn leader_key(sid: &str) -> Key {
    Key::of(&["ami", "leader", sid])
}

/// The key of the fencing number of worker `sid`.
fn epoch_key(sid: &str) -> Key {
    Key::of(&["ami", "leader-epoch", sid])
}

/// Who leads a worker, as stored and as `getLeaderInfo` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaderRecord {
    /// The leading node's id.
    pub leader: String,
    /// The worker it leads.
    pub worker_id: String,
    /// When this node was elected (ms since the epoch; kept across renewals).
    pub timestamp: i64,
    /// When the lease ends unless renewed (ms since the epoch, the leader's clock).
    pub expires_at: i64,
    /// The last renewal (ms since the epoch).
    pub renewed_at: i64,
    /// The fencing number of this term.
    pub epoch: Option<u64>,
}

/// One term of leadership held by this node.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// The worker led.
    pub sid: String,
    /// The fencing number (`Stels.config.leaseEpoch`).
    pub epoch: u64,
    /// The store lease the leader record hangs on.
    lease: LeaseId,
    /// The versionstamp of the leader record as this node last wrote it.
    record: Versionstamp,
    /// The versionstamp of the epoch record that began this term.
    fence: Versionstamp,
    /// When this term began (ms since the epoch).
    elected_at: i64,
}

#[cfg(test)]
impl Term {
    /// A term as a coordinator under test hands out.
    pub(crate) fn for_test(sid: &str, epoch: u64) -> Term {
        Term {
            sid: sid.to_string(),
            epoch,
            lease: LeaseId(epoch),
            record: Versionstamp::from_counter(epoch),
            fence: Versionstamp::from_counter(epoch),
            elected_at: 0,
        }
    }
}

/// What a leader's writes are checked against: the versionstamp of its worker's epoch record as
/// its term began. Another node's election rewrites that record, so a write that still checks
/// it is refused anywhere in the cluster once a newer term has begun (W-LE-4).
#[derive(Clone, Debug, PartialEq)]
pub struct Fence {
    /// The term's fencing number.
    pub epoch: u64,
    /// The epoch record's key.
    key: Key,
    /// Its versionstamp as the term began.
    versionstamp: Versionstamp,
}

impl Fence {
    /// The check a fenced commit adds.
    pub fn check(&self) -> (Key, Versionstamp) {
        (self.key.clone(), self.versionstamp)
    }

    /// Whether a newer term has begun, read from `store` now.
    pub async fn is_stale(&self, store: &dyn Store) -> StoreResult<bool> {
        let current = store.get(&self.key).await?.entry.map(|e| e.versionstamp);
        Ok(current != Some(self.versionstamp))
    }
}

impl Term {
    /// The fence of this term's writes.
    pub fn fence(&self) -> Fence {
        Fence {
            epoch: self.epoch,
            key: epoch_key(&self.sid),
            versionstamp: self.fence,
        }
    }
}

/// What a campaign found.
#[derive(Clone, Debug, PartialEq)]
pub enum Campaign {
    /// This node now leads.
    Elected(Term),
    /// Another node leads; its lease ends in about `ends_in` unless renewed.
    Held {
        /// The leading node's id (empty when the race was lost to a candidate not known yet).
        leader: String,
        /// When its term could end, unless renewed.
        ends_in: Duration,
    },
}

/// Leader election and fencing for leader-mode workers. Every method makes a bounded number
/// of store calls; `renew` and `fenced_commit` fail with [`StoreError::Conflict`] once the term
/// is over, and never report success for a term another node has taken.
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// One attempt to lead `sid`.
    async fn campaign(&self, sid: &str) -> StoreResult<Campaign>;

    /// Extends `term` by the lease duration from (no earlier than) the moment of the call.
    async fn renew(&self, term: &mut Term) -> StoreResult<()>;

    /// Ends `term` now, so another node can take over at once.
    async fn resign(&self, term: &Term) -> StoreResult<()>;

    /// Who leads `sid` now, if anyone.
    async fn leader(&self, sid: &str) -> StoreResult<Option<LeaderRecord>>;

    /// Commits `write` only while `term` is the newest term of its worker.
    async fn fenced_commit(&self, term: &Term, write: AtomicWrite) -> StoreResult<CommitOutcome>;
}

/// [`Coordinator`] on a [`Store`]'s leases and compares.
pub struct StoreCoordinator {
    store: Arc<dyn Store>,
    /// This node's id, written as `leader`.
    nid: String,
    /// How long a term lasts without renewal.
    lease: Duration,
    clock: Clock,
}

impl StoreCoordinator {
    /// Elections on `store` for node `nid`, with terms lasting `lease` unless renewed.
    pub fn new(store: Arc<dyn Store>, nid: String, lease: Duration, clock: Clock) -> StoreCoordinator {
        StoreCoordinator {
            store,
            nid,
            lease,
            clock,
        }
    }

    fn record(&self, sid: &str, elected_at: i64, epoch: u64) -> Value {
        let now = self.clock.wall_ms();
        let lease = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        json!({
            "leader": self.nid,
            "workerId": sid,
            "timestamp": elected_at,
            "expiresAt": now.saturating_add(lease),
            "renewedAt": now,
            "epoch": epoch,
        })
    }
}

fn parse_record(value: &RawJson) -> LeaderRecord {
    value.deserialize().unwrap_or_default()
}

fn lost(sid: &str, why: &str) -> StoreError {
    StoreError::Conflict(format!("leadership of {sid} lost: {why}"))
}

#[async_trait]
impl Coordinator for StoreCoordinator {
    async fn campaign(&self, sid: &str) -> StoreResult<Campaign> {
        let record_key = leader_key(sid);
        let current = self.store.get(&record_key).await?.entry;
        let current_record = current.as_ref().map(|e| parse_record(&e.value));
        if let Some(record) = &current_record
            && record.leader != self.nid
        {
            let ends_in = u64::try_from(record.expires_at.saturating_sub(self.clock.wall_ms())).unwrap_or(0);
            return Ok(Campaign::Held {
                leader: record.leader.clone(),
                ends_in: Duration::from_millis(ends_in).min(self.lease),
            });
        }
        let fence_key = epoch_key(sid);
        let fence = self.store.get(&fence_key).await?.entry;
        let stored_epoch = fence
            .as_ref()
            .and_then(|e| e.value.parse().ok()?.get("epoch")?.as_u64())
            .unwrap_or(0);
        let lease = self.store.grant(self.lease).await?;
        let mut write = AtomicWrite::new()
            .check(record_key.clone(), current.as_ref().map(|e| e.versionstamp))
            .check(fence_key.clone(), fence.as_ref().map(|e| e.versionstamp));
        // Still ours from before a restart of this node: the same term on a fresh lease.
        let continued = match (&current_record, &fence) {
            (Some(record), Some(fence)) if record.epoch == Some(stored_epoch) => {
                Some((record.timestamp, fence.versionstamp))
            }
            _ => None,
        };
        let (epoch, elected_at) = match continued {
            Some((elected_at, _)) => (stored_epoch, elected_at),
            None => {
                let epoch = stored_epoch + 1;
                write = write.set(fence_key, json!({ "epoch": epoch }));
                (epoch, self.clock.wall_ms())
            }
        };
        write = write.set_with_lease(record_key, self.record(sid, elected_at, epoch), lease.id);
        match self.store.commit(write).await {
            Ok(CommitOutcome::Committed(stamp)) => Ok(Campaign::Elected(Term {
                sid: sid.to_string(),
                epoch,
                lease: lease.id,
                record: stamp,
                fence: continued.map_or(stamp, |(_, fence)| fence),
                elected_at,
            })),
            outcome => {
                // Lost a race with another candidate (or failed): the fresh lease holds nothing.
                if let Err(e) = self.store.revoke(lease.id).await {
                    tracing::debug!(%sid, error = %e, "revoking an unused campaign lease failed; it will expire");
                }
                outcome?;
                Ok(Campaign::Held {
                    leader: String::new(),
                    ends_in: Duration::ZERO,
                })
            }
        }
    }

    async fn renew(&self, term: &mut Term) -> StoreResult<()> {
        match self.store.keep_alive(term.lease).await {
            Err(StoreError::LeaseNotFound(_)) => return Err(lost(&term.sid, "its lease ended")),
            other => other?,
        };
        let key = leader_key(&term.sid);
        let write = AtomicWrite::new()
            .check(key.clone(), Some(term.record))
            .set_with_lease(
                key,
                self.record(&term.sid, term.elected_at, term.epoch),
                term.lease,
            );
        match self.store.commit(write).await {
            Ok(CommitOutcome::Committed(stamp)) => {
                term.record = stamp;
                Ok(())
            }
            Ok(CommitOutcome::CheckFailed) => Err(lost(&term.sid, "another node took it")),
            Err(StoreError::LeaseNotFound(_)) => Err(lost(&term.sid, "its lease ended")),
            Err(e) => Err(e),
        }
    }

    async fn resign(&self, term: &Term) -> StoreResult<()> {
        self.store.revoke(term.lease).await
    }

    async fn leader(&self, sid: &str) -> StoreResult<Option<LeaderRecord>> {
        Ok(self
            .store
            .get(&leader_key(sid))
            .await?
            .entry
            .map(|e| parse_record(&e.value)))
    }

    async fn fenced_commit(&self, term: &Term, write: AtomicWrite) -> StoreResult<CommitOutcome> {
        let fence = term.fence();
        let (key, versionstamp) = fence.check();
        match self.store.commit(write.check(key, Some(versionstamp))).await? {
            CommitOutcome::CheckFailed if fence.is_stale(self.store.as_ref()).await? => {
                Err(lost(&term.sid, "a newer term has begun"))
            }
            outcome => Ok(outcome),
        }
    }
}
