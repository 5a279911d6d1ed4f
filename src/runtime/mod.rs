//! Running workers. The JS pool and supervisor come with issue #3; what exists now is the
//! per-node statistics board that `getWorkerStats` reads (W-STATS-1).

pub mod engine;
pub mod errors;
pub mod logs;
pub mod pool;
pub mod quickjs;
pub mod sdk;
pub mod stats;
pub mod supervisor;
