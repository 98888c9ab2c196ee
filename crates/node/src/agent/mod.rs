//! The node agent (Eucalyptus' NC): [`start_node`] brings a node up (its
//! network, the metadata service, the accelerator decision, the instances
//! found on disk, the node API and the registration with the controller)
//! and [`QemuNodeAgent`] implements [`NodeAgent`] with one actor per
//! instance (see [`crate::instance`]).
//!
//! Stopping the agent (or killing it) leaves every VM running; the next
//! start adopts them. [`purge_node`] is the opposite: it kills the node's
//! VMs and removes its network (for administrators and tests).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mallee_node_api::{
    Capacity, ConsoleOutput, DesiredState, ExportSpec, FirewallPolicy, InstanceSpec, NodeAgent,
    NodeError, NodeInfo, NodeRegistration, NodeReport, NodeRole, ObservedExport, ObservedInstance,
    ObservedSnapshot, ObservedVolume, Overlay, REGISTER_PATH, RegistrationAccepted, SnapshotSpec,
    VmState, VolumeAttachment, VolumeSpec, VolumeState,
};
use mallee_pki::tls::NodeTls;
use mallee_pki::{Credentials, PeerName, QemuTlsEndpoint};
use mallee_qemu::{AccelChoice, AccelRequest, RunningVm};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::artifacts::HttpArtifactSource;
use crate::hooks::{HookEvent, Hooks};
use crate::image_cache::ImageCache;
use crate::instance::{self, InstanceHandle, ROOT_GUEST_DEVICE, Shared};
use crate::metadata::MetadataService;
use crate::nbd_relay::NbdRelays;
use crate::network::{NetworkConfig, PublicNetworkConfig};
use crate::qcow2_files::Qcow2Files;
use crate::snapshot_data::SnapshotData;
use crate::snapshots::Snapshots;
use crate::volumes::{
    AttachedVolume, Holder, VolumeError, VolumeRecord, Volumes, check_export, guest_device,
};
use crate::vpc_networks::{FIREWALL_FILE, Networks, NetworksError};

mod start;
mod volume_calls;

pub use start::{purge_node, purge_storage, start_node};

/// Where run directories (QMP sockets, pidfiles) live: short, and emptied
/// by a host reboot, like the VMs they describe.
pub const RUN_ROOT: &str = "/run/mallee";
/// The file (under the data directory) that keeps a generated node id.
/// The file (in a node directory) holding the node id.
pub const NODE_ID_FILE: &str = "node-id";
/// The directory (under the data directory) of volume data and records.
const VOLUMES_DIR: &str = "volumes";
/// The directory (under the data directory) of snapshot records and
/// exports waiting for their upload.
const SNAPSHOTS_DIR: &str = "snapshots";
/// The directory (under the data directory) of the node's NBD client
/// credentials, as QEMU's `tls-creds-x509` reads them (remote volumes).
const NBD_CLIENT_TLS_DIR: &str = "tls/nbd-client";
/// The directory (under the run root) of the NBD relay sockets.
const NBD_RELAY_DIR: &str = "nbd";
/// How often the node registers again (heartbeat).
const REGISTER_EVERY: Duration = Duration::from_secs(10);
/// Longest wait between registration retries.
const REGISTER_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Time each hook may run.
const HOOK_TIME_LIMIT: Duration = Duration::from_secs(60);
/// Memory kept for the host when the node's memory is not configured.
const HOST_MEMORY_RESERVE_MIB: u64 = 512;

/// Errors of starting or purging a node.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file or directory of the node could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The image cache could not be opened.
    #[error("image cache: {0}")]
    Cache(#[from] crate::image_cache::CacheError),
    /// The node's networks could not be set up or removed.
    #[error("network: {0}")]
    Network(#[from] NetworksError),
    /// The metadata service could not start.
    #[error("metadata service: {0}")]
    Metadata(#[from] crate::metadata::MetadataError),
    /// A node hook refused the start.
    #[error("{0}")]
    Hook(#[from] crate::hooks::HookError),
    /// A VM could not be killed.
    #[error("{0}")]
    Vm(#[from] mallee_qemu::VmError),
    /// The volume store could not be opened.
    #[error("volumes: {0}")]
    Volumes(#[from] VolumeError),
    /// The configuration is not usable.
    #[error("invalid node configuration: {0}")]
    Config(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let context = context.into();
    move |source| AgentError::Io { context, source }
}

/// How a node agent runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Stable node id; `None` generates one on first start and keeps it in
    /// the data directory.
    pub node_id: Option<String>,
    /// Availability zone the node serves.
    pub zone: String,
    /// Instances, image cache and the node id live here.
    pub data_dir: PathBuf,
    /// Admin hooks (a missing directory means none).
    pub hooks_dir: PathBuf,
    /// Address of the node API (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// URL the controller reaches the node API at; `None` derives it from
    /// the bound address.
    pub advertise_url: Option<String>,
    /// The controller's node listener (`https://127.0.0.1:8774`).
    pub controller_url: String,
    /// The node's certificate (naming its node id), key and the cluster
    /// CA: the node API admits only the controller's certificate, and the
    /// node presents its own to the controller.
    pub credentials: Credentials,
    /// `auto`, `kvm` or `tcg`.
    pub accel: AccelRequest,
    /// Kernel the `auto` KVM probe boots; `None` uses the host's own.
    pub probe_kernel: Option<PathBuf>,
    /// QEMU binary.
    pub qemu: PathBuf,
    /// Cores offered; `None`: the host's.
    pub cores: Option<u32>,
    /// Memory offered; `None`: the host's minus a reserve.
    pub memory_mib: Option<u64>,
    /// Disk offered; `None`: free space of the data directory.
    pub disk_gib: Option<u64>,
    /// Image cache size limit.
    pub cache_limit_bytes: u64,
    /// Node-wide settings of the instance networks (one per VPC).
    pub network: NetworkConfig,
    /// The public network (host bridge) public addresses live on; `None`:
    /// public addresses are ignored.
    pub public: Option<PublicNetworkConfig>,
    /// What the host does: run instances, or keep the zone's volumes.
    pub role: NodeRole,
    /// Storage hosts: where their NBD exports listen (required for
    /// [`NodeRole::Storage`]).
    pub exports: Option<ExportSettings>,
    /// Bytes per second a snapshot of a volume in use by a running VM may
    /// copy (so that the capture does not starve the guest's own I/O);
    /// `None`: unlimited.
    pub snapshot_rate_limit: Option<u64>,
}

impl NodeConfig {
    /// A configuration with defaults for everything but the essentials.
    pub fn new(
        data_dir: PathBuf,
        controller_url: &str,
        credentials: Credentials,
        network: NetworkConfig,
    ) -> Self {
        Self {
            node_id: None,
            zone: "mallee-1a".into(),
            hooks_dir: data_dir.join("hooks"),
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 8775)),
            advertise_url: None,
            controller_url: controller_url.to_owned(),
            credentials,
            accel: AccelRequest::Auto,
            probe_kernel: None,
            qemu: PathBuf::from(mallee_qemu::vm::QEMU_BINARY),
            cores: None,
            memory_mib: None,
            disk_gib: None,
            cache_limit_bytes: 20 * 1024 * 1024 * 1024,
            network,
            public: None,
            role: NodeRole::Compute,
            exports: None,
            snapshot_rate_limit: None,
        }
    }
}

/// Where a storage host's NBD exports listen.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Address the NBD servers bind.
    pub bind: std::net::IpAddr,
    /// Host the nodes connect to (on the network between hosts).
    pub advertise: String,
    /// TCP ports, one per exported volume.
    pub ports: std::ops::RangeInclusive<u16>,
}

/// How often a storage host checks that every export's daemon runs.
const EXPORT_CHECK_EVERY: Duration = Duration::from_secs(2);
/// Directory (in the data directory) of a storage host's export records.
const EXPORTS_DIR: &str = "exports";
/// Directory (in the data directory) of a storage host's NBD server
/// credentials.
const NBD_SERVER_TLS_DIR: &str = "tls/nbd-server";

/// A running node agent.
#[derive(Debug)]
pub struct NodeHandle {
    url: String,
    agent: Arc<QemuNodeAgent>,
    server: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    /// Base URL of the node API.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The agent itself (what the API serves).
    pub fn agent(&self) -> Arc<QemuNodeAgent> {
        self.agent.clone()
    }

    /// Stops the agent: the API, registration, the metadata service and
    /// every instance runner. VMs keep running; the next start adopts them.
    pub async fn shutdown(self) {
        self.agent.snapshots.shutdown();
        self.agent.shared.nbd_relays.shutdown();
        self.server.abort();
        for task in &self.background {
            task.abort();
        }
        let handles: Vec<InstanceHandle> = lock(&self.agent.instances).values().cloned().collect();
        for handle in handles {
            handle.detach().await;
        }
        self.agent.shared.networks.shutdown().await;
        let _ = self.server.await;
        for task in self.background {
            let _ = task.await;
        }
        tracing::info!(node = %self.agent.node_id, "node agent stopped");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The node agent over QEMU.
#[derive(Debug)]
pub struct QemuNodeAgent {
    role: NodeRole,
    node_id: String,
    zone: String,
    shared: Arc<Shared>,
    instances: Arc<Mutex<HashMap<String, InstanceHandle>>>,
    snapshots: Arc<Snapshots>,
    accel: watch::Receiver<Option<Result<AccelChoice, String>>>,
    report_generation: AtomicU64,
    cores: u32,
    memory_mib: u64,
    disk_gib: Option<u64>,
}

/// The node id: configured, else the one kept in the data directory, else
/// a new one (kept there).
fn node_id(config: &NodeConfig) -> Result<String, AgentError> {
    match &config.node_id {
        Some(id) => Ok(id.clone()),
        None => data_dir_node_id(&config.data_dir),
    }
}

/// The node id kept in `data_dir`, made (and kept) if there is none: the
/// name a node's certificate carries, so it is known before the agent
/// starts.
pub fn data_dir_node_id(data_dir: &Path) -> Result<String, AgentError> {
    std::fs::create_dir_all(data_dir).map_err(io(format!("create {}", data_dir.display())))?;
    let file = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("read {}", file.display()))(e)),
    }
    let id = format!("nd-{:016x}", rand::random::<u64>());
    mallee_util::durable::write_atomic(&file, format!("{id}\n").as_bytes())
        .map_err(io(format!("write {}", file.display())))?;
    Ok(id)
}

/// This node's run directory root: short (socket paths), unique per node.
fn run_root(node_id: &str) -> PathBuf {
    let digest = hex::encode(Sha256::digest(node_id.as_bytes()));
    Path::new(RUN_ROOT).join(&digest[..10])
}

/// Where a storage host's export daemons keep their pidfiles and QMP
/// sockets.
fn exports_run_dir(run_root: &Path) -> PathBuf {
    run_root.join("nbd-exports")
}

impl QemuNodeAgent {
    /// The node id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The node's networks (one namespace per VPC, firewall, public
    /// network).
    pub fn networks(&self) -> Arc<Networks> {
        self.shared.networks.clone()
    }

    /// Starts a runner for every instance on disk and waits until each has
    /// adopted its VM (or found it gone).
    async fn load_instances(&self) -> Result<(), AgentError> {
        let dir = self.shared.instances_dir();
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let mut ready = Vec::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(io(format!("read {}", dir.display())))?
            .filter_map(Result::ok)
        {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let record = match instance::read_record(&path) {
                Ok(r) => r,
                Err(e) => {
                    // A put interrupted before its first record write: the
                    // controller repeats it.
                    tracing::warn!(error = %e, "ignoring an instance directory without a record");
                    continue;
                }
            };
            let id = record.spec.instance_id.clone();
            let (handle, adopted) = instance::spawn_loaded(self.shared.clone(), record);
            lock(&self.instances).insert(id, handle);
            ready.push(adopted);
        }
        for r in ready {
            let _ = r.await;
        }
        let mut holders = HashMap::new();
        for (id, handle) in lock(&self.instances).iter() {
            let snapshot = handle.snapshot();
            for v in snapshot.volumes {
                let holder = Holder {
                    instance_id: id.clone(),
                    device: v.device,
                    guest_device: guest_device(&v.volume_id),
                };
                holders.insert(v.volume_id, holder);
            }
            if let Some((root, device)) = snapshot.root {
                let holder = Holder {
                    instance_id: id.clone(),
                    device,
                    guest_device: ROOT_GUEST_DEVICE.to_owned(),
                };
                holders.insert(root, holder);
            }
        }
        self.shared.volumes.recover(&holders).await;
        Ok(())
    }

    fn handle(&self, id: &str) -> Option<InstanceHandle> {
        lock(&self.instances).get(id).cloned()
    }

    fn accel_text(&self) -> String {
        match self.accel.borrow().as_ref() {
            None => "resolving".into(),
            Some(Ok(c)) => format!("{}: {}", c.accel, c.reason),
            Some(Err(e)) => format!("none: {e}"),
        }
    }

    fn compute_capacity(&self) -> Capacity {
        let (mut cores, mut memory, mut disk) = (0u64, 0u64, 0u64);
        for handle in lock(&self.instances).values() {
            let s = handle.snapshot();
            if matches!(
                s.observed.state,
                VmState::Pending | VmState::Running | VmState::Stopping
            ) {
                cores += u64::from(s.vcpus);
                memory += s.memory_mib;
            }
            disk += s.disk_gib;
        }
        disk += self.shared.volumes.allocated_gib();
        let disk_max = self
            .disk_gib
            .unwrap_or_else(|| free_gib(&self.shared.data_dir));
        let cores_used = u32::try_from(cores).unwrap_or(u32::MAX);
        // A storage host offers disk for volumes, nothing to instances.
        let (cores_max, memory_max) = match self.role {
            NodeRole::Compute => (self.cores, self.memory_mib),
            NodeRole::Storage => (0, 0),
        };
        Capacity {
            cores_max,
            cores_free: cores_max.saturating_sub(cores_used),
            memory_mib_max: memory_max,
            memory_mib_free: memory_max.saturating_sub(memory),
            disk_gib_max: disk_max,
            disk_gib_free: disk_max.saturating_sub(disk),
        }
    }

    fn next_report_generation(&self) -> u64 {
        let now = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros(),
        )
        .unwrap_or(u64::MAX);
        let mut last = self.report_generation.load(Ordering::SeqCst);
        loop {
            let next = now.max(last.saturating_add(1));
            match self.report_generation.compare_exchange(
                last,
                next,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }

    /// Every volume as reported; a storage host adds each one's export.
    fn observed_volumes(&self) -> Vec<ObservedVolume> {
        let mut observed = self.shared.volumes.observed();
        if let Some(exports) = &self.shared.exports {
            for volume in &mut observed {
                volume.export = exports.get(&volume.volume_id).map(|e| e.observed);
            }
        }
        observed
    }

    fn info_now(&self) -> NodeInfo {
        NodeInfo {
            node_id: self.node_id.clone(),
            zone: self.zone.clone(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            accel: self.accel_text(),
            underlay_ip: self.shared.networks.underlay().map(|u| u.local.to_string()),
            role: self.role,
        }
    }
}

/// Total memory minus what the host keeps.
fn host_memory_mib() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let total = total_kib / 1024;
    total.saturating_sub(HOST_MEMORY_RESERVE_MIB.max(total / 10))
}

fn free_gib(dir: &Path) -> u64 {
    nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()) / (1024 * 1024 * 1024))
        .unwrap_or(0)
}

fn internal(e: VolumeError) -> NodeError {
    NodeError::Internal(e.to_string())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !id.starts_with('.')
}

impl mallee_node_api::push::StateSource for QemuNodeAgent {
    fn node_id(&self) -> String {
        self.node_id.clone()
    }

    fn next_generation(&self) -> u64 {
        self.next_report_generation()
    }

    fn observed(&self) -> Vec<ObservedInstance> {
        lock(&self.instances)
            .values()
            .map(|h| h.snapshot().observed)
            .collect()
    }
}

#[async_trait]
impl NodeAgent for QemuNodeAgent {
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        Ok(self.info_now())
    }

    async fn capacity(&self) -> Result<Capacity, NodeError> {
        Ok(self.compute_capacity())
    }

    async fn report(&self) -> Result<NodeReport, NodeError> {
        let generation = self.next_report_generation();
        let mut instances: Vec<ObservedInstance> = lock(&self.instances)
            .values()
            .map(|h| h.snapshot().observed)
            .collect();
        instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(NodeReport {
            node_id: self.node_id.clone(),
            generation,
            capacity: self.compute_capacity(),
            instances,
            volumes: self.observed_volumes(),
            snapshots: self.snapshots.observed(),
        })
    }

    async fn put_instance(&self, spec: InstanceSpec) -> Result<ObservedInstance, NodeError> {
        if self.role == NodeRole::Storage {
            return Err(NodeError::BadRequest(format!(
                "{} is a storage host: it runs no instances",
                self.node_id
            )));
        }
        if !valid_id(&spec.instance_id) {
            return Err(NodeError::BadRequest(format!(
                "bad instance id {:?}",
                spec.instance_id
            )));
        }
        if let Some(root) = instance::root_volume(&spec) {
            self.claim_root(&spec, root).await?;
        }
        // A runner that went away (deleted meanwhile) is replaced.
        for _ in 0..3 {
            let handle = {
                let mut map = lock(&self.instances);
                map.entry(spec.instance_id.clone())
                    .or_insert_with(|| instance::spawn_new(self.shared.clone(), spec.clone()))
                    .clone()
            };
            match handle.put(spec.clone()).await {
                Ok(observed) => return Ok(observed),
                Err(instance::Gone) => {
                    let mut map = lock(&self.instances);
                    if map.get(&spec.instance_id).is_some_and(|h| h.same(&handle)) {
                        map.remove(&spec.instance_id);
                    }
                }
            }
        }
        Err(NodeError::Internal(format!(
            "instance {} is being removed; retry",
            spec.instance_id
        )))
    }

    async fn set_desired_state(
        &self,
        instance_id: &str,
        desired: DesiredState,
        generation: u64,
    ) -> Result<ObservedInstance, NodeError> {
        let handle = self
            .handle(instance_id)
            .ok_or_else(|| NodeError::NotFound(instance_id.to_owned()))?;
        handle
            .set_desired(desired, generation)
            .await
            .map_err(|_| NodeError::NotFound(instance_id.to_owned()))
    }

    async fn reboot(&self, instance_id: &str) -> Result<(), NodeError> {
        let handle = self
            .handle(instance_id)
            .ok_or_else(|| NodeError::NotFound(instance_id.to_owned()))?;
        handle
            .reboot()
            .await
            .map_err(|_| NodeError::NotFound(instance_id.to_owned()))?
    }

    async fn delete_instance(&self, instance_id: &str) -> Result<(), NodeError> {
        if let Some(handle) = self.handle(instance_id) {
            // `Gone`: the runner already finished (a concurrent delete).
            if let Ok(Err(e)) = handle.delete().await {
                return Err(e);
            }
            let mut map = lock(&self.instances);
            if map.get(instance_id).is_some_and(|h| h.same(&handle)) {
                map.remove(instance_id);
            }
        }
        // Its volumes stay, detached (EBS data volumes outlive their
        // instance unless the controller deletes them).
        let volumes = &self.shared.volumes;
        let _ops = volumes.lock_ops().await;
        for mut record in volumes.all() {
            if record.instance() == Some(instance_id) {
                record.state = VolumeState::Available;
                volumes.put(record).map_err(internal)?;
            }
        }
        Ok(())
    }

    async fn console_output(&self, instance_id: &str) -> Result<ConsoleOutput, NodeError> {
        if self.handle(instance_id).is_none() {
            return Err(NodeError::NotFound(instance_id.to_owned()));
        }
        let dir = self.shared.instance_dir(instance_id);
        let output = tokio::task::spawn_blocking(move || instance::console_tail(&dir))
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        Ok(ConsoleOutput {
            instance_id: instance_id.to_owned(),
            output,
        })
    }

    async fn put_firewall(&self, policy: FirewallPolicy) -> Result<u64, NodeError> {
        self.shared
            .networks
            .put_firewall(policy)
            .await
            .map_err(|e| match e {
                NetworksError::Firewall(crate::firewall::FirewallError::Rule { .. }) => {
                    NodeError::BadRequest(e.to_string())
                }
                other => NodeError::Internal(other.to_string()),
            })
    }

    async fn put_overlay(&self, overlay: Overlay) -> Result<u64, NodeError> {
        self.shared
            .networks
            .put_overlay(overlay)
            .await
            .map_err(|e| match e {
                NetworksError::Overlay(_) => NodeError::BadRequest(e.to_string()),
                other => NodeError::Internal(other.to_string()),
            })
    }

    async fn put_volume(&self, spec: VolumeSpec) -> Result<ObservedVolume, NodeError> {
        self.volume_put(spec).await
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<(), NodeError> {
        self.volume_delete(volume_id).await
    }

    async fn attach_volume(
        &self,
        instance_id: &str,
        attachment: VolumeAttachment,
    ) -> Result<ObservedVolume, NodeError> {
        self.volume_attach(instance_id, attachment).await
    }

    async fn detach_volume(
        &self,
        instance_id: &str,
        volume_id: &str,
        force: bool,
    ) -> Result<ObservedVolume, NodeError> {
        self.volume_detach(instance_id, volume_id, force).await
    }

    async fn put_snapshot(&self, spec: SnapshotSpec) -> Result<ObservedSnapshot, NodeError> {
        for id in [&spec.snapshot_id, &spec.volume_id] {
            if !valid_id(id) {
                return Err(NodeError::BadRequest(format!("bad id {id:?}")));
            }
        }
        self.snapshots.put(spec)
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), NodeError> {
        if !valid_id(snapshot_id) {
            return Ok(());
        }
        self.snapshots.delete(snapshot_id).await
    }

    async fn export_volume(&self, spec: ExportSpec) -> Result<ObservedExport, NodeError> {
        self.volume_export(spec).await
    }

    async fn unexport_volume(&self, volume_id: &str) -> Result<(), NodeError> {
        self.volume_unexport(volume_id).await
    }
}
