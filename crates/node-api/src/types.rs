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
    /// The node's address on the network between nodes, which carries the
    /// VXLAN overlay (UDP 4789); `None`: the node takes no part in it.
    #[serde(default)]
    pub underlay_ip: Option<String>,
    /// What the host does for its zone: run instances, or hold the zone's
    /// volumes.
    #[serde(default)]
    pub role: NodeRole,
}

/// What a host of the cluster does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Runs instances (a node controller, in Eucalyptus' words).
    #[default]
    Compute,
    /// Holds the zone's volumes and exports each attached one over NBD to
    /// the node its instance runs on (Eucalyptus' storage controller). It
    /// runs no instances.
    Storage,
}

impl NodeRole {
    /// `compute` or `storage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compute => "compute",
            Self::Storage => "storage",
        }
    }

    /// Parses [`NodeRole::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "compute" => Some(Self::Compute),
            "storage" => Some(Self::Storage),
            _ => None,
        }
    }
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
    /// An EBS-backed root: a volume of this node (created by the controller
    /// with [`crate::NodeAgent::put_volume`] before the instance) is the
    /// instance's first disk. The instance holds it like an attachment;
    /// deleting the instance leaves the volume.
    Ebs {
        /// `vol-…` of the root volume.
        root_volume_id: String,
        /// Kernel for a direct kernel boot (root on the volume, like
        /// [`BootImage::Paravirtual`]); `None` boots the volume by BIOS,
        /// like [`BootImage::Hvm`].
        kernel: Option<Artifact>,
        /// Ramdisk for a direct kernel boot.
        ramdisk: Option<Artifact>,
        /// Kernel command line of a direct kernel boot (ignored for a BIOS
        /// boot).
        cmdline: String,
    },
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicSpec {
    /// MAC address.
    pub mac: String,
    /// Private IPv4 the node's DHCP hands out for this MAC.
    pub private_ip: String,
    /// Network (VPC) the interface belongs to. Each network is isolated
    /// from every other on the node.
    pub network_id: String,
    /// The interface's subnet (`172.31.0.0/20`); its first host address is
    /// the gateway. Empty in specs from before VPCs: the node's default.
    #[serde(default)]
    pub subnet_cidr: String,
    /// The VPC's CIDR block (`172.31.0.0/16`); the VPC's resolver is at
    /// its base address + 2.
    #[serde(default)]
    pub vpc_cidr: String,
    /// Whether the VPC's resolver answers (`enableDnsSupport`).
    #[serde(default = "dns_support_default")]
    pub dns_support: bool,
    /// Public IPv4 mapped to `private_ip` (DNAT inbound, SNAT outbound) on
    /// the node's public network.
    #[serde(default)]
    pub public_ip: Option<String>,
    /// The `domain-name` of the VPC's DHCP options set, which DHCP hands
    /// out as the domain and search list; `None`: the node's own domain.
    #[serde(default)]
    pub domain_name: Option<String>,
    /// How the interface reaches the public network: what its subnet's
    /// route table says for `0.0.0.0/0`.
    #[serde(default)]
    pub internet: InternetRoute,
}

/// Where an interface's traffic for the public network goes: its subnet's
/// effective route table's `0.0.0.0/0` route, resolved by the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InternetRoute {
    /// An internet gateway attached to the VPC: the interface's public
    /// address is DNAT'ed to it and its traffic SNAT'ed from it. Specs
    /// from before route tables (every default VPC had that route).
    #[default]
    Gateway,
    /// A NAT gateway: outbound traffic leaves SNAT'ed to the gateway's
    /// elastic IP `public_ip`; nothing from the public network reaches
    /// the interface (its own public address included).
    Nat {
        /// The NAT gateway's elastic IP.
        public_ip: String,
    },
    /// No route (or a blackhole): no traffic to or from the public
    /// network, whatever public address the interface has.
    None,
}

/// Specs from before `enableDnsSupport` had the resolver on.
fn dns_support_default() -> bool {
    true
}

/// One allowed flow of a security group, resolved by the controller:
/// source groups are already expanded into their members' addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRule {
    /// `tcp`, `udp`, `icmp`, `-1` (all) or an IP protocol number.
    pub protocol: String,
    /// First port (tcp/udp) or ICMP type (`-1`: any); `None` for all.
    pub from_port: Option<i32>,
    /// Last port (tcp/udp) or ICMP code (`-1`: any); `None` for all.
    pub to_port: Option<i32>,
    /// Peer IPv4 CIDRs: sources for ingress, destinations for egress.
    pub cidrs: Vec<String>,
}

/// What may reach an instance and what it may send (stateful: replies to
/// allowed flows are always allowed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceFirewall {
    /// `i-…`.
    pub instance_id: String,
    /// Allowed inbound flows.
    pub ingress: Vec<FirewallRule>,
    /// Allowed outbound flows.
    pub egress: Vec<FirewallRule>,
}

/// Every instance firewall of one node, replaced whole and applied
/// atomically. `generation` increases with every change; an older policy
/// than the one applied changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallPolicy {
    /// The controller's generation of this policy.
    pub generation: u64,
    /// Per instance; an instance without an entry gets no inbound traffic
    /// and may send nothing but DHCP and metadata requests.
    pub instances: Vec<InstanceFirewall>,
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
    /// What the metadata service answers this instance.
    pub metadata: InstanceMetadata,
}

/// An SSH public key offered to the instance (`meta-data/public-keys/N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// Key pair name.
    pub name: String,
    /// OpenSSH one-line public key.
    pub openssh_key: String,
}

/// Whether IMDSv2 session tokens are required (`HttpTokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpTokens {
    /// IMDSv1 and IMDSv2 both answer.
    #[default]
    Optional,
    /// Only requests with a valid session token answer.
    Required,
}

/// The instance's metadata options (EC2's `MetadataOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataOptions {
    /// `HttpTokens`.
    pub http_tokens: HttpTokens,
    /// `HttpPutResponseHopLimit`: the IP TTL of token responses (1..=64).
    pub http_put_response_hop_limit: u8,
    /// `HttpEndpoint`: false turns the service off for this instance.
    pub http_endpoint_enabled: bool,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        Self {
            http_tokens: HttpTokens::Optional,
            http_put_response_hop_limit: 1,
            http_endpoint_enabled: true,
        }
    }
}

/// Everything the instance metadata service (169.254.169.254) tells an
/// instance about itself. The controller fills it at launch; the node serves
/// it from its own copy, so the service keeps answering while the controller
/// is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceMetadata {
    /// `ami-…` the instance was launched from.
    pub ami_id: String,
    /// Index of the instance in its launch (`ami-launch-index`).
    pub ami_launch_index: u32,
    /// `r-…`.
    pub reservation_id: String,
    /// Owning account (identity document `accountId`).
    pub account_id: String,
    /// Instance type name.
    pub instance_type: String,
    /// `aki-…` for paravirtual instances.
    pub kernel_id: Option<String>,
    /// `ari-…` for paravirtual instances.
    pub ramdisk_id: Option<String>,
    /// `x86_64`.
    pub architecture: String,
    /// Region name.
    pub region: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Private IPv4.
    pub local_ipv4: String,
    /// Private DNS name (`ip-172-31-0-5.mallee-1.compute.internal`).
    pub local_hostname: String,
    /// MAC of the primary interface.
    pub mac: String,
    /// Public IPv4, when the instance has one.
    pub public_ipv4: Option<String>,
    /// Public DNS name, when the instance has one.
    pub public_hostname: Option<String>,
    /// Security group names.
    pub security_groups: Vec<String>,
    /// Public keys (the launch key pair is index 0).
    pub public_keys: Vec<PublicKey>,
    /// User data exactly as given to RunInstances (base64 of the bytes the
    /// instance receives).
    pub user_data_base64: Option<String>,
    /// Launch time, ISO 8601 (`2024-01-02T03:04:05Z`).
    pub launch_time: String,
    /// Root device name (`/dev/sda1`).
    pub root_device_name: String,
    /// `block-device-mapping/` entries: name (`ami`, `root`, `ephemeral0`) →
    /// device.
    pub block_device_mapping: Vec<(String, String)>,
    /// IMDS options.
    #[serde(default)]
    pub options: MetadataOptions,
    /// The instance profile associated with the instance, if any: the
    /// metadata service answers `iam/info` and serves the role's
    /// credentials (fetched from the controller) under
    /// `iam/security-credentials/ROLE`.
    #[serde(default)]
    pub iam: Option<IamProfileMetadata>,
}

/// The instance profile an instance carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamProfileMetadata {
    /// `arn:aws:iam::ACCOUNT:instance-profile/NAME`.
    pub instance_profile_arn: String,
    /// `AIPA…`.
    pub instance_profile_id: String,
    /// The role in it when it was associated.
    pub role_name: Option<String>,
}

/// Role credentials for an instance, as the controller hands them to the
/// instance's node (`GET` [`crate::INSTANCE_CREDENTIALS_PATH_PREFIX`]`{instance}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceCredentials {
    /// The role.
    pub role_name: String,
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// The session token.
    pub token: String,
    /// When they expire (ms since the epoch).
    pub expires_at: i64,
    /// When they were issued (ms since the epoch).
    pub issued_at: i64,
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
    /// Every volume the node holds.
    #[serde(default)]
    pub volumes: Vec<ObservedVolume>,
    /// Every snapshot the node is capturing, uploading or has uploaded (and
    /// has not been told to forget).
    #[serde(default)]
    pub snapshots: Vec<ObservedSnapshot>,
}

/// Serial console output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleOutput {
    /// `i-…` id.
    pub instance_id: String,
    /// The output (lossily decoded as UTF-8).
    pub output: String,
}

/// What a node tells the controller when it starts (and again whenever the
/// controller forgot it): who it is, where its API listens and what it
/// offers. Sent as JSON to [`REGISTER_PATH`] over the node's mutual TLS
/// connection: the node id must be the one its certificate names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRegistration {
    /// Who the node is.
    pub info: NodeInfo,
    /// Base URL of the node's API (`https://127.0.0.1:8775`).
    pub url: String,
    /// Capacity offered.
    pub capacity: Capacity,
}

/// Controller path a node posts its [`NodeRegistration`] to.
pub const REGISTER_PATH: &str = "/_mallee/node/register";

/// What the controller answers an accepted [`NodeRegistration`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationAccepted {
    /// The node id recorded.
    pub registered: String,
    /// Where the cloud's API endpoint is, for the relay that lets
    /// instances reach it at [`INSTANCE_API_PORT`] of the metadata
    /// address (`None` from a controller that does not say).
    #[serde(default)]
    pub api: Option<ApiAddress>,
}

/// The address of the cloud's API endpoint as a node reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiAddress {
    /// Host (an IP address or name); `None` when the API listens on every
    /// address: then the host of the controller's node listener URL.
    pub host: Option<String>,
    /// TCP port.
    pub port: u16,
}

/// Port of the metadata address (169.254.169.254) at which every instance
/// reaches the cloud's API endpoint, relayed by its node: Eucalyptus' API
/// port, so `http://169.254.169.254:8773/` works from every VPC whatever
/// its routes.
pub const INSTANCE_API_PORT: u16 = 8773;

/// Controller path prefix under which a node reads image objects:
/// `GET {controller}/_mallee/node/objects/{bucket}/{key}` (over the node's
/// mutual TLS connection) streams the object's bytes (`ETag` header set;
/// `404` when missing).
pub const OBJECTS_PATH_PREFIX: &str = "/_mallee/node/objects/";

/// Where a node gets the role credentials of an instance it runs
/// (`GET {controller}{prefix}{instance}`, mutual TLS): JSON
/// [`InstanceCredentials`]; `404` when the instance has no instance
/// profile, its profile no role, or the role does not trust EC2; `403`
/// when the instance is not on the calling node.
pub const INSTANCE_CREDENTIALS_PATH_PREFIX: &str = "/_mallee/node/instance-credentials/";

/// Body of a desired-state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredStateChange {
    /// New desired state.
    pub desired: DesiredState,
    /// Generation of the change.
    pub generation: u64,
}

/// A volume the controller wants on a node: created empty (sparse) with
/// this size, or from a snapshot's data. Repeating it changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// `vol-…` id.
    pub volume_id: String,
    /// Size in GiB (1..=16384).
    pub size_gib: u64,
    /// The controller's generation of this volume.
    pub generation: u64,
    /// Create the volume from this snapshot's data (fetched from the
    /// controller under [`SNAPSHOTS_PATH_PREFIX`], verified, converted and
    /// grown to `size_gib`) instead of empty.
    #[serde(default)]
    pub source: Option<SnapshotSource>,
    /// The volume's data is not on this node but served by the zone's
    /// storage host at this NBD export: the node only records where to find
    /// it, to attach it to an instance (`source` is then `None`). Deleting
    /// such a volume on the node forgets the record and leaves the data.
    #[serde(default)]
    pub remote: Option<NbdExport>,
}

/// Where a node reaches a volume that a storage host exports: an NBD
/// server over TLS (certificates from the cluster CA) that admits only the
/// node it was exported to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NbdExport {
    /// Address of the storage host's NBD server (an IP address or name).
    pub host: String,
    /// Its TCP port (one server per export).
    pub port: u16,
    /// NBD export name (the volume id).
    pub name: String,
    /// The storage host's node id: its certificate's name, which the node
    /// checks the server against.
    pub server_node_id: String,
}

/// A storage host's export of one volume to one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSpec {
    /// `vol-…` id.
    pub volume_id: String,
    /// The only node admitted (by its certificate).
    pub node_id: String,
    /// The controller's generation of the volume at this export.
    pub generation: u64,
}

/// One export in a storage host's report.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObservedExport {
    /// The node it admits.
    pub node_id: String,
    /// Where that node connects.
    pub export: NbdExport,
    /// Whether the NBD server is up (a storage host restarting brings its
    /// exports back; meanwhile the nodes' clients wait and reconnect).
    pub serving: bool,
}

/// Disk image format of snapshot data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFormat {
    /// Raw bytes of the disk.
    Raw,
    /// qcow2.
    Qcow2,
}

impl DiskFormat {
    /// The name `qemu-img` and the `x-mallee-format` header use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
        }
    }

    /// Parses [`DiskFormat::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "raw" => Some(Self::Raw),
            "qcow2" => Some(Self::Qcow2),
            _ => None,
        }
    }
}

/// The snapshot data a volume is created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSource {
    /// `snap-…` id.
    pub snapshot_id: String,
    /// Size of the data in bytes (what the controller serves).
    pub size: u64,
    /// SHA-256 of the data, lowercase hex.
    pub sha256: String,
    /// Format of the data.
    pub format: DiskFormat,
}

/// A snapshot the controller wants a node to capture from one of its
/// volumes and upload. Repeating it changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSpec {
    /// `snap-…` id.
    pub snapshot_id: String,
    /// `vol-…` of the volume to capture.
    pub volume_id: String,
    /// The controller's generation of this snapshot.
    pub generation: u64,
}

/// A snapshot's state as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum SnapshotState {
    /// Being captured, converted or uploaded.
    Pending {
        /// 0..=99: capture 0–60, upload 60–99.
        progress: u8,
    },
    /// The controller acknowledged the whole upload.
    Uploaded {
        /// Bytes uploaded.
        size: u64,
        /// SHA-256 of the uploaded data, lowercase hex.
        sha256: String,
    },
    /// Could not be captured or uploaded; the reason says why.
    Failed(String),
}

/// One snapshot in a node's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedSnapshot {
    /// `snap-…` id.
    pub snapshot_id: String,
    /// `vol-…` it is captured from.
    pub volume_id: String,
    /// Observed state.
    pub state: SnapshotState,
    /// Generation of the spec the node acts on.
    pub generation: u64,
}

/// Controller path prefix of snapshot data:
/// `PUT {controller}/_mallee/node/snapshots/{snap-id}` uploads it (body =
/// the data; headers `Content-Length`, [`SHA256_HEADER`],
/// [`FORMAT_HEADER`]; over the node's mutual TLS connection) and answers `200`
/// with a [`SnapshotUploaded`] once stored durably, `404` when the snapshot
/// no longer exists, `409` when it was uploaded with another digest, `400`
/// on a digest mismatch; `GET` the same path streams the data back
/// (`Content-Length`, [`SHA256_HEADER`]).
pub const SNAPSHOTS_PATH_PREFIX: &str = "/_mallee/node/snapshots/";

/// Header carrying the SHA-256 (lowercase hex) of snapshot data.
pub const SHA256_HEADER: &str = "x-mallee-sha256";

/// Header carrying the [`DiskFormat`] of uploaded snapshot data.
pub const FORMAT_HEADER: &str = "x-mallee-format";

/// The controller's answer to a complete snapshot upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUploaded {
    /// `snap-…` id.
    pub snapshot_id: String,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the stored data, lowercase hex.
    pub sha256: String,
}

/// An attachment the controller wants: volume `volume_id` on an instance
/// under the name the user gave (`/dev/sdf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    /// `vol-…` id.
    pub volume_id: String,
    /// Device name as the user asked for it (`/dev/sdf`, `/dev/xvdg`).
    pub device: String,
    /// The controller's generation of the volume at this attachment.
    pub generation: u64,
}

/// A volume's state as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum VolumeState {
    /// Its storage is being created.
    Creating,
    /// Exists, attached to nothing.
    Available,
    /// Being attached to `instance_id`.
    Attaching {
        /// `i-…`.
        instance_id: String,
    },
    /// Attached to `instance_id` (hot-plugged when the instance runs, on
    /// its command line from its next start otherwise).
    InUse {
        /// `i-…`.
        instance_id: String,
        /// The name the user gave (`/dev/sdf`).
        device: String,
        /// Where a guest with udev finds it
        /// (`/dev/disk/by-id/virtio-vol0123456789abcdef0`: the virtio
        /// serial is the volume id without `-`).
        guest_device: String,
    },
    /// Being detached from `instance_id` (the guest has not released it
    /// yet).
    Detaching {
        /// `i-…`.
        instance_id: String,
    },
    /// Being deleted.
    Deleting,
    /// Its storage could not be created; the reason says why.
    Failed(String),
}

/// One volume in a node's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedVolume {
    /// `vol-…` id.
    pub volume_id: String,
    /// Observed state.
    pub state: VolumeState,
    /// Size in GiB.
    pub size_gib: u64,
    /// Highest controller generation the node has applied to the volume
    /// (its spec or an attachment).
    pub generation: u64,
    /// Storage host: the node the volume is exported to, if any.
    #[serde(default)]
    pub export: Option<ObservedExport>,
    /// Compute node: the volume's data is remote (this is the record of an
    /// NBD export, see [`VolumeSpec::remote`]).
    #[serde(default)]
    pub remote: bool,
}

/// Query of a detach (`?force=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DetachQuery {
    /// Do not wait long for the guest to release the disk.
    #[serde(default)]
    pub force: bool,
}

/// Controller path a node posts a [`StateReport`] to the moment the state
/// of some of its instances changed.
pub const STATE_PATH: &str = "/_mallee/node/state";

/// What a node pushes to the controller when instances change state: the
/// instances whose observed state (or generation) changed since its last
/// accepted push, with a report generation from the same sequence as
/// [`NodeReport::generation`], so the controller ignores a push older than
/// one it already took. Sent as JSON to [`STATE_PATH`] over the node's
/// mutual TLS connection: the node id must be the one its certificate
/// names, and only that node's instances are taken. A lost push costs
/// nothing but time: the controller's periodic reconcile reads the same
/// state from the node's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReport {
    /// The node reporting.
    pub node_id: String,
    /// Report generation (grows with every report or push).
    pub generation: u64,
    /// The instances that changed.
    pub instances: Vec<ObservedInstance>,
}

/// What the controller answers a [`StateReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateAccepted {
    /// How many of the instances changed state on the controller.
    pub applied: usize,
}
