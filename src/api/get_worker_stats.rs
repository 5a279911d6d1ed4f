//! `getWorkerStats` (W-STATS-1): what this node runs or has run since it started.

use crate::node::NodeState;
use crate::webfix::Reply;

pub fn apply(node: &NodeState) -> Reply {
    Ok((200, node.stats.snapshot()))
}
