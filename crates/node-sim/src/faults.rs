//! What tests do to the simulated agent's calls: the kind of each
//! [`mallee_node_api::NodeAgent`] call (for counting and for aiming a
//! fault), and the faults a test can queue for the next call of a kind.

use std::time::Duration;

use mallee_node_api::NodeError;

/// One method of [`mallee_node_api::NodeAgent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallKind {
    /// `info`.
    Info,
    /// `capacity`.
    Capacity,
    /// `report`.
    Report,
    /// `put_instance`.
    PutInstance,
    /// `set_desired_state`.
    SetDesiredState,
    /// `reboot`.
    Reboot,
    /// `delete_instance`.
    DeleteInstance,
    /// `console_output`.
    ConsoleOutput,
    /// `put_firewall`.
    PutFirewall,
    /// `put_volume`.
    PutVolume,
    /// `delete_volume`.
    DeleteVolume,
    /// `attach_volume`.
    AttachVolume,
    /// `detach_volume`.
    DetachVolume,
    /// `put_snapshot`.
    PutSnapshot,
    /// `delete_snapshot`.
    DeleteSnapshot,
    /// `put_overlay`.
    PutOverlay,
}

impl CallKind {
    /// Every kind, in declaration order.
    pub const ALL: [CallKind; 16] = [
        Self::Info,
        Self::Capacity,
        Self::Report,
        Self::PutInstance,
        Self::SetDesiredState,
        Self::Reboot,
        Self::DeleteInstance,
        Self::ConsoleOutput,
        Self::PutFirewall,
        Self::PutVolume,
        Self::DeleteVolume,
        Self::AttachVolume,
        Self::DetachVolume,
        Self::PutSnapshot,
        Self::DeleteSnapshot,
        Self::PutOverlay,
    ];
}

/// What happens to the next call of a kind (queued with
/// [`crate::SimNode::inject`]; each fault is used up by one call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The call changes nothing and fails with this error (a node that
    /// refuses, or a request lost on its way to the node).
    Refuse(NodeError),
    /// The call takes effect, but its answer is lost: the caller gets this
    /// error (a reply lost on its way back, a timeout after the node
    /// acted). What idempotent retries are for.
    LoseAnswer(NodeError),
    /// The call waits this long before it acts (a slow node; a caller's
    /// timeout that drops the call first means it never acts, like an HTTP
    /// request the server stops handling when its client goes away).
    Delay(Duration),
}
