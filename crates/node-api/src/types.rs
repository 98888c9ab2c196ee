//! The records exchanged between the controller and a node. Plain serde
//! data; the JSON form is the wire format of the node API.

use serde::{Deserialize, Serialize};

/// Who a node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable node id.
    pub node_id: String,
    /// Availability zone it serves.
    pub zone: String,
    /// Host name.
    pub hostname: String,
    /// mallee version of the agent.
    pub version: String,
    /// Acceleration in use (`kvm` or `tcg`) and why.
    pub accel: String,
}

/// Cores, memory and disk for instances: totals and what is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    /// Virtual cores offered.
    pub cores_max: u32,
    /// Cores not used by instances.
    pub cores_free: u32,
    /// Memory offered to instances.
    pub memory_mib_max: u64,
    /// Memory not used by instances.
    pub memory_mib_free: u64,
    /// Instance disk offered.
    pub disk_gib_max: u64,
    /// Instance disk not used.
    pub disk_gib_free: u64,
}

/// An object in the object store that a node fetches (image parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag the node verifies its cached copy against.
    pub etag: String,
}

/// What an instance boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BootImage {
    /// Eucalyptus' model: kernel (aki), optional ramdisk (ari), root disk.
    Paravirtual {
        /// Kernel.
        kernel: Artifact,
        /// Ramdisk.
        ramdisk: Option<Artifact>,
        /// Root file system image (raw or qcow2).
        root: Artifact,
        /// Kernel command line.
        cmdline: String,
    },
    /// A BIOS-bootable disk image.
    Hvm {
        /// The disk.
        disk: Artifact,
    },
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicSpec {
    /// MAC address.
    pub mac: String,
    /// Private IPv4 the node's DHCP hands out for this MAC.
    pub private_ip: String,
    /// Network (VPC) the interface belongs to.
    pub network_id: String,
}

/// The run state the controller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// Running.
    Running,
    /// Stopped, disks kept.
    Stopped,
}

/// Everything a node needs to run an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// `i-…` id.
    pub instance_id: String,
    /// Owning account.
    pub account_id: String,
    /// Instance type name.
    pub instance_type: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory.
    pub memory_mib: u64,
    /// Root/ephemeral disk size.
    pub disk_gib: u64,
    /// What to boot.
    pub image: BootImage,
    /// Interfaces.
    pub nics: Vec<NicSpec>,
    /// Desired run state.
    pub desired: DesiredState,
    /// The controller's generation of this spec; higher wins.
    pub generation: u64,
}

/// An instance's state as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum VmState {
    /// Being prepared (image fetch, disks, network).
    Pending,
    /// The VM process runs.
    Running,
    /// Shutting down toward stopped.
    Stopping,
    /// Not running, disks kept.
    Stopped,
    /// The guest powered itself off (the controller applies
    /// InstanceInitiatedShutdownBehavior).
    GuestShutdown,
    /// Could not be started or died; the reason says why.
    Failed(String),
}

/// One instance in a node's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedInstance {
    /// `i-…` id.
    pub instance_id: String,
    /// Observed state.
    pub state: VmState,
    /// Generation of the spec the node is acting on.
    pub generation: u64,
}

/// A node's view of all its instances. `generation` increases with every
/// report the node produces, so the controller ignores stale or repeated
/// reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Node id.
    pub node_id: String,
    /// Report generation.
    pub generation: u64,
    /// Capacity at report time.
    pub capacity: Capacity,
    /// Every instance the node holds.
    pub instances: Vec<ObservedInstance>,
}

/// Serial console output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleOutput {
    /// `i-…` id.
    pub instance_id: String,
    /// The output (lossily decoded as UTF-8).
    pub output: String,
}

/// Body of a desired-state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredStateChange {
    /// New desired state.
    pub desired: DesiredState,
    /// Generation of the change.
    pub generation: u64,
}
