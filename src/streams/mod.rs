//! The transport-neutral hub of what a node publishes about its workers (worker-api.md §5):
//! the [`logs`] book of every worker's lines, the [`stats`] board, node [`events`], and the
//! shared [`feeds`] (`stats`, the existing client's `sonar`). Everything published is a
//! [`Frame`], serialised once and shared by every subscriber; `net` carries frames over
//! WebSocket and SSE.

pub mod events;
pub mod feeds;
mod frame;
pub mod logs;
pub mod stats;

pub use events::EventBus;
pub use feeds::{SonarFeed, StatsFeed};
pub use frame::{Frame, push_frame};

use std::sync::Arc;

/// What a node publishes, as the transports read it.
pub struct Hub {
    /// Node events for `events` subscribers.
    pub events: Arc<EventBus>,
    /// Every worker's log lines.
    pub logs: Arc<logs::LogBook>,
    /// What `stats` subscribers see.
    pub stats: Arc<stats::StatsBoard>,
    /// The shared frame of `stats` subscribers.
    pub stats_feed: StatsFeed,
    /// The shared frame of the existing client's `sonar` channel.
    pub sonar_feed: SonarFeed,
}
