//! The volume reconciler: each pass reads every node's report, decides one
//! step per volume ([`decide`], a pure function) and carries it out, a node
//! call in its own task (`node_calls`) or a change of the record.
//!
//! Steps are idempotent and keyed by volume id, so a controller killed at
//! any point decides again after restart. An attachment whose instance has
//! terminated is gone with the instance's VM: the volume becomes available
//! again (volumes attached after launch are never deleted on termination).

use std::collections::HashMap;
use std::sync::Arc;

use mallee_node_api::{ExportSpec, NodeReport, ObservedVolume, VolumeAttachment, VolumeState};
use mallee_store::{Node, StoreError};

use super::exports;
use super::model::{AttachState, Volume, VolumeDesired, VolumeStatus};
use super::node_calls::{Call, node_call};
use crate::Cloud;
use crate::ids::now_millis;
use crate::instances::model::{Desired, Instance, InstanceState};

/// What a recorded change does to a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Its storage exists: `creating` → `available`.
    Created,
    /// The instance has it: the attachment becomes `attached`.
    Attached {
        /// Where the guest finds it.
        guest_device: String,
    },
    /// The attachment is gone (detached, or its instance terminated).
    Detached,
    /// Its instance terminated and the attachment says DeleteOnTermination.
    DeletedWithInstance,
    /// Its storage could not be created or is lost.
    Failed(String),
    /// Its node grew the data to the size ModifyVolume asked for.
    Grown,
}

/// One step toward a volume's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Already where it should be, or waiting on its node.
    Nothing,
    /// Create it on its node.
    Create,
    /// Attach it to the record's instance.
    Attach,
    /// Detach it from `instance_id`.
    Detach {
        /// The instance the node has it attached to.
        instance_id: String,
        /// Do not wait long for the guest.
        force: bool,
    },
    /// Delete it from its node.
    Delete,
    /// Record a change.
    Record(Change),
    /// Remove the record (deleted from its node).
    Forget,
}

/// Whether `instance` (the volume's attachment's, `None` when its record
/// is gone) no longer has a VM that could hold the volume.
fn instance_gone(instance: Option<&Instance>) -> bool {
    instance.is_none_or(|i| i.state == InstanceState::Terminated)
}

/// Whether `instance` is on its way out (its VM and attachments go with
/// it).
fn instance_leaving(instance: &Instance) -> bool {
    instance.desired == Desired::Terminated || instance.state == InstanceState::ShuttingDown
}

/// The next step for `volume` given what its node reports (`None`: the
/// node does not hold it) and the instance of its attachment (`None`: no
/// attachment, or the instance's record is gone).
pub fn decide(
    volume: &Volume,
    observed: Option<&ObservedVolume>,
    instance: Option<&Instance>,
) -> Step {
    let held_by = observed.and_then(|o| match &o.state {
        VolumeState::Attaching { instance_id }
        | VolumeState::InUse { instance_id, .. }
        | VolumeState::Detaching { instance_id } => Some(instance_id.as_str()),
        _ => None,
    });
    if volume.desired == VolumeDesired::Deleted {
        return match (observed, held_by) {
            (None, _) => Step::Forget,
            (Some(_), Some(holder)) => Step::Detach {
                instance_id: holder.to_owned(),
                force: true,
            },
            (Some(o), None) if o.state == VolumeState::Deleting => Step::Nothing,
            (Some(_), None) => Step::Delete,
        };
    }
    let Some(o) = observed else {
        return match volume.status {
            VolumeStatus::Creating => Step::Create,
            VolumeStatus::Error => Step::Nothing,
            _ => Step::Record(Change::Failed(
                "the volume's data is missing from its node".into(),
            )),
        };
    };
    if let Some(ours) = volume.instance_id() {
        if instance_gone(instance) {
            // The node removed the instance, and its attachments with it.
            return match held_by {
                Some(holder) => Step::Detach {
                    instance_id: holder.to_owned(),
                    force: true,
                },
                None if volume.details.delete_on_termination => {
                    Step::Record(Change::DeletedWithInstance)
                }
                None => Step::Record(Change::Detached),
            };
        }
        if instance.is_some_and(instance_leaving) && held_by != Some(ours) {
            // Attaching to an instance that is going away: wait for it to
            // be gone, then the attachment is dropped above.
            return Step::Nothing;
        }
    }
    let wanted = match volume.desired {
        VolumeDesired::Attached => volume.instance_id(),
        VolumeDesired::Available | VolumeDesired::Deleted => None,
    };
    match &o.state {
        VolumeState::Creating | VolumeState::Deleting => Step::Nothing,
        VolumeState::Failed(message) => {
            if volume.status == VolumeStatus::Error {
                Step::Nothing
            } else {
                Step::Record(Change::Failed(message.clone()))
            }
        }
        VolumeState::Available => {
            if volume.status == VolumeStatus::Creating {
                Step::Record(Change::Created)
            } else if wanted.is_some()
                && (volume.details.boot
                    || instance.is_some_and(|i| i.state == InstanceState::Pending))
            {
                // A root volume is taken by its instance when it starts; a
                // volume mapped at launch is hot-plugged once the instance
                // runs on its node.
                Step::Nothing
            } else if wanted.is_some() {
                Step::Attach
            } else if volume.attach.is_some() {
                Step::Record(Change::Detached)
            } else {
                Step::Nothing
            }
        }
        VolumeState::Attaching { instance_id } => {
            if wanted == Some(instance_id.as_str()) {
                Step::Nothing
            } else {
                Step::Detach {
                    instance_id: instance_id.clone(),
                    force: volume.details.force_detach || volume.instance_id() != Some(instance_id),
                }
            }
        }
        VolumeState::InUse {
            instance_id,
            guest_device,
            ..
        } => {
            if wanted == Some(instance_id.as_str()) {
                if o.generation < volume.generation() {
                    // An older attachment to the same instance: send this one.
                    Step::Attach
                } else if volume.attach != Some(AttachState::Attached)
                    || volume.details.guest_device.as_deref() != Some(guest_device)
                {
                    Step::Record(Change::Attached {
                        guest_device: guest_device.clone(),
                    })
                } else {
                    Step::Nothing
                }
            } else {
                Step::Detach {
                    instance_id: instance_id.clone(),
                    force: volume.details.force_detach || volume.instance_id() != Some(instance_id),
                }
            }
        }
        VolumeState::Detaching { instance_id } => {
            if wanted.is_none() && volume.details.force_detach {
                // A forced detach asked for after a polite one.
                Step::Detach {
                    instance_id: instance_id.clone(),
                    force: true,
                }
            } else {
                Step::Nothing
            }
        }
    }
}

/// The step that grows `volume` for ModifyVolume, from what the node
/// holding its data reports (`data`): its larger size sent again until the
/// node has grown the data (the node grows a volume whenever it is sent a
/// larger size), then the modification recorded as complete. `None`: no
/// growth pending, or the data is not in a state to grow: an attached
/// volume (open in a VM, or exported to one by the storage daemon, whose
/// NBD export does not let its image be resized) grows once it is
/// detached.
pub fn growth(volume: &Volume, data: Option<&ObservedVolume>) -> Option<Step> {
    let m = volume.details.modification.as_ref()?;
    let data = data?;
    if !m.growing() {
        return None;
    }
    if data.size_gib >= u64::try_from(m.target_size).unwrap_or(u64::MAX) {
        return Some(Step::Record(Change::Grown));
    }
    (data.state == VolumeState::Available && data.export.is_none()).then_some(Step::Create)
}

type VolumeReport = HashMap<String, ObservedVolume>;

/// One pass over every volume, from the volumes each node of `nodes`
/// reported this pass: decides a step per volume and starts it. Volumes
/// of nodes that did not answer are left alone. `true` when some volume is still on its
/// way to a stable state.
pub async fn pass(
    cloud: &Arc<Cloud>,
    nodes: &[Node],
    node_reports: &HashMap<String, Option<NodeReport>>,
) -> Result<bool, StoreError> {
    let records = cloud.store.volumes(None).await?;
    if records.is_empty() {
        return Ok(false);
    }
    let reports: HashMap<&str, Option<VolumeReport>> = node_reports
        .iter()
        .map(|(node_id, report)| {
            let volumes = report.as_ref().map(|r| {
                r.volumes
                    .iter()
                    .map(|o| (o.volume_id.clone(), o.clone()))
                    .collect()
            });
            (node_id.as_str(), volumes)
        })
        .collect();
    let mut busy = false;
    let mut instances: HashMap<String, Option<Instance>> = HashMap::new();
    for record in records {
        let volume = match Volume::decode(record) {
            Ok(volume) => volume,
            Err(e) => {
                tracing::error!(error = %e, "skipping a volume record");
                continue;
            }
        };
        if volume.desired == VolumeDesired::Deleted
            && !nodes.iter().any(|n| n.node_id == volume.record.node_id)
        {
            // Its node was removed from the cloud, and its data with it.
            tracing::info!(volume = %volume.id(), node = %volume.record.node_id, "forgetting a deleted volume of a removed node");
            cloud.store.delete_volume(&volume.record).await?;
            continue;
        }
        let Some(Some(report)) = reports.get(volume.record.node_id.as_str()) else {
            continue;
        };
        let Some(data_node) = nodes.iter().find(|n| n.node_id == volume.record.node_id) else {
            continue;
        };
        let instance = match volume.instance_id() {
            None => None,
            Some(id) => {
                if !instances.contains_key(id) {
                    let loaded = cloud
                        .store
                        .instance(id)
                        .await?
                        .and_then(|r| Instance::decode(r).ok());
                    instances.insert(id.to_owned(), loaded);
                }
                instances.get(id).and_then(Option::as_ref)
            }
        };
        busy |= matches!(
            volume.status,
            VolumeStatus::Creating | VolumeStatus::Deleting
        ) || matches!(
            volume.attach,
            Some(AttachState::Attaching | AttachState::Detaching)
        );
        if volume.desired != VolumeDesired::Deleted
            && let Some(step) = growth(&volume, report.get(volume.id()))
        {
            busy = true;
            apply(cloud, data_node, data_node, volume, step).await?;
            continue;
        }
        if !crate::zone_storage::is_storage(data_node) {
            let step = decide(&volume, report.get(volume.id()), instance);
            apply(cloud, data_node, data_node, volume, step).await?;
            continue;
        }
        // A storage host's volume: its exports first, then the usual steps
        // on the view of the node that holds (or is to hold) it.
        let data = report.get(volume.id());
        let remotes = remotes_of(&reports, data_node, volume.id());
        let target = exports::target(&volume, instance);
        if let Some(plumbing) = exports::plumb(data, &remotes, target) {
            busy = true;
            apply_plumbing(cloud, nodes, data_node, &volume, plumbing);
            continue;
        }
        let Some((view, from)) = exports::compose(data, &remotes, target) else {
            let step = decide(&volume, None, instance);
            apply(cloud, data_node, data_node, volume, step).await?;
            continue;
        };
        let attach_node = from
            .as_deref()
            .or(target)
            .and_then(|id| nodes.iter().find(|n| n.node_id == id));
        let step = decide(&volume, Some(&view), instance);
        match attach_node {
            Some(attach_node) => apply(cloud, data_node, attach_node, volume, step).await?,
            None if matches!(step, Step::Attach | Step::Detach { .. }) => {}
            None => apply(cloud, data_node, data_node, volume, step).await?,
        }
    }
    Ok(busy)
}

/// What the compute nodes other than the storage host `data_node` reported
/// of `volume_id` this pass.
fn remotes_of(
    reports: &HashMap<&str, Option<VolumeReport>>,
    data_node: &Node,
    volume_id: &str,
) -> exports::Remotes {
    let mut remotes = exports::Remotes::default();
    for (node_id, report) in reports {
        if *node_id == data_node.node_id {
            continue;
        }
        let Some(report) = report else { continue };
        remotes.answered.insert((*node_id).to_owned());
        if let Some(o) = report.get(volume_id) {
            remotes.records.insert((*node_id).to_owned(), o.clone());
        }
    }
    remotes
}

/// Starts a plumbing step: a call to the storage host or to a compute
/// node.
fn apply_plumbing(
    cloud: &Arc<Cloud>,
    nodes: &[Node],
    data_node: &Node,
    volume: &Volume,
    plumbing: exports::Plumb,
) {
    let node = |id: &str| nodes.iter().find(|n| n.node_id == id);
    tracing::debug!(volume = %volume.id(), step = ?plumbing, "volume export");
    match plumbing {
        exports::Plumb::Wait => {}
        exports::Plumb::Unexport => {
            node_call(cloud, data_node, Call::Unexport(volume.id().to_owned()));
        }
        exports::Plumb::Export { node_id } => node_call(
            cloud,
            data_node,
            Call::Export(ExportSpec {
                volume_id: volume.id().to_owned(),
                node_id,
                generation: volume.generation(),
            }),
        ),
        exports::Plumb::Release { node_id } => {
            if let Some(node) = node(&node_id) {
                node_call(cloud, node, Call::Release(volume.id().to_owned()));
            }
        }
        exports::Plumb::Record { node_id, export } => {
            if let Some(node) = node(&node_id) {
                let mut spec = volume.node_spec();
                spec.source = None;
                spec.remote = Some(export);
                node_call(cloud, node, Call::Record(spec));
            }
        }
    }
}

/// Carries out `step` for `volume`, whose data is on `data_node` and whose
/// attachment is (or is to be) on `attach_node` (the same node unless a
/// storage host holds the data).
async fn apply(
    cloud: &Arc<Cloud>,
    data_node: &Node,
    attach_node: &Node,
    mut volume: Volume,
    step: Step,
) -> Result<(), StoreError> {
    let node = data_node;
    match step {
        Step::Nothing => {}
        Step::Create => node_call(cloud, node, Call::Create(volume.node_spec())),
        Step::Attach => {
            let (Some(instance_id), Some(device)) = (
                volume.record.instance_id.clone(),
                volume.record.device.clone(),
            ) else {
                return Ok(());
            };
            node_call(
                cloud,
                attach_node,
                Call::Attach {
                    instance_id,
                    attachment: VolumeAttachment {
                        volume_id: volume.id().to_owned(),
                        device,
                        generation: volume.generation(),
                    },
                },
            );
        }
        Step::Detach { instance_id, force } => node_call(
            cloud,
            attach_node,
            Call::Detach {
                volume_id: volume.id().to_owned(),
                instance_id,
                force,
            },
        ),
        Step::Delete => node_call(cloud, node, Call::Delete(volume.id().to_owned())),
        Step::Record(change) => {
            tracing::info!(volume = %volume.id(), change = ?change, "volume state");
            match change {
                Change::Created => volume.status = VolumeStatus::Available,
                Change::Grown => {
                    if let Some(m) = volume.details.modification.as_mut() {
                        m.state = "completed".into();
                        m.end_time = Some(now_millis());
                    }
                }
                Change::Attached { guest_device } => {
                    volume.status = VolumeStatus::InUse;
                    volume.attach = Some(AttachState::Attached);
                    volume.details.guest_device = Some(guest_device);
                    volume.details.error = None;
                }
                Change::Detached => volume.detach(),
                Change::DeletedWithInstance => {
                    volume.detach();
                    volume.status = VolumeStatus::Deleting;
                    volume.desired = VolumeDesired::Deleted;
                }
                Change::Failed(message) => {
                    volume.status = VolumeStatus::Error;
                    volume.details.error = Some(message);
                }
            }
            volume.record.updated_at = now_millis();
            if cloud.store.update_volume(&volume.encode()).await? {
                cloud.compute.wake();
            }
        }
        Step::Forget => {
            tracing::info!(volume = %volume.id(), "volume deleted");
            cloud.store.delete_volume(&volume.record).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mallee_node_api::ObservedVolume;

    use super::*;
    use crate::testkit::InstanceBuilder;
    use crate::volumes::model::tests::{I1, VOL, volume};

    const I2: &str = "i-0123456789abcdef2";

    fn observed(state: VolumeState, generation: u64) -> ObservedVolume {
        ObservedVolume {
            volume_id: VOL.into(),
            state,
            size_gib: 1,
            generation,
            export: None,
            remote: false,
        }
    }

    fn in_use(instance: &str) -> VolumeState {
        VolumeState::InUse {
            instance_id: instance.into(),
            device: "/dev/sdf".into(),
            guest_device: "/dev/disk/by-id/virtio-vol0123456789abcdef0".into(),
        }
    }

    fn instance(id: &str, state: InstanceState, desired: Desired) -> Instance {
        InstanceBuilder::new(id, "111111111111")
            .zone("z")
            .state(state, desired)
            .instance()
    }

    use AttachState::{Attached, Attaching, Detaching};
    use VolumeDesired as D;
    use VolumeStatus as S;

    #[test]
    fn creation() {
        let v = volume(S::Creating, D::Available, None);
        assert_eq!(decide(&v, None, None), Step::Create);
        let creating = observed(VolumeState::Creating, 1);
        assert_eq!(decide(&v, Some(&creating), None), Step::Nothing);
        let available = observed(VolumeState::Available, 1);
        assert_eq!(
            decide(&v, Some(&available), None),
            Step::Record(Change::Created)
        );
        let failed = observed(VolumeState::Failed("disk full".into()), 1);
        assert_eq!(
            decide(&v, Some(&failed), None),
            Step::Record(Change::Failed("disk full".into()))
        );
        let broken = volume(S::Error, D::Available, None);
        assert_eq!(decide(&broken, Some(&failed), None), Step::Nothing);
        assert_eq!(decide(&broken, None, None), Step::Nothing);
        // A volume the node lost is not silently recreated empty.
        let lost = volume(S::Available, D::Available, None);
        assert!(matches!(
            decide(&lost, None, None),
            Step::Record(Change::Failed(_))
        ));
        assert_eq!(decide(&lost, Some(&available), None), Step::Nothing);
    }

    #[test]
    fn attachment() {
        let running = instance(I1, InstanceState::Running, Desired::Running);
        let v = volume(S::InUse, D::Attached, Some(Attaching));
        let available = observed(VolumeState::Available, 1);
        assert_eq!(decide(&v, Some(&available), Some(&running)), Step::Attach);
        let attaching = observed(
            VolumeState::Attaching {
                instance_id: I1.into(),
            },
            2,
        );
        assert_eq!(decide(&v, Some(&attaching), Some(&running)), Step::Nothing);
        let attached = observed(in_use(I1), 2);
        assert_eq!(
            decide(&v, Some(&attached), Some(&running)),
            Step::Record(Change::Attached {
                guest_device: "/dev/disk/by-id/virtio-vol0123456789abcdef0".into()
            })
        );
        // An older attachment to the same instance is not this one.
        let older = observed(in_use(I1), 1);
        assert_eq!(decide(&v, Some(&older), Some(&running)), Step::Attach);
        let mut done = v.clone();
        done.attach = Some(Attached);
        done.details.guest_device = Some("/dev/disk/by-id/virtio-vol0123456789abcdef0".into());
        assert_eq!(
            decide(&done, Some(&attached), Some(&running)),
            Step::Nothing
        );
        // Held by an instance it should not be on: released, forcibly.
        let elsewhere = observed(in_use(I2), 2);
        assert_eq!(
            decide(&v, Some(&elsewhere), Some(&running)),
            Step::Detach {
                instance_id: I2.into(),
                force: true
            }
        );
        // A stopped instance gets the attachment recorded by its node.
        let stopped = instance(I1, InstanceState::Stopped, Desired::Stopped);
        assert_eq!(decide(&v, Some(&available), Some(&stopped)), Step::Attach);
        // An instance on its way out is waited for, not attached to.
        let leaving = instance(I1, InstanceState::ShuttingDown, Desired::Terminated);
        assert_eq!(decide(&v, Some(&available), Some(&leaving)), Step::Nothing);
    }

    #[test]
    fn detachment() {
        let running = instance(I1, InstanceState::Running, Desired::Running);
        let mut v = volume(S::InUse, D::Available, Some(Detaching));
        let attached = observed(in_use(I1), 2);
        assert_eq!(
            decide(&v, Some(&attached), Some(&running)),
            Step::Detach {
                instance_id: I1.into(),
                force: false
            }
        );
        let detaching = observed(
            VolumeState::Detaching {
                instance_id: I1.into(),
            },
            2,
        );
        assert_eq!(decide(&v, Some(&detaching), Some(&running)), Step::Nothing);
        let available = observed(VolumeState::Available, 2);
        assert_eq!(
            decide(&v, Some(&available), Some(&running)),
            Step::Record(Change::Detached)
        );
        v.details.force_detach = true;
        let forced = Step::Detach {
            instance_id: I1.into(),
            force: true,
        };
        assert_eq!(decide(&v, Some(&attached), Some(&running)), forced);
        // A forced detach asked for while a polite one waits on the guest.
        assert_eq!(decide(&v, Some(&detaching), Some(&running)), forced);
    }

    #[test]
    fn launch_volumes_wait_for_their_instance_and_go_with_it() {
        let available = observed(VolumeState::Available, 1);
        let pending = instance(I1, InstanceState::Pending, Desired::Running);
        let running = instance(I1, InstanceState::Running, Desired::Running);
        let mut root = volume(S::Available, D::Attached, Some(Attaching));
        root.details.boot = true;
        // A root volume is never hot-plugged: its instance takes it.
        assert_eq!(
            decide(&root, Some(&available), Some(&running)),
            Step::Nothing
        );
        // A data volume mapped at launch waits until the instance runs.
        let data = volume(S::Available, D::Attached, Some(Attaching));
        assert_eq!(
            decide(&data, Some(&available), Some(&pending)),
            Step::Nothing
        );
        assert_eq!(
            decide(&data, Some(&available), Some(&running)),
            Step::Attach
        );
        // DeleteOnTermination: gone with its terminated instance.
        let terminated = instance(I1, InstanceState::Terminated, Desired::Terminated);
        let mut doomed = volume(S::InUse, D::Attached, Some(Attached));
        doomed.details.delete_on_termination = true;
        assert_eq!(
            decide(&doomed, Some(&available), Some(&terminated)),
            Step::Record(Change::DeletedWithInstance)
        );
        assert_eq!(
            decide(&doomed, Some(&available), None),
            Step::Record(Change::DeletedWithInstance)
        );
    }

    #[test]
    fn terminated_instances_leave_their_volumes_available() {
        let terminated = instance(I1, InstanceState::Terminated, Desired::Terminated);
        let available = observed(VolumeState::Available, 2);
        for attach in [Attaching, Attached, Detaching] {
            for desired in [D::Attached, D::Available] {
                let v = volume(S::InUse, desired, Some(attach));
                assert_eq!(
                    decide(&v, Some(&available), Some(&terminated)),
                    Step::Record(Change::Detached),
                    "{attach:?} {desired:?}"
                );
                // The instance's record forgotten: the same.
                assert_eq!(
                    decide(&v, Some(&available), None),
                    Step::Record(Change::Detached)
                );
            }
        }
        // A node that still holds it releases it first.
        let v = volume(S::InUse, D::Attached, Some(Attached));
        assert_eq!(
            decide(&v, Some(&observed(in_use(I1), 2)), Some(&terminated)),
            Step::Detach {
                instance_id: I1.into(),
                force: true
            }
        );
        // Shutting down: the attachment stays until the instance is gone.
        let leaving = instance(I1, InstanceState::ShuttingDown, Desired::Terminated);
        assert_eq!(
            decide(&v, Some(&observed(in_use(I1), 2)), Some(&leaving)),
            Step::Record(Change::Attached {
                guest_device: "/dev/disk/by-id/virtio-vol0123456789abcdef0".into()
            })
        );
    }

    #[test]
    fn deletion() {
        let v = volume(S::Deleting, D::Deleted, None);
        let available = observed(VolumeState::Available, 1);
        assert_eq!(decide(&v, Some(&available), None), Step::Delete);
        assert_eq!(
            decide(&v, Some(&observed(VolumeState::Deleting, 1)), None),
            Step::Nothing
        );
        assert_eq!(decide(&v, None, None), Step::Forget);
        assert_eq!(
            decide(&v, Some(&observed(in_use(I2), 1)), None),
            Step::Detach {
                instance_id: I2.into(),
                force: true
            }
        );
        let failed = observed(VolumeState::Failed("x".into()), 1);
        assert_eq!(decide(&v, Some(&failed), None), Step::Delete);
    }

    #[test]
    fn growth_waits_for_a_closed_file_then_completes() {
        let mut v = volume(VolumeStatus::Available, VolumeDesired::Available, None);
        let available = observed(VolumeState::Available, 2);
        assert_eq!(growth(&v, Some(&available)), None, "nothing asked");
        v.record.size_gib = 2;
        v.details.modification = Some(crate::volumes::model::Modification {
            state: "modifying".into(),
            status_message: None,
            original_size: 1,
            target_size: 2,
            original_type: "gp2".into(),
            target_type: "gp2".into(),
            original_iops: Some(100),
            target_iops: Some(100),
            original_throughput: None,
            target_throughput: None,
            start_time: 1,
            end_time: None,
        });
        assert_eq!(growth(&v, Some(&available)), Some(Step::Create));
        assert_eq!(growth(&v, None), None, "its node did not answer");
        // Open in a VM, or exported to one: it waits.
        assert_eq!(growth(&v, Some(&observed(in_use(I1), 2))), None);
        let mut exported = available.clone();
        exported.export = Some(mallee_node_api::ObservedExport {
            node_id: "node-2".into(),
            export: mallee_node_api::NbdExport {
                host: "10.0.0.1".into(),
                port: 10809,
                name: VOL.into(),
                server_node_id: "storage-1".into(),
            },
            serving: true,
        });
        assert_eq!(growth(&v, Some(&exported)), None);
        let mut grown = available.clone();
        grown.size_gib = 2;
        assert_eq!(growth(&v, Some(&grown)), Some(Step::Record(Change::Grown)));
        if let Some(m) = v.details.modification.as_mut() {
            m.state = "completed".into();
        }
        assert_eq!(growth(&v, Some(&available)), None);
    }
}
