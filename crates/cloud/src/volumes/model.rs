//! What a volume is: its EC2 state, where it is being driven, its
//! attachment and the details kept with it, as stored and decoded; and
//! which node of a zone a new volume goes to.

use std::collections::HashMap;

use mallee_node_api::VolumeSpec;
use mallee_store::{Node, VolumeRecord};
use serde::{Deserialize, Serialize};

use super::block_devices::LaunchVolume;
use super::types::gp2_iops;

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

/// The format of snapshot data a volume starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// Raw bytes of the disk.
    Raw,
    /// qcow2.
    Qcow2,
}

/// The snapshot data a volume is created from, as the controller records
/// it (the node is sent the node API's form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSource {
    /// `snap-…` id.
    pub snapshot_id: String,
    /// Size of the data in bytes.
    pub size: u64,
    /// SHA-256 of the data, lowercase hex.
    pub sha256: String,
    /// Format of the data.
    pub format: DataFormat,
}

impl DataFormat {
    /// Parses the names the store keeps (`raw`, `qcow2`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "raw" => Some(Self::Raw),
            "qcow2" => Some(Self::Qcow2),
            _ => None,
        }
    }
}

impl VolumeSource {
    /// The node API's form.
    pub fn to_node(&self) -> mallee_node_api::SnapshotSource {
        mallee_node_api::SnapshotSource {
            snapshot_id: self.snapshot_id.clone(),
            size: self.size,
            sha256: self.sha256.clone(),
            format: match self.format {
                DataFormat::Raw => mallee_node_api::DiskFormat::Raw,
                DataFormat::Qcow2 => mallee_node_api::DiskFormat::Qcow2,
            },
        }
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
    pub source: Option<VolumeSource>,
    /// The root volume of an EBS-backed instance: its node attaches it
    /// when it starts the instance, never by hot-plug.
    #[serde(default)]
    pub boot: bool,
    /// The latest ModifyVolume and how far it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification: Option<Modification>,
}

/// One ModifyVolume: the volume before and after, and its progress. Type,
/// IOPS and throughput change at once (every type is the same file); a
/// new size is `modifying` until the volume's node has grown the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Modification {
    /// `modifying`, `optimizing`, `completed` or `failed`.
    pub state: String,
    /// Why it failed.
    #[serde(default)]
    pub status_message: Option<String>,
    /// Size before, GiB.
    pub original_size: i64,
    /// Size asked for, GiB.
    pub target_size: i64,
    /// Type before.
    pub original_type: String,
    /// Type asked for.
    pub target_type: String,
    /// IOPS before.
    pub original_iops: Option<i64>,
    /// IOPS asked for.
    pub target_iops: Option<i64>,
    /// Throughput before.
    pub original_throughput: Option<i64>,
    /// Throughput asked for.
    pub target_throughput: Option<i64>,
    /// When it was asked for.
    pub start_time: i64,
    /// When it completed or failed.
    #[serde(default)]
    pub end_time: Option<i64>,
}

impl Modification {
    /// Whether the volume's data has yet to grow.
    pub fn growing(&self) -> bool {
        self.state == "modifying"
    }
}

/// A volume's health (mallee raises no volume events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Overall: `ok`, `impaired` or `insufficient-data`.
    pub status: &'static str,
    /// The `io-enabled` check: `passed`, `failed` or `insufficient-data`.
    pub io_enabled: &'static str,
}

impl VolumeDetails {
    /// The details of a new volume of `volume_type`: no IOPS or throughput
    /// recorded, no snapshot, attached to nothing.
    pub fn new(volume_type: &str) -> Self {
        Self {
            volume_type: volume_type.to_owned(),
            iops: None,
            throughput: None,
            client_token: None,
            auto_enable_io: false,
            delete_on_termination: false,
            guest_device: None,
            force_detach: false,
            error: None,
            source: None,
            boot: false,
            modification: None,
        }
    }
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

    pub(super) fn generation(&self) -> u64 {
        u64::try_from(self.record.generation).unwrap_or(0)
    }

    /// What the node is sent to create it.
    pub fn node_spec(&self) -> VolumeSpec {
        VolumeSpec {
            volume_id: self.id().to_owned(),
            size_gib: u64::try_from(self.record.size_gib).unwrap_or(0),
            generation: self.generation(),
            source: self.details.source.as_ref().map(VolumeSource::to_node),
            remote: None,
        }
    }

    /// A new volume of `size_gib` on `node_id` of `zone`, to be created
    /// there, attached to nothing.
    pub fn new(
        account_id: &str,
        zone: &str,
        node_id: &str,
        size_gib: i64,
        details: VolumeDetails,
        now: i64,
    ) -> Self {
        Self {
            record: VolumeRecord {
                volume_id: crate::ids::resource_id("vol"),
                account_id: account_id.to_owned(),
                zone: zone.to_owned(),
                node_id: node_id.to_owned(),
                size_gib,
                state: String::new(),
                desired: String::new(),
                instance_id: None,
                device: None,
                attach_state: None,
                attach_time: None,
                generation: 1,
                revision: 0,
                details: String::new(),
                created_at: now,
                updated_at: now,
            },
            status: VolumeStatus::Creating,
            desired: VolumeDesired::Available,
            attach: None,
            details,
        }
    }

    /// A volume an instance gets at launch, attached to it from the start
    /// (on the instance's node, where its root must be).
    pub fn for_launch(
        account_id: &str,
        zone: &str,
        node_id: &str,
        instance_id: &str,
        launch: &LaunchVolume,
        now: i64,
    ) -> Self {
        let details = VolumeDetails {
            iops: (launch.volume_type == "gp2").then(|| gp2_iops(launch.size_gib)),
            delete_on_termination: launch.delete_on_termination,
            source: launch.source.clone(),
            boot: launch.boot,
            ..VolumeDetails::new(&launch.volume_type)
        };
        let mut volume = Self::new(account_id, zone, node_id, launch.size_gib, details, now);
        volume.desired = VolumeDesired::Attached;
        volume.attach = Some(AttachState::Attaching);
        volume.record.instance_id = Some(instance_id.to_owned());
        volume.record.device = Some(launch.device.clone());
        volume.record.attach_time = Some(now);
        volume
    }

    /// The volume's health as DescribeVolumeStatus reports it: `ok` once
    /// its storage exists, `impaired` when it failed or the node holding
    /// its data (`host_down`) stopped answering, not reported while it is
    /// being deleted.
    pub fn health(&self, host_down: bool) -> Option<Health> {
        let (status, io_enabled) = match self.status {
            VolumeStatus::Deleting => return None,
            VolumeStatus::Creating => ("insufficient-data", "insufficient-data"),
            VolumeStatus::Error => ("impaired", "failed"),
            VolumeStatus::Available | VolumeStatus::InUse if host_down => ("impaired", "failed"),
            VolumeStatus::Available | VolumeStatus::InUse => ("ok", "passed"),
        };
        Some(Health { status, io_enabled })
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    use AttachState::Attaching;
    use VolumeDesired as D;
    use VolumeStatus as S;

    pub(crate) const VOL: &str = "vol-0123456789abcdef0";
    pub(crate) const I1: &str = "i-0123456789abcdef1";

    /// A volume of one GiB on `node-1` of zone `z`, attached to [`I1`] at
    /// `/dev/sdf` when `attach` says so.
    pub(crate) fn volume(
        status: VolumeStatus,
        desired: VolumeDesired,
        attach: Option<AttachState>,
    ) -> Volume {
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
                modification: None,
            },
        }
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
            ..Node::default()
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
