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
