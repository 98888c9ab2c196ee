//! The simulated node's whole state, changed only under one lock by
//! synchronous methods (here and in [`crate::instances`],
//! [`crate::volumes`] and [`crate::snapshots`]). Whatever takes time (a
//! boot, a stop, a capture, a transfer) is not done here: the methods push
//! an [`Effect`] carrying a fresh token, the driver in [`crate::node`]
//! runs it and reports back with the token, and a report whose token is no
//! longer the object's current one (the object was deleted, the agent
//! crashed, a newer operation replaced it) changes nothing.
//!
//! An agent outage ([`State::crash`]) cancels every token, as killing the
//! real agent drops its runners; [`State::restart`] adopts what survived
//! the way the real agent's start does.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use mallee_node_api::{
    Capacity, DesiredState, DiskFormat, FirewallPolicy, InstanceSpec, NodeError, Overlay,
    SnapshotSource, VmState, VolumeAttachment, VolumeState,
};

use crate::SimCapacity;

/// Why a snapshot whose capture an agent outage interrupted failed (the
/// real agent's words).
pub const RESTARTED_WHILE_CAPTURING: &str =
    "the node agent restarted while capturing the snapshot; its point in time is lost";

/// How long the timed steps take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delays {
    pub boot: Duration,
    pub stop: Duration,
    pub capture: Duration,
}

/// Something that takes time, for the driver to run; `token` names it.
#[derive(Debug)]
pub(crate) enum Effect {
    /// A VM boots; [`State::boot_done`] after `delay`.
    Boot {
        instance_id: String,
        token: u64,
        delay: Duration,
    },
    /// A VM is shut down; [`State::stop_done`] after `delay`.
    Stop {
        instance_id: String,
        token: u64,
        delay: Duration,
    },
    /// A snapshot is captured over `delay` (progress through
    /// [`State::capture_progress`]), then uploaded.
    Capture {
        snapshot_id: String,
        token: u64,
        delay: Duration,
        upload: Upload,
    },
    /// A captured snapshot is uploaded (again, after an outage).
    Upload {
        snapshot_id: String,
        token: u64,
        upload: Upload,
    },
    /// A volume is created from a snapshot's data.
    Create {
        volume_id: String,
        token: u64,
        source: SnapshotSource,
    },
}

impl Effect {
    pub fn token(&self) -> u64 {
        match self {
            Self::Boot { token, .. }
            | Self::Stop { token, .. }
            | Self::Capture { token, .. }
            | Self::Upload { token, .. }
            | Self::Create { token, .. } => *token,
        }
    }
}

/// The data of a snapshot, as captured.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub data: Bytes,
    pub sha256: String,
    pub format: DiskFormat,
}

/// The simulated QEMU process of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Process {
    /// No VM process.
    None,
    /// The VM runs.
    Running,
    /// The guest powered off while the agent was down; QEMU waits
    /// (`-no-shutdown`) for the agent to notice.
    PoweredOff,
}

/// A long step of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Start,
    Stop,
}

/// One instance.
#[derive(Debug, Clone)]
pub(crate) struct Vm {
    /// The spec, with the latest desired state and generation applied.
    pub spec: InstanceSpec,
    pub state: VmState,
    pub process: Process,
    /// The step under way, with its token.
    pub op: Option<(Op, u64)>,
    /// Attached volumes, in attachment order.
    pub volumes: Vec<VolumeAttachment>,
    pub console: String,
    pub boots: u32,
    pub reboots: u32,
}

/// One volume.
#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub volume_id: String,
    pub size_gib: u64,
    pub generation: u64,
    pub state: VolumeState,
    pub source: Option<SnapshotSource>,
    /// The volume's simulated content (raw bytes, or a qcow2 image when
    /// created from qcow2 snapshot data).
    pub data: Vec<u8>,
    pub format: DiskFormat,
    /// The guest keeps the disk: a detach without `force` is refused.
    pub guest_keeps: bool,
    /// Token of a creation from a snapshot under way.
    pub creation: Option<u64>,
}

/// Where a snapshot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Being captured (0..=60).
    Capturing(u8),
    /// Captured; being uploaded.
    Uploading,
    Uploaded {
        size: u64,
        sha256: String,
    },
    Failed(String),
}

/// One snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Snap {
    pub snapshot_id: String,
    pub volume_id: String,
    pub generation: u64,
    pub phase: Phase,
    pub upload: Upload,
    /// Token of its capture or upload under way.
    pub task: Option<u64>,
}

/// Everything the simulated node holds.
#[derive(Debug)]
pub(crate) struct State {
    pub up: bool,
    pub capacity: SimCapacity,
    pub delays: Delays,
    pub instances: BTreeMap<String, Vm>,
    pub volumes: BTreeMap<String, Volume>,
    pub snapshots: BTreeMap<String, Snap>,
    pub firewall: FirewallPolicy,
    pub overlay: Overlay,
    /// Reasons the next boots fail with, first first.
    pub boot_failures: VecDeque<String>,
    next_token: u64,
    /// What the last change asks the driver to run.
    pub effects: Vec<Effect>,
    /// Tokens whose tasks the last change made pointless (the driver
    /// aborts them).
    pub cancels: Vec<u64>,
}

impl State {
    pub fn new(capacity: SimCapacity, delays: Delays) -> Self {
        Self {
            up: true,
            capacity,
            delays,
            instances: BTreeMap::new(),
            volumes: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            firewall: FirewallPolicy {
                generation: 0,
                instances: Vec::new(),
            },
            overlay: Overlay::default(),
            boot_failures: VecDeque::new(),
            next_token: 0,
            effects: Vec::new(),
            cancels: Vec::new(),
        }
    }

    pub fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Capacity as the real agent accounts it: cores and memory of the
    /// instances that are pending, running or stopping; instance disk of
    /// every instance (none for an EBS root) plus the size of every volume.
    pub fn capacity(&self) -> Capacity {
        let (mut cores, mut memory, mut disk) = (0u64, 0u64, 0u64);
        for vm in self.instances.values() {
            if matches!(
                vm.state,
                VmState::Pending | VmState::Running | VmState::Stopping
            ) {
                cores += u64::from(vm.spec.vcpus);
                memory += vm.spec.memory_mib;
            }
            if crate::instances::root_volume(&vm.spec).is_none() {
                disk += vm.spec.disk_gib;
            }
        }
        disk += self.volumes.values().map(|v| v.size_gib).sum::<u64>();
        let max = self.capacity;
        let cores_used = u32::try_from(cores).unwrap_or(u32::MAX);
        Capacity {
            cores_max: max.cores,
            cores_free: max.cores.saturating_sub(cores_used),
            memory_mib_max: max.memory_mib,
            memory_mib_free: max.memory_mib.saturating_sub(memory),
            disk_gib_max: max.disk_gib,
            disk_gib_free: max.disk_gib.saturating_sub(disk),
        }
    }

    /// Replaces the firewall policy unless it is older than the one in
    /// force; returns the generation in force.
    pub fn put_firewall(&mut self, policy: FirewallPolicy) -> Result<u64, NodeError> {
        crate::firewall::validate(&policy).map_err(NodeError::BadRequest)?;
        if policy.generation >= self.firewall.generation {
            self.firewall = policy;
        }
        Ok(self.firewall.generation)
    }

    /// Replaces the overlay unless it is older than the one in force;
    /// returns the generation in force. The real agent's checks apply.
    pub fn put_overlay(&mut self, overlay: Overlay) -> Result<u64, NodeError> {
        overlay.check().map_err(NodeError::BadRequest)?;
        if overlay.generation >= self.overlay.generation {
            self.overlay = overlay;
        }
        Ok(self.overlay.generation)
    }

    /// The agent dies: every step under way is dropped with it. VMs,
    /// volumes and records stay.
    pub fn crash(&mut self) {
        self.up = false;
        for vm in self.instances.values_mut() {
            vm.op = None;
        }
        for volume in self.volumes.values_mut() {
            volume.creation = None;
        }
        for snap in self.snapshots.values_mut() {
            snap.task = None;
        }
    }

    /// The agent starts again: VMs are adopted (see
    /// [`State::adopt`]), captures the outage interrupted fail, uploads
    /// and creations from snapshots start again.
    pub fn restart(&mut self) {
        self.up = true;
        let ids: Vec<String> = self.instances.keys().cloned().collect();
        for id in &ids {
            self.adopt(id);
        }
        let snaps: Vec<String> = self.snapshots.keys().cloned().collect();
        for id in snaps {
            self.resume_snapshot(&id);
        }
        let creating: Vec<String> = self
            .volumes
            .values()
            .filter(|v| v.state == VolumeState::Creating && v.source.is_some())
            .map(|v| v.volume_id.clone())
            .collect();
        for id in creating {
            self.start_creation(&id);
        }
        for id in &ids {
            self.drive(id);
        }
    }

    /// What the real agent's start does with an instance record: a live VM
    /// is adopted (whatever the record says), a guest that powered off
    /// while nobody watched is noticed, a VM gone while it should run is
    /// started again.
    fn adopt(&mut self, id: &str) {
        let Some(vm) = self.instances.get_mut(id) else {
            return;
        };
        match vm.process {
            Process::Running => {
                vm.state = VmState::Running;
            }
            Process::PoweredOff => {
                vm.process = Process::None;
                vm.state = match (&vm.state, vm.spec.desired) {
                    (VmState::Stopping, _) | (_, DesiredState::Stopped) => VmState::Stopped,
                    _ => VmState::GuestShutdown,
                };
            }
            Process::None => {
                if matches!(vm.state, VmState::Running | VmState::Stopping) {
                    vm.state = if vm.spec.desired == DesiredState::Running {
                        VmState::Pending
                    } else {
                        VmState::Stopped
                    };
                }
            }
        }
    }
}

/// Ids the real agent accepts for instances, volumes and snapshots.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !id.starts_with('.')
}
