//! The node's one clock: a monotonic instant for deadlines and timers, and wall time for the
//! timestamps that other nodes and clients read.
//!
//! Monotonic time is tokio's, so tests that pause tokio's clock (`tokio::time::pause`) control
//! every deadline. Wall time comes from the system, or, in tests, follows tokio's clock from a
//! fixed start, so that both move together when a paused clock advances.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A cheap, cloneable handle on the time.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Where wall time comes from.
    wall: Wall,
}

#[derive(Clone, Debug)]
enum Wall {
    /// The system's wall clock.
    System,
    /// `start_ms` at tokio instant `start`, advancing with tokio's clock.
    FollowingTokio { start_ms: i64, start: Instant },
}

impl Clock {
    /// The system's clocks: what a node runs on.
    pub fn system() -> Clock {
        Clock { wall: Wall::System }
    }

    /// Wall time that reads `start_ms` now and then advances with tokio's (possibly paused)
    /// clock.
    pub fn following_tokio(start_ms: i64) -> Clock {
        Clock {
            wall: Wall::FollowingTokio {
                start_ms,
                start: Instant::now(),
            },
        }
    }

    /// Monotonic now, for deadlines and sleeps.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Milliseconds since the Unix epoch (0 before it), for timestamps others read.
    pub fn wall_ms(&self) -> i64 {
        match &self.wall {
            Wall::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Wall::FollowingTokio { start_ms, start } => {
                let elapsed = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
                start_ms.saturating_add(elapsed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_follows_a_paused_tokio_clock() {
        let clock = Clock::following_tokio(1_000);
        let started = clock.now();
        assert_eq!(clock.wall_ms(), 1_000);
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(clock.wall_ms(), 3_500);
        assert_eq!(clock.now() - started, Duration::from_millis(2_500));
        assert!(Clock::system().wall_ms() > 1_600_000_000_000);
    }
}
