//! Running workers: the priority JS pool, the QuickJS engine behind the [`engine`] boundary,
//! the script SDK, the error rules, and the [`supervisor`] that turns worker records into runs.
//! Runs report their log lines, statistics and events into [`crate::streams`].

pub mod engine;
pub mod errors;
pub mod pool;
pub mod quickjs;
pub mod sdk;
pub mod supervisor;
