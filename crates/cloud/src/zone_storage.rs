//! Where a zone keeps its volumes. A zone with a storage host (a node of
//! role `storage`, `mallee storage`) keeps every new volume there, and the
//! storage host exports each attached volume over NBD to the node its
//! instance runs on, so a volume attaches to an instance on any node of the
//! zone and an EBS-backed instance can start on any node. A zone without
//! one keeps each volume as a file on one compute node, attached there
//! only (the single-host layout of earlier releases).

use mallee_node_api::NodeRole;
use mallee_store::Node;

use crate::Cloud;
use crate::error::CloudError;

/// Whether `node` is a storage host.
pub fn is_storage(node: &Node) -> bool {
    node.role == NodeRole::Storage.as_str()
}

/// The storage hosts of `zone` among `nodes`, whatever their health.
pub fn storage_hosts<'a>(nodes: &'a [Node], zone: &'a str) -> impl Iterator<Item = &'a Node> {
    nodes
        .iter()
        .filter(move |n| n.zone == zone && is_storage(n))
}

/// Why no node can hold a new volume of a zone.
fn no_volume_host(zone: &str, why: &str) -> CloudError {
    CloudError::InsufficientCapacity {
        capacity: crate::error::Capacity::Volumes,
        message: format!(
            "There is not enough capacity to fulfill your EBS volume provision request in {zone}: {why}."
        ),
    }
}

/// The nodes that may hold a new volume of `zone` (of `nodes`, every node
/// of the cloud): its storage hosts that are up and enabled when the zone
/// has storage hosts, else its compute nodes that take new work. Refused
/// with `InsufficientVolumeCapacity` when there is none.
pub fn volume_hosts(
    cloud: &Cloud,
    nodes: Vec<Node>,
    zone: &str,
    now: i64,
) -> Result<Vec<Node>, CloudError> {
    let has_storage = storage_hosts(&nodes, zone).next().is_some();
    let open: Vec<Node> = nodes
        .into_iter()
        .filter(|n| {
            n.zone == zone
                && !n.disabled
                && is_storage(n) == has_storage
                && crate::health::of(cloud, n, now) == crate::health::NodeHealth::Up
        })
        .collect();
    if open.is_empty() {
        return Err(no_volume_host(
            zone,
            if has_storage {
                "its storage host is down or disabled"
            } else {
                "the zone has no node"
            },
        ));
    }
    Ok(open)
}

/// The node that holds the volumes an instance on `instance_node` of
/// `zone` is launched with: the zone's storage host (the one with the most
/// free disk) when it has one, else the instance's own node.
pub async fn launch_volume_host(
    cloud: &Cloud,
    zone: &str,
    instance_node: &str,
) -> Result<String, CloudError> {
    let nodes = cloud.store.nodes().await?;
    if storage_hosts(&nodes, zone).next().is_none() {
        return Ok(instance_node.to_owned());
    }
    let hosts = volume_hosts(cloud, nodes, zone, crate::ids::now_millis())?;
    Ok(hosts
        .into_iter()
        .max_by_key(|n| (n.disk_gib_free, std::cmp::Reverse(n.node_id.clone())))
        .map(|n| n.node_id)
        .unwrap_or_else(|| instance_node.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{TestCloud, node};

    #[tokio::test]
    async fn volumes_go_to_the_storage_host_and_instances_never_do() {
        let cloud = TestCloud::new().await;
        let store = cloud.store.as_ref();
        let now = crate::ids::now_millis();
        let fresh = |mut n: Node| {
            n.updated_at = now;
            n
        };
        store
            .upsert_node(&fresh(node("nd-a", "z", 8, 8192, 100)))
            .await
            .expect("node a");
        store
            .upsert_node(&fresh(node("nd-b", "z", 8, 8192, 900)))
            .await
            .expect("node b");
        // No storage host: the compute nodes keep volumes, an instance's
        // launch volumes stay on its node.
        let hosts =
            volume_hosts(&cloud, store.nodes().await.expect("nodes"), "z", now).expect("hosts");
        assert_eq!(hosts.len(), 2);
        assert_eq!(
            launch_volume_host(&cloud, "z", "nd-a").await.expect("host"),
            "nd-a"
        );

        let mut storage = fresh(node("st-1", "z", 0, 0, 50));
        storage.role = "storage".into();
        store.upsert_node(&storage).await.expect("storage");
        let nodes = store.nodes().await.expect("nodes");
        let hosts = volume_hosts(&cloud, nodes.clone(), "z", now).expect("hosts");
        assert_eq!(
            hosts.iter().map(|n| n.node_id.as_str()).collect::<Vec<_>>(),
            ["st-1"],
            "the storage host alone, however much disk the nodes have"
        );
        assert_eq!(
            launch_volume_host(&cloud, "z", "nd-a").await.expect("host"),
            "st-1"
        );
        assert!(
            crate::health::schedulable(&cloud, nodes, now)
                .iter()
                .all(|n| !is_storage(n)),
            "instances never go to a storage host"
        );
        // A zone whose storage host is disabled refuses new volumes rather
        // than keeping them on a node.
        store
            .set_node_disabled("st-1", true)
            .await
            .expect("disable");
        let refused = volume_hosts(&cloud, store.nodes().await.expect("nodes"), "z", now);
        assert!(
            matches!(&refused, Err(CloudError::InsufficientCapacity { message, .. }) if message.contains("storage host")),
            "{refused:?}"
        );
        assert!(launch_volume_host(&cloud, "z", "nd-a").await.is_err());
        // Another zone is not affected.
        store
            .upsert_node(&fresh(node("nd-c", "y", 8, 8192, 100)))
            .await
            .expect("node c");
        assert_eq!(
            launch_volume_host(&cloud, "y", "nd-c").await.expect("host"),
            "nd-c"
        );
    }
}
