//! Which node runs what: placement of workers and leader leases.

pub mod leader;
pub mod placement;
