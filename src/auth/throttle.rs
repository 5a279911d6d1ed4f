//! Failed logins are limited per source address, so a wallet cannot be brute-forced and a
//! client stuck in a loop cannot flood the node with signature checks.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins allowed per source address within [`WINDOW`], by default.
pub const MAX_FAILURES: usize = 10;
/// The sliding window of [`MAX_FAILURES`].
pub const WINDOW: Duration = Duration::from_secs(60);
/// Source addresses tracked at once; past it the oldest entries are dropped.
const MAX_TRACKED: usize = 100_000;

/// Recent failures per source address.
pub struct LoginThrottle {
    /// Failures allowed per address within [`WINDOW`].
    max_failures: usize,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(MAX_FAILURES)
    }
}

impl LoginThrottle {
    pub fn new(max_failures: usize) -> Self {
        LoginThrottle {
            max_failures: max_failures.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Err(wait)` when `ip` must wait before trying again.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.failures();
        let Some(recent) = failures.get_mut(&ip) else {
            return Ok(());
        };
        while recent.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
            recent.pop_front();
        }
        match recent.front() {
            Some(oldest) if recent.len() >= self.max_failures => {
                Err(WINDOW.saturating_sub(now.duration_since(*oldest)))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed login from `ip`.
    pub fn fail(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures();
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, recent| recent.back().is_some_and(|t| now.duration_since(*t) <= WINDOW));
        }
        let recent = failures.entry(ip).or_default();
        recent.push_back(now);
        if recent.len() > self.max_failures {
            recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_one_address_only() {
        let throttle = LoginThrottle::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check(a).is_ok());
            throttle.fail(a);
        }
        let wait = throttle.check(a).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= WINDOW);
        assert!(throttle.check(b).is_ok());
    }
}
