//! Leader leases (W-LE-1..3): per leader-mode worker, nodes compete for the record
//! `["ami","leader",sid]` with atomic checks; the holder renews it, and stops its run before
//! any other node could acquire it.
//!
//! Times: `expiresAt`/`renewedAt` are wall-clock milliseconds shared with other nodes (so clocks
//! must roughly agree); the holder's own deadline is measured on its monotonic clock from the
//! moment it *sent* the write that granted or renewed the lease, which is never later than the
//! moment the store applied it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::{AtomicWrite, CommitOutcome, Key, Store, Versionstamp};
use crate::workers::model::now_ms;

/// The key of the lease of worker `sid`.
pub fn lease_key(sid: &str) -> Key {
    Key::of(&["ami", "leader", sid])
}

/// Timing of leases.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTiming {
    /// How long a granted or renewed lease is valid.
    pub duration: Duration,
    /// How often the holder renews it.
    pub renew_interval: Duration,
    /// How long a stopping run may take; the holder asks its run to stop this much (plus a
    /// margin) before its lease could expire.
    pub stop_grace: Duration,
}

impl LeaseTiming {
    /// How long after sending a successful grant/renewal the holder may keep running.
    fn hold_for(&self) -> Duration {
        self.duration
            .saturating_sub(self.stop_grace)
            .saturating_sub(self.duration / 20)
    }
}

/// A change of this node's hold on one lease.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseChange {
    pub sid: String,
    /// `Some(epoch)`: this node now holds the lease; `None`: it no longer does.
    pub epoch: Option<u64>,
}

struct Held {
    versionstamp: Versionstamp,
    epoch: u64,
    /// When the lease was granted to this node (kept across renewals, shown as `timestamp`).
    elected_at: i64,
    /// Past this instant the run must already be stopping.
    deadline: Instant,
}

fn lease_value(nid: &str, sid: &str, elected_at: i64, now: i64, timing: &LeaseTiming, epoch: u64) -> Value {
    let duration = i64::try_from(timing.duration.as_millis()).unwrap_or(i64::MAX);
    json!({
        "leader": nid,
        "workerId": sid,
        "timestamp": elected_at,
        "expiresAt": now.saturating_add(duration),
        "renewedAt": now,
        "epoch": epoch,
    })
}

/// Competes for and holds the lease of `sid` until `cancel`, then releases it if held.
/// Every change of hold is sent on `changes`.
pub async fn hold_lease(
    store: Arc<dyn Store>,
    nid: String,
    sid: String,
    timing: LeaseTiming,
    changes: mpsc::UnboundedSender<LeaseChange>,
    cancel: CancellationToken,
) {
    let key = lease_key(&sid);
    let mut held: Option<Held> = None;
    let report = |epoch: Option<u64>| {
        let _ = changes.send(LeaseChange {
            sid: sid.clone(),
            epoch,
        });
    };
    loop {
        let wait = match &mut held {
            None => match try_acquire(&*store, &key, &nid, &sid, &timing).await {
                Ok(Ok(h)) => {
                    tracing::info!(%sid, epoch = h.epoch, "leader lease acquired");
                    report(Some(h.epoch));
                    held = Some(h);
                    timing.renew_interval
                }
                // Someone else holds it: look again when it could expire, or at the renew pace.
                Ok(Err(wait)) => wait.min(timing.renew_interval),
                Err(e) => {
                    tracing::warn!(%sid, error = %e, "leader lease: store unavailable");
                    timing.renew_interval
                }
            },
            Some(h) => {
                let started = Instant::now();
                if started >= h.deadline {
                    tracing::warn!(%sid, "leader lease not renewed in time; stopping the run");
                    held = None;
                    report(None);
                    continue;
                }
                let now = now_ms();
                let value = lease_value(&nid, &sid, h.elected_at, now, &timing, h.epoch);
                let write = AtomicWrite::new()
                    .check(key.clone(), Some(h.versionstamp))
                    .set(key.clone(), value);
                match store.commit(write).await {
                    Ok(CommitOutcome::Committed(vs)) => {
                        h.versionstamp = vs;
                        h.deadline = started + timing.hold_for();
                        timing.renew_interval
                    }
                    Ok(CommitOutcome::CheckFailed) => {
                        tracing::warn!(%sid, "leader lease taken by another node");
                        held = None;
                        report(None);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(%sid, error = %e, "leader lease renewal failed; retrying");
                        (timing.renew_interval / 4).min(h.deadline.saturating_duration_since(Instant::now()))
                    }
                }
            }
        };
        let sleep_until = match &held {
            Some(h) => (Instant::now() + wait).min(h.deadline),
            None => Instant::now() + wait,
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(sleep_until) => {}
        }
    }
    if let Some(h) = held {
        let write = AtomicWrite::new()
            .check(key.clone(), Some(h.versionstamp))
            .delete(key.clone());
        match store.commit(write).await {
            Ok(_) => tracing::info!(%sid, "leader lease released"),
            Err(e) => tracing::warn!(%sid, error = %e, "leader lease release failed; it will expire"),
        }
        report(None);
    }
}

/// One attempt: `Ok(Ok(held))` when acquired, `Ok(Err(wait))` when another node holds a live
/// lease that expires in `wait`.
async fn try_acquire(
    store: &dyn Store,
    key: &Key,
    nid: &str,
    sid: &str,
    timing: &LeaseTiming,
) -> Result<Result<Held, Duration>, crate::store::StoreError> {
    let current = store.get(key).await?.entry;
    let now = now_ms();
    let (expected, epoch) = match &current {
        None => (None, 1),
        Some(entry) => {
            let leader = entry
                .value
                .get("leader")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let expires_at = entry.value.get("expiresAt").and_then(Value::as_i64).unwrap_or(0);
            let epoch = entry.value.get("epoch").and_then(Value::as_u64).unwrap_or(0);
            if leader != nid && expires_at > now {
                let wait = u64::try_from(expires_at - now).unwrap_or(0);
                return Ok(Err(Duration::from_millis(wait)));
            }
            // Expired, or ours from before a restart of this node: take it (a new epoch when the
            // holder changes, W-LE-4's fencing number).
            (
                Some(entry.versionstamp),
                if leader == nid { epoch.max(1) } else { epoch + 1 },
            )
        }
    };
    let started = Instant::now();
    let value = lease_value(nid, sid, now, now, timing, epoch);
    let write = AtomicWrite::new()
        .check(key.clone(), expected)
        .set(key.clone(), value);
    match store.commit(write).await? {
        CommitOutcome::Committed(versionstamp) => Ok(Ok(Held {
            versionstamp,
            epoch,
            elected_at: now,
            deadline: started + timing.hold_for(),
        })),
        // Lost a race: someone acquired it between our read and write.
        CommitOutcome::CheckFailed => Ok(Err(Duration::from_millis(10))),
    }
}
