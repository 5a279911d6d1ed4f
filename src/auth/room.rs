//! Making room in the bounded in-memory maps of `auth` (the session cache, the login windows).

use std::collections::HashMap;
use std::hash::Hash;

/// Makes room for one more entry in `map`, which may hold at most `max`: drops the entries
/// `stale` says are done with; if it is still full, the longest idle tenth by `last_seen` (an
/// entry without one goes too); and if ties at that cutoff still leave it full, any one entry.
pub fn make_room<K, V, T>(
    map: &mut HashMap<K, V>,
    max: usize,
    stale: impl Fn(&V) -> bool,
    last_seen: impl Fn(&V) -> Option<T>,
) where
    K: Eq + Hash + Clone,
    T: Ord + Copy,
{
    if map.len() < max {
        return;
    }
    map.retain(|_, v| !stale(v));
    if map.len() < max {
        return;
    }
    let mut seen: Vec<T> = map.values().filter_map(&last_seen).collect();
    if !seen.is_empty() {
        let drop = (max / 10).max(1).min(seen.len().saturating_sub(1));
        let (_, cutoff, _) = seen.select_nth_unstable(drop);
        let cutoff = *cutoff;
        map.retain(|_, v| last_seen(v).is_some_and(|t| t >= cutoff));
    }
    if map.len() >= max
        && let Some(victim) = map.keys().next().cloned()
    {
        map.remove(&victim);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_entries_go_first_then_the_longest_idle_tenth_then_any_one() {
        let mut map: HashMap<u32, u32> = (0..100).map(|k| (k, k)).collect();
        make_room(&mut map, 100, |v| *v < 5, |v| Some(*v));
        assert_eq!(map.len(), 95);
        assert!((0..5).all(|k| !map.contains_key(&k)));

        let mut map: HashMap<u32, u32> = (0..100).map(|k| (k, k)).collect();
        make_room(&mut map, 100, |_| false, |v| Some(*v));
        assert_eq!(map.len(), 90);
        assert!((10..100).all(|k| map.contains_key(&k)));

        // All tied: nothing is older than the cutoff, so one entry goes.
        let mut map: HashMap<u32, u32> = (0..100).map(|k| (k, 7)).collect();
        make_room(&mut map, 100, |_| false, |v| Some(*v));
        assert_eq!(map.len(), 99);

        let mut map: HashMap<u32, u32> = (0..10).map(|k| (k, k)).collect();
        make_room(&mut map, 100, |_| true, |v| Some(*v));
        assert_eq!(map.len(), 10, "below the bound nothing goes");
    }
}
