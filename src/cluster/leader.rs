//! Holding the leadership of one leader-mode worker (W-LE-1..3): campaign through the
//! [`Coordinator`] until elected, renew the term, and stop the run before the lease could pass
//! to another node.
//!
//! The holder's deadline is measured on the monotonic clock from the moment it *sent* the call
//! that granted or renewed its term, which is never later than the moment the store started
//! the lease's new TTL. Every call the holder makes is bounded by that deadline, so a slow or
//! hung store cannot keep a run going past it: the run is told to stop at the deadline at the
//! latest, `stop_grace` plus a margin before the lease can end.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::coordinator::{Campaign, Coordinator, Fence, Term};
use crate::store::StoreError;

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
    pub fn hold_for(&self) -> Duration {
        self.duration
            .saturating_sub(self.stop_grace)
            .saturating_sub(self.duration / 20)
    }
}

/// A change of this node's hold on one lease.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseChange {
    /// The worker.
    pub sid: String,
    /// `Some(fence)`: this node now holds the lease, and its run's writes carry this fence;
    /// `None`: it no longer does.
    pub fence: Option<Fence>,
}

/// The term this node holds and until when its run may go on.
struct Holding {
    term: Term,
    deadline: Instant,
}

/// What the holder does after a renewal attempt that was sent at `sent` and came back at
/// `now` (`None`: cut off at the deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterRenewal {
    /// Confirmed: run on until this new deadline; renew again at `next`.
    Extended { deadline: Instant, next: Instant },
    /// Not confirmed yet: try again at `next` (before the unchanged deadline).
    Retry { next: Instant },
    /// Stop the run now.
    Stop(StopReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    /// The renewal could not be confirmed before the deadline.
    Deadline,
    /// Another node has the lease, or the lease ended.
    Lost,
}

/// The decision after a renewal: pure, so every timing rule is tested without a store.
fn after_renewal(
    timing: &LeaseTiming,
    deadline: Instant,
    sent: Instant,
    now: Instant,
    outcome: Option<Result<(), &StoreError>>,
) -> AfterRenewal {
    match outcome {
        // Cut off at the deadline.
        None => AfterRenewal::Stop(StopReason::Deadline),
        Some(Ok(())) => {
            let extended = sent + timing.hold_for();
            if now >= extended {
                AfterRenewal::Stop(StopReason::Deadline)
            } else {
                AfterRenewal::Extended {
                    deadline: extended,
                    next: sent + timing.renew_interval,
                }
            }
        }
        Some(Err(StoreError::Conflict(_) | StoreError::LeaseNotFound(_))) => {
            AfterRenewal::Stop(StopReason::Lost)
        }
        Some(Err(_)) if now >= deadline => AfterRenewal::Stop(StopReason::Deadline),
        Some(Err(_)) => AfterRenewal::Retry {
            next: (now + timing.renew_interval / 4).min(deadline),
        },
    }
}

/// Competes for and holds the leadership of `sid` until `cancel`, then resigns if it leads.
/// Every change of hold is sent on `changes`.
pub async fn hold_leadership(
    coordinator: Arc<dyn Coordinator>,
    sid: String,
    timing: LeaseTiming,
    changes: mpsc::UnboundedSender<LeaseChange>,
    cancel: CancellationToken,
) {
    let report = |fence: Option<Fence>| {
        let _ = changes.send(LeaseChange {
            sid: sid.clone(),
            fence,
        });
    };
    let mut holding: Option<Holding> = None;
    loop {
        let wake = match holding.as_mut() {
            None => {
                let sent = Instant::now();
                let attempt = tokio::time::timeout(timing.hold_for(), coordinator.campaign(&sid)).await;
                match attempt {
                    Ok(Ok(Campaign::Elected(term))) => {
                        let deadline = sent + timing.hold_for();
                        if Instant::now() >= deadline {
                            // Elected too slowly to run safely: give the term back.
                            tracing::warn!(%sid, "leader lease granted too late to use; resigning");
                            resign(&*coordinator, &term, &timing).await;
                            sent + timing.renew_interval
                        } else {
                            tracing::info!(%sid, epoch = term.epoch, "leader lease acquired");
                            report(Some(term.fence()));
                            holding = Some(Holding { term, deadline });
                            sent + timing.renew_interval
                        }
                    }
                    // Someone else leads: look again when its lease could end, or at the renew pace.
                    Ok(Ok(Campaign::Held { ends_in, .. })) => {
                        Instant::now() + ends_in.clamp(Duration::from_millis(10), timing.renew_interval)
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%sid, error = %e, "leader election: store unavailable");
                        Instant::now() + timing.renew_interval
                    }
                    Err(_) => {
                        tracing::warn!(%sid, "leader election: the store did not answer in time");
                        Instant::now() + timing.renew_interval
                    }
                }
            }
            Some(held) => {
                let sent = Instant::now();
                // Woken at the deadline (or past it): no renewal can help any more.
                let attempt = if sent < held.deadline {
                    tokio::time::timeout_at(held.deadline, coordinator.renew(&mut held.term))
                        .await
                        .ok()
                } else {
                    None
                };
                let outcome = attempt.as_ref().map(|r| r.as_ref().map(|_| ()));
                match after_renewal(&timing, held.deadline, sent, Instant::now(), outcome) {
                    AfterRenewal::Extended { deadline, next } => {
                        held.deadline = deadline;
                        next
                    }
                    AfterRenewal::Retry { next } => {
                        if let Some(Err(e)) = &attempt {
                            tracing::warn!(%sid, error = %e, "leader lease renewal failed; retrying");
                        }
                        next
                    }
                    AfterRenewal::Stop(reason) => {
                        match reason {
                            StopReason::Deadline => {
                                tracing::warn!(%sid, "leader lease not renewed in time; stopping the run")
                            }
                            StopReason::Lost => tracing::warn!(%sid, "leader lease lost; stopping the run"),
                        }
                        if let Some(held) = holding.take() {
                            report(None);
                            if reason == StopReason::Deadline {
                                resign(&*coordinator, &held.term, &timing).await;
                            }
                        }
                        continue;
                    }
                }
            }
        };
        let wake = match &holding {
            Some(held) => wake.min(held.deadline),
            None => wake,
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    if let Some(held) = holding {
        resign(&*coordinator, &held.term, &timing).await;
        tracing::info!(%sid, "leader lease released");
        report(None);
    }
}

/// Gives `term` back, waiting at most one renew interval; a term not given back ends with its
/// lease.
async fn resign(coordinator: &dyn Coordinator, term: &Term, timing: &LeaseTiming) {
    match tokio::time::timeout(timing.renew_interval, coordinator.resign(term)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(sid = %term.sid, error = %e, "resigning failed; the lease will expire"),
        Err(_) => tracing::warn!(sid = %term.sid, "resigning timed out; the lease will expire"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::cluster::coordinator::LeaderRecord;
    use crate::store::{AtomicWrite, CommitOutcome, StoreResult};

    /// A coordinator whose answers and delays the test sets; time is tokio's paused clock.
    #[derive(Default)]
    struct Scripted {
        /// Campaign answers, in order; when empty, elected with epoch 1.
        campaigns: Mutex<Vec<Campaign>>,
        renew_delay: Mutex<Duration>,
        renew_error: Mutex<Option<fn() -> StoreError>>,
        renewals: AtomicUsize,
        resigned: AtomicUsize,
    }

    #[async_trait]
    impl Coordinator for Scripted {
        async fn campaign(&self, sid: &str) -> StoreResult<Campaign> {
            let mut campaigns = self.campaigns.lock().unwrap();
            Ok(if campaigns.is_empty() {
                Campaign::Elected(Term::for_test(sid, 1))
            } else {
                campaigns.remove(0)
            })
        }
        async fn renew(&self, _term: &mut Term) -> StoreResult<()> {
            self.renewals.fetch_add(1, Ordering::SeqCst);
            let delay = *self.renew_delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            match *self.renew_error.lock().unwrap() {
                Some(error) => Err(error()),
                None => Ok(()),
            }
        }
        async fn resign(&self, _term: &Term) -> StoreResult<()> {
            self.resigned.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn leader(&self, _sid: &str) -> StoreResult<Option<LeaderRecord>> {
            Ok(None)
        }
        async fn fenced_commit(&self, _term: &Term, _write: AtomicWrite) -> StoreResult<CommitOutcome> {
            Ok(CommitOutcome::CheckFailed)
        }
    }

    const TIMING: LeaseTiming = LeaseTiming {
        duration: Duration::from_secs(10),
        renew_interval: Duration::from_secs(3),
        stop_grace: Duration::from_secs(1),
    };

    struct Holder {
        coordinator: Arc<Scripted>,
        changes: mpsc::UnboundedReceiver<LeaseChange>,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        started: Instant,
    }

    fn hold(coordinator: Scripted) -> Holder {
        let coordinator = Arc::new(coordinator);
        let (tx, changes) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let task = tokio::spawn(hold_leadership(
            coordinator.clone(),
            "w".into(),
            TIMING,
            tx,
            cancel.clone(),
        ));
        Holder {
            coordinator,
            changes,
            cancel,
            task,
            started,
        }
    }

    impl Holder {
        /// The next change and how long after the start it came.
        async fn next(&mut self) -> (Option<u64>, Duration) {
            let change = self.changes.recv().await.unwrap();
            (change.fence.map(|f| f.epoch), self.started.elapsed())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_renewal_stops_the_run_at_the_deadline() {
        let coordinator = Scripted::default();
        *coordinator.renew_delay.lock().unwrap() = Duration::from_secs(3600);
        let mut holder = hold(coordinator);
        assert_eq!(holder.next().await, (Some(1), Duration::ZERO));
        // The renewal sent at 3 s never returns; the run is told to stop at 8.5 s
        // (10 s lease − 1 s grace − 0.5 s margin), not when the store answers.
        let (epoch, at) = holder.next().await;
        assert_eq!(epoch, None);
        assert_eq!(at, TIMING.hold_for());
        assert!(at + TIMING.stop_grace < TIMING.duration);
        assert_eq!(holder.coordinator.renewals.load(Ordering::SeqCst), 1);
        holder.cancel.cancel();
        holder.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_keep_the_lease_and_cancelling_resigns() {
        let coordinator = Scripted::default();
        *coordinator.renew_delay.lock().unwrap() = Duration::from_millis(200);
        let mut holder = hold(coordinator);
        assert_eq!(holder.next().await.0, Some(1));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(holder.changes.try_recv().is_err(), "still leading");
        // Sent at 3, 6, … 57 s.
        assert_eq!(holder.coordinator.renewals.load(Ordering::SeqCst), 19);
        holder.cancel.cancel();
        assert_eq!(holder.next().await.0, None);
        holder.task.await.unwrap();
        assert_eq!(holder.coordinator.resigned.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_term_stops_the_run_at_once() {
        let coordinator = Scripted::default();
        *coordinator.renew_error.lock().unwrap() = Some(|| StoreError::Conflict("taken".into()));
        let mut holder = hold(coordinator);
        assert_eq!(holder.next().await.0, Some(1));
        assert_eq!(holder.next().await, (None, TIMING.renew_interval));
        holder.cancel.cancel();
        holder.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn failing_renewals_retry_until_the_deadline() {
        let coordinator = Scripted::default();
        *coordinator.renew_error.lock().unwrap() = Some(|| StoreError::Unavailable("down".into()));
        let mut holder = hold(coordinator);
        assert_eq!(holder.next().await.0, Some(1));
        assert_eq!(holder.next().await, (None, TIMING.hold_for()));
        // Retried every 0.75 s from 3 s on: 3, 3.75, 4.5, … 8.25.
        assert_eq!(holder.coordinator.renewals.load(Ordering::SeqCst), 8);
        assert_eq!(holder.coordinator.resigned.load(Ordering::SeqCst), 1);
        holder.cancel.cancel();
        holder.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_campaigns_again_when_the_holder_could_be_gone() {
        let coordinator = Scripted::default();
        coordinator.campaigns.lock().unwrap().extend([
            Campaign::Held {
                leader: "other".into(),
                ends_in: Duration::from_secs(2),
            },
            Campaign::Held {
                leader: "other".into(),
                ends_in: Duration::from_secs(60),
            },
        ]);
        let mut holder = hold(coordinator);
        // At 2 s the holder renewed (60 s left): look again at the renew pace, 3 s later.
        assert_eq!(holder.next().await, (Some(1), Duration::from_secs(5)));
        holder.cancel.cancel();
        holder.task.await.unwrap();
    }

    #[test]
    fn a_renewal_confirmed_after_its_own_deadline_still_stops() {
        let t0 = Instant::now();
        let deadline = t0 + TIMING.hold_for();
        let sent = t0 + Duration::from_secs(3);
        // Confirmed quickly: extended from the moment it was sent.
        assert_eq!(
            after_renewal(
                &TIMING,
                deadline,
                sent,
                sent + Duration::from_millis(5),
                Some(Ok(()))
            ),
            AfterRenewal::Extended {
                deadline: sent + TIMING.hold_for(),
                next: sent + TIMING.renew_interval
            }
        );
        // A success that arrives after even the extended deadline is no use.
        let late = sent + TIMING.hold_for();
        assert_eq!(
            after_renewal(&TIMING, deadline, sent, late, Some(Ok(()))),
            AfterRenewal::Stop(StopReason::Deadline)
        );
        let unavailable = StoreError::Unavailable("x".into());
        assert_eq!(
            after_renewal(&TIMING, deadline, sent, deadline, Some(Err(&unavailable))),
            AfterRenewal::Stop(StopReason::Deadline)
        );
        assert_eq!(
            after_renewal(
                &TIMING,
                deadline,
                sent,
                deadline - Duration::from_millis(100),
                Some(Err(&unavailable))
            ),
            AfterRenewal::Retry { next: deadline }
        );
        assert_eq!(
            after_renewal(&TIMING, deadline, sent, sent, None),
            AfterRenewal::Stop(StopReason::Deadline)
        );
    }
}
