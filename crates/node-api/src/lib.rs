//! The node agent's API, in its own crate as DESIGN.md asks: the types the
//! controller and a node exchange, the [`NodeAgent`] trait every agent
//! implements (the real QEMU agent and the simulated one alike), an HTTP+JSON
//! server exposing any implementation, and a client that implements the trait
//! over HTTP. The controller talks to nodes only through this trait, so one
//! node on loopback and many nodes over the network run the same code.
//!
//! Every connection between the controller and a node is mutual TLS
//! ([`tls`], with certificates of the cluster CA from mallee-pki) and every
//! request carries the sender's API [`version`]; a node without a
//! certificate yet gets one by [`enrol`]ling.

mod client;
pub mod enrol;
mod overlay;
pub mod push;
mod server;
pub mod tls;
mod types;
pub mod version;

pub use client::HttpNodeClient;
pub use overlay::*;
pub use server::router;
pub use types::*;

use async_trait::async_trait;

/// Errors of node operations, on either side of the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "message")]
pub enum NodeError {
    /// The instance (or volume) is not known to this node.
    #[error("{0} not found on this node")]
    NotFound(String),
    /// The request contradicts the node's state (for example an older
    /// generation than the one it already has).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The node lacks the capacity for the instance.
    #[error("insufficient capacity: {0}")]
    InsufficientCapacity(String),
    /// The request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The peer's node API version is outside what this side works with.
    #[error("incompatible version: {0}")]
    Incompatible(String),
    /// The node failed to carry out the request.
    #[error("node failure: {0}")]
    Internal(String),
    /// The node could not be reached or answered garbage.
    #[error("transport: {0}")]
    Transport(String),
}

/// What every node agent does. Every call is idempotent and keyed by
/// instance id, so the controller may repeat any of them after a crash.
#[async_trait]
pub trait NodeAgent: Send + Sync {
    /// Who the node is.
    async fn info(&self) -> Result<NodeInfo, NodeError>;
    /// Capacity, as Eucalyptus' DescribeResource reported it.
    async fn capacity(&self) -> Result<Capacity, NodeError>;
    /// Observed state of every instance, with the node's report generation.
    async fn report(&self) -> Result<NodeReport, NodeError>;
    /// Makes the node hold `spec` (creating and starting the instance when
    /// its desired state is running). Repeating a spec of the same or an
    /// older generation changes nothing.
    async fn put_instance(&self, spec: InstanceSpec) -> Result<ObservedInstance, NodeError>;
    /// Changes an instance's desired run state.
    async fn set_desired_state(
        &self,
        instance_id: &str,
        desired: DesiredState,
        generation: u64,
    ) -> Result<ObservedInstance, NodeError>;
    /// Reboots a running instance (the VM process stays).
    async fn reboot(&self, instance_id: &str) -> Result<(), NodeError>;
    /// Terminates and removes an instance; removing one the node does not
    /// have succeeds.
    async fn delete_instance(&self, instance_id: &str) -> Result<(), NodeError>;
    /// The instance's serial console output so far (at most the last 64 KiB,
    /// as EC2's GetConsoleOutput).
    async fn console_output(&self, instance_id: &str) -> Result<ConsoleOutput, NodeError>;
    /// Replaces the node's security-group policy, applied atomically to
    /// every instance and kept across agent restarts. A policy older than
    /// the one in force (lower generation) changes nothing. Returns the
    /// generation in force afterwards.
    async fn put_firewall(&self, policy: FirewallPolicy) -> Result<u64, NodeError>;
    /// Creates volume `spec.volume_id` (empty, sparse) unless the node has
    /// it already; returns its state.
    async fn put_volume(&self, spec: VolumeSpec) -> Result<ObservedVolume, NodeError>;
    /// Deletes a volume and its data. Refused with [`NodeError::Conflict`]
    /// while it is attached; deleting one the node does not have succeeds.
    async fn delete_volume(&self, volume_id: &str) -> Result<(), NodeError>;
    /// Attaches a volume to an instance of this node: hot-plugged into the
    /// running VM (after the `pre-attach` hooks, whose refusal is a
    /// [`NodeError::Conflict`] with the hook's message), recorded for a
    /// stopped one. Kept across agent restarts and stop/start. Repeating an
    /// attachment that exists changes nothing.
    async fn attach_volume(
        &self,
        instance_id: &str,
        attachment: VolumeAttachment,
    ) -> Result<ObservedVolume, NodeError>;
    /// Detaches a volume from an instance: the guest is asked to release
    /// the disk (up to about 10 s; without `force` a guest that keeps it
    /// refuses the detach with [`NodeError::Conflict`], with `force` the
    /// disk is removed anyway if QEMU lets it), then the `post-detach`
    /// hooks run. A stopped instance's record just changes. Detaching a
    /// volume that is not attached returns its state.
    async fn detach_volume(
        &self,
        instance_id: &str,
        volume_id: &str,
        force: bool,
    ) -> Result<ObservedVolume, NodeError>;
    /// Starts capturing snapshot `spec.snapshot_id` of volume
    /// `spec.volume_id` (a crash-consistent point in time: the call's) and
    /// uploading it to the controller; returns its state. Refused with
    /// [`NodeError::NotFound`] when the node does not have the volume.
    /// Repeating it changes nothing.
    async fn put_snapshot(&self, spec: SnapshotSpec) -> Result<ObservedSnapshot, NodeError>;
    /// Forgets a snapshot: aborts its capture or upload if one runs and
    /// removes its local files and record. Forgetting one the node does not
    /// have succeeds.
    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), NodeError>;
    /// Replaces the node's VXLAN overlay (segments, peers and remote
    /// interfaces of its VPCs), applied to every VPC network and kept
    /// across agent restarts. An overlay older than the one in force (lower
    /// generation) changes nothing; one that fails [`Overlay::check`] is
    /// refused with [`NodeError::BadRequest`]. Returns the generation in
    /// force afterwards.
    async fn put_overlay(&self, overlay: Overlay) -> Result<u64, NodeError>;
    /// Storage hosts: exports volume `spec.volume_id` over NBD (TLS) to
    /// node `spec.node_id` alone and returns where that node connects.
    /// Repeating it changes nothing; a volume exported to another node is
    /// refused with [`NodeError::Conflict`] (no Multi-Attach). Compute
    /// nodes refuse it with [`NodeError::BadRequest`].
    async fn export_volume(&self, spec: ExportSpec) -> Result<ObservedExport, NodeError>;
    /// Storage hosts: ends a volume's export after flushing what its
    /// client wrote. Ending one that does not exist succeeds.
    async fn unexport_volume(&self, volume_id: &str) -> Result<(), NodeError>;
}
