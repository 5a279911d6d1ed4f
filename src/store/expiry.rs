//! `expireIn` on leases: entries that should vanish after some time share one lease per expiry
//! bucket, instead of one lease per key (a lease is a record on every backend, and etcd keeps
//! every lease in memory).
//!
//! A bucket's lease ends at the bucket's end, never before `now + expire_in`: an entry may live
//! up to one bucket longer than asked (Deno KV's `expireIn` promises no more). Buckets are one
//! `granularity` wide for short expiries and grow with the expiry (at most about 1/16 of it), so
//! the buckets alive at once stay few whatever the expiries asked for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{LeaseId, MAX_LEASE_TTL, Store, StoreResult};
use crate::clock::Clock;

/// Buckets remembered at once; past it a lease is granted without being remembered.
const MAX_BUCKETS: usize = 1024;

/// Granted leases per expiry bucket of one store.
pub struct ExpiryLeases {
    /// The store the leases are granted on.
    store: Arc<dyn Store>,
    /// Width of the narrowest bucket, in ms.
    granularity_ms: u64,
    /// Where "now" comes from.
    clock: Clock,
    /// Bucket end (ms since the Unix epoch) → its lease. Held across a grant, so concurrent
    /// writers of one bucket share one lease.
    buckets: tokio::sync::Mutex<BTreeMap<u64, LeaseId>>,
}

/// The lease an expiring entry is attached to, and when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiryLease {
    /// For [`AtomicWrite::set_with_lease`](super::AtomicWrite::set_with_lease).
    pub id: LeaseId,
    /// When the lease ends (ms since the Unix epoch): the entry reads as absent from then on.
    pub expires_at_ms: u64,
}

impl ExpiryLeases {
    /// Buckets of at least `granularity` on `store`.
    pub fn new(store: Arc<dyn Store>, granularity: Duration, clock: Clock) -> ExpiryLeases {
        ExpiryLeases {
            store,
            clock,
            granularity_ms: u64::try_from(granularity.as_millis()).unwrap_or(u64::MAX).max(1),
            buckets: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// A lease that ends no earlier than `expire_in_ms` from now (capped at [`MAX_LEASE_TTL`]).
    pub async fn lease_for(&self, expire_in_ms: u64) -> StoreResult<ExpiryLease> {
        let now = u64::try_from(self.clock.wall_ms()).unwrap_or(0);
        let end = bucket_end(now, expire_in_ms, self.granularity_ms);
        let mut buckets = self.buckets.lock().await;
        // A lease this close to its end could end before the write that uses it lands.
        let safe_after = now.saturating_add(self.granularity_ms);
        while let Some(entry) = buckets.first_entry() {
            if *entry.key() > safe_after {
                break;
            }
            entry.remove();
        }
        if let Some(&id) = buckets.get(&end) {
            return Ok(ExpiryLease {
                id,
                expires_at_ms: end,
            });
        }
        let lease = self.store.grant(Duration::from_millis(end - now)).await?;
        if buckets.len() < MAX_BUCKETS {
            buckets.insert(end, lease.id);
        }
        Ok(ExpiryLease {
            id: lease.id,
            expires_at_ms: end,
        })
    }
}

/// The end of the bucket of an entry written at `now_ms` that expires in `expire_in_ms`: a
/// multiple of the bucket width, at or after `now + expire_in` and at least one `granularity`
/// after `now`.
pub fn bucket_end(now_ms: u64, expire_in_ms: u64, granularity_ms: u64) -> u64 {
    let max_ttl = u64::try_from(MAX_LEASE_TTL.as_millis()).unwrap_or(u64::MAX);
    let expire_in = expire_in_ms.min(max_ttl);
    let mut width = granularity_ms.max(1);
    while width.saturating_mul(32) < expire_in {
        width = width.saturating_mul(2);
    }
    let due = now_ms.saturating_add(expire_in);
    let mut end = due.div_ceil(width).saturating_mul(width);
    if end.saturating_sub(now_ms) < granularity_ms {
        end = end.saturating_add(width);
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_end_after_the_expiry_and_grow_with_it() {
        let g = 1000;
        // Short expiries: one-granularity buckets, never ending before now + expire_in.
        assert_eq!(bucket_end(10_500, 100, g), 12_000);
        assert_eq!(bucket_end(10_000, 0, g), 11_000);
        assert_eq!(bucket_end(10_000, 2_000, g), 12_000);
        // Two writes within one bucket share its end.
        assert_eq!(bucket_end(10_100, 5_000, g), bucket_end(10_900, 5_000, g));
        for expire_in in [1u64, 999, 60_000, 3_600_000, 86_400_000 * 30] {
            for now in [0u64, 1, 1_700_000_000_123] {
                let end = bucket_end(now, expire_in, g);
                assert!(
                    end >= now + expire_in && end - now >= g,
                    "{now} {expire_in} {end}"
                );
                // At most about 1/16 of the expiry (or one granularity) longer than asked.
                assert!(
                    end - now - expire_in <= (expire_in / 16).max(g) + g,
                    "{now} {expire_in} {end}"
                );
            }
        }
        // Far expiries are capped and never overflow.
        let far = bucket_end(u64::MAX - 5, u64::MAX, g);
        assert_eq!(far, u64::MAX);
        let capped = bucket_end(0, u64::MAX, g);
        assert!(capped >= u64::try_from(MAX_LEASE_TTL.as_millis()).unwrap());
    }
}
