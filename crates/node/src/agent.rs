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

/// Stops every NBD export daemon of the storage host whose data directory
/// is `data_dir` (its records stay: the next start serves them again).
/// Returns how many it stopped.
pub async fn purge_storage(data_dir: &Path) -> Result<usize, AgentError> {
    let Some(id) = std::fs::read_to_string(data_dir.join(NODE_ID_FILE))
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
    else {
        return Ok(0);
    };
    mallee_storage::kill_all(&exports_run_dir(&run_root(&id)))
        .await
        .map(|killed| killed.len())
        .map_err(|e| AgentError::Config(format!("stop the NBD exports: {e}")))
}

/// Starts the node agent; returns once it serves its API, with every
/// instance found on disk adopted (or scheduled to start again). The
/// accelerator is resolved in the background (launches wait for it).
pub async fn start_node(config: NodeConfig) -> Result<NodeHandle, AgentError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io(format!("create {}", config.data_dir.display())))?;
    let node_id = node_id(&config)?;
    if config.credentials.info().name != PeerName::Node(node_id.clone()) {
        return Err(AgentError::Config(format!(
            "the node's certificate is {}'s, but this node is {node_id}",
            config.credentials.info().name
        )));
    }
    let tls = NodeTls::new(&config.credentials).map_err(|e| AgentError::Config(e.to_string()))?;
    let controller_http = || crate::controller_link::client(&tls.client);
    let run_root = run_root(&node_id);
    std::fs::create_dir_all(&run_root).map_err(io(format!("create {}", run_root.display())))?;
    let hooks = Hooks::new(&config.hooks_dir, &config.data_dir, HOOK_TIME_LIMIT);
    hooks.run(HookEvent::PreInit, None).await?;

    let metadata = MetadataService::new();
    metadata.set_credentials(crate::instance_credentials::CredentialCache::new(Arc::new(
        crate::instance_credentials::HttpCredentialSource::new(
            &config.controller_url,
            controller_http(),
        )
        .map_err(|e| AgentError::Config(format!("HTTPS client: {e}")))?,
    )));
    let networks = Arc::new(
        Networks::open(
            config.network.clone(),
            config.public.clone(),
            &node_id,
            config.data_dir.join(FIREWALL_FILE),
            metadata.clone(),
        )
        .await?,
    );

    let storage = config.role == NodeRole::Storage;
    if storage && config.exports.is_none() {
        return Err(AgentError::Config(
            "a storage host needs its NBD export settings".into(),
        ));
    }
    let (accel_tx, accel_rx) = watch::channel(None);
    let accel_task = if storage {
        // A storage host runs no instances: no accelerator to look for.
        let _ = accel_tx.send(Some(Err("a storage host runs no instances".into())));
        tokio::spawn(async {})
    } else {
        let request = config.accel;
        let qemu = config.qemu.clone();
        let kernel = config.probe_kernel.clone();
        let work_dir = run_root.join("accel-probe");
        tokio::spawn(async move {
            let cache = Path::new(RUN_ROOT).join("accel.json");
            let choice =
                crate::accel::resolve(request, &qemu, kernel.as_deref(), &cache, &work_dir).await;
            if let Err(e) = &choice {
                tracing::error!(error = %e, "no accelerator: instances cannot start");
            }
            let _ = accel_tx.send(Some(choice));
        })
    };

    let source = Arc::new(
        HttpArtifactSource::new(&config.controller_url, controller_http())
            .map_err(|e| AgentError::Config(format!("HTTPS client: {e}")))?,
    );
    let cache = ImageCache::open(
        config.data_dir.join("images"),
        config.cache_limit_bytes,
        source,
    )
    .await?;
    let volumes_dir = config.data_dir.join(VOLUMES_DIR);
    let volumes = Arc::new(Volumes::open(
        &volumes_dir,
        Arc::new(Qcow2Files::new(&volumes_dir)),
    )?);
    let nbd_tls_dir = config.data_dir.join(NBD_CLIENT_TLS_DIR);
    config
        .credentials
        .write_qemu_tls_dir(&nbd_tls_dir, QemuTlsEndpoint::Client)
        .map_err(|e| AgentError::Config(format!("NBD client credentials: {e}")))?;
    let nbd_relays = Arc::new(NbdRelays::new(&run_root.join(NBD_RELAY_DIR)));
    for record in volumes.all() {
        if let Some(export) = &record.remote {
            nbd_relays
                .ensure(&record.volume_id, export)
                .map_err(io(format!("relay to the export of {}", record.volume_id)))?;
        }
    }
    let exports = match &config.exports {
        Some(settings) if storage => {
            let export_config = mallee_storage::ExportConfig {
                ports: settings.ports.clone(),
                ..mallee_storage::ExportConfig::new(
                    config.data_dir.join(EXPORTS_DIR),
                    exports_run_dir(&run_root),
                    config.data_dir.join(NBD_SERVER_TLS_DIR),
                    settings.bind,
                    settings.advertise.clone(),
                )
            };
            Some(Arc::new(
                mallee_storage::Exports::open(export_config, &config.credentials)
                    .await
                    .map_err(|e| AgentError::Config(format!("NBD exports: {e}")))?,
            ))
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        exports: exports.clone(),
        data_dir: config.data_dir.clone(),
        run_root,
        cache,
        hooks: hooks.clone(),
        networks,
        metadata,
        accel: accel_rx.clone(),
        qemu: config.qemu.clone(),
        volumes,
        nbd_tls_dir,
        nbd_relays,
        changes: watch::Sender::new(0),
    });

    let instances = Arc::new(Mutex::new(HashMap::new()));
    let snapshots = Arc::new(
        Snapshots::open(
            &config.data_dir.join(SNAPSHOTS_DIR),
            shared.clone(),
            instances.clone(),
            SnapshotData::new(&config.controller_url, controller_http())
                .map_err(|e| AgentError::Config(format!("HTTPS client: {e}")))?,
            config.snapshot_rate_limit.unwrap_or(0),
        )
        .map_err(io("open the snapshot records"))?,
    );
    let agent = Arc::new(QemuNodeAgent {
        role: config.role,
        node_id: node_id.clone(),
        zone: config.zone.clone(),
        shared: shared.clone(),
        instances,
        snapshots,
        accel: accel_rx,
        report_generation: AtomicU64::new(0),
        cores: config.cores.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1)
        }),
        memory_mib: config.memory_mib.unwrap_or_else(host_memory_mib),
        disk_gib: config.disk_gib,
    });
    agent.load_instances().await?;
    agent.snapshots.recover().await;

    let listener = mallee_node_api::tls::TlsListener::bind(config.listen, tls.server.clone())
        .await
        .map_err(io(format!("listen on {}", config.listen)))?;
    let bound = listener.local_addr();
    let url = config.advertise_url.clone().unwrap_or_else(|| {
        let host = if bound.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], bound.port()))
        } else {
            bound
        };
        format!("https://{host}")
    });
    let router = mallee_node_api::router(agent.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = mallee_node_api::tls::serve(listener, router, std::future::pending()).await
        {
            tracing::error!(error = %e, "node API server failed");
        }
    });
    let register_http = controller_http()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| AgentError::Config(format!("HTTPS client: {e}")))?;
    let register_task = tokio::spawn(register_loop(
        agent.clone(),
        config.controller_url.clone(),
        register_http,
        url.clone(),
    ));
    // State changes go to the controller the moment they happen.
    let push_task = tokio::spawn(mallee_node_api::push::push_loop(
        agent.clone(),
        Arc::new(mallee_node_api::push::HttpStateSink::new(
            &config.controller_url,
            tls.client.clone(),
        )),
        shared.changes.subscribe(),
    ));
    let mut background = vec![accel_task, register_task, push_task];
    if let Some(exports) = exports {
        // A daemon that died (or a host that rebooted) is started again
        // on its port: the nodes' NBD clients reconnect.
        background.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXPORT_CHECK_EVERY).await;
                exports.check().await;
            }
        }));
    }
    hooks.run(HookEvent::PostInit, None).await?;
    tracing::info!(node = %node_id, role = config.role.as_str(), %url, "node agent started");
    Ok(NodeHandle {
        url,
        agent,
        server,
        background,
    })
}

/// Kills every VM of the node whose data directory is `data_dir` and
/// removes its networks (every VPC namespace, the public bridge and its
/// host table). Files under `data_dir` stay.
pub async fn purge_node(
    data_dir: &Path,
    network: &NetworkConfig,
    public: Option<&PublicNetworkConfig>,
) -> Result<(), AgentError> {
    let id = std::fs::read_to_string(data_dir.join(NODE_ID_FILE)).ok();
    let mut run_roots = Vec::new();
    if let Some(id) = id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        run_roots.push(run_root(id));
    }
    // Instances of a node started with a configured id: their records
    // still name their run directories through the node id file only when
    // generated, so look for run directories named after the instances too.
    let instances = data_dir.join("instances");
    let ids: Vec<String> = std::fs::read_dir(&instances)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Ok(roots) = std::fs::read_dir(RUN_ROOT) {
        for root in roots.filter_map(Result::ok) {
            let root = root.path();
            if ids.iter().any(|id| root.join(id).is_dir()) && !run_roots.contains(&root) {
                run_roots.push(root);
            }
        }
    }
    for root in &run_roots {
        for id in &ids {
            if let Some(pid) =
                RunningVm::kill_run_dir(&root.join(id), Duration::from_secs(10)).await?
            {
                tracing::info!(instance = %id, pid, "purge: killed VM");
            }
        }
        if let Ok(entries) = std::fs::read_dir(root) {
            for entry in entries.filter_map(Result::ok) {
                RunningVm::kill_run_dir(&entry.path(), Duration::from_secs(10)).await?;
            }
        }
        match std::fs::remove_dir_all(root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("remove {}", root.display()))(e));
            }
            _ => {}
        }
    }
    Networks::purge(network, public).await?;
    Ok(())
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
        if !valid_id(&spec.volume_id) {
            return Err(NodeError::BadRequest(format!(
                "bad volume id {:?}",
                spec.volume_id
            )));
        }
        if !(1..=crate::volumes::MAX_SIZE_GIB).contains(&spec.size_gib) {
            return Err(NodeError::BadRequest(format!(
                "volume size must be 1..={} GiB, got {}",
                crate::volumes::MAX_SIZE_GIB,
                spec.size_gib
            )));
        }
        if let Some(export) = &spec.remote {
            return self.put_remote_volume(&spec, export).await;
        }
        let volumes = &self.shared.volumes;
        // Growing opens the data: after any snapshot reading it.
        let _data = match volumes.get(&spec.volume_id) {
            Some(held) if held.size_gib < spec.size_gib => {
                Some(volumes.lock_volume(&spec.volume_id).await)
            }
            _ => None,
        };
        let _ops = volumes.lock_ops().await;
        let held = volumes.get(&spec.volume_id);
        if let Some(held) = &held {
            check_put(held, &spec)?;
        }
        let mut record = match held {
            Some(held)
                if held.size_gib < spec.size_gib
                    && matches!(
                        held.state,
                        VolumeState::Available | VolumeState::InUse { .. }
                    ) =>
            {
                return self.grow_volume(held, &spec).await;
            }
            // Being created from its snapshot.
            Some(held)
                if held.state == VolumeState::Creating
                    && self.snapshots.creating(&spec.volume_id) =>
            {
                return Ok(held.observed());
            }
            Some(mut held)
                if !matches!(held.state, VolumeState::Creating | VolumeState::Failed(_)) =>
            {
                if spec.generation > held.generation {
                    held.generation = spec.generation;
                    volumes.put(held.clone()).map_err(internal)?;
                }
                return Ok(held.observed());
            }
            // Creating (interrupted) or failed: create again.
            Some(mut held) => {
                held.generation = held.generation.max(spec.generation);
                held.state = VolumeState::Creating;
                held.source = spec.source.clone();
                held
            }
            None => {
                let mut record =
                    volumes.new_record(&spec.volume_id, spec.size_gib, spec.generation);
                record.source = spec.source.clone();
                record
            }
        };
        volumes.put(record.clone()).map_err(internal)?;
        if record.source.is_some() {
            // Downloading and converting take long: in the background.
            self.snapshots.create_volume(&spec.volume_id);
            tracing::info!(volume = %spec.volume_id, size_gib = spec.size_gib, "creating a volume from a snapshot");
            return Ok(record.observed());
        }
        match volumes
            .backend()
            .create(&spec.volume_id, spec.size_gib)
            .await
        {
            Ok(()) => {
                record.state = VolumeState::Available;
                volumes.put(record.clone()).map_err(internal)?;
                tracing::info!(volume = %spec.volume_id, size_gib = spec.size_gib, "volume created");
                Ok(record.observed())
            }
            Err(e) => {
                record.state = VolumeState::Failed(e.to_string());
                volumes.put(record).map_err(internal)?;
                Err(NodeError::Internal(format!(
                    "create {}: {e}",
                    spec.volume_id
                )))
            }
        }
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<(), NodeError> {
        if let Some(export) = self
            .shared
            .exports
            .as_ref()
            .and_then(|exports| exports.get(volume_id))
        {
            return Err(NodeError::Conflict(format!(
                "{volume_id} is exported to {}",
                export.observed.node_id
            )));
        }
        let volumes = &self.shared.volumes;
        let _ops = volumes.lock_ops().await;
        let Some(mut record) = volumes.get(volume_id) else {
            return Ok(());
        };
        if let Some(instance) = record.instance() {
            return Err(NodeError::Conflict(format!(
                "{volume_id} is attached to {instance}"
            )));
        }
        if record.remote.is_some() {
            // Its data is the storage host's: only the record goes.
            self.shared.nbd_relays.remove(volume_id);
            volumes.remove(volume_id).map_err(internal)?;
            tracing::info!(volume = %volume_id, "remote volume forgotten");
            return Ok(());
        }
        self.snapshots.abort_creation(volume_id).await;
        let record_source = record.source.clone();
        record.state = VolumeState::Deleting;
        volumes.put(record).map_err(internal)?;
        volumes
            .backend()
            .delete(volume_id)
            .await
            .map_err(|e| NodeError::Internal(format!("delete {volume_id}: {e}")))?;
        volumes.remove(volume_id).map_err(internal)?;
        tracing::info!(volume = %volume_id, "volume deleted");
        if let Some(source) = &record_source {
            // The snapshot's data goes with the last volume made from it.
            let still_used = volumes.all().iter().any(|r| {
                r.source
                    .as_ref()
                    .is_some_and(|s| s.snapshot_id == source.snapshot_id)
            });
            if !still_used && let Err(e) = volumes.backend().forget_snapshot(source).await {
                tracing::warn!(volume = %volume_id, snapshot = %source.snapshot_id, error = %e, "could not remove the snapshot's data");
            }
        }
        Ok(())
    }

    async fn attach_volume(
        &self,
        instance_id: &str,
        attachment: VolumeAttachment,
    ) -> Result<ObservedVolume, NodeError> {
        let volume_id = attachment.volume_id.clone();
        let volumes = &self.shared.volumes;
        // A snapshot reading the volume's file finishes first.
        let _data = volumes.lock_volume(&volume_id).await;
        let _ops = volumes.lock_ops().await;
        let previous = volumes
            .get(&volume_id)
            .ok_or_else(|| NodeError::NotFound(volume_id.clone()))?;
        match &previous.state {
            VolumeState::Available => {}
            VolumeState::InUse {
                instance_id: held,
                device,
                ..
            } if held == instance_id && *device == attachment.device => {
                return Ok(previous.observed());
            }
            state => {
                let why = match previous.instance() {
                    Some(other) => format!("attached to {other}"),
                    None => format!("{state:?}"),
                };
                return Err(NodeError::Conflict(format!(
                    "{volume_id} is not available ({why})"
                )));
            }
        }
        let handle = self
            .handle(instance_id)
            .ok_or_else(|| NodeError::NotFound(instance_id.to_owned()))?;
        let mut record = previous.clone();
        record.generation = record.generation.max(attachment.generation);
        record.state = VolumeState::Attaching {
            instance_id: instance_id.to_owned(),
        };
        volumes.put(record.clone()).map_err(internal)?;
        let attached = AttachedVolume {
            volume_id: volume_id.clone(),
            device: attachment.device.clone(),
            generation: attachment.generation,
        };
        let result = match handle.attach_volume(attached).await {
            Ok(result) => result,
            Err(instance::Gone) => Err(NodeError::NotFound(instance_id.to_owned())),
        };
        if let Err(e) = result {
            volumes.put(previous).map_err(internal)?;
            return Err(e);
        }
        record.state = VolumeState::InUse {
            instance_id: instance_id.to_owned(),
            device: attachment.device,
            guest_device: guest_device(&volume_id),
        };
        volumes.put(record.clone()).map_err(internal)?;
        Ok(record.observed())
    }

    async fn detach_volume(
        &self,
        instance_id: &str,
        volume_id: &str,
        force: bool,
    ) -> Result<ObservedVolume, NodeError> {
        let volumes = &self.shared.volumes;
        if self
            .handle(instance_id)
            .and_then(|h| h.snapshot().root)
            .is_some_and(|(root, _)| root == volume_id)
        {
            return Err(NodeError::Conflict(format!(
                "{volume_id} is the root volume of {instance_id}; it goes with the instance"
            )));
        }
        // A snapshot being captured through the VM finishes first.
        let _data = volumes.lock_volume(volume_id).await;
        let _ops = volumes.lock_ops().await;
        let previous = volumes
            .get(volume_id)
            .ok_or_else(|| NodeError::NotFound(volume_id.to_owned()))?;
        match previous.instance() {
            // Not attached: nothing to do.
            None => return Ok(previous.observed()),
            Some(other) if other != instance_id => {
                return Err(NodeError::Conflict(format!(
                    "{volume_id} is attached to {other}, not {instance_id}"
                )));
            }
            Some(_) => {}
        }
        let mut record = previous.clone();
        record.state = VolumeState::Detaching {
            instance_id: instance_id.to_owned(),
        };
        volumes.put(record.clone()).map_err(internal)?;
        // An instance gone from the node holds no volume.
        if let Some(handle) = self.handle(instance_id)
            && let Ok(Err(e)) = handle.detach_volume(volume_id, force).await
        {
            volumes.put(previous).map_err(internal)?;
            return Err(e);
        }
        record.state = VolumeState::Available;
        volumes.put(record.clone()).map_err(internal)?;
        Ok(record.observed())
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
        let Some(exports) = &self.shared.exports else {
            return Err(NodeError::BadRequest(format!(
                "{} is a compute node: it exports no volumes ({} stays unexported)",
                self.node_id, spec.volume_id
            )));
        };
        if !valid_id(&spec.volume_id) {
            return Err(NodeError::BadRequest(format!(
                "bad volume id {:?}",
                spec.volume_id
            )));
        }
        let volumes = &self.shared.volumes;
        // No snapshot reads the file while its daemon opens it.
        let _data = volumes.lock_volume(&spec.volume_id).await;
        let record = volumes
            .get(&spec.volume_id)
            .ok_or_else(|| NodeError::NotFound(spec.volume_id.clone()))?;
        if record.state != VolumeState::Available || record.remote.is_some() {
            return Err(NodeError::Conflict(format!(
                "{} cannot be exported while {:?}",
                spec.volume_id, record.state
            )));
        }
        let disk = volumes.backend().disk(&spec.volume_id);
        match exports
            .export(&spec.volume_id, &disk.path, &spec.node_id)
            .await
        {
            Ok(export) => {
                tracing::info!(volume = %spec.volume_id, node = %spec.node_id, port = export.observed.export.port, "volume exported");
                Ok(export.observed)
            }
            Err(e @ mallee_storage::ExportError::Conflict { .. }) => {
                Err(NodeError::Conflict(e.to_string()))
            }
            Err(e @ mallee_storage::ExportError::InvalidName(_)) => {
                Err(NodeError::BadRequest(e.to_string()))
            }
            Err(e) => Err(NodeError::Internal(format!(
                "export {}: {e}",
                spec.volume_id
            ))),
        }
    }

    async fn unexport_volume(&self, volume_id: &str) -> Result<(), NodeError> {
        let Some(exports) = &self.shared.exports else {
            return Ok(());
        };
        if !valid_id(volume_id) {
            return Ok(());
        }
        let _data = self.shared.volumes.lock_volume(volume_id).await;
        let was = exports.get(volume_id).is_some();
        exports
            .unexport(volume_id)
            .await
            .map_err(|e| NodeError::Internal(format!("end the export of {volume_id}: {e}")))?;
        if was {
            tracing::info!(volume = %volume_id, "volume export ended");
        }
        Ok(())
    }
}

impl QemuNodeAgent {
    /// Grows `held` to `spec`'s size, in the file itself: only while
    /// nothing has it open (neither a VM of this node nor an export; the
    /// controller asks once the volume is detached).
    async fn grow_volume(
        &self,
        mut held: VolumeRecord,
        spec: &VolumeSpec,
    ) -> Result<ObservedVolume, NodeError> {
        let id = &spec.volume_id;
        let exported = self
            .shared
            .exports
            .as_ref()
            .is_some_and(|exports| exports.get(id).is_some());
        if exported || held.instance().is_some() {
            return Err(NodeError::Conflict(format!(
                "{id} is open (attached or exported); it grows once detached"
            )));
        }
        self.shared
            .volumes
            .backend()
            .grow(id, spec.size_gib)
            .await
            .map_err(|e| NodeError::Internal(format!("grow {id}: {e}")))?;
        held.size_gib = spec.size_gib;
        held.generation = held.generation.max(spec.generation);
        self.shared.volumes.put(held.clone()).map_err(internal)?;
        tracing::info!(volume = %id, size_gib = spec.size_gib, "volume grown");
        Ok(held.observed())
    }

    /// Records a volume whose data a storage host exports to this node
    /// (see [`crate::volumes`]): available at once, nothing created, the
    /// relay to the export started. Repeating it changes nothing; an
    /// export that moved (another address or port) is recorded, unless
    /// the spec is older than the record. The relay takes the new address
    /// at once; a VM using the volume keeps its connection, and reaches
    /// the new address when it reconnects (the old server is gone) or at
    /// its next attachment or start.
    async fn put_remote_volume(
        &self,
        spec: &VolumeSpec,
        export: &mallee_node_api::NbdExport,
    ) -> Result<ObservedVolume, NodeError> {
        check_export(export)
            .map_err(|e| NodeError::BadRequest(format!("{}: {e}", spec.volume_id)))?;
        if spec.source.is_some() {
            return Err(NodeError::BadRequest(format!(
                "{} is exported by a storage host: it is not created from a snapshot here",
                spec.volume_id
            )));
        }
        let volumes = &self.shared.volumes;
        let _ops = volumes.lock_ops().await;
        let held = volumes.get(&spec.volume_id);
        if let Some(held) = &held {
            check_put(held, spec)?;
        }
        let record = match held {
            None => volumes.new_remote_record(
                &spec.volume_id,
                spec.size_gib,
                spec.generation,
                export.clone(),
            ),
            Some(held) if spec.generation < held.generation => return Ok(held.observed()),
            Some(mut held) => {
                held.generation = spec.generation;
                // The storage host grew the data (ModifyVolume).
                held.size_gib = held.size_gib.max(spec.size_gib);
                if held.remote.as_ref() != Some(export) {
                    tracing::info!(volume = %spec.volume_id, host = %export.host, port = export.port,
                        attached = held.instance().is_some(), "the volume's export moved");
                    held.set_export(export.clone());
                }
                held
            }
        };
        self.shared
            .nbd_relays
            .ensure(&spec.volume_id, export)
            .map_err(|e| {
                NodeError::Internal(format!("relay to the export of {}: {e}", spec.volume_id))
            })?;
        if volumes.get(&spec.volume_id).as_ref() != Some(&record) {
            volumes.put(record.clone()).map_err(internal)?;
            tracing::info!(volume = %spec.volume_id, host = %export.host, port = export.port,
                server = %export.server_node_id, "remote volume recorded");
        }
        Ok(record.observed())
    }

    /// Makes `root` (a volume of this node) the root disk of the instance
    /// of `spec`. Refused with a [`NodeError::Conflict`] (the controller
    /// retries) while the volume is missing, being created, or held by
    /// something else.
    async fn claim_root(&self, spec: &InstanceSpec, root: &str) -> Result<(), NodeError> {
        if !valid_id(root) {
            return Err(NodeError::BadRequest(format!(
                "bad root volume id {root:?}"
            )));
        }
        if let Some(held) = self
            .handle(&spec.instance_id)
            .and_then(|h| h.snapshot().root)
            && held.0 != root
        {
            return Err(NodeError::BadRequest(format!(
                "{} boots from {}, not {root}",
                spec.instance_id, held.0
            )));
        }
        let volumes = &self.shared.volumes;
        let _ops = volumes.lock_ops().await;
        let mut record = volumes.get(root).ok_or_else(|| {
            NodeError::Conflict(format!(
                "the root volume {root} of {} is not on this node",
                spec.instance_id
            ))
        })?;
        match &record.state {
            VolumeState::Available => {
                record.state = VolumeState::InUse {
                    instance_id: spec.instance_id.clone(),
                    device: spec.metadata.root_device_name.clone(),
                    guest_device: ROOT_GUEST_DEVICE.to_owned(),
                };
                volumes.put(record).map_err(internal)?;
                tracing::info!(instance = %spec.instance_id, volume = %root, "root volume claimed");
                Ok(())
            }
            VolumeState::InUse { instance_id, .. } if *instance_id == spec.instance_id => Ok(()),
            state => Err(NodeError::Conflict(format!(
                "the root volume {root} of {} is not available ({state:?})",
                spec.instance_id
            ))),
        }
    }
}

/// Refuses a volume spec that cannot apply to the record held: another
/// kind (local or remote), another size, or a deletion under way.
fn check_put(held: &VolumeRecord, spec: &VolumeSpec) -> Result<(), NodeError> {
    let id = &spec.volume_id;
    let why = match (&held.remote, &spec.remote) {
        (Some(_), None) => format!("{id} is a storage host's volume here, not a local one"),
        (None, Some(_)) => format!("{id} is a local volume of this node"),
        // A larger size grows the volume (ModifyVolume); none shrinks it.
        _ if held.size_gib > spec.size_gib => format!(
            "{id} exists with {} GiB, not {}",
            held.size_gib, spec.size_gib
        ),
        _ if held.state == VolumeState::Deleting => format!("{id} is being deleted"),
        _ => return Ok(()),
    };
    Err(NodeError::Conflict(why))
}

fn internal(e: VolumeError) -> NodeError {
    NodeError::Internal(e.to_string())
}

/// Registers with the controller until it accepts, then again every
/// [`REGISTER_EVERY`] (a heartbeat, and how a controller that lost its
/// memory of the node learns it again).
async fn register_loop(
    agent: Arc<QemuNodeAgent>,
    controller: String,
    http: reqwest::Client,
    url: String,
) {
    let target = format!("{}{REGISTER_PATH}", controller.trim_end_matches('/'));
    let mut backoff = Duration::from_secs(1);
    let mut registered = false;
    loop {
        let registration = NodeRegistration {
            info: agent.info_now(),
            url: url.clone(),
            capacity: agent.compute_capacity(),
        };
        let result = http
            .post(&target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&registration).unwrap_or_default())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                let answer = r.bytes().await.unwrap_or_default();
                match serde_json::from_slice::<RegistrationAccepted>(&answer) {
                    Ok(RegistrationAccepted { api: Some(api), .. }) => agent
                        .shared
                        .metadata
                        .api_relay()
                        .set_upstream(&api, &controller),
                    // An older controller's answer: no API relay.
                    Ok(_) => {}
                    Err(_) if answer.is_empty() => {}
                    Err(e) => tracing::warn!(error = %e, "unreadable registration answer"),
                }
                if !registered {
                    tracing::info!(controller = %controller, "registered with the controller");
                }
                registered = true;
                backoff = Duration::from_secs(1);
                tokio::time::sleep(REGISTER_EVERY).await;
            }
            other => {
                let why = match other {
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        format!("answered {status}: {}", text.trim())
                    }
                    Err(e) => mallee_node_api::tls::error_chain(&e),
                };
                tracing::warn!(controller = %controller, error = %why, retry_in = ?backoff, "registration failed");
                registered = false;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REGISTER_BACKOFF_MAX);
            }
        }
    }
}
