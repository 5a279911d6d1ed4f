//! Logins limited per source address and per wallet, so a wallet cannot be brute-forced, a
//! client stuck in a loop cannot flood the node with signature checks, and a wallet or address
//! cannot mint sessions without end.
//!
//! Three sliding one-minute windows: failed logins per source address, successful logins per
//! wallet, successful logins per source address. Each tracks at most [`MAX_TRACKED`] keys.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failed logins allowed per source address within [`WINDOW`], by default.
pub const MAX_FAILURES: usize = 10;
/// The sliding window of every login limit.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys (addresses, wallets) tracked at once per limit; past it the longest idle are dropped.
const MAX_TRACKED: usize = 100_000;

/// Recent events per key within [`WINDOW`], at most `limit` kept per key.
struct Window<K> {
    limit: usize,
    max_tracked: usize,
    recent: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq + Clone> Window<K> {
    fn new(limit: usize, max_tracked: usize) -> Self {
        Window {
            limit: limit.max(1),
            max_tracked: max_tracked.max(1),
            recent: HashMap::new(),
        }
    }

    /// `Err(wait)` when `key` has used its `limit` within the window ending at `now`.
    fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        let Some(recent) = self.recent.get_mut(key) else {
            return Ok(());
        };
        while recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            recent.pop_front();
        }
        match recent.front() {
            Some(oldest) if recent.len() >= self.limit => {
                Err(WINDOW.saturating_sub(now.saturating_duration_since(*oldest)))
            }
            None => {
                self.recent.remove(key);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Counts one event of `key` at `now`.
    fn record(&mut self, key: K, now: Instant) {
        if !self.recent.contains_key(&key) {
            self.make_room(now);
        }
        let recent = self.recent.entry(key).or_default();
        recent.push_back(now);
        while recent.len() > self.limit {
            recent.pop_front();
        }
    }

    /// Drops keys idle for a whole window; if that frees nothing, the longest idle tenth.
    fn make_room(&mut self, now: Instant) {
        super::room::make_room(
            &mut self.recent,
            self.max_tracked,
            |recent| {
                recent
                    .back()
                    .is_none_or(|t| now.saturating_duration_since(*t) >= WINDOW)
            },
            |recent| recent.back().copied(),
        );
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.recent.len()
    }
}

/// Which limit a successful login would exceed, and how long until it would not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginLimit {
    /// The wallet has logged in `logins_per_wallet` times within the window.
    Wallet(Duration),
    /// The source address has logged in `logins_per_ip` times within the window.
    Source(Duration),
}

impl LoginLimit {
    /// Time until one more login would be allowed.
    pub fn wait(self) -> Duration {
        match self {
            LoginLimit::Wallet(wait) | LoginLimit::Source(wait) => wait,
        }
    }
}

/// The node's login limits.
pub struct LoginThrottle {
    failures: Mutex<Window<IpAddr>>,
    per_wallet: Mutex<Window<String>>,
    per_ip: Mutex<Window<IpAddr>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LoginThrottle {
    /// Limits per minute: failed logins per address, successful ones per wallet and per address.
    pub fn new(max_failures: usize, logins_per_wallet: usize, logins_per_ip: usize) -> Self {
        Self::with_max_tracked(max_failures, logins_per_wallet, logins_per_ip, MAX_TRACKED)
    }

    fn with_max_tracked(
        max_failures: usize,
        logins_per_wallet: usize,
        logins_per_ip: usize,
        max_tracked: usize,
    ) -> Self {
        LoginThrottle {
            failures: Mutex::new(Window::new(max_failures, max_tracked)),
            per_wallet: Mutex::new(Window::new(logins_per_wallet, max_tracked)),
            per_ip: Mutex::new(Window::new(logins_per_ip, max_tracked)),
        }
    }

    /// `Err(wait)` when `ip` has failed too often and must wait before trying again.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        lock(&self.failures).check(&ip, Instant::now())
    }

    /// Records a failed login from `ip`.
    pub fn fail(&self, ip: IpAddr) {
        lock(&self.failures).record(ip, Instant::now());
    }

    /// Whether one more successful login of `wallet` from `ip` is allowed now (counts nothing).
    pub fn check_login(&self, wallet: &str, ip: Option<IpAddr>) -> Result<(), LoginLimit> {
        self.login_at(wallet, ip, Instant::now(), false)
    }

    /// Counts a successful login of `wallet` from `ip`, unless it would exceed a limit.
    pub fn record_login(&self, wallet: &str, ip: Option<IpAddr>) -> Result<(), LoginLimit> {
        self.login_at(wallet, ip, Instant::now(), true)
    }

    fn login_at(
        &self,
        wallet: &str,
        ip: Option<IpAddr>,
        now: Instant,
        record: bool,
    ) -> Result<(), LoginLimit> {
        // Both windows stay locked (always in this order) so concurrent logins cannot overshoot.
        let mut per_wallet = lock(&self.per_wallet);
        let mut per_ip = lock(&self.per_ip);
        let wallet = wallet.to_string();
        per_wallet.check(&wallet, now).map_err(LoginLimit::Wallet)?;
        if let Some(ip) = ip {
            per_ip.check(&ip, now).map_err(LoginLimit::Source)?;
        }
        if record {
            per_wallet.record(wallet, now);
            if let Some(ip) = ip {
                per_ip.record(ip, now);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_one_address_only() {
        let throttle = LoginThrottle::new(MAX_FAILURES, 30, 30);
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

    #[test]
    fn window_slides_and_reports_the_wait() {
        let mut window = Window::new(2, 10);
        let t0 = Instant::now();
        window.record("k", t0);
        window.record("k", t0 + Duration::from_secs(10));
        assert_eq!(
            window.check(&"k", t0 + Duration::from_secs(20)),
            Err(Duration::from_secs(40))
        );
        // The first event leaves the window at t0 + 60 s.
        assert_eq!(window.check(&"k", t0 + Duration::from_secs(60)), Ok(()));
        window.record("k", t0 + Duration::from_secs(60));
        assert_eq!(
            window.check(&"k", t0 + Duration::from_secs(61)),
            Err(Duration::from_secs(9))
        );
        assert_eq!(window.check(&"other", t0), Ok(()));
    }

    #[test]
    fn tracked_keys_are_bounded() {
        let mut window = Window::new(3, 100);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            window.record(i, t0 + Duration::from_millis(u64::from(i)));
            assert!(window.tracked() <= 100);
        }
        // The most recent keys are the ones kept.
        assert_eq!(window.check(&999, t0 + Duration::from_secs(1)), Ok(()));
        assert!(window.recent.contains_key(&999));
        assert!(!window.recent.contains_key(&0));
        // Keys idle for a whole window are dropped first.
        for i in 5000..5100 {
            window.record(i, t0 + Duration::from_secs(120));
        }
        assert_eq!(window.tracked(), 100);
        assert!(window.recent.keys().all(|k| *k >= 5000));
    }

    #[test]
    fn successful_logins_are_limited_per_wallet_and_per_address() {
        let throttle = LoginThrottle::with_max_tracked(10, 2, 2, 100);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(throttle.login_at("w1", Some(a), t0, true), Ok(()));
        assert_eq!(throttle.login_at("w1", Some(b), t0, true), Ok(()));
        assert!(matches!(
            throttle.login_at("w1", Some(a), t0, true),
            Err(LoginLimit::Wallet(_))
        ));
        assert_eq!(throttle.login_at("w2", Some(a), t0, true), Ok(()));
        assert_eq!(
            throttle.login_at("w3", Some(a), t0, false),
            Err(LoginLimit::Source(WINDOW))
        );
        // A check alone counts nothing; a refused login counts nothing either.
        assert_eq!(throttle.login_at("w3", Some(b), t0, false), Ok(()));
        assert_eq!(throttle.login_at("w3", Some(b), t0, true), Ok(()));
        assert_eq!(throttle.login_at("w4", None, t0 + WINDOW, true), Ok(()));
        assert_eq!(throttle.login_at("w1", Some(a), t0 + WINDOW, true), Ok(()));
    }
}
