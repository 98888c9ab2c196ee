//! Volumes on the controller: what a volume is (its EC2 state, where it is
//! being driven, its attachment), where a new one goes, and the volume
//! reconciler. The EC2 actions in `ec2::volumes` only record desired state
//! and wake the reconciler; each pass reads every node's report, decides
//! one step per volume ([`decide`], a pure function) and carries it out.
//!
//! A volume's data lives on one node of its zone (a qcow2 file there that
//! QEMU opens directly); the row records which. Steps are idempotent and
//! keyed by volume id, so a controller killed at any point decides again
//! after restart; node calls run in their own tasks, one at a time per
//! volume. An attachment whose instance has terminated is gone with the
//! instance's VM: the volume becomes available again (volumes attached
//! after launch are never deleted on termination).

pub mod block_devices;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mallee_node_api::{
    NodeError, NodeReport, ObservedVolume, SnapshotSource, VolumeAttachment, VolumeSpec,
    VolumeState,
};
use mallee_store::{Node, StoreError, VolumeRecord};
use serde::{Deserialize, Serialize};

use crate::Cloud;
use crate::ids::now_millis;
use crate::instances::model::{Desired, Instance, InstanceState};

/// How long a node gets for a volume call (a detach waits for the guest to
/// release the disk).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// EC2 volume states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VolumeStatus {
    /// Its storage is being created on its node.
    Creating,
    /// Attached to nothing.
    Available,
    /// Attached (or being attached or detached).
    InUse,
    /// Being deleted.
    Deleting,
    /// Its storage could not be created or was lost.
    Error,
}

impl VolumeStatus {
    /// Every state.
    pub const ALL: [Self; 5] = [
        Self::Creating,
        Self::Available,
        Self::InUse,
        Self::Deleting,
        Self::Error,
    ];

    /// EC2's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Available => "available",
            Self::InUse => "in-use",
            Self::Deleting => "deleting",
            Self::Error => "error",
        }
    }

    /// Parses EC2's name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where the controller drives a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeDesired {
    /// Exists, attached to nothing (detached from its instance, if any).
    Available,
    /// Attached to the record's instance at the record's device.
    Attached,
    /// Removed from its node, then forgotten.
    Deleted,
}

impl VolumeDesired {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Attached => "attached",
            Self::Deleted => "deleted",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Available, Self::Attached, Self::Deleted]
            .into_iter()
            .find(|d| d.name() == name)
    }
}

/// EC2 attachment states (`detached` is only ever shown, never stored: a
/// detached volume has no attachment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachState {
    /// Being hot-plugged.
    Attaching,
    /// The instance has it.
    Attached,
    /// Being released.
    Detaching,
}

impl AttachState {
    /// EC2's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Attaching => "attaching",
            Self::Attached => "attached",
            Self::Detaching => "detaching",
        }
    }

    /// Parses EC2's name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Attaching, Self::Attached, Self::Detaching]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// Details the store keeps as one JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeDetails {
    /// `gp2`, `gp3`, `io1`, `io2`, `st1`, `sc1` or `standard` (recorded;
    /// every type is the same qcow2 file).
    pub volume_type: String,
    /// Provisioned IOPS as requested (or as EC2 computes them for gp2).
    pub iops: Option<i64>,
    /// Throughput in MiB/s (gp3).
    pub throughput: Option<i64>,
    /// The CreateVolume ClientToken.
    pub client_token: Option<String>,
    /// `autoEnableIO`.
    pub auto_enable_io: bool,
    /// Whether the attachment is deleted with its instance (always false
    /// for volumes attached with AttachVolume).
    pub delete_on_termination: bool,
    /// Where the guest finds the attached disk, as the node reports it.
    pub guest_device: Option<String>,
    /// Whether the pending detach was forced.
    pub force_detach: bool,
    /// Why the volume is in the `error` state, or why its last attachment
    /// was refused.
    pub error: Option<String>,
    /// The snapshot it was created from, with what its node needs to
    /// fetch that snapshot's data.
    #[serde(default)]
    pub source: Option<SnapshotSource>,
    /// The root volume of an EBS-backed instance: its node attaches it
    /// when it starts the instance, never by hot-plug.
    #[serde(default)]
    pub boot: bool,
}

/// A volume record with its states and details decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// The stored row (kept for compare-and-set updates).
    pub record: VolumeRecord,
    /// Decoded state.
    pub status: VolumeStatus,
    /// Decoded desired state.
    pub desired: VolumeDesired,
    /// Decoded attachment state (`None`: no attachment).
    pub attach: Option<AttachState>,
    /// Decoded details.
    pub details: VolumeDetails,
}

/// A stored volume that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("volume {volume_id} has a corrupt record: {message}")]
pub struct CorruptVolume {
    /// The volume.
    pub volume_id: String,
    /// What is wrong.
    pub message: String,
}

impl Volume {
    /// Decodes a stored record.
    pub fn decode(record: VolumeRecord) -> Result<Self, CorruptVolume> {
        let corrupt = |message: String| CorruptVolume {
            volume_id: record.volume_id.clone(),
            message,
        };
        let status = VolumeStatus::from_name(&record.state)
            .ok_or_else(|| corrupt(format!("state {:?}", record.state)))?;
        let desired = VolumeDesired::from_name(&record.desired)
            .ok_or_else(|| corrupt(format!("desired state {:?}", record.desired)))?;
        let attach = match &record.attach_state {
            None => None,
            Some(name) => Some(
                AttachState::from_name(name)
                    .ok_or_else(|| corrupt(format!("attachment state {name:?}")))?,
            ),
        };
        if attach.is_some() != (record.instance_id.is_some() && record.device.is_some()) {
            return Err(corrupt("attachment without instance or device".into()));
        }
        let details: VolumeDetails =
            serde_json::from_str(&record.details).map_err(|e| corrupt(e.to_string()))?;
        Ok(Self {
            record,
            status,
            desired,
            attach,
            details,
        })
    }

    /// The record to store for this volume's current fields.
    pub fn encode(&self) -> VolumeRecord {
        let mut record = self.record.clone();
        record.state = self.status.name().to_owned();
        record.desired = self.desired.name().to_owned();
        record.attach_state = self.attach.map(|a| a.name().to_owned());
        record.details =
            serde_json::to_string(&self.details).expect("volume details always serialize");
        record
    }

    /// `vol-…`.
    pub fn id(&self) -> &str {
        &self.record.volume_id
    }

    /// The instance of its attachment, if any.
    pub fn instance_id(&self) -> Option<&str> {
        self.record.instance_id.as_deref()
    }

    fn generation(&self) -> u64 {
        u64::try_from(self.record.generation).unwrap_or(0)
    }

    /// What the node is sent to create it.
    pub fn node_spec(&self) -> VolumeSpec {
        VolumeSpec {
            volume_id: self.id().to_owned(),
            size_gib: u64::try_from(self.record.size_gib).unwrap_or(0),
            generation: self.generation(),
            source: self.details.source.clone(),
        }
    }

    /// A volume an instance gets at launch, attached to it from the start
    /// (on the instance's node, where its root must be).
    pub fn for_launch(
        account_id: &str,
        zone: &str,
        node_id: &str,
        instance_id: &str,
        launch: &block_devices::LaunchVolume,
        now: i64,
    ) -> Self {
        Self {
            record: VolumeRecord {
                volume_id: crate::ids::resource_id("vol"),
                account_id: account_id.to_owned(),
                zone: zone.to_owned(),
                node_id: node_id.to_owned(),
                size_gib: launch.size_gib,
                state: String::new(),
                desired: String::new(),
                instance_id: Some(instance_id.to_owned()),
                device: Some(launch.device.clone()),
                attach_state: None,
                attach_time: Some(now),
                generation: 1,
                revision: 0,
                details: String::new(),
                created_at: now,
                updated_at: now,
            },
            status: VolumeStatus::Creating,
            desired: VolumeDesired::Attached,
            attach: Some(AttachState::Attaching),
            details: VolumeDetails {
                volume_type: launch.volume_type.clone(),
                iops: (launch.volume_type == "gp2")
                    .then(|| (launch.size_gib * 3).clamp(100, 16000)),
                throughput: None,
                client_token: None,
                auto_enable_io: false,
                delete_on_termination: launch.delete_on_termination,
                guest_device: None,
                force_detach: false,
                error: None,
                source: launch.source.clone(),
                boot: launch.boot,
            },
        }
    }

    /// Forgets the attachment: the volume is available again.
    pub fn detach(&mut self) {
        self.status = VolumeStatus::Available;
        self.desired = VolumeDesired::Available;
        self.attach = None;
        self.record.instance_id = None;
        self.record.device = None;
        self.record.attach_time = None;
        self.details.guest_device = None;
        self.details.force_detach = false;
        self.details.delete_on_termination = false;
        self.details.boot = false;
    }
}

/// The node of `zone` for a new volume: the one with the most free disk
/// once the volumes already placed there are counted (volume files are
/// sparse, so this spreads volumes rather than reserving space).
pub fn place(nodes: &[Node], volumes: &[VolumeRecord], zone: &str) -> Option<Node> {
    let mut placed: HashMap<&str, i64> = HashMap::new();
    for v in volumes {
        *placed.entry(v.node_id.as_str()).or_default() += v.size_gib;
    }
    nodes
        .iter()
        .filter(|n| n.zone == zone)
        .max_by_key(|n| {
            (
                n.disk_gib_free
                    .saturating_sub(placed.get(n.node_id.as_str()).copied().unwrap_or(0)),
                std::cmp::Reverse(n.node_id.clone()),
            )
        })
        .cloned()
}

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
        let Some(Some(report)) = reports.get(volume.record.node_id.as_str()) else {
            continue;
        };
        let Some(node) = nodes.iter().find(|n| n.node_id == volume.record.node_id) else {
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
        let step = decide(&volume, report.get(volume.id()), instance);
        apply(cloud, node, volume, step).await?;
    }
    Ok(busy)
}

async fn apply(
    cloud: &Arc<Cloud>,
    node: &Node,
    mut volume: Volume,
    step: Step,
) -> Result<(), StoreError> {
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
                node,
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
            node,
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

/// A call to a node about one volume.
#[derive(Debug)]
enum Call {
    Create(VolumeSpec),
    Attach {
        instance_id: String,
        attachment: VolumeAttachment,
    },
    Detach {
        volume_id: String,
        instance_id: String,
        force: bool,
    },
    Delete(String),
}

impl Call {
    fn volume_id(&self) -> &str {
        match self {
            Self::Create(spec) => &spec.volume_id,
            Self::Attach { attachment, .. } => &attachment.volume_id,
            Self::Detach { volume_id, .. } | Self::Delete(volume_id) => volume_id,
        }
    }
}

/// Runs `call` in its own task unless one is already running for the
/// volume; wakes the reconciler when it ends.
fn node_call(cloud: &Arc<Cloud>, node: &Node, call: Call) {
    let call = Arc::new(call);
    let volume_id = call.volume_id().to_owned();
    let node_id = node.node_id.clone();
    let sent = call.clone();
    crate::node_calls::spawn(
        cloud,
        node,
        volume_id.clone(),
        CALL_TIMEOUT,
        |client| async move {
            match &*sent {
                Call::Create(spec) => client.put_volume(spec.clone()).await.map(|_| ()),
                Call::Attach {
                    instance_id,
                    attachment,
                } => client
                    .attach_volume(instance_id, attachment.clone())
                    .await
                    .map(|_| ()),
                Call::Detach {
                    volume_id,
                    instance_id,
                    force,
                } => client
                    .detach_volume(instance_id, volume_id, *force)
                    .await
                    .map(|_| ()),
                Call::Delete(volume_id) => client.delete_volume(volume_id).await,
            }
        },
        move |cloud, answer| async move {
            match answer {
                Ok(()) => {}
                Err(
                    e @ (NodeError::BadRequest(_)
                    | NodeError::InsufficientCapacity(_)
                    | NodeError::Conflict(_)
                    | NodeError::NotFound(_)),
                ) => refused(&cloud, &call, &e).await,
                Err(e) => {
                    tracing::warn!(volume = %volume_id, node = %node_id, error = %e, "node volume call failed; will retry");
                }
            }
        },
    );
}

/// A node refused a call outright. A refused creation leaves the volume in
/// `error`; a refused attachment (a `pre-attach` hook said no, the
/// instance is not there) is dropped, the volume available again, as EC2
/// does with an attachment that fails. Refused detaches and deletes are
/// retried by later passes (the node refuses deleting an attached volume
/// until its detach is through).
async fn refused(cloud: &Arc<Cloud>, call: &Call, error: &NodeError) {
    let volume_id = call.volume_id();
    tracing::warn!(volume = %volume_id, error = %error, call = ?call, "node refused a volume call");
    let generation = match call {
        Call::Create(spec) => spec.generation,
        Call::Attach { attachment, .. } => attachment.generation,
        Call::Detach { .. } | Call::Delete(_) => return,
    };
    let record = match cloud.store.volume(volume_id).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(volume = %volume_id, error = %e, "could not record a refused volume call");
            return;
        }
    };
    let Ok(mut volume) = Volume::decode(record) else {
        return;
    };
    // Only the request that was refused is undone, not a newer one.
    if u64::try_from(volume.record.generation).unwrap_or(0) != generation {
        return;
    }
    match call {
        Call::Create(_) if volume.status == VolumeStatus::Creating => {
            volume.status = VolumeStatus::Error;
            volume.details.error = Some(error.to_string());
        }
        Call::Attach { instance_id, .. }
            if volume.desired == VolumeDesired::Attached
                && volume.instance_id() == Some(instance_id.as_str()) =>
        {
            volume.detach();
            volume.details.error = Some(error.to_string());
        }
        _ => return,
    }
    volume.record.updated_at = now_millis();
    if let Err(e) = cloud.store.update_volume(&volume.encode()).await {
        tracing::warn!(volume = %volume_id, error = %e, "could not record a refused volume call");
    }
}

#[cfg(test)]
mod tests {
    use mallee_node_api::{
        Artifact, BootImage, DesiredState, InstanceMetadata, InstanceSpec, MetadataOptions,
    };
    use mallee_store::InstanceRecord;

    use super::*;
    use crate::instances::model::{InstanceDetails, ShutdownBehavior};

    const VOL: &str = "vol-0123456789abcdef0";
    const I1: &str = "i-0123456789abcdef1";
    const I2: &str = "i-0123456789abcdef2";

    fn volume(status: VolumeStatus, desired: VolumeDesired, attach: Option<AttachState>) -> Volume {
        let attached = attach.is_some();
        Volume {
            record: VolumeRecord {
                volume_id: VOL.into(),
                account_id: "111111111111".into(),
                zone: "z".into(),
                node_id: "node-1".into(),
                size_gib: 1,
                state: String::new(),
                desired: String::new(),
                instance_id: attached.then(|| I1.to_owned()),
                device: attached.then(|| "/dev/sdf".to_owned()),
                attach_state: None,
                attach_time: attached.then_some(5),
                generation: 2,
                revision: 0,
                details: String::new(),
                created_at: 1,
                updated_at: 1,
            },
            status,
            desired,
            attach,
            details: VolumeDetails {
                volume_type: "gp2".into(),
                iops: Some(100),
                throughput: None,
                client_token: None,
                auto_enable_io: false,
                delete_on_termination: false,
                guest_device: None,
                force_detach: false,
                error: None,
                source: None,
                boot: false,
            },
        }
    }

    fn observed(state: VolumeState, generation: u64) -> ObservedVolume {
        ObservedVolume {
            volume_id: VOL.into(),
            state,
            size_gib: 1,
            generation,
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
        let metadata = InstanceMetadata {
            ami_id: "ami-0123456789abcdef0".into(),
            ami_launch_index: 0,
            reservation_id: "r-0123456789abcdef0".into(),
            account_id: "111111111111".into(),
            instance_type: "t1.micro".into(),
            kernel_id: None,
            ramdisk_id: None,
            architecture: "x86_64".into(),
            region: "mallee-1".into(),
            availability_zone: "z".into(),
            local_ipv4: "172.31.0.4".into(),
            local_hostname: "ip".into(),
            mac: "02:00:00:00:00:01".into(),
            public_ipv4: None,
            public_hostname: None,
            security_groups: Vec::new(),
            public_keys: Vec::new(),
            user_data_base64: None,
            launch_time: "2024-01-02T03:04:05Z".into(),
            root_device_name: "/dev/sda1".into(),
            block_device_mapping: Vec::new(),
            options: MetadataOptions::default(),
        };
        let details = InstanceDetails {
            spec: InstanceSpec {
                instance_id: id.into(),
                account_id: "111111111111".into(),
                instance_type: "t1.micro".into(),
                vcpus: 1,
                memory_mib: 256,
                disk_gib: 1,
                image: BootImage::Hvm {
                    disk: Artifact {
                        bucket: "b".into(),
                        key: "k".into(),
                        size: 1,
                        etag: "e".into(),
                    },
                },
                nics: Vec::new(),
                desired: DesiredState::Running,
                generation: 1,
                metadata,
            },
            key_name: None,
            security_group_ids: Vec::new(),
            shutdown_behavior: ShutdownBehavior::Stop,
            disable_api_termination: false,
            virtualization_type: "hvm".into(),
            root_device_type: "instance-store".into(),
            private_dns_name: "ip".into(),
            client_token: None,
            state_reason: None,
            state_transition_reason: String::new(),
            vpc_id: String::new(),
            subnet_id: String::new(),
            network_interface_id: String::new(),
        };
        Instance {
            record: InstanceRecord {
                instance_id: id.into(),
                reservation_id: "r-0123456789abcdef0".into(),
                account_id: "111111111111".into(),
                launch_index: 0,
                node_id: "node-1".into(),
                zone: "z".into(),
                network_id: "net".into(),
                private_ip: "172.31.0.4".into(),
                mac: "02:00:00:00:00:01".into(),
                state: state.name().into(),
                desired: desired.name().into(),
                generation: 1,
                revision: 0,
                details: String::new(),
                created_at: 1,
                updated_at: 1,
                terminated_at: None,
            },
            state,
            desired,
            details,
        }
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
    fn records_round_trip() {
        let mut v = volume(S::InUse, D::Attached, Some(Attaching));
        v.details.guest_device = Some("/dev/vdb".into());
        let decoded = Volume::decode(v.encode()).expect("decode");
        assert_eq!(decoded.encode(), v.encode());
        assert_eq!(decoded.status, S::InUse);
        assert_eq!(decoded.attach, Some(Attaching));
        let mut broken = v.encode();
        broken.instance_id = None;
        assert!(Volume::decode(broken).is_err());
        let mut broken = v.encode();
        broken.state = "melted".into();
        assert!(Volume::decode(broken).is_err());
    }

    #[test]
    fn placement_prefers_the_node_with_most_free_disk() {
        let node = |id: &str, zone: &str, free: i64| Node {
            node_id: id.into(),
            zone: zone.into(),
            address: "http://127.0.0.1:1".into(),
            cores_max: 2,
            cores_free: 2,
            memory_mib_max: 1024,
            memory_mib_free: 1024,
            disk_gib_max: 100,
            disk_gib_free: free,
            updated_at: 1,
        };
        let nodes = [node("a", "z", 50), node("b", "z", 40), node("c", "y", 90)];
        assert_eq!(place(&nodes, &[], "z").map(|n| n.node_id), Some("a".into()));
        let mut big = volume(S::Available, D::Available, None).encode();
        big.node_id = "a".into();
        big.size_gib = 20;
        assert_eq!(
            place(&nodes, &[big], "z").map(|n| n.node_id),
            Some("b".into())
        );
        assert_eq!(place(&nodes, &[], "x"), None);
    }
}
