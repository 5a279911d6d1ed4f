//! The leases of a [`FjallStore`](super::FjallStore), in memory and on disk.
//!
//! On disk: keyspace `leases` maps a lease id (u64 BE) to `expires_at_ms ‖ ttl_ms` (u64 BE
//! each); keyspace `lease_keys` holds `lease id ‖ encoded key` for every key attached to a lease,
//! so the reaper and `revoke` find a lease's keys without a scan. `meta` keeps the last id handed
//! out, so an id is never reused (a holder of an ended lease must not attach keys to a new one).
//! In memory the whole table is kept, because every read of a leased entry asks whether its
//! lease is still alive.

use std::collections::{BTreeSet, HashMap};

/// Most leases alive at once; a grant beyond it is refused.
pub const MAX_LEASES: usize = 100_000;

/// One lease's timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseState {
    /// Wall-clock milliseconds after which the lease has ended.
    pub expires_at_ms: u64,
    /// The TTL a keep-alive restarts.
    pub ttl_ms: u64,
}

impl LeaseState {
    /// The `leases` keyspace value.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.expires_at_ms.to_be_bytes());
        out[8..].copy_from_slice(&self.ttl_ms.to_be_bytes());
        out
    }

    /// Parses a `leases` keyspace value.
    pub fn decode(raw: &[u8]) -> Option<LeaseState> {
        let (at, ttl) = raw.split_first_chunk::<8>()?;
        let ttl: [u8; 8] = ttl.try_into().ok()?;
        Some(LeaseState {
            expires_at_ms: u64::from_be_bytes(*at),
            ttl_ms: u64::from_be_bytes(ttl),
        })
    }
}

/// Every lease not yet forgotten, by id and by expiry.
#[derive(Default)]
pub struct LeaseTable {
    /// Lease id → timing.
    by_id: HashMap<u64, LeaseState>,
    /// `(expires_at_ms, id)` of every lease, soonest first, for the reaper.
    by_expiry: BTreeSet<(u64, u64)>,
    /// The last id handed out.
    pub last_id: u64,
}

impl LeaseTable {
    /// Whether lease `id` exists and has not ended at `now_ms`.
    pub fn alive(&self, id: u64, now_ms: u64) -> bool {
        self.by_id.get(&id).is_some_and(|l| l.expires_at_ms > now_ms)
    }

    /// The timing of lease `id`, ended or not.
    pub fn get(&self, id: u64) -> Option<LeaseState> {
        self.by_id.get(&id).copied()
    }

    /// Leases known, ended or not.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Adds or updates lease `id`.
    pub fn put(&mut self, id: u64, state: LeaseState) {
        if let Some(old) = self.by_id.insert(id, state) {
            self.by_expiry.remove(&(old.expires_at_ms, id));
        }
        self.by_expiry.insert((state.expires_at_ms, id));
    }

    /// Forgets lease `id`.
    pub fn remove(&mut self, id: u64) {
        if let Some(old) = self.by_id.remove(&id) {
            self.by_expiry.remove(&(old.expires_at_ms, id));
        }
    }

    /// Up to `max` leases that have ended at `now_ms`, soonest first.
    pub fn ended(&self, now_ms: u64, max: usize) -> Vec<u64> {
        self.by_expiry
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(max)
            .map(|(_, id)| *id)
            .collect()
    }
}

/// The `lease_keys` keyspace key of `encoded` attached to lease `id`.
pub fn lease_key_index(id: u64, encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + encoded.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(encoded);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_orders_ended_leases_and_follows_updates() {
        let mut table = LeaseTable::default();
        let state = |at| LeaseState {
            expires_at_ms: at,
            ttl_ms: 10,
        };
        table.put(1, state(300));
        table.put(2, state(100));
        table.put(3, state(200));
        assert_eq!(table.ended(250, 10), vec![2, 3]);
        assert_eq!(table.ended(250, 1), vec![2]);
        table.put(2, state(400));
        assert_eq!(table.ended(250, 10), vec![3]);
        assert!(table.alive(2, 250) && !table.alive(3, 250) && !table.alive(9, 0));
        table.remove(3);
        assert_eq!(table.ended(1000, 10), vec![1, 2]);
        assert_eq!(table.len(), 2);
        assert_eq!(LeaseState::decode(&state(7).encode()), Some(state(7)));
        assert_eq!(LeaseState::decode(&[1, 2, 3]), None);
    }
}
