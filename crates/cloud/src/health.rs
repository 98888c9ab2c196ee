//! Node health as the controller sees it. A node heartbeats by registering
//! again every few seconds; one silent for longer than
//! [`Config::node_timeout`](crate::Config::node_timeout) is down: its
//! instances show an impaired system status and nothing new is placed on
//! it, while every other node and instance carries on. A node that comes
//! back is up again at its next heartbeat (its agent adopts its VMs). The
//! controller's own downtime never counts against a node: silence is
//! measured from the later of the node's last heartbeat and the
//! controller's start.

use mallee_store::Node;

use crate::Cloud;

/// A node's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    /// Heartbeating.
    Up,
    /// Silent past the timeout.
    Down,
}

impl NodeHealth {
    /// The name `mallee admin node list` shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// `node`'s health at `now` (milliseconds).
pub fn of(cloud: &Cloud, node: &Node, now: i64) -> NodeHealth {
    judge(
        node.updated_at.max(cloud.compute.started_at),
        cloud.config.node_timeout,
        now,
    )
}

/// The health of a node last heard of at `heard` (ms), at `now`.
pub fn judge(heard: i64, timeout: std::time::Duration, now: i64) -> NodeHealth {
    let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    if now.saturating_sub(heard) > timeout {
        NodeHealth::Down
    } else {
        NodeHealth::Up
    }
}

/// The nodes new instances may go to: compute nodes that are up and not
/// disabled for maintenance (storage hosts run no instances).
pub fn schedulable(cloud: &Cloud, nodes: Vec<Node>, now: i64) -> Vec<Node> {
    nodes
        .into_iter()
        .filter(|n| {
            !n.disabled
                && !crate::zone_storage::is_storage(n)
                && of(cloud, n, now) == NodeHealth::Up
        })
        .collect()
}

/// The ids of the nodes that are down at `now`.
pub fn down(cloud: &Cloud, nodes: &[Node], now: i64) -> std::collections::HashSet<String> {
    nodes
        .iter()
        .filter(|n| of(cloud, n, now) == NodeHealth::Down)
        .map(|n| n.node_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{TestCloud, node};

    #[tokio::test]
    async fn silence_past_the_timeout_is_down_but_not_the_controllers_own() {
        let cloud = TestCloud::new().await;
        let start = cloud.compute.started_at;
        let mut n = node("node-1", "mallee-1a", 4, 4096, 100);
        n.updated_at = start + 1_000;
        assert_eq!(of(&cloud, &n, start + 20_000), NodeHealth::Up);
        assert_eq!(of(&cloud, &n, start + 31_001), NodeHealth::Down);
        // Heard of long before this controller started: the silence
        // counts from the start.
        n.updated_at = 1;
        assert_eq!(of(&cloud, &n, start + 29_000), NodeHealth::Up);
        assert_eq!(of(&cloud, &n, start + 30_001), NodeHealth::Down);
        let up = node("node-2", "mallee-1a", 4, 4096, 100);
        let nodes = vec![
            n.clone(),
            Node {
                updated_at: start + 30_000,
                ..up
            },
        ];
        let now = start + 40_000;
        assert_eq!(
            schedulable(&cloud, nodes.clone(), now)
                .into_iter()
                .map(|n| n.node_id)
                .collect::<Vec<_>>(),
            ["node-2"]
        );
        assert_eq!(down(&cloud, &nodes, now), ["node-1".to_owned()].into());
        // A disabled node is up but takes nothing new.
        let disabled: Vec<Node> = nodes
            .into_iter()
            .map(|n| Node {
                disabled: true,
                ..n
            })
            .collect();
        assert!(schedulable(&cloud, disabled.clone(), now).is_empty());
        assert_eq!(down(&cloud, &disabled, now), ["node-1".to_owned()].into());
    }
}
