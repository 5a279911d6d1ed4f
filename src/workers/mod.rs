//! Worker records: their data model, validation of client input, and script minification.

pub mod minify;
pub mod model;
pub mod validate;

pub use model::{ExecutionMode, Priority, RunMode, Scope, WorkerData, WorkerScript};
