//! The cloud at a glance (`mallee status`), from what the store knows:
//! every node's health and capacity ([`crate::node_status`]), the number
//! of instances in each state, and the warnings an administrator should
//! act on (a node down, a node's disk nearly full). Like the node list it
//! works from the store alone, so it answers whether the controller runs
//! or not; the CLI adds what only the host can tell (the controller's and
//! object store's answers, the data directory's disk).

use std::collections::BTreeMap;

use mallee_store::Store;

use crate::health::NodeHealth;
use crate::instances::model::{Instance, InstanceState};
use crate::node_status::{self, NodeStatus, NodeStatusError};

/// Below this share of its disk free, a disk is nearly full.
pub const DISK_WARNING_PERCENT: u64 = 10;

/// Something the administrator should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What kind (`node-down`, `disk-full`, `image-cache`, …), for scripts.
    pub kind: &'static str,
    /// What it is, for people.
    pub message: String,
}

/// What the store says of the cloud.
#[derive(Debug, Clone)]
pub struct CloudStatus {
    /// Every node, ordered by id.
    pub nodes: Vec<NodeStatus>,
    /// Instances per state name (every state present, zeros included).
    pub instances: BTreeMap<&'static str, u64>,
    /// What needs attention.
    pub warnings: Vec<Warning>,
}

const STATES: [InstanceState; 6] = [
    InstanceState::Pending,
    InstanceState::Running,
    InstanceState::Stopping,
    InstanceState::Stopped,
    InstanceState::ShuttingDown,
    InstanceState::Terminated,
];

/// The cloud's nodes, instance counts and warnings at `now` (ms).
pub async fn gather(store: &dyn Store, now: i64) -> Result<CloudStatus, NodeStatusError> {
    let nodes = node_status::list(store, now).await?;
    let mut instances: BTreeMap<&'static str, u64> = STATES.iter().map(|s| (s.name(), 0)).collect();
    for record in store.instances(None).await? {
        if let Ok(instance) = Instance::decode(record) {
            *instances.entry(instance.state.name()).or_default() += 1;
        }
    }
    let mut warnings = Vec::new();
    for n in &nodes {
        let id = &n.node.node_id;
        if n.health == NodeHealth::Down {
            warnings.push(Warning {
                kind: "node-down",
                message: format!(
                    "node {id} ({} of {}) is down: no heartbeat for {} s{}",
                    n.node.role,
                    n.node.zone,
                    n.heartbeat_age_ms / 1000,
                    match n.instances.len() {
                        0 => String::new(),
                        k => format!("; its {k} instance(s) are impaired"),
                    }
                ),
            });
        }
        let max = u64::try_from(n.node.disk_gib_max).unwrap_or(0);
        let free = u64::try_from(n.node.disk_gib_free).unwrap_or(0);
        if nearly_full(free, max) {
            warnings.push(Warning {
                kind: "disk-full",
                message: format!(
                    "node {id}'s instance disk is nearly full: {free} GiB of {max} GiB free"
                ),
            });
        }
    }
    Ok(CloudStatus {
        nodes,
        instances,
        warnings,
    })
}

/// Whether `free` of `total` (any unit) is below [`DISK_WARNING_PERCENT`].
pub fn nearly_full(free: u64, total: u64) -> bool {
    total > 0 && free.saturating_mul(100) < total.saturating_mul(DISK_WARNING_PERCENT)
}

/// Free and total bytes of the file system holding `path` (or its
/// nearest existing ancestor).
pub fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    let block = stat.fragment_size();
    Some((
        stat.blocks_available().saturating_mul(block),
        stat.blocks().saturating_mul(block),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::model::Desired;
    use crate::testkit::{InstanceBuilder, TestCloud, node};
    use std::time::Duration;

    #[tokio::test]
    async fn counts_states_and_warns_of_down_nodes_and_full_disks() {
        let cloud = TestCloud::new().await;
        let store = cloud.store.as_ref();
        let mut up = node("node-up", "mallee-1a", 4, 4096, 100);
        up.updated_at = 99_000;
        up.disk_gib_free = 5;
        let mut down = node("node-down", "mallee-1a", 4, 4096, 100);
        down.updated_at = 1_000;
        store.upsert_node(&up).await.expect("up");
        store.upsert_node(&down).await.expect("down");
        node_status::record_node_timeout(store, Duration::from_secs(30))
            .await
            .expect("timeout");
        let owner = cloud.principal("owner").await.account.account_id;
        InstanceBuilder::new("i-0000000000000001", &owner)
            .node("node-down")
            .store(&cloud)
            .await;
        InstanceBuilder::new("i-0000000000000002", &owner)
            .node("node-up")
            .address("172.31.0.5", "02:00:00:00:00:02")
            .state(InstanceState::Stopped, Desired::Stopped)
            .store(&cloud)
            .await;

        let status = gather(store, 100_000).await.expect("status");
        assert_eq!(status.nodes.len(), 2);
        assert_eq!(status.instances["running"], 1);
        assert_eq!(status.instances["stopped"], 1);
        assert_eq!(status.instances["pending"], 0);
        let kinds: Vec<_> = status.warnings.iter().map(|w| w.kind).collect();
        assert_eq!(kinds, ["node-down", "disk-full"], "{:?}", status.warnings);
        assert!(status.warnings[0].message.contains("node-down"));
        assert!(
            status.warnings[0]
                .message
                .contains("1 instance(s) are impaired")
        );
        assert!(status.warnings[1].message.contains("5 GiB of 100 GiB"));
    }

    #[test]
    fn ten_percent_free_is_the_line() {
        assert!(nearly_full(9, 100));
        assert!(!nearly_full(10, 100));
        assert!(!nearly_full(0, 0), "no disk at all is no warning");
    }
}
