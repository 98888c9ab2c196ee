//! Evacuating a node (`mallee admin node disable --evacuate`): its running
//! EBS-backed instances whose volumes all live on the zone's storage host
//! are stopped and started again on other nodes of their zone. The admin
//! command only records the intent on each instance ([`mark`]); the
//! controller's reconciler carries it out ([`restart`] once an instance is
//! stopped), so a crash at any point resumes where it stood.
//! Instance-store instances stay: their root disk is the node's.

use mallee_store::{Store, StoreError};

use super::model::{Desired, Instance, InstanceState};
use super::placement::{self, Demand};
use super::spec::Boot;
use crate::Cloud;
use crate::error::CloudError;
use crate::ids::now_millis;

/// What [`mark`] did with each instance of the node.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evacuation {
    /// Instances being stopped to start elsewhere.
    pub moving: Vec<String>,
    /// Instances that stay, and why.
    pub staying: Vec<(String, String)>,
}

/// Why `instance` cannot start on another node (`None`: it can): it boots
/// from an instance store, or one of its volumes is kept on a node.
pub async fn why_not_movable(
    store: &dyn Store,
    instance: &Instance,
) -> Result<Option<String>, StoreError> {
    if !matches!(instance.details.spec.image, Boot::Ebs { .. }) {
        return Ok(Some(
            "its root device is an instance store on the node".into(),
        ));
    }
    let nodes = store.nodes().await?;
    let volumes = store.volumes(Some(&instance.record.account_id)).await?;
    Ok(volumes
        .iter()
        .filter(|v| v.instance_id.as_deref() == Some(instance.id()))
        .find(|v| {
            !nodes
                .iter()
                .any(|n| n.node_id == v.node_id && crate::zone_storage::is_storage(n))
        })
        .map(|v| format!("its volume {} is kept on node {}", v.volume_id, v.node_id)))
}

/// Marks every running or pending instance of `node_id` that can move:
/// stopping, to be started on another node once stopped.
pub async fn mark(store: &dyn Store, node_id: &str) -> Result<Evacuation, StoreError> {
    let mut evacuation = Evacuation::default();
    for record in store.instances(None).await? {
        if record.node_id != node_id {
            continue;
        }
        let Ok(mut instance) = Instance::decode(record) else {
            continue;
        };
        if crate::metal::names::is_metal(&instance)
            || !matches!(
                instance.state,
                InstanceState::Running | InstanceState::Pending
            )
            || instance.desired != Desired::Running
        {
            continue;
        }
        if let Some(reason) = why_not_movable(store, &instance).await? {
            evacuation.staying.push((instance.id().to_owned(), reason));
            continue;
        }
        instance.state = InstanceState::Stopping;
        instance.desired = Desired::Stopped;
        instance.record.generation += 1;
        instance.details.evacuating = true;
        instance.details.state_transition_reason =
            format!("Evacuating node {node_id} for maintenance");
        instance.record.updated_at = now_millis();
        if store.update_instance(&instance.encode()).await? {
            evacuation.moving.push(instance.id().to_owned());
        } else {
            evacuation.staying.push((
                instance.id().to_owned(),
                "it changed meanwhile; run the command again".into(),
            ));
        }
    }
    Ok(evacuation)
}

/// Starts `instance`, stopped by an evacuation, on another node of its
/// zone with room for it. `false` when no node has room now (the
/// reconciler tries again on its next pass).
pub async fn restart(cloud: &Cloud, instance: &Instance) -> Result<bool, CloudError> {
    let _placing = cloud.compute.placement_lock.lock().await;
    let Some(record) = cloud.store.instance(instance.id()).await? else {
        return Ok(false);
    };
    let Ok(mut current) = Instance::decode(record) else {
        return Ok(false);
    };
    if current.state != InstanceState::Stopped || !current.details.evacuating {
        return Ok(false);
    }
    let all = super::quota::all_instances(cloud).await?;
    let nodes = crate::health::schedulable(cloud, cloud.store.nodes().await?, now_millis());
    let mut rooms = placement::rooms(&nodes, &all, &current.record.zone);
    let demand = Demand::of(&current.details.spec);
    let candidates: Vec<String> = rooms
        .iter()
        .filter(|r| r.node.node_id != current.record.node_id)
        .map(|r| r.node.node_id.clone())
        .collect();
    let Some(target) = candidates
        .into_iter()
        .find(|node_id| placement::take_on(&mut rooms, node_id, demand))
    else {
        tracing::warn!(instance = %current.id(), "no node has room for an evacuated instance yet");
        return Ok(false);
    };
    tracing::info!(instance = %current.id(), from = %current.record.node_id, to = %target, "starting an evacuated instance on another node");
    current.record.node_id = target;
    current.state = InstanceState::Pending;
    current.desired = Desired::Running;
    current.record.generation += 1;
    current.details.evacuating = false;
    current.details.state_reason = None;
    current.details.state_transition_reason = String::new();
    current.record.updated_at = now_millis();
    Ok(cloud.store.update_instance(&current.encode()).await?)
}
