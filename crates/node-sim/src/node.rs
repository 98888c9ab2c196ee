//! [`SimNode`]: the simulated agent a test (or `mallee node --simulate`)
//! holds. It implements [`NodeAgent`] over the state of
//! [`crate::state`], runs the timed effects that state asks for, and gives
//! tests their handles: control (the guest powers off, a VM dies, the
//! agent crashes and restarts, capacity changes, faults for the next call
//! of a kind) and observation (VMs, volumes, snapshots, the firewall
//! policy, call counts, waiting for a condition).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use mallee_node_api::{
    Capacity, ConsoleOutput, DesiredState, DiskFormat, ExportSpec, FirewallPolicy, InstanceSpec,
    NodeAgent, NodeError, NodeInfo, NodeRegistration, NodeReport, NodeRole, ObservedExport,
    ObservedInstance, ObservedSnapshot, ObservedVolume, Overlay, SnapshotSpec, VmState,
    VolumeAttachment, VolumeSpec,
};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::faults::{CallKind, Fault};
use crate::snapshots::CAPTURE_SHARE;
use crate::state::{Delays, Effect, Process, State, Upload, Vm};
use crate::transfer::{SnapshotTransfer, TransferError};
use crate::{SimCapacity, SimConfig};

/// First wait before retrying a transfer (as the real agent).
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between transfer retries.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Progress updates during a capture.
const CAPTURE_STEPS: u8 = 4;
/// What a call to a crashed agent gets (a dead HTTP peer).
const OUTAGE: &str = "connection refused: the simulated node agent is down";

/// Why a test's command to the simulated node could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The node holds no such instance.
    #[error("instance {0} is not on this node")]
    NoSuchInstance(String),
    /// The instance has no running VM (or is starting or stopping).
    #[error("instance {instance_id} is not running ({state:?})")]
    NotRunning {
        /// `i-…`.
        instance_id: String,
        /// Its state.
        state: VmState,
    },
    /// The node holds no such volume.
    #[error("volume {0} is not on this node")]
    NoSuchVolume(String),
    /// The volume holds a qcow2 image (from a snapshot a real node took),
    /// which the simulator does not write into.
    #[error("volume {0} holds a qcow2 image; only raw content can be written")]
    NotRaw(String),
    /// A write past the volume's size.
    #[error("a write to {volume_id} up to byte {end} goes past its end")]
    PastEnd {
        /// `vol-…`.
        volume_id: String,
        /// First byte after the write.
        end: u64,
    },
}

/// One simulated instance, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimVm {
    /// `i-…`.
    pub instance_id: String,
    /// Observed state (what reports say).
    pub state: VmState,
    /// Desired state of the spec held.
    pub desired: DesiredState,
    /// Generation of the spec held.
    pub generation: u64,
    /// Whether the simulated VM process is alive.
    pub running: bool,
    /// Boots completed.
    pub boots: u32,
    /// Reboots done.
    pub reboots: u32,
    /// Attached volumes (not an EBS root), in attachment order.
    pub volumes: Vec<VolumeAttachment>,
    /// The spec held (latest desired state and generation applied).
    pub spec: InstanceSpec,
}

impl From<&Vm> for SimVm {
    fn from(vm: &Vm) -> Self {
        Self {
            instance_id: vm.spec.instance_id.clone(),
            state: vm.state.clone(),
            desired: vm.spec.desired,
            generation: vm.spec.generation,
            running: vm.process == Process::Running,
            boots: vm.boots,
            reboots: vm.reboots,
            volumes: vm.volumes.clone(),
            spec: vm.spec.clone(),
        }
    }
}

/// Calls received and faults waiting for them.
#[derive(Debug, Default)]
struct Calls {
    counts: BTreeMap<CallKind, u64>,
    faults: HashMap<CallKind, VecDeque<Fault>>,
}

/// Whether the agent is up, and how many times it was restarted.
pub(crate) type Liveness = (bool, u64);

struct Inner {
    node_id: String,
    zone: String,
    hostname: String,
    underlay_ip: Option<String>,
    transfer: Arc<dyn SnapshotTransfer>,
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    calls: Mutex<Calls>,
    /// Tasks of the timed effects, by token.
    tasks: Mutex<HashMap<u64, AbortHandle>>,
    /// Bumped after every change (what [`SimNode::wait_for`] waits on).
    changes: watch::Sender<u64>,
    liveness: watch::Sender<Liveness>,
    report_generation: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A simulated node agent: the same [`NodeAgent`] as the real one, with
/// in-memory VMs that boot after a delay, stop, power off and fail on
/// command. Clones share one node. Create it inside a Tokio runtime (its
/// timed steps run as tasks there).
#[derive(Clone)]
pub struct SimNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("node_id", &self.inner.node_id)
            .field("zone", &self.inner.zone)
            .finish_non_exhaustive()
    }
}

impl SimNode {
    /// A new simulated node, up, holding nothing.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn new(config: SimConfig) -> Self {
        let node_id = config
            .node_id
            .unwrap_or_else(|| format!("nd-{:016x}", rand::random::<u64>()));
        let delays = Delays {
            boot: config.boot_delay,
            stop: config.stop_delay,
            capture: config.capture_delay,
        };
        Self {
            inner: Arc::new(Inner {
                hostname: config.hostname.unwrap_or_else(|| node_id.clone()),
                underlay_ip: config.underlay_ip,
                node_id,
                zone: config.zone,
                transfer: config.transfer,
                runtime: tokio::runtime::Handle::current(),
                state: Mutex::new(State::new(config.capacity, delays)),
                calls: Mutex::new(Calls::default()),
                tasks: Mutex::new(HashMap::new()),
                changes: watch::Sender::new(0),
                liveness: watch::Sender::new((true, 0)),
                report_generation: AtomicU64::new(0),
            }),
        }
    }

    /// The node id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// The availability zone it serves.
    pub fn zone(&self) -> &str {
        &self.inner.zone
    }

    fn info_now(&self) -> NodeInfo {
        NodeInfo {
            node_id: self.inner.node_id.clone(),
            zone: self.inner.zone.clone(),
            hostname: self.inner.hostname.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            accel: "sim: simulated node, no VM runs".into(),
            underlay_ip: self.inner.underlay_ip.clone(),
            role: NodeRole::Compute,
        }
    }

    /// What the node posts to the controller's registration path, with its
    /// API at `url`.
    pub fn registration(&self, url: &str) -> NodeRegistration {
        NodeRegistration {
            info: self.info_now(),
            url: url.to_owned(),
            capacity: lock(&self.inner.state).capacity(),
        }
    }

    pub(crate) fn liveness(&self) -> watch::Receiver<Liveness> {
        self.inner.liveness.subscribe()
    }

    // --- control ------------------------------------------------------------

    /// The guest powers itself off: the instance goes guest-shutdown (the
    /// controller applies InstanceInitiatedShutdownBehavior). While the
    /// agent is down the VM waits powered off and the restarted agent
    /// notices.
    pub fn guest_poweroff(&self, instance_id: &str) -> Result<(), SimError> {
        self.inner.with(|s| s.guest_poweroff(instance_id))
    }

    /// The VM dies (or its boot under way fails): the instance goes failed
    /// with `reason`. While the agent is down the VM just vanishes; the
    /// restarted agent finds it gone (and starts it again if it should
    /// run, as the real agent after a host reboot).
    pub fn fail(&self, instance_id: &str, reason: &str) -> Result<(), SimError> {
        self.inner.with(|s| s.fail_vm(instance_id, reason))
    }

    /// The next boot to finish (any instance) fails with `reason` instead
    /// (an image that cannot be fetched, a refusing hook). Queued: call it
    /// twice for two failures.
    pub fn fail_next_boot(&self, reason: &str) {
        self.inner
            .with(|s| s.boot_failures.push_back(reason.to_owned()));
    }

    /// Appends `text` to an instance's serial console.
    pub fn guest_output(&self, instance_id: &str, text: &str) -> Result<(), SimError> {
        self.inner.with(|s| {
            let vm = s
                .instances
                .get_mut(instance_id)
                .ok_or_else(|| SimError::NoSuchInstance(instance_id.to_owned()))?;
            vm.console_line(text.trim_end_matches('\n'));
            Ok(())
        })
    }

    /// The agent process dies: every call fails as a dead HTTP peer does
    /// ([`NodeError::Transport`]), registration stops, boots, stops,
    /// captures and transfers under way are dropped. VMs keep running.
    pub fn crash_agent(&self) {
        self.inner.with(|s| {
            s.crash();
            for (_, task) in lock(&self.inner.tasks).drain() {
                task.abort();
            }
        });
        self.inner.liveness.send_modify(|l| l.0 = false);
    }

    /// The agent starts again and adopts what it finds: live VMs run on,
    /// a guest that powered off meanwhile is guest-shutdown, an instance
    /// whose boot was interrupted boots again, a capture interrupted fails,
    /// an upload resumes. Registration starts again at once.
    pub fn restart_agent(&self) {
        self.inner.with(State::restart);
        self.inner.liveness.send_modify(|l| {
            l.0 = true;
            l.1 += 1;
        });
    }

    /// Whether the agent is up.
    pub fn is_up(&self) -> bool {
        lock(&self.inner.state).up
    }

    /// Changes what the node offers.
    pub fn set_capacity(&self, capacity: SimCapacity) {
        self.inner.with(|s| s.capacity = capacity);
    }

    /// How long the next boots take.
    pub fn set_boot_delay(&self, delay: Duration) {
        self.inner.with(|s| s.delays.boot = delay);
    }

    /// How long the next shutdowns take.
    pub fn set_stop_delay(&self, delay: Duration) {
        self.inner.with(|s| s.delays.stop = delay);
    }

    /// How long the next snapshot captures take.
    pub fn set_capture_delay(&self, delay: Duration) {
        self.inner.with(|s| s.delays.capture = delay);
    }

    /// Queues `fault` for the next call of `kind` that reaches a live agent.
    pub fn inject(&self, kind: CallKind, fault: Fault) {
        lock(&self.inner.calls)
            .faults
            .entry(kind)
            .or_default()
            .push_back(fault);
    }

    /// Makes the guest keep (`true`) or release a volume's disk: while it
    /// keeps it, a detach without `force` from a running VM is refused.
    pub fn guest_keeps_volume(&self, volume_id: &str, keeps: bool) -> Result<(), SimError> {
        self.inner.with(|s| {
            let volume = s
                .volumes
                .get_mut(volume_id)
                .ok_or_else(|| SimError::NoSuchVolume(volume_id.to_owned()))?;
            volume.guest_keeps = keeps;
            Ok(())
        })
    }

    /// Writes `data` at `offset` into a volume's content (what its
    /// snapshots then carry).
    pub fn write_volume(&self, volume_id: &str, offset: u64, data: &[u8]) -> Result<(), SimError> {
        self.inner.with(|s| s.write_volume(volume_id, offset, data))
    }

    // --- observation --------------------------------------------------------

    /// Every instance, by id.
    pub fn vms(&self) -> Vec<SimVm> {
        lock(&self.inner.state)
            .instances
            .values()
            .map(SimVm::from)
            .collect()
    }

    /// One instance.
    pub fn vm(&self, instance_id: &str) -> Option<SimVm> {
        lock(&self.inner.state)
            .instances
            .get(instance_id)
            .map(SimVm::from)
    }

    /// Every volume, by id.
    pub fn volumes(&self) -> Vec<ObservedVolume> {
        lock(&self.inner.state)
            .volumes
            .values()
            .map(|v| v.observed())
            .collect()
    }

    /// A volume's content and its format.
    pub fn volume_data(&self, volume_id: &str) -> Option<(DiskFormat, Vec<u8>)> {
        lock(&self.inner.state)
            .volumes
            .get(volume_id)
            .map(|v| (v.format, v.data.clone()))
    }

    /// Every snapshot the node holds, by id.
    pub fn snapshots(&self) -> Vec<ObservedSnapshot> {
        lock(&self.inner.state)
            .snapshots
            .values()
            .map(|s| s.observed())
            .collect()
    }

    /// The firewall policy in force.
    pub fn firewall(&self) -> FirewallPolicy {
        lock(&self.inner.state).firewall.clone()
    }

    /// The VXLAN overlay in force.
    pub fn overlay(&self) -> Overlay {
        lock(&self.inner.state).overlay.clone()
    }

    /// Capacity now (also while the agent is down).
    pub fn current_capacity(&self) -> Capacity {
        lock(&self.inner.state).capacity()
    }

    /// Calls of `kind` received (counted before outage and faults apply).
    pub fn calls(&self, kind: CallKind) -> u64 {
        lock(&self.inner.calls)
            .counts
            .get(&kind)
            .copied()
            .unwrap_or(0)
    }

    /// Calls received, by kind (kinds never called are absent).
    pub fn call_counts(&self) -> BTreeMap<CallKind, u64> {
        lock(&self.inner.calls).counts.clone()
    }

    /// Waits up to `timeout` for `probe` to return something, trying it
    /// again after every change of the node; the last try's answer.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut probe: impl FnMut(&SimNode) -> Option<T>,
    ) -> Option<T> {
        let mut changes = self.inner.changes.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if let Some(found) = probe(self) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return probe(self),
            }
        }
    }

    // --- calls --------------------------------------------------------------

    /// Counts a call and applies the outage and the fault waiting for it;
    /// `Some` error: act, then answer with it.
    async fn enter(&self, kind: CallKind) -> Result<Option<NodeError>, NodeError> {
        let fault = {
            let mut calls = lock(&self.inner.calls);
            *calls.counts.entry(kind).or_default() += 1;
            if !self.is_up() {
                return Err(NodeError::Transport(OUTAGE.into()));
            }
            calls.faults.get_mut(&kind).and_then(VecDeque::pop_front)
        };
        match fault {
            None => Ok(None),
            Some(Fault::Refuse(e)) => Err(e),
            Some(Fault::LoseAnswer(e)) => Ok(Some(e)),
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                if self.is_up() {
                    Ok(None)
                } else {
                    Err(NodeError::Transport(OUTAGE.into()))
                }
            }
        }
    }

    /// Runs a call of `kind` on the state.
    async fn call<T>(
        &self,
        kind: CallKind,
        act: impl FnOnce(&mut State) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        let lost = self.enter(kind).await?;
        let result = self.inner.with(act);
        match lost {
            Some(e) => Err(e),
            None => result,
        }
    }

    /// Report generations increase across agent restarts (as the real
    /// agent's, which are timestamps).
    /// Pushes every state change of its instances to `sink` (the
    /// controller's state path, as the real agent does) until the node is
    /// dropped; a crashed agent pushes nothing until it restarts.
    pub fn push_states(
        &self,
        sink: Arc<dyn mallee_node_api::push::StateSink>,
    ) -> tokio::task::JoinHandle<()> {
        let changes = self.inner.changes.subscribe();
        tokio::spawn(mallee_node_api::push::push_loop(
            Arc::new(self.clone()),
            sink,
            changes,
        ))
    }

    fn next_report_generation(&self) -> u64 {
        let now = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros(),
        )
        .unwrap_or(u64::MAX);
        let generation = &self.inner.report_generation;
        let mut last = generation.load(Ordering::SeqCst);
        loop {
            let next = now.max(last.saturating_add(1));
            match generation.compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }
}

impl mallee_node_api::push::StateSource for SimNode {
    fn node_id(&self) -> String {
        self.inner.node_id.clone()
    }

    fn next_generation(&self) -> u64 {
        self.next_report_generation()
    }

    fn observed(&self) -> Vec<ObservedInstance> {
        let state = lock(&self.inner.state);
        if !state.up {
            return Vec::new();
        }
        state.instances.values().map(Vm::observed).collect()
    }
}

impl Inner {
    /// Changes the state under its lock, starts the effects the change asks
    /// for and stops the tasks it made pointless (under the same lock, so
    /// an outage never misses a task), then tells waiters.
    fn with<T>(self: &Arc<Self>, change: impl FnOnce(&mut State) -> T) -> T {
        let out = {
            let mut state = lock(&self.state);
            let out = change(&mut state);
            let mut tasks = lock(&self.tasks);
            for token in std::mem::take(&mut state.cancels) {
                if let Some(task) = tasks.remove(&token) {
                    task.abort();
                }
            }
            for effect in std::mem::take(&mut state.effects) {
                let token = effect.token();
                let this = self.clone();
                // Every run ends with a change, which waits for this lock:
                // the task cannot remove itself before it is inserted.
                let task = self.runtime.spawn(async move {
                    this.run(effect).await;
                    lock(&this.tasks).remove(&token);
                });
                tasks.insert(token, task.abort_handle());
            }
            out
        };
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        out
    }

    async fn run(self: &Arc<Self>, effect: Effect) {
        match effect {
            Effect::Boot {
                instance_id,
                token,
                delay,
            } => {
                tokio::time::sleep(delay).await;
                self.with(|s| s.boot_done(&instance_id, token));
            }
            Effect::Stop {
                instance_id,
                token,
                delay,
            } => {
                tokio::time::sleep(delay).await;
                self.with(|s| s.stop_done(&instance_id, token));
            }
            Effect::Capture {
                snapshot_id,
                token,
                delay,
                upload,
            } => {
                for step in 1..=CAPTURE_STEPS {
                    tokio::time::sleep(delay / u32::from(CAPTURE_STEPS)).await;
                    let progress = CAPTURE_SHARE * step / CAPTURE_STEPS;
                    if !self.with(|s| s.capture_progress(&snapshot_id, token, progress)) {
                        return;
                    }
                }
                self.upload(&snapshot_id, token, upload).await;
            }
            Effect::Upload {
                snapshot_id,
                token,
                upload,
            } => self.upload(&snapshot_id, token, upload).await,
            Effect::Create {
                volume_id,
                token,
                source,
            } => {
                let mut backoff = BACKOFF_MIN;
                let result = loop {
                    match self.transfer.download(&source).await {
                        Ok(data) => break Ok(data),
                        Err(TransferError::Gone) => {
                            break Err(format!(
                                "the snapshot {} no longer exists",
                                source.snapshot_id
                            ));
                        }
                        Err(TransferError::Refused(reason)) => break Err(reason),
                        Err(TransferError::Retry(reason)) => {
                            tracing::warn!(volume = %volume_id, snapshot = %source.snapshot_id,
                                error = %reason, retry_in = ?backoff, "snapshot download failed");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                };
                self.with(|s| s.creation_done(&volume_id, token, result));
            }
        }
    }

    /// Uploads a snapshot until the other side answers for good.
    async fn upload(self: &Arc<Self>, snapshot_id: &str, token: u64, upload: Upload) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let result = self
                .transfer
                .upload(
                    snapshot_id,
                    upload.data.clone(),
                    &upload.sha256,
                    upload.format,
                )
                .await;
            match result {
                Err(TransferError::Retry(reason)) => {
                    tracing::warn!(snapshot = %snapshot_id, error = %reason, retry_in = ?backoff,
                        "snapshot upload failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    if !self.with(|s| s.snapshot_task_current(snapshot_id, token)) {
                        return;
                    }
                }
                other => {
                    self.with(|s| s.upload_done(snapshot_id, token, other));
                    return;
                }
            }
        }
    }
}

#[async_trait]
impl NodeAgent for SimNode {
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        let info = self.info_now();
        self.call(CallKind::Info, |_| Ok(info)).await
    }

    async fn capacity(&self) -> Result<Capacity, NodeError> {
        self.call(CallKind::Capacity, |s| Ok(s.capacity())).await
    }

    async fn report(&self) -> Result<NodeReport, NodeError> {
        let node_id = self.inner.node_id.clone();
        let generation = self.next_report_generation();
        self.call(CallKind::Report, |s| {
            Ok(NodeReport {
                node_id,
                generation,
                capacity: s.capacity(),
                instances: s.instances.values().map(Vm::observed).collect(),
                volumes: s.volumes.values().map(|v| v.observed()).collect(),
                snapshots: s.snapshots.values().map(|v| v.observed()).collect(),
            })
        })
        .await
    }

    async fn put_instance(&self, spec: InstanceSpec) -> Result<ObservedInstance, NodeError> {
        self.call(CallKind::PutInstance, |s| s.put_instance(spec))
            .await
    }

    async fn set_desired_state(
        &self,
        instance_id: &str,
        desired: DesiredState,
        generation: u64,
    ) -> Result<ObservedInstance, NodeError> {
        self.call(CallKind::SetDesiredState, |s| {
            s.set_desired(instance_id, desired, generation)
        })
        .await
    }

    async fn reboot(&self, instance_id: &str) -> Result<(), NodeError> {
        self.call(CallKind::Reboot, |s| s.reboot(instance_id)).await
    }

    async fn delete_instance(&self, instance_id: &str) -> Result<(), NodeError> {
        self.call(CallKind::DeleteInstance, |s| {
            s.delete_instance(instance_id);
            Ok(())
        })
        .await
    }

    async fn console_output(&self, instance_id: &str) -> Result<ConsoleOutput, NodeError> {
        self.call(CallKind::ConsoleOutput, |s| s.console_output(instance_id))
            .await
    }

    async fn put_firewall(&self, policy: FirewallPolicy) -> Result<u64, NodeError> {
        self.call(CallKind::PutFirewall, |s| s.put_firewall(policy))
            .await
    }

    async fn put_overlay(&self, overlay: Overlay) -> Result<u64, NodeError> {
        self.call(CallKind::PutOverlay, |s| s.put_overlay(overlay))
            .await
    }

    async fn put_volume(&self, spec: VolumeSpec) -> Result<ObservedVolume, NodeError> {
        self.call(CallKind::PutVolume, |s| s.put_volume(spec)).await
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<(), NodeError> {
        self.call(CallKind::DeleteVolume, |s| s.delete_volume(volume_id))
            .await
    }

    async fn attach_volume(
        &self,
        instance_id: &str,
        attachment: VolumeAttachment,
    ) -> Result<ObservedVolume, NodeError> {
        self.call(CallKind::AttachVolume, |s| {
            s.attach_volume(instance_id, attachment)
        })
        .await
    }

    async fn detach_volume(
        &self,
        instance_id: &str,
        volume_id: &str,
        force: bool,
    ) -> Result<ObservedVolume, NodeError> {
        self.call(CallKind::DetachVolume, |s| {
            s.detach_volume(instance_id, volume_id, force)
        })
        .await
    }

    async fn put_snapshot(&self, spec: SnapshotSpec) -> Result<ObservedSnapshot, NodeError> {
        self.call(CallKind::PutSnapshot, |s| s.put_snapshot(spec))
            .await
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), NodeError> {
        self.call(CallKind::DeleteSnapshot, |s| {
            s.delete_snapshot(snapshot_id);
            Ok(())
        })
        .await
    }

    async fn export_volume(&self, spec: ExportSpec) -> Result<ObservedExport, NodeError> {
        Err(NodeError::BadRequest(format!(
            "{} is a compute node: it exports no volumes ({} stays unexported)",
            self.inner.node_id, spec.volume_id
        )))
    }

    async fn unexport_volume(&self, _volume_id: &str) -> Result<(), NodeError> {
        Ok(())
    }
}
