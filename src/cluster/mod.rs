//! Which node runs what: placement of workers, leader election and fencing.

pub mod coordinator;
pub mod leader;
pub mod membership;
pub mod placement;
