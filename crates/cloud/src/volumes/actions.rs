//! What the volume actions do: create a volume (empty or from a snapshot)
//! on a node of its zone, delete it, attach it to an instance and detach
//! it, and change its attributes.
//!
//! Each action checks everything first, then records the volume's desired
//! state with compare-and-set (retried when the reconciler changed the row
//! meanwhile) and wakes the reconciler, which carries it out on the
//! volume's node. A refused request changes nothing. Which device of an
//! instance a volume takes is guarded by the store, so two attachments
//! racing for one device cannot both win.

use crate::volumes::model::VolumeSource;
use mallee_store::{StoreError, TagPair, VolumeRecord};

use super::block_devices::device_slot;
use super::model::{AttachState, Volume, VolumeDesired, VolumeDetails, VolumeStatus, place};
use super::types::VolumeSpec;
use crate::instances::model::{Desired, Instance, InstanceState};
use crate::snapshots::SnapshotStatus;
use crate::snapshots::access::{is_hex_id, load_restorable};
use crate::zones::{self, ZoneRef};
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// Compare-and-set attempts before giving up on a contended volume.
pub(super) const ATTEMPTS: usize = 8;

/// Checks that `id` looks like a volume id (`vol-` + 8 or 17 hex digits).
pub fn validate_volume_id(id: &str) -> Result<(), CloudError> {
    if is_hex_id(id, "vol-") {
        Ok(())
    } else {
        Err(CloudError::malformed(
            Kind::Volume,
            format!("Invalid id: \"{id}\""),
        ))
    }
}

/// Checks that `device` is a data-volume slot an attachment may take.
pub fn check_attach_device(device: &str) -> Result<(), CloudError> {
    if device_slot(device).is_none() {
        return Err(CloudError::invalid(format!(
            "Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name (use /dev/sdf to /dev/sdp or /dev/xvdf to /dev/xvdp)."
        )));
    }
    Ok(())
}

fn not_found(id: &str) -> CloudError {
    CloudError::not_found(Kind::Volume, format!("The volume '{id}' does not exist."))
}

pub(super) fn contended(id: &str) -> CloudError {
    CloudError::Contended(format!("volume {id} kept changing; try again"))
}

fn decode(record: VolumeRecord) -> Result<Volume, CloudError> {
    Volume::decode(record).map_err(CloudError::internal)
}

fn device_in_use(device: &str) -> CloudError {
    CloudError::invalid(format!("Attachment point {device} is already in use"))
}

/// The caller's volume `id` (another account's is not found).
pub async fn load_owned(cloud: &Cloud, caller: &Principal, id: &str) -> Result<Volume, CloudError> {
    match cloud.store.volume(id).await? {
        Some(record) if record.account_id == caller.account_id() => decode(record),
        _ => Err(not_found(id)),
    }
}

/// The caller's volumes `ids` (every one when empty) with their health
/// (see [`Volume::health`]): a volume whose node or storage host is down
/// is `impaired`.
pub async fn statuses(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<(Volume, super::model::Health)>, CloudError> {
    let volumes = list(cloud, caller, ids).await?;
    let nodes = cloud.store.nodes().await?;
    let down = crate::health::down(cloud, &nodes, crate::ids::now_millis());
    Ok(volumes
        .into_iter()
        .filter_map(|v| {
            let health = v.health(down.contains(&v.record.node_id))?;
            Some((v, health))
        })
        .collect())
}

/// The caller's volumes, those named in `ids` only when it names any
/// (every one must exist), ordered by id.
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<Volume>, CloudError> {
    let all: Vec<Volume> = cloud
        .store
        .volumes(Some(caller.account_id()))
        .await?
        .into_iter()
        .map(decode)
        .collect::<Result<_, _>>()?;
    if let Some(missing) = ids.iter().find(|id| !all.iter().any(|v| v.id() == *id)) {
        return Err(not_found(missing));
    }
    Ok(all
        .into_iter()
        .filter(|v| ids.is_empty() || ids.iter().any(|id| id == v.id()))
        .collect())
}

/// Stores `volume` if its row is unchanged: `Ok(true)` stored, `Ok(false)`
/// stale (check again). A device another volume took first is refused as
/// EC2 refuses a taken device.
pub(super) async fn store(cloud: &Cloud, volume: &mut Volume) -> Result<bool, CloudError> {
    volume.record.updated_at = ids::now_millis();
    match cloud.store.update_volume(&volume.encode()).await {
        Ok(true) => {
            cloud.compute.wake();
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(StoreError::Conflict(_)) => Err(device_in_use(
            volume.record.device.as_deref().unwrap_or_default(),
        )),
        Err(e) => Err(e.into()),
    }
}

// --- creation ----------------------------------------------------------------

/// What CreateVolume asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVolume {
    /// The zone it goes in.
    pub zone: ZoneRef,
    /// Its type, size, snapshot and performance (checked).
    pub spec: VolumeSpec,
    /// The request's ClientToken.
    pub client_token: Option<String>,
    /// Tags for the new volume.
    pub tags: Vec<TagPair>,
}

/// A volume CreateVolume answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The volume.
    pub volume: Volume,
    /// Whether an earlier request with the same client token created it.
    pub existing: bool,
}

/// What a volume made from snapshot `id` starts with, and the snapshot's
/// size: the snapshot must be the caller's to restore (its own, shared
/// with it or public) and completed; `incomplete` words the refusal of
/// one in another state.
pub(crate) async fn snapshot_source(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    incomplete: impl FnOnce(&str) -> String,
) -> Result<(VolumeSource, i64), CloudError> {
    let snapshot = load_restorable(cloud, caller, id).await?;
    match snapshot
        .source()
        .filter(|_| snapshot.status == SnapshotStatus::Completed)
    {
        Some(source) => Ok((source, snapshot.record.volume_size_gib)),
        None => Err(CloudError::incorrect_state(
            Kind::Snapshot,
            incomplete(snapshot.status.name()),
        )),
    }
}

/// The volume's size and the snapshot data it starts from: the snapshot
/// must be the caller's or shared with it, and completed; the size defaults
/// to the snapshot's and cannot be smaller.
async fn size_and_source(
    cloud: &Cloud,
    caller: &Principal,
    spec: &VolumeSpec,
) -> Result<(i64, Option<VolumeSource>), CloudError> {
    let Some(snapshot_id) = &spec.snapshot_id else {
        return Ok((spec.size_gib.unwrap_or(1), None));
    };
    let (source, smallest) = snapshot_source(cloud, caller, snapshot_id, |state| {
        format!("Snapshot is in invalid state - {state}")
    })
    .await?;
    let size_gib = spec.size_gib.unwrap_or(smallest);
    if size_gib < smallest {
        return Err(CloudError::invalid(format!(
            "Volume of size {size_gib}GiB is smaller than snapshot '{snapshot_id}', expect size >= {smallest}GiB"
        )));
    }
    spec.volume_type.check_size(size_gib)?;
    Ok((size_gib, Some(source)))
}

/// Records the volume on the zone's node with the most free disk; the
/// reconciler creates it there. A client token used before answers the
/// volume it created, if the request is the same.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    request: NewVolume,
) -> Result<Created, CloudError> {
    let account = caller.account_id();
    let zone = zones::resolve(&cloud.config, &request.zone)?;
    let spec = &request.spec;
    let (size_gib, source) = size_and_source(cloud, caller, spec).await?;
    if let Some(token) = &request.client_token {
        let existing = cloud
            .store
            .volumes(Some(account))
            .await?
            .into_iter()
            .filter_map(|r| Volume::decode(r).ok())
            .find(|v| v.details.client_token.as_deref() == Some(token));
        if let Some(volume) = existing {
            if volume.record.size_gib != size_gib
                || volume.record.zone != zone
                || volume.details.source.as_ref().map(|s| &s.snapshot_id)
                    != spec.snapshot_id.as_ref()
                || volume.details.volume_type != spec.volume_type.name
            {
                return Err(CloudError::IdempotencyMismatch(
                    "The client token you have provided is associated with a resource that has different parameters.".into(),
                ));
            }
            return Ok(Created {
                volume,
                existing: true,
            });
        }
    }
    let placing = cloud.compute.placement_lock.lock().await;
    let nodes = crate::zone_storage::volume_hosts(
        cloud,
        cloud.store.nodes().await?,
        &zone,
        crate::ids::now_millis(),
    )?;
    let placed = cloud.store.volumes(None).await?;
    let Some(node) = place(&nodes, &placed, &zone) else {
        return Err(CloudError::InsufficientCapacity {
            capacity: crate::error::Capacity::Volumes,
            message: format!(
                "There is not enough capacity to fulfill your EBS volume provision request in {zone}: the zone has no node."
            ),
        });
    };
    let details = VolumeDetails {
        iops: spec.iops,
        throughput: spec.throughput,
        client_token: request.client_token.clone(),
        source,
        ..VolumeDetails::new(spec.volume_type.name)
    };
    let volume = Volume::new(
        account,
        &zone,
        &node.node_id,
        size_gib,
        details,
        ids::now_millis(),
    );
    cloud
        .store
        .create_volume(&volume.encode(), &request.tags)
        .await?;
    drop(placing);
    cloud.compute.wake();
    tracing::info!(volume = %volume.id(), account = %account, node = %node.node_id, size_gib, snapshot = ?spec.snapshot_id, "volume created");
    Ok(Created {
        volume,
        existing: false,
    })
}

// --- deletion ----------------------------------------------------------------

/// Deletes an available (or failed) volume; an attached one is in use. A
/// volume already being deleted is accepted again.
pub async fn delete(cloud: &Cloud, caller: &Principal, id: &str) -> Result<(), CloudError> {
    for _ in 0..ATTEMPTS {
        let mut volume = load_owned(cloud, caller, id).await?;
        if let Some(instance) = volume.instance_id() {
            return Err(CloudError::in_use(
                Kind::Volume,
                format!("Volume {id} is currently attached to {instance}"),
            ));
        }
        match volume.status {
            VolumeStatus::Deleting => return Ok(()),
            VolumeStatus::Available | VolumeStatus::Error => {}
            VolumeStatus::Creating | VolumeStatus::InUse => {
                return Err(CloudError::incorrect_state(
                    Kind::Volume,
                    format!(
                        "The volume '{id}' is '{}' and cannot be deleted.",
                        volume.status.name()
                    ),
                ));
            }
        }
        volume.status = VolumeStatus::Deleting;
        volume.desired = VolumeDesired::Deleted;
        if store(cloud, &mut volume).await? {
            tracing::info!(volume = %id, "volume deletion requested");
            return Ok(());
        }
    }
    Err(contended(id))
}

// --- attachment --------------------------------------------------------------

/// What AttachVolume asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    /// The volume.
    pub volume_id: String,
    /// The instance.
    pub instance_id: String,
    /// The device it gets there (see [`check_attach_device`]).
    pub device: String,
}

/// The caller's instance `id`.
pub(super) async fn load_instance(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
) -> Result<Instance, CloudError> {
    match cloud.store.instance(id).await? {
        Some(record) if record.account_id == caller.account_id() => Instance::from_record(record),
        _ => Err(CloudError::instances_not_found(&[id])),
    }
}

/// Records the attachment: the volume must be available, in the
/// instance's zone and on its node, the instance running or stopped and
/// the device free. The reconciler hot-plugs the volume into the
/// instance's VM (or records it for a stopped instance).
pub async fn attach(
    cloud: &Cloud,
    caller: &Principal,
    request: &Attach,
) -> Result<Volume, CloudError> {
    let Attach {
        volume_id,
        instance_id,
        device,
    } = request;
    for _ in 0..ATTEMPTS {
        let mut volume = load_owned(cloud, caller, volume_id).await?;
        let instance = load_instance(cloud, caller, instance_id).await?;
        if volume.record.zone != instance.record.zone {
            return Err(CloudError::ZoneMismatch {
                kind: Kind::Volume,
                message: format!(
                    "The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'"
                ),
            });
        }
        if !matches!(
            instance.state,
            InstanceState::Running | InstanceState::Stopped
        ) || instance.desired == Desired::Terminated
        {
            return Err(CloudError::incorrect_state(
                Kind::Instance,
                format!("Instance '{instance_id}' is not 'running' or 'stopped'."),
            ));
        }
        if let Some(holder) = volume.instance_id() {
            return Err(CloudError::in_use(
                Kind::Volume,
                format!("{volume_id} is already attached to an instance ({holder})"),
            ));
        }
        if volume.status != VolumeStatus::Available {
            return Err(CloudError::incorrect_state(
                Kind::Volume,
                format!(
                    "The volume '{volume_id}' is '{}', not 'available'.",
                    volume.status.name()
                ),
            ));
        }
        let slot = device_slot(device);
        let taken = cloud
            .store
            .volumes_of_instance(instance_id)
            .await?
            .iter()
            .any(|v| v.device.as_deref().and_then(device_slot) == slot);
        if taken {
            return Err(device_in_use(device));
        }
        // A storage host exports its volumes to any node of the zone; a
        // volume kept on a compute node attaches there only.
        if volume.record.node_id != instance.record.node_id {
            let nodes = cloud.store.nodes().await?;
            let on_storage = nodes
                .iter()
                .any(|n| n.node_id == volume.record.node_id && crate::zone_storage::is_storage(n));
            if !on_storage {
                return Err(CloudError::unsupported(format!(
                    "The volume '{volume_id}' is stored on node {} and instance '{instance_id}' runs on node {}: a zone without a storage host attaches a volume only on the node that holds it.",
                    volume.record.node_id, instance.record.node_id
                )));
            }
        }
        volume.status = VolumeStatus::InUse;
        volume.desired = VolumeDesired::Attached;
        volume.attach = Some(AttachState::Attaching);
        volume.record.instance_id = Some(instance_id.clone());
        volume.record.device = Some(device.clone());
        volume.record.attach_time = Some(ids::now_millis());
        volume.record.generation += 1;
        volume.details.delete_on_termination = false;
        volume.details.force_detach = false;
        volume.details.guest_device = None;
        volume.details.error = None;
        if store(cloud, &mut volume).await? {
            tracing::info!(volume = %volume_id, instance = %instance_id, device = %device, "volume attachment requested");
            return Ok(volume);
        }
    }
    Err(contended(volume_id))
}

/// What DetachVolume asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detach {
    /// The volume.
    pub volume_id: String,
    /// The instance it must be attached to, if given.
    pub instance_id: Option<String>,
    /// The device it must be attached at, if given.
    pub device: Option<String>,
    /// Do not wait long for the guest to let go.
    pub force: bool,
}

/// Records the detachment; the reconciler asks the node to release the
/// disk (the guest is told first; `force` waits less for it). A detach
/// already under way is accepted again (a forced one upgrades a polite
/// one).
pub async fn detach(
    cloud: &Cloud,
    caller: &Principal,
    request: &Detach,
) -> Result<Volume, CloudError> {
    let volume_id = &request.volume_id;
    for _ in 0..ATTEMPTS {
        let mut volume = load_owned(cloud, caller, volume_id).await?;
        let (Some(attached_to), Some(device)) = (
            volume.record.instance_id.clone(),
            volume.record.device.clone(),
        ) else {
            return Err(CloudError::incorrect_state(
                Kind::Volume,
                format!(
                    "Volume '{volume_id}' is in the '{}' state.",
                    volume.status.name()
                ),
            ));
        };
        if request
            .instance_id
            .as_ref()
            .is_some_and(|i| *i != attached_to)
            || request.device.as_ref().is_some_and(|d| *d != device)
        {
            return Err(CloudError::not_found(
                Kind::Attachment,
                format!(
                    "Volume '{volume_id}' is not attached to instance '{}' at device '{}'.",
                    request.instance_id.as_deref().unwrap_or(&attached_to),
                    request.device.as_deref().unwrap_or(&device)
                ),
            ));
        }
        if volume.attach == Some(AttachState::Detaching)
            && (volume.details.force_detach || !request.force)
        {
            return Ok(volume);
        }
        volume.desired = VolumeDesired::Available;
        volume.attach = Some(AttachState::Detaching);
        volume.details.force_detach |= request.force;
        if store(cloud, &mut volume).await? {
            tracing::info!(volume = %volume_id, instance = %attached_to, force = request.force, "volume detachment requested");
            return Ok(volume);
        }
    }
    Err(contended(volume_id))
}

// --- attributes --------------------------------------------------------------

/// Records `autoEnableIO` (mallee never disables a volume's I/O, so it
/// changes nothing else).
pub async fn set_auto_enable_io(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    auto_enable_io: bool,
) -> Result<(), CloudError> {
    for _ in 0..ATTEMPTS {
        let mut volume = load_owned(cloud, caller, id).await?;
        if volume.details.auto_enable_io == auto_enable_io {
            return Ok(());
        }
        volume.details.auto_enable_io = auto_enable_io;
        if store(cloud, &mut volume).await? {
            return Ok(());
        }
    }
    Err(contended(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{InstanceBuilder, TestCloud, ZONE, node};
    use crate::volumes::types::{RequestedSpec, VolumeSpec};

    const INSTANCE: &str = "i-0000000000000000a";

    fn new_volume(client_token: Option<&str>) -> NewVolume {
        NewVolume {
            zone: ZoneRef::Name(ZONE.into()),
            spec: VolumeSpec::new(RequestedSpec {
                size_gib: Some(1),
                ..RequestedSpec::default()
            })
            .expect("spec"),
            client_token: client_token.map(str::to_owned),
            tags: Vec::new(),
        }
    }

    /// A volume recorded as its node reported it created.
    async fn available(cloud: &Cloud, caller: &Principal) -> String {
        let mut volume = create(cloud, caller, new_volume(None))
            .await
            .expect("create")
            .volume;
        volume.status = VolumeStatus::Available;
        assert!(store(cloud, &mut volume).await.expect("store"));
        volume.id().to_owned()
    }

    #[tokio::test]
    async fn client_tokens_answer_the_volume_they_created() {
        let cloud = TestCloud::new().await;
        cloud.add_node(node("node-1", ZONE, 2, 2048, 100)).await;
        let caller = cloud.principal("owner").await;
        let first = create(&cloud, &caller, new_volume(Some("t")))
            .await
            .expect("create");
        assert!(!first.existing);
        assert_eq!(first.volume.details.iops, Some(100));
        let again = create(&cloud, &caller, new_volume(Some("t")))
            .await
            .expect("again");
        assert!(again.existing);
        assert_eq!(again.volume.id(), first.volume.id());
        let mut bigger = new_volume(Some("t"));
        bigger.spec.size_gib = Some(2);
        assert!(matches!(
            create(&cloud, &caller, bigger).await,
            Err(CloudError::IdempotencyMismatch(_))
        ));
        let mut elsewhere = new_volume(None);
        elsewhere.zone = ZoneRef::Id("mallee-1-az9".into());
        assert!(matches!(
            create(&cloud, &caller, elsewhere).await,
            Err(CloudError::Invalid(_))
        ));
        assert_eq!(cloud.store.volumes(None).await.expect("rows").len(), 1);
    }

    #[tokio::test]
    async fn one_device_holds_one_volume() {
        let cloud = TestCloud::new().await;
        cloud.add_node(node("node-1", ZONE, 2, 2048, 100)).await;
        let caller = cloud.principal("owner").await;
        InstanceBuilder::new(INSTANCE, caller.account_id())
            .store(&cloud)
            .await;
        let (a, b) = (
            available(&cloud, &caller).await,
            available(&cloud, &caller).await,
        );
        let request = |volume_id: &str, device: &str| Attach {
            volume_id: volume_id.into(),
            instance_id: INSTANCE.into(),
            device: device.into(),
        };
        let attached = attach(&cloud, &caller, &request(&a, "/dev/sdf"))
            .await
            .expect("attach");
        assert_eq!(attached.attach, Some(AttachState::Attaching));
        // The same slot under its other name is taken too.
        let taken = attach(&cloud, &caller, &request(&b, "/dev/xvdf")).await;
        assert_eq!(
            taken.map(|v| v.id().to_owned()),
            Err(CloudError::invalid(
                "Attachment point /dev/xvdf is already in use"
            ))
        );
        assert!(matches!(
            delete(&cloud, &caller, &a).await,
            Err(CloudError::InUse { .. })
        ));
        let detach_request = Detach {
            volume_id: a.clone(),
            instance_id: None,
            device: None,
            force: false,
        };
        let detaching = detach(&cloud, &caller, &detach_request)
            .await
            .expect("detach");
        assert_eq!(detaching.desired, VolumeDesired::Available);
        let other = cloud.principal("other").await;
        assert!(matches!(
            detach(&cloud, &other, &detach_request).await,
            Err(CloudError::NotFound {
                kind: Kind::Volume,
                ..
            })
        ));
        delete(&cloud, &caller, &b).await.expect("delete");
        delete(&cloud, &caller, &b).await.expect("deleting again");
        assert_eq!(
            load_owned(&cloud, &caller, &b).await.expect("b").status,
            VolumeStatus::Deleting
        );
        assert!(list(&cloud, &other, &[]).await.expect("list").is_empty());
        assert!(list(&cloud, &other, &[a]).await.is_err());
    }
}
