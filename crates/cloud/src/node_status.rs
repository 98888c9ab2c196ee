//! The administrator's view of the nodes (`mallee admin node list`) and
//! maintenance (`mallee admin node disable` / `enable`). Both work from the
//! store alone, so the admin command runs on the controller's data
//! directory whether the controller is up or not. The controller records
//! its node timeout at start ([`record_node_timeout`]) so the list judges a
//! node's silence exactly as placement does.

use std::time::Duration;

use mallee_store::{Node, Store, StoreError};

use crate::health::{self, NodeHealth};
use crate::instances::model::Instance;
use crate::instances::placement;

/// The setting holding the running controller's node timeout (ms).
pub const NODE_TIMEOUT_SETTING: &str = "node_timeout_ms";

/// Why a node could not be listed or changed.
#[derive(Debug, thiserror::Error)]
pub enum NodeStatusError {
    /// No such node has registered.
    #[error("no node {0} in this cloud (`mallee admin node list` shows the nodes)")]
    UnknownNode(String),
    /// The store failed.
    #[error("could not read or change the nodes: {0}")]
    Store(#[from] StoreError),
}

/// Cores, memory and disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    /// Virtual cores.
    pub cores: u64,
    /// Memory (MiB).
    pub memory_mib: u64,
    /// Instance disk (GiB).
    pub disk_gib: u64,
}

/// One node as the administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's record (zone, version, accelerator, maximum capacity).
    pub node: Node,
    /// Up or down, by its last heartbeat.
    pub health: NodeHealth,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: i64,
    /// What the controller's instances on it hold.
    pub used: Resources,
    /// What is left for new instances.
    pub free: Resources,
    /// The instances it runs (those holding capacity on it), by id.
    pub instances: Vec<String>,
}

impl NodeStatus {
    /// Whether new instances may be placed on it now.
    pub fn schedulable(&self) -> bool {
        self.health == NodeHealth::Up && !self.node.disabled
    }
}

/// Records the controller's node timeout for [`list`].
pub async fn record_node_timeout(store: &dyn Store, timeout: Duration) -> Result<(), StoreError> {
    store
        .set_setting(NODE_TIMEOUT_SETTING, &timeout.as_millis().to_string())
        .await
}

/// The node timeout the controller last started with (the default when it
/// never recorded one).
pub async fn node_timeout(store: &dyn Store) -> Result<Duration, StoreError> {
    Ok(store
        .setting(NODE_TIMEOUT_SETTING)
        .await?
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(crate::config::DEFAULT_NODE_TIMEOUT, Duration::from_millis))
}

/// Every node at `now` (ms), ordered by id.
pub async fn list(store: &dyn Store, now: i64) -> Result<Vec<NodeStatus>, NodeStatusError> {
    let timeout = node_timeout(store).await?;
    let instances: Vec<Instance> = store
        .instances(None)
        .await?
        .into_iter()
        .filter_map(|r| Instance::decode(r).ok())
        .collect();
    Ok(store
        .nodes()
        .await?
        .into_iter()
        .map(|node| status(node, &instances, timeout, now))
        .collect())
}

/// The nodes as the API's `DescribeNodes` shows them: only to callers of
/// an administrator account (the IAM policy check comes first, in the
/// protocol layer), as Eucalyptus showed its node controllers.
pub async fn describe(
    store: &dyn Store,
    caller: &crate::Principal,
    now: i64,
) -> Result<Vec<NodeStatus>, crate::CloudError> {
    if !caller.account.is_admin {
        return Err(crate::CloudError::Unauthorized);
    }
    list(store, now).await.map_err(|e| match e {
        NodeStatusError::Store(s) => s.into(),
        other => crate::CloudError::Internal(other.to_string()),
    })
}

fn status(node: Node, instances: &[Instance], timeout: Duration, now: i64) -> NodeStatus {
    let room = placement::rooms(std::slice::from_ref(&node), instances, &node.zone)
        .pop()
        .expect("one room per node of its own zone");
    let max = |v: i64| u64::try_from(v).unwrap_or(0);
    let free = Resources {
        cores: room.cores,
        memory_mib: room.memory_mib,
        disk_gib: room.disk_gib,
    };
    let used = Resources {
        cores: max(node.cores_max).saturating_sub(free.cores),
        memory_mib: max(node.memory_mib_max).saturating_sub(free.memory_mib),
        disk_gib: max(node.disk_gib_max).saturating_sub(free.disk_gib),
    };
    let mut on_node: Vec<String> = instances
        .iter()
        .filter(|i| i.record.node_id == node.node_id && i.holds_capacity())
        .map(|i| i.record.instance_id.clone())
        .collect();
    on_node.sort();
    NodeStatus {
        health: health::judge(node.updated_at, timeout, now),
        heartbeat_age_ms: now.saturating_sub(node.updated_at).max(0),
        used,
        free,
        instances: on_node,
        node,
    }
}

/// Stops (`disabled`) or resumes placements on `node_id`. What the node
/// runs is untouched either way.
pub async fn set_disabled(
    store: &dyn Store,
    node_id: &str,
    disabled: bool,
) -> Result<(), NodeStatusError> {
    if store.set_node_disabled(node_id, disabled).await? {
        Ok(())
    } else {
        Err(NodeStatusError::UnknownNode(node_id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::model::{Desired, InstanceState};
    use crate::testkit::{InstanceBuilder, TestCloud, node};

    #[tokio::test]
    async fn lists_health_capacity_and_instances_and_disabling_sticks() {
        let cloud = TestCloud::new().await;
        let store = cloud.store.as_ref();
        let mut quiet = node("node-a", "mallee-1a", 4, 4096, 100);
        quiet.updated_at = 1_000;
        let mut busy = node("node-b", "mallee-1a", 8, 8192, 200);
        busy.updated_at = 95_000;
        store.upsert_node(&quiet).await.expect("node a");
        store.upsert_node(&busy).await.expect("node b");
        let owner = cloud.principal("owner").await.account.account_id;
        InstanceBuilder::new("i-0000000000000001", &owner)
            .node("node-b")
            .store(&cloud)
            .await;
        InstanceBuilder::new("i-0000000000000002", &owner)
            .node("node-b")
            .address("172.31.0.5", "02:00:00:00:00:02")
            .state(InstanceState::Stopped, Desired::Stopped)
            .store(&cloud)
            .await;
        record_node_timeout(store, Duration::from_secs(60))
            .await
            .expect("timeout");

        let listed = list(store, 100_000).await.expect("list");
        let (a, b) = (&listed[0], &listed[1]);
        assert_eq!(a.node.node_id, "node-a");
        assert_eq!(a.health, NodeHealth::Down, "silent for 99 s of 60");
        assert_eq!(a.heartbeat_age_ms, 99_000);
        assert!(a.instances.is_empty());
        assert_eq!(a.used, Resources::default());
        assert!(!a.schedulable());
        assert_eq!(b.health, NodeHealth::Up);
        assert_eq!(
            b.instances,
            ["i-0000000000000001"],
            "a stopped one holds nothing"
        );
        assert!(
            b.used.cores > 0 && b.used.cores + b.free.cores == 8,
            "{b:?}"
        );
        assert!(b.schedulable());

        let tenant = cloud.principal("tenant").await;
        assert!(matches!(
            describe(store, &tenant, 100_000).await,
            Err(crate::CloudError::Unauthorized)
        ));
        let mut admin = tenant.clone();
        admin.account.is_admin = true;
        assert_eq!(
            describe(store, &admin, 100_000).await.expect("admin").len(),
            2
        );

        set_disabled(store, "node-b", true).await.expect("disable");
        let listed = list(store, 100_000).await.expect("list");
        assert!(listed[1].node.disabled && !listed[1].schedulable());
        assert!(
            health::schedulable(&cloud, store.nodes().await.expect("nodes"), 100_000)
                .iter()
                .all(|n| n.node_id != "node-b")
        );
        set_disabled(store, "node-b", false).await.expect("enable");
        assert!(list(store, 100_000).await.expect("list")[1].schedulable());
        assert!(matches!(
            set_disabled(store, "node-z", true).await,
            Err(NodeStatusError::UnknownNode(n)) if n == "node-z"
        ));
    }
}
