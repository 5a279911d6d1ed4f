//! Worker records: their data model, their repository, validation of client input, and script
//! minification.

pub mod kv_usage;
pub mod minify;
pub mod model;
pub mod repo;
pub mod validate;

pub use model::{ExecutionMode, Priority, RunMode, Scope, WorkerData, WorkerScript};
pub use repo::{WorkerRecord, WorkerRepo};
