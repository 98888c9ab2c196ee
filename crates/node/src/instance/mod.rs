//! One instance on this node, as an actor (Omicron's pattern): an
//! [`InstanceHandle`] sends commands over a channel to a runner task that
//! alone owns the instance's record, its VM handle and its files, so
//! concurrent API calls for one instance are applied one after another.
//!
//! Files: `DATA/instances/<id>/` holds `instance.json` (the spec, desired
//! state and last observed state, replaced atomically; it is also the
//! readable instance description hooks get), the root overlay `root.qcow2`
//! and the serial logs (`console.log`, and `console.log.1` from the previous
//! boot). The QMP socket and pidfile live in a short run directory under
//! `/run/mallee/` (Unix socket paths are limited to 107 bytes).
//!
//! Long steps (start, stop) run as futures the runner polls next to its
//! command channel, so a delete never waits for a start to finish: it drops
//! the start and cleans up, which is idempotent, like every step here.
//!
//! An EBS-backed instance ([`BootImage::Ebs`]) boots from a volume of the
//! node instead of an overlay: the volume is its first disk (the boot disk,
//! block node named after the volume like any attached one), held for the
//! instance's whole life and left, with its data, when the instance goes.
//!
//! A remote volume (its data on a storage host, see [`crate::volumes`])
//! becomes QEMU's NBD client instead of a file: the block node
//! ([`mallee_qemu::vm::nbd_blockdev_json`]) connects over TLS (the VM's
//! one `tls-creds-x509` object, from the node's client credentials in
//! `DATA/tls/nbd-client`) through the agent's relay socket (see
//! [`crate::nbd_relay`]), checks the storage host's certificate name and
//! holds the guest's requests while it reconnects. The guest sees the same
//! virtio-blk device and serial as for a local volume.
//!
//! Volumes attached to the instance are listed in its record: that list is
//! the truth about attachments. A running VM gets them hot-plugged (QMP
//! `blockdev-add` + `device_add` of a virtio-blk device whose serial is the
//! volume id without `-`), a VM that starts gets them on its command line,
//! and an adopted or (re)started VM is made to match the list. A
//! `kill -9` of the agent at any point leaves files a restart repairs: the
//! record is written before each step acts, overlays appear atomically, and
//! a VM found alive is adopted whatever the record says.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mallee_node_api::{
    BootImage, DesiredState, InstanceSpec, NodeError, ObservedInstance, VmState,
};
use mallee_pki::PeerName;
use mallee_qemu::vm::{DiskSource, NbdServer, NbdSource};
use mallee_qemu::{
    AccelChoice, Boot, Disk, DiskFormat, Nic, NicBackend, QmpClient, QmpError, QmpEvent, RunState,
    RunningVm, VmSpec,
};
use mallee_util::durable::{sync_dir, write_atomic};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::hooks::{HookError, HookEvent, Hooks};
use crate::image_cache::{CacheError, ImageCache, create_overlay};
use crate::metadata::MetadataService;
use crate::nbd_relay::NbdRelays;
use crate::network::tap_name;
use crate::volumes::{AttachedVolume, VolumeLocation, Volumes, device_id, node_name, serial};
use crate::vpc_networks::Networks;

mod attachments;
mod boot;

use attachments::*;
use boot::*;

/// The record file in an instance directory.
pub(crate) const RECORD_FILE: &str = "instance.json";
/// The root overlay in an instance directory.
const ROOT_OVERLAY: &str = "root.qcow2";
/// The serial log of the current (or last) boot.
const CONSOLE_LOG: &str = "console.log";
/// The serial log of the boot before.
const CONSOLE_LOG_PREVIOUS: &str = "console.log.1";
/// What GetConsoleOutput returns at most.
pub(crate) const CONSOLE_MAX: usize = 64 * 1024;
/// How long a guest gets to power off after the ACPI button.
const POWERDOWN_GRACE: Duration = Duration::from_secs(30);
/// Guest-initiated resets within [`RESET_WINDOW`] that count as a reboot
/// loop (a kernel that panics at boot with `panic=-1`).
const RESET_LOOP: usize = 4;
/// See [`RESET_LOOP`].
const RESET_WINDOW: Duration = Duration::from_secs(60);
const GIB: u64 = 1024 * 1024 * 1024;
/// How long QEMU gets to close its disks when asked to quit before it is
/// killed.
const QUIT_WAIT: Duration = Duration::from_secs(15);
/// How long a guest gets to release a volume being detached (a forced
/// detach then removes the disk anyway, if QEMU lets it).
const DETACH_WAIT: Duration = Duration::from_secs(10);
/// Where the guest sees an EBS root volume (the first virtio disk).
pub(crate) const ROOT_GUEST_DEVICE: &str = "/dev/vda";

/// The root volume of an EBS-backed instance.
pub(crate) fn root_volume(spec: &InstanceSpec) -> Option<&str> {
    match &spec.image {
        BootImage::Ebs { root_volume_id, .. } => Some(root_volume_id),
        BootImage::Paravirtual { .. } | BootImage::Hvm { .. } => None,
    }
}

/// What an instance's runner shares with every other runner.
pub(crate) struct Shared {
    pub data_dir: PathBuf,
    /// `/run/mallee/<node-short>`.
    pub run_root: PathBuf,
    pub cache: ImageCache,
    pub hooks: Hooks,
    pub networks: Arc<Networks>,
    pub metadata: Arc<MetadataService>,
    /// `None` until the accelerator is resolved.
    pub accel: watch::Receiver<Option<Result<AccelChoice, String>>>,
    pub qemu: PathBuf,
    pub volumes: Arc<Volumes>,
    /// The node's NBD client credentials, as QEMU's `tls-creds-x509` reads
    /// them (for remote volumes).
    pub nbd_tls_dir: PathBuf,
    /// The relays QEMU reaches remote volumes through.
    pub nbd_relays: Arc<NbdRelays>,
    /// A storage host's NBD exports (`None` on a compute node).
    pub exports: Option<Arc<mallee_storage::Exports>>,
    /// Bumped whenever an instance's record changes, so the state push
    /// ([`mallee_node_api::push`]) tells the controller at once.
    pub changes: watch::Sender<u64>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("data_dir", &self.data_dir)
            .field("run_root", &self.run_root)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn instances_dir(&self) -> PathBuf {
        self.data_dir.join("instances")
    }

    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.instances_dir().join(id)
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.run_root.join(id)
    }
}

/// What is persisted per instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InstanceRecord {
    /// The spec, with the latest desired state and generation applied.
    pub spec: InstanceSpec,
    /// The last observed state.
    pub state: VmState,
    /// Attached volumes, in attachment order.
    #[serde(default)]
    pub volumes: Vec<AttachedVolume>,
}

/// Reads an instance record.
pub(crate) fn read_record(dir: &Path) -> Result<InstanceRecord, String> {
    let path = dir.join(RECORD_FILE);
    let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("parse {}: {e}", path.display()))
}

/// Writes `record` durably: temporary file, fsync, rename, directory fsync.
fn write_record(dir: &Path, record: &InstanceRecord) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    write_atomic(&dir.join(RECORD_FILE), &json)
}

/// The last [`CONSOLE_MAX`] bytes of an instance's serial output: the
/// previous boot's log followed by the current one, so output survives a
/// stop and start.
pub(crate) fn console_tail(dir: &Path) -> String {
    let mut out = Vec::new();
    for name in [CONSOLE_LOG_PREVIOUS, CONSOLE_LOG] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            out.extend_from_slice(&bytes);
            if out.len() > CONSOLE_MAX * 2 {
                out.drain(..out.len() - CONSOLE_MAX);
            }
        }
    }
    let start = out.len().saturating_sub(CONSOLE_MAX);
    String::from_utf8_lossy(&out[start..]).into_owned()
}

/// What a handle reads without asking the runner.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub observed: ObservedInstance,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Instance disk booked (none for an EBS root).
    pub disk_gib: u64,
    pub volumes: Vec<AttachedVolume>,
    /// The EBS root volume and the root device name it is known by.
    pub root: Option<(String, String)>,
}

/// What the instance's VM can do for a snapshot of one of its volumes.
#[derive(Debug)]
pub(crate) enum VmAccess {
    /// The VM runs: capture through it (QMP).
    Running(Arc<RunningVm>),
    /// No VM, and none starting: the volume's file may be read directly
    /// (a start waits for the volume's data lock).
    Stopped,
    /// A start or stop is under way: ask again.
    Busy,
}

enum Command {
    Put(Box<InstanceSpec>, oneshot::Sender<ObservedInstance>),
    SetDesired(DesiredState, u64, oneshot::Sender<ObservedInstance>),
    Reboot(oneshot::Sender<Result<(), NodeError>>),
    Delete(oneshot::Sender<Result<(), NodeError>>),
    /// The agent is stopping: let go of the VM (it keeps running).
    Detach(oneshot::Sender<()>),
    AttachVolume(AttachedVolume, oneshot::Sender<Result<(), NodeError>>),
    DetachVolume(String, bool, oneshot::Sender<Result<(), NodeError>>),
    VmAccess(oneshot::Sender<VmAccess>),
}

/// The agent's handle on one instance's runner.
#[derive(Debug, Clone)]
pub(crate) struct InstanceHandle {
    tx: mpsc::Sender<Command>,
    status: watch::Receiver<Snapshot>,
}

/// The runner has exited (the instance was deleted or the agent stops).
#[derive(Debug)]
pub(crate) struct Gone;

impl InstanceHandle {
    pub fn snapshot(&self) -> Snapshot {
        self.status.borrow().clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Gone> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| Gone)?;
        rx.await.map_err(|_| Gone)
    }

    pub async fn put(&self, spec: InstanceSpec) -> Result<ObservedInstance, Gone> {
        self.ask(|r| Command::Put(Box::new(spec), r)).await
    }

    pub async fn set_desired(
        &self,
        desired: DesiredState,
        generation: u64,
    ) -> Result<ObservedInstance, Gone> {
        self.ask(|r| Command::SetDesired(desired, generation, r))
            .await
    }

    pub async fn reboot(&self) -> Result<Result<(), NodeError>, Gone> {
        self.ask(Command::Reboot).await
    }

    pub async fn delete(&self) -> Result<Result<(), NodeError>, Gone> {
        self.ask(Command::Delete).await
    }

    pub async fn detach(&self) {
        let _ = self.ask(Command::Detach).await;
    }

    pub async fn attach_volume(
        &self,
        volume: AttachedVolume,
    ) -> Result<Result<(), NodeError>, Gone> {
        self.ask(|r| Command::AttachVolume(volume, r)).await
    }

    pub async fn detach_volume(
        &self,
        volume_id: &str,
        force: bool,
    ) -> Result<Result<(), NodeError>, Gone> {
        self.ask(|r| Command::DetachVolume(volume_id.to_owned(), force, r))
            .await
    }

    /// The VM, for a snapshot of one of the instance's volumes.
    pub async fn vm_access(&self) -> Result<VmAccess, Gone> {
        self.ask(Command::VmAccess).await
    }

    /// Whether this and `other` talk to the same runner.
    pub fn same(&self, other: &Self) -> bool {
        self.tx.same_channel(&other.tx)
    }
}

/// Spawns the runner of a new instance (nothing persisted yet). Its first
/// [`InstanceHandle::put`] persists and acts on the spec.
pub(crate) fn spawn_new(shared: Arc<Shared>, spec: InstanceSpec) -> InstanceHandle {
    // Generation 0 below any real spec, so the first put always applies.
    let record = InstanceRecord {
        spec: InstanceSpec {
            generation: 0,
            ..spec
        },
        state: VmState::Pending,
        volumes: Vec::new(),
    };
    spawn(shared, record, false)
}

/// Spawns the runner of an instance loaded from disk; it adopts the VM if
/// one is alive. The returned receiver fires once adoption is settled.
pub(crate) fn spawn_loaded(
    shared: Arc<Shared>,
    record: InstanceRecord,
) -> (InstanceHandle, oneshot::Receiver<()>) {
    let (ready_tx, ready_rx) = oneshot::channel();
    let handle = spawn_inner(shared, record, true, Some(ready_tx));
    (handle, ready_rx)
}

fn spawn(shared: Arc<Shared>, record: InstanceRecord, persisted: bool) -> InstanceHandle {
    spawn_inner(shared, record, persisted, None)
}

fn spawn_inner(
    shared: Arc<Shared>,
    record: InstanceRecord,
    persisted: bool,
    ready: Option<oneshot::Sender<()>>,
) -> InstanceHandle {
    let (tx, rx) = mpsc::channel(16);
    let id = record.spec.instance_id.clone();
    let (status_tx, status) = watch::channel(snapshot_of(&record));
    let runner = Runner {
        dir: shared.instance_dir(&id),
        run_dir: shared.run_dir(&id),
        shared,
        id,
        record,
        persisted,
        vm: None,
        events: None,
        status: status_tx,
        resets: VecDeque::new(),
        replug: false,
    };
    tokio::spawn(runner.run(rx, ready));
    InstanceHandle { tx, status }
}

fn snapshot_of(record: &InstanceRecord) -> Snapshot {
    Snapshot {
        observed: ObservedInstance {
            instance_id: record.spec.instance_id.clone(),
            state: record.state.clone(),
            generation: record.spec.generation,
        },
        vcpus: record.spec.vcpus,
        memory_mib: record.spec.memory_mib,
        disk_gib: if root_volume(&record.spec).is_some() {
            0
        } else {
            record.spec.disk_gib
        },
        volumes: record.volumes.clone(),
        root: root_volume(&record.spec)
            .map(|v| (v.to_owned(), record.spec.metadata.root_device_name.clone())),
    }
}

/// A VM and its event subscription (made right after launch or adoption,
/// so no event is missed).
struct Vm {
    vm: Arc<RunningVm>,
    events: broadcast::Receiver<QmpEvent>,
}

type Op = Pin<Box<dyn Future<Output = OpDone> + Send>>;

enum OpDone {
    Started(Result<Vm, String>),
    Stopped,
}

/// What the running VM did.
enum VmEvent {
    GuestShutdown,
    GuestReset,
    Exited(String),
}

struct Runner {
    shared: Arc<Shared>,
    id: String,
    dir: PathBuf,
    run_dir: PathBuf,
    record: InstanceRecord,
    /// Whether the record is on disk (a new instance's is written by its
    /// first put).
    persisted: bool,
    vm: Option<Arc<RunningVm>>,
    events: Option<broadcast::Receiver<QmpEvent>>,
    status: watch::Sender<Snapshot>,
    resets: VecDeque<Instant>,
    /// The network part of the spec changed while a start was under way:
    /// plug again once it is done.
    replug: bool,
}

impl Runner {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, ready: Option<oneshot::Sender<()>>) {
        if self.persisted {
            self.adopt().await;
        }
        if let Some(ready) = ready {
            let _ = ready.send(());
        }
        let mut op: Option<Op> = None;
        loop {
            if op.is_none() {
                op = self.next_op();
            }
            let vm = self.vm.clone();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Command::Detach(reply)) => {
                        drop(op.take());
                        let _ = reply.send(());
                        return;
                    }
                    Some(Command::Delete(reply)) => {
                        drop(op.take());
                        let result = self.delete().await;
                        let failed = result.is_err();
                        let _ = reply.send(result);
                        if !failed {
                            return;
                        }
                    }
                    Some(Command::Put(spec, reply)) => {
                        self.put(*spec, op.is_some()).await;
                        let _ = reply.send(self.observed());
                    }
                    Some(Command::SetDesired(desired, generation, reply)) => {
                        if generation > self.record.spec.generation {
                            let mut spec = self.record.spec.clone();
                            spec.desired = desired;
                            spec.generation = generation;
                            self.put(spec, op.is_some()).await;
                        }
                        let _ = reply.send(self.observed());
                    }
                    Some(Command::Reboot(reply)) => {
                        let _ = reply.send(self.reboot(op.is_some()).await);
                    }
                    Some(Command::AttachVolume(volume, reply)) => {
                        let _ = reply.send(self.attach_volume(volume, op.is_some()).await);
                    }
                    Some(Command::DetachVolume(volume_id, force, reply)) => {
                        let _ = reply.send(self.detach_volume(&volume_id, force, op.is_some()).await);
                    }
                    Some(Command::VmAccess(reply)) => {
                        let access = match (&self.vm, op.is_some()) {
                            (_, true) => VmAccess::Busy,
                            (Some(vm), false) => VmAccess::Running(vm.clone()),
                            (None, false) => VmAccess::Stopped,
                        };
                        let _ = reply.send(access);
                    }
                },
                done = async { op.as_mut().expect("guarded by the condition").await }, if op.is_some() => {
                    op = None;
                    self.finish(done).await;
                }
                event = next_vm_event(vm, self.events.as_mut()), if op.is_none() && self.vm.is_some() => {
                    self.on_vm_event(event).await;
                }
            }
        }
    }

    fn observed(&self) -> ObservedInstance {
        snapshot_of(&self.record).observed
    }

    /// Records the state, persists the record and publishes it.
    fn set_state(&mut self, state: VmState) {
        if let VmState::Failed(reason) = &state {
            tracing::warn!(instance = %self.id, %reason, "instance failed");
        } else {
            tracing::info!(instance = %self.id, state = ?state, "instance state");
        }
        self.record.state = state;
        self.persist();
    }

    fn persist(&mut self) {
        match write_record(&self.dir, &self.record) {
            Ok(()) => self.persisted = true,
            Err(e) => {
                tracing::error!(instance = %self.id, error = %e, "cannot persist the instance record");
            }
        }
        self.status.send_replace(snapshot_of(&self.record));
        self.shared.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Applies a spec of a newer generation (older or equal: nothing).
    /// `busy`: a start or stop is under way; its end re-evaluates the state.
    /// A running VM whose interfaces (public address) or metadata changed
    /// gets them live: plugged again, not restarted.
    async fn put(&mut self, spec: InstanceSpec, busy: bool) {
        if spec.generation <= self.record.spec.generation {
            return;
        }
        let wants_run = spec.desired == DesiredState::Running;
        let network_changed =
            spec.nics != self.record.spec.nics || spec.metadata != self.record.spec.metadata;
        let previous = std::mem::replace(&mut self.record.spec, spec);
        if wants_run
            && !busy
            && self.vm.is_none()
            && matches!(
                self.record.state,
                VmState::Stopped | VmState::GuestShutdown | VmState::Failed(_)
            )
        {
            // A newer generation asking to run is the controller's retry.
            self.record.state = VmState::Pending;
        }
        if !wants_run && !busy && self.vm.is_none() && self.record.state == VmState::Pending {
            self.record.state = VmState::Stopped;
        }
        self.persist();
        if network_changed && busy {
            self.replug = true;
        } else if network_changed && self.vm.is_some() {
            self.replug_live(&previous).await;
        }
    }

    /// Plugs the running VM's interface again with the current spec (new
    /// public address, metadata), dropping the old address's metadata if
    /// the private address or network changed.
    async fn replug_live(&mut self, previous: &InstanceSpec) {
        if let (Some(old), Some(new)) = (previous.nics.first(), self.record.spec.nics.first())
            && (old.private_ip != new.private_ip || old.network_id != new.network_id)
            && let Ok(ip) = old.private_ip.parse::<Ipv4Addr>()
        {
            self.shared
                .metadata
                .unregister_in(&old.network_id, ip, Some(&self.id));
        }
        if let Err(e) = plug(&self.shared, &self.record.spec).await {
            tracing::warn!(instance = %self.id, error = %e, "applying the network change failed");
        }
    }

    /// The long step the instance needs now, if any.
    fn next_op(&mut self) -> Option<Op> {
        let desired = self.record.spec.desired;
        match (&self.record.state, desired, self.vm.is_some()) {
            (VmState::Pending, DesiredState::Running, false) => {
                let ctx = StartCtx {
                    shared: self.shared.clone(),
                    id: self.id.clone(),
                    dir: self.dir.clone(),
                    run_dir: self.run_dir.clone(),
                    spec: self.record.spec.clone(),
                    volumes: self.record.volumes.clone(),
                };
                Some(Box::pin(async move { OpDone::Started(start(ctx).await) }))
            }
            (_, DesiredState::Stopped, true) => {
                let vm = self.vm.take()?;
                self.events = None;
                self.set_state(VmState::Stopping);
                let shared = self.shared.clone();
                let spec = self.record.spec.clone();
                let id = self.id.clone();
                Some(Box::pin(async move {
                    stop_vm(&id, &vm).await;
                    drop(vm);
                    unplug(&shared, &spec).await;
                    OpDone::Stopped
                }))
            }
            (VmState::Pending | VmState::Failed(_), DesiredState::Stopped, false) => {
                self.set_state(VmState::Stopped);
                None
            }
            _ => None,
        }
    }

    async fn finish(&mut self, done: OpDone) {
        match done {
            OpDone::Started(Ok(vm)) => {
                self.vm = Some(vm.vm);
                self.events = Some(vm.events);
                self.resets.clear();
                self.set_state(VmState::Running);
                // A VM found running by the start (adopted) may predate
                // attachment changes.
                self.sync_volumes().await;
                if std::mem::take(&mut self.replug) {
                    let spec = self.record.spec.clone();
                    self.replug_live(&spec).await;
                }
            }
            OpDone::Started(Err(reason)) => self.set_state(VmState::Failed(reason)),
            // Asked to run again while it was stopping.
            OpDone::Stopped if self.record.spec.desired == DesiredState::Running => {
                self.set_state(VmState::Pending);
            }
            OpDone::Stopped => self.set_state(VmState::Stopped),
        }
    }

    async fn on_vm_event(&mut self, event: VmEvent) {
        match event {
            VmEvent::GuestShutdown => {
                if let Some(vm) = self.vm.take() {
                    quit_or_kill(&self.id, &vm).await;
                }
                self.events = None;
                unplug(&self.shared, &self.record.spec).await;
                self.set_state(VmState::GuestShutdown);
            }
            VmEvent::GuestReset => {
                let now = Instant::now();
                self.resets.push_back(now);
                while self
                    .resets
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > RESET_WINDOW)
                {
                    self.resets.pop_front();
                }
                if self.resets.len() >= RESET_LOOP {
                    if let Some(vm) = self.vm.take() {
                        quit_or_kill(&self.id, &vm).await;
                    }
                    self.events = None;
                    unplug(&self.shared, &self.record.spec).await;
                    self.set_state(VmState::Failed(format!(
                        "the guest reset itself {} times within {} s (kernel panic at boot?)",
                        self.resets.len(),
                        RESET_WINDOW.as_secs()
                    )));
                }
            }
            VmEvent::Exited(reason) => {
                self.vm = None;
                self.events = None;
                self.set_state(VmState::Failed(reason));
            }
        }
    }

    async fn reboot(&mut self, busy: bool) -> Result<(), NodeError> {
        match (&self.vm, busy) {
            (Some(vm), false) => vm
                .reset()
                .await
                .map_err(|e| NodeError::Internal(format!("reboot {}: {e}", self.id))),
            _ => Err(NodeError::Conflict(format!(
                "instance {} is not running ({:?})",
                self.id, self.record.state
            ))),
        }
    }

    /// At agent start: adopt a live VM (whatever the record says), notice a
    /// guest that powered off while nobody watched, or leave the record's
    /// state for the loop to act on (a VM gone while desired running, as
    /// after a host reboot, is started again).
    async fn adopt(&mut self) {
        let alive = RunningVm::pid_in_run_dir(&self.run_dir).is_some();
        if !alive {
            // Its port would keep rules and a lease of a VM that is gone; a
            // start plugs it again.
            unplug(&self.shared, &self.record.spec).await;
            if matches!(self.record.state, VmState::Running | VmState::Stopping) {
                tracing::info!(instance = %self.id, "VM not running after agent start (host reboot?)");
                let next = if self.record.spec.desired == DesiredState::Running {
                    VmState::Pending
                } else {
                    VmState::Stopped
                };
                self.set_state(next);
            }
            return;
        }
        if let Err(e) = self
            .shared
            .hooks
            .run(HookEvent::PreAdopt, Some(&self.dir))
            .await
        {
            // The VM is left alone: not adopted, not touched.
            self.set_state(VmState::Failed(format!(
                "{}; the running VM was not adopted",
                hook_reason(&e)
            )));
            return;
        }
        let vm = match RunningVm::adopt(&self.run_dir).await {
            Ok(vm) => vm,
            Err(e) => {
                self.set_state(VmState::Failed(format!("cannot adopt the running VM: {e}")));
                return;
            }
        };
        let events = vm.qmp().subscribe();
        let status = vm.status().await;
        tracing::info!(instance = %self.id, pid = vm.pid(), status = ?status, "adopted VM");
        if let Err(e) = plug(&self.shared, &self.record.spec).await {
            tracing::warn!(instance = %self.id, error = %e, "re-plugging the adopted VM's network failed");
        }
        if matches!(status, Ok(ref s) if s.state == RunState::Shutdown) {
            quit_or_kill(&self.id, &vm).await;
            unplug(&self.shared, &self.record.spec).await;
            // Powered off while the agent was away: by the guest, unless the
            // agent was stopping it.
            let state = match (&self.record.state, self.record.spec.desired) {
                (VmState::Stopping, _) | (_, DesiredState::Stopped) => VmState::Stopped,
                _ => VmState::GuestShutdown,
            };
            self.set_state(state);
            return;
        }
        self.vm = Some(Arc::new(vm));
        self.events = Some(events);
        if self.record.state != VmState::Running {
            self.set_state(VmState::Running);
        }
        self.sync_volumes().await;
    }

    /// Kills the VM and removes everything of the instance. Idempotent.
    async fn delete(&mut self) -> Result<(), NodeError> {
        let internal = |e: String| NodeError::Internal(e);
        self.events = None;
        if let Some(vm) = self.vm.take() {
            // With volumes attached, QMP `quit` first: QEMU closes their
            // block nodes and writes out the qcow2 metadata it caches; a
            // SIGKILL loses data the guest wrote without a flush, and the
            // volumes outlive the instance.
            let quit = if self.record.volumes.is_empty() && root_volume(&self.record.spec).is_none()
            {
                false
            } else {
                matches!(tokio::time::timeout(QUIT_WAIT, vm.quit()).await, Ok(Ok(())))
            };
            if !quit && let Err(e) = vm.kill().await {
                tracing::warn!(instance = %self.id, error = %e, "kill");
            }
        }
        // A start that was dropped half-way may have launched one.
        RunningVm::kill_run_dir(&self.run_dir, Duration::from_secs(10))
            .await
            .map_err(|e| internal(format!("kill the VM of {}: {e}", self.id)))?;
        if self.dir.exists()
            && let Err(e) = self
                .shared
                .hooks
                .run(HookEvent::PreClean, Some(&self.dir))
                .await
        {
            let reason = hook_reason(&e);
            self.set_state(VmState::Failed(reason.clone()));
            return Err(internal(reason));
        }
        unplug(&self.shared, &self.record.spec).await;
        self.shared
            .cache
            .unpin_all(&self.id)
            .await
            .map_err(|e| internal(format!("unpin the images of {}: {e}", self.id)))?;
        for dir in [&self.dir, &self.run_dir] {
            match tokio::fs::remove_dir_all(dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(internal(format!("remove {}: {e}", dir.display()))),
            }
        }
        if let Err(e) = sync_dir(&self.shared.instances_dir()) {
            tracing::warn!(error = %e, "fsync of the instances directory");
        }
        tracing::info!(instance = %self.id, "instance deleted");
        Ok(())
    }
}

/// The next thing the VM does that the runner must react to.
async fn next_vm_event(
    vm: Option<Arc<RunningVm>>,
    events: Option<&mut broadcast::Receiver<QmpEvent>>,
) -> VmEvent {
    let (Some(vm), Some(events)) = (vm, events) else {
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    let guest = ev.data.get("guest").and_then(serde_json::Value::as_bool) == Some(true);
                    match ev.event.as_str() {
                        "SHUTDOWN" if guest => return VmEvent::GuestShutdown,
                        "RESET" if guest => return VmEvent::GuestReset,
                        _ => {}
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    vm.wait_exit().await;
                    return VmEvent::Exited("QEMU exited unexpectedly".into());
                }
            },
            () = vm.wait_exit() => {
                return VmEvent::Exited(format!(
                    "QEMU (pid {}) exited unexpectedly; see the console output",
                    vm.pid()
                ));
            }
        }
    }
}

/// ACPI power button, up to [`POWERDOWN_GRACE`] for the guest, then quit
/// (QEMU stays after a guest poweroff: `-no-shutdown`), then kill.
async fn stop_vm(id: &str, vm: &RunningVm) {
    let mut events = vm.qmp().subscribe();
    if vm.powerdown().await.is_ok() {
        let off = QmpClient::wait_event(&mut events, "SHUTDOWN", POWERDOWN_GRACE, |_| true);
        tokio::select! {
            r = off => if let Err(e) = r {
                tracing::info!(instance = %id, error = %e, "guest did not power off; stopping it");
            },
            () = vm.wait_exit() => {}
        }
    }
    quit_or_kill(id, vm).await;
}

async fn quit_or_kill(id: &str, vm: &RunningVm) {
    if vm.quit().await.is_err()
        && let Err(e) = vm.kill().await
    {
        tracing::error!(instance = %id, error = %e, "cannot end QEMU");
    }
}

fn hook_reason(e: &HookError) -> String {
    match e {
        HookError::Failed {
            hook,
            event,
            code,
            stderr,
        } => {
            let code = code.map_or_else(|| "on a signal".to_owned(), |c| c.to_string());
            let mut reason = format!("hook {event} exited {code} ({hook})");
            if !stderr.is_empty() {
                reason.push_str(": ");
                reason.push_str(stderr);
            }
            reason
        }
        other => other.to_string(),
    }
}

/// Plugs the primary interface into its VPC's network and registers the
/// instance's metadata there; returns the prefix that runs QEMU in that
/// network's namespace (empty without interfaces).
async fn plug(shared: &Shared, spec: &InstanceSpec) -> Result<Vec<OsString>, String> {
    let Some(nic) = spec.nics.first() else {
        return Ok(Vec::new());
    };
    if spec.nics.len() > 1 {
        tracing::warn!(instance = %spec.instance_id, "only the first network interface is connected");
    }
    shared
        .networks
        .plug(&spec.instance_id, nic, &spec.metadata)
        .await
        .map_err(|e| format!("network: {e}"))
}

async fn unplug(shared: &Shared, spec: &InstanceSpec) {
    if let Some(nic) = spec.nics.first()
        && let Err(e) = shared.networks.unplug(&spec.instance_id, nic).await
    {
        tracing::warn!(instance = %spec.instance_id, error = %e, "network unplug");
    }
}
