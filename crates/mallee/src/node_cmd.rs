//! The node agent from the command line: `mallee node join` (a host
//! enrolling with a controller once, then running its agent), the agent
//! `mallee up` runs beside its controller (its certificate straight from
//! the cluster CA), and `mallee purge` (stop every VM of a data directory
//! and remove its network).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mallee_node::agent::{
    ExportSettings, NodeConfig, NodeHandle, data_dir_node_id, purge_node, purge_storage, start_node,
};
use mallee_node::network::{NetworkConfig, PublicNetworkConfig, Underlay};
use mallee_node_api::enrol::{EnrolRequest, enrol};
use mallee_node_sim::{ServeConfig, SimCapacity, SimConfig, SimNode};
use mallee_pki::tls::NodeTls;
use mallee_pki::{Credentials, EnrolmentToken, KeyRequest, PeerName};
use mallee_qemu::accel::AccelRequest;
use mallee_util::cidr::Ipv4Cidr;
use sha2::{Digest, Sha256};

/// How an agent runs VMs (shared by `up` and `node`).
#[derive(Args, Debug, Clone)]
pub struct VmArgs {
    /// Accelerator: `auto` (KVM if a probe guest boots under it, else TCG),
    /// `kvm` or `tcg`.
    #[arg(long, env = "MALLEE_ACCEL", default_value = "auto")]
    pub accel: AccelRequest,
    /// Kernel the `auto` probe boots (default: the host's /boot/vmlinuz).
    #[arg(long, env = "MALLEE_PROBE_KERNEL")]
    pub probe_kernel: Option<PathBuf>,
    /// Cores offered to instances (default: the host's; `up`: four per host
    /// core).
    #[arg(long)]
    pub node_cores: Option<u32>,
    /// Memory offered to instances in MiB (default: the host's minus a
    /// reserve).
    #[arg(long)]
    pub node_memory_mib: Option<u64>,
    /// Disk offered to instances in GiB (default: free space).
    #[arg(long)]
    pub node_disk_gib: Option<u64>,
    /// Image cache size limit in GiB.
    #[arg(long, default_value_t = 20)]
    pub image_cache_gib: u64,
}

/// `mallee node` subcommands.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Join the controller at URL (its node listener, `https://HOST:8774`)
    /// and run the node agent. The first time, `--token` (from `mallee
    /// admin node token create`) buys the node its certificate, kept in
    /// DATA/pki/; afterwards the node just runs.
    Join(JoinArgs),
}

/// `mallee node join` arguments.
#[derive(Args, Debug)]
pub struct JoinArgs {
    /// The controller's node listener (`https://CONTROLLER:8774`).
    pub url: String,
    /// One-time enrolment token (needed until the node holds a
    /// certificate).
    #[arg(long, env = "MALLEE_NODE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// How a node runs.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Node data directory (instances, image cache, node id, certificate).
    #[arg(long, env = "MALLEE_NODE_DATA_DIR", default_value = "./mallee-node")]
    pub data_dir: PathBuf,
    /// Address of the node API.
    #[arg(long, env = "MALLEE_NODE_API_LISTEN", default_value = "127.0.0.1:8775")]
    pub listen: SocketAddr,
    /// URL the controller uses to reach this node (`https://NODE:8775`;
    /// default: from --listen).
    #[arg(long, env = "MALLEE_NODE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Availability zone the node serves: the token's (giving another one
    /// is refused).
    #[arg(long, env = "MALLEE_ZONE")]
    pub zone: Option<String>,
    /// The zone's instance subnet (the controller's layout: 172.31.0.0/20
    /// for the first zone, 172.31.16.0/20 for the second, …).
    #[arg(long, env = "MALLEE_NODE_SUBNET", default_value = "172.31.0.0/20")]
    pub subnet: Ipv4Cidr,
    /// Region (for instances' DNS names).
    #[arg(long, env = "MALLEE_REGION", default_value = mallee_cloud::config::DEFAULT_REGION)]
    pub region: String,
    /// The zone's public range: a host-local bridge with its first address
    /// carries the instances' public IPs (none: public IPs are ignored).
    #[arg(long, env = "MALLEE_PUBLIC_RANGE")]
    pub public_range: Option<Ipv4Cidr>,
    /// A host interface to join to the public bridge: the zone's public
    /// LAN, shared with its other nodes (default: none, the bridge stays
    /// local to this host). It must carry no IPv4 address; the bridge then
    /// has none either.
    #[arg(long, env = "MALLEE_PUBLIC_INTERFACE", requires = "public_range")]
    pub public_interface: Option<String>,
    /// This node's address on the network between nodes, which carries its
    /// VPCs' VXLAN traffic to the other nodes (UDP 4789). Default: the
    /// source address of the route to the controller (none when that is a
    /// loopback address: the node's VPCs then stay on it).
    #[arg(long, env = "MALLEE_UNDERLAY_IP")]
    pub underlay_ip: Option<Ipv4Addr>,
    #[command(flatten)]
    pub vm: VmArgs,
    /// Run a simulated node instead: in-memory VMs that boot after
    /// --simulate-boot-ms (no QEMU, no root, no network), joining the
    /// controller like a real node. --node-cores, --node-memory-mib and
    /// --node-disk-gib set what it offers (default 16 cores, 32 GiB,
    /// 1000 GiB); the data directory, subnet and public range do not apply.
    #[arg(long)]
    pub simulate: bool,
    /// Boot time of a simulated VM in milliseconds.
    #[arg(long, default_value_t = 50, requires = "simulate")]
    pub simulate_boot_ms: u64,
}

/// `mallee purge` arguments.
#[derive(Args, Debug)]
pub struct PurgeArgs {
    /// Data directory of `mallee up` (its node lives in DATA/node).
    #[arg(long, env = "MALLEE_DATA_DIR", default_value = "./mallee-data")]
    pub data_dir: PathBuf,
    /// Instead: remove every VM, network namespace, public bridge, veth
    /// and nftables table a mallee left behind whose data directory no
    /// longer exists (of any data directory on this host).
    #[arg(long)]
    pub orphans: bool,
    /// With --orphans: only the leftovers of data directories that were
    /// under this directory.
    #[arg(long, requires = "orphans")]
    pub under: Option<PathBuf>,
}

/// The single network namespace nodes had before VPC networks (one per
/// data directory); `purge` still removes it.
pub fn netns_for(node_dir: &Path) -> String {
    let canonical = std::fs::canonicalize(node_dir).unwrap_or_else(|_| node_dir.to_owned());
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    format!("mallee-{}", &hex::encode(digest)[..10])
}

fn network_config(node_dir: &Path, subnet: Ipv4Cidr, region: &str) -> NetworkConfig {
    NetworkConfig {
        state_root: node_dir.join("network"),
        default_subnet: subnet,
        domain: format!("{region}.compute.internal"),
        underlay: None,
    }
}

/// The underlay address `--underlay-ip` names, else the source address of
/// this host's route to the controller unless it is a loopback address.
async fn underlay_ip(args: &NodeArgs, controller: &str) -> Option<Ipv4Addr> {
    if args.underlay_ip.is_some() {
        return args.underlay_ip;
    }
    let url = reqwest::Url::parse(controller).ok()?;
    let target = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
    let controller = tokio::net::lookup_host(target)
        .await
        .ok()?
        .find_map(|a| match a {
            SocketAddr::V4(v4) => Some(*v4.ip()),
            SocketAddr::V6(_) => None,
        })?;
    let source = Underlay::source_toward(controller).await?;
    if source.is_loopback() {
        tracing::info!(
            "the controller is reached over loopback: no underlay, VPCs stay on this node \
             (--underlay-ip names one)"
        );
        return None;
    }
    Some(source)
}

fn apply_vm_args(config: &mut NodeConfig, vm: &VmArgs) {
    crate::status_cmd::record_cache_limit(
        &config.data_dir,
        vm.image_cache_gib.saturating_mul(1024 * 1024 * 1024),
    );
    config.accel = vm.accel;
    config.probe_kernel.clone_from(&vm.probe_kernel);
    config.cores = vm.node_cores;
    config.memory_mib = vm.node_memory_mib;
    config.disk_gib = vm.node_disk_gib;
    config.cache_limit_bytes = vm.image_cache_gib.saturating_mul(1024 * 1024 * 1024);
}

/// How many instance cores `mallee up` offers per host core unless told.
const UP_CORE_OVERCOMMIT: usize = 4;

/// The node directory of `mallee up`'s data directory.
pub fn up_node_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("node")
}

/// Starts the node agent `mallee up` runs for its first zone, with a
/// certificate the cluster CA issues it directly.
pub async fn start_up_node(
    prepared: &mallee_api::server::Prepared,
    vm: &VmArgs,
) -> Result<NodeHandle, String> {
    let cloud = &prepared.cloud;
    let config = &cloud.config;
    let node_dir = up_node_dir(&config.data_dir);
    let zone = config
        .zones
        .first()
        .cloned()
        .ok_or("no availability zone configured")?;
    let node_id = data_dir_node_id(&node_dir).map_err(|e| e.to_string())?;
    let credentials = mallee_cloud::enrolment::local_node_credentials(
        cloud,
        &node_dir.join(PKI_DIR),
        &node_id,
        &zone,
    )
    .await
    .map_err(|e| e.to_string())?;
    let subnet = mallee_cloud::vpcs::zone_subnet(0);
    let mut node = NodeConfig::new(
        node_dir.clone(),
        &prepared.node_url(),
        credentials,
        network_config(&node_dir, subnet, &config.region),
    );
    node.public = config
        .public_ranges
        .iter()
        .find(|r| r.zone == zone)
        .map(|r| PublicNetworkConfig::for_node_dir(&node_dir, r.cidr.0));
    node.zone = zone;
    node.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    apply_vm_args(&mut node, vm);
    if node.cores.is_none() {
        // The all-in-one cloud runs on laptops and CI machines with a few
        // cores: offer each one several times (OpenStack's CPU allocation
        // ratio), so small instances are not limited to one per core.
        let host = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        node.cores = Some(u32::try_from(host * UP_CORE_OVERCOMMIT).unwrap_or(u32::MAX));
    }
    start_node(node).await.map_err(|e| e.to_string())
}

/// The storage host directory of `mallee up`'s data directory.
pub fn up_storage_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("storage")
}

/// Starts the storage host `mallee up` runs for its first zone: the zone's
/// volumes live in DATA/storage and are exported over NBD (TLS) on
/// loopback to the node beside it.
pub async fn start_up_storage(
    prepared: &mallee_api::server::Prepared,
) -> Result<NodeHandle, String> {
    let cloud = &prepared.cloud;
    let config = &cloud.config;
    let dir = up_storage_dir(&config.data_dir);
    let zone = config
        .zones
        .first()
        .cloned()
        .ok_or("no availability zone configured")?;
    let node_id = data_dir_node_id(&dir).map_err(|e| e.to_string())?;
    let credentials =
        mallee_cloud::enrolment::local_node_credentials(cloud, &dir.join(PKI_DIR), &node_id, &zone)
            .await
            .map_err(|e| e.to_string())?;
    let subnet = mallee_cloud::vpcs::zone_subnet(0);
    let mut storage = NodeConfig::new(
        dir.clone(),
        &prepared.node_url(),
        credentials,
        network_config(&dir, subnet, &config.region),
    );
    storage.role = mallee_node_api::NodeRole::Storage;
    storage.zone = zone;
    storage.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    storage.exports = Some(ExportSettings {
        bind: Ipv4Addr::LOCALHOST.into(),
        advertise: Ipv4Addr::LOCALHOST.to_string(),
        ports: mallee_storage::DEFAULT_PORTS,
    });
    start_node(storage).await.map_err(|e| e.to_string())
}

/// Directory (under a node's data directory) of its certificate, key, the
/// cluster CA and what enrolment said.
const PKI_DIR: &str = "pki";
/// What enrolment told the node, kept beside its certificate.
const ENROLMENT_FILE: &str = "enrolment.json";

/// What a node keeps of its enrolment.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Enrolment {
    node_id: String,
    zone: String,
    /// The controller it enrolled with (for the admin's information).
    controller: String,
}

/// What a host enrols with: the controller, its token and where it keeps
/// its certificate.
pub struct Enrol<'a> {
    /// The controller's node listener.
    pub url: &'a str,
    /// The one-time token, if given.
    pub token: Option<&'a str>,
    /// The host's data directory (its certificate goes to DATA/pki).
    pub data_dir: &'a Path,
    /// The zone asked for, if any.
    pub zone: Option<&'a str>,
}

async fn enrolled(args: &JoinArgs, node_id: &str) -> Result<(Credentials, String), String> {
    enrolled_as(
        &Enrol {
            url: &args.url,
            token: args.token.as_deref(),
            data_dir: &args.node.data_dir,
            zone: args.node.zone.as_deref(),
        },
        node_id,
    )
    .await
}

/// The host's credentials and zone: the ones it holds, or (the first
/// time) the ones it enrols for with its token. Nodes and storage hosts
/// enrol alike.
pub async fn enrolled_as(args: &Enrol<'_>, node_id: &str) -> Result<(Credentials, String), String> {
    let pki_dir = args.data_dir.join(PKI_DIR);
    let record_path = pki_dir.join(ENROLMENT_FILE);
    if let Some(credentials) = Credentials::load(&pki_dir, mallee_cloud::enrolment::NODE_STEM)
        .map_err(|e| format!("{e} (remove {} to enrol again)", pki_dir.display()))?
    {
        let text = std::fs::read_to_string(&record_path)
            .map_err(|e| format!("{}: {e}", record_path.display()))?;
        let record: Enrolment =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", record_path.display()))?;
        if args.token.is_some() {
            tracing::info!(
                node = node_id,
                "already enrolled: the token is not needed (and stays unspent)"
            );
        }
        return Ok((credentials, record.zone));
    }
    let token: EnrolmentToken = args
        .token
        .ok_or("this node holds no certificate yet: give --token (from `mallee admin node token create` on the controller)")?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let key = KeyRequest::new(PeerName::node(node_id).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let request = EnrolRequest {
        token: token.to_string(),
        node_id: node_id.to_owned(),
        zone: args.zone.map(str::to_owned),
        csr_pem: key.csr_pem().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let answer = enrol(args.url, &token, &request)
        .await
        .map_err(|e| e.to_string())?;
    let credentials = key
        .complete(&answer.ca_pem, &answer.certificate_pem)
        .map_err(|e| format!("the controller's answer is unusable: {e}"))?;
    if credentials.ca_fingerprint() != token.ca() {
        return Err("the controller signed with another CA than the token names".into());
    }
    // The record first: credentials without it would leave the node's zone
    // unknown at the next start.
    let record = Enrolment {
        node_id: answer.node_id,
        zone: answer.zone,
        controller: args.url.to_owned(),
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&pki_dir)
            .map_err(|e| format!("{}: {e}", pki_dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
    mallee_util::durable::write_atomic(&record_path, &json)
        .map_err(|e| format!("{}: {e}", record_path.display()))?;
    credentials
        .save(&pki_dir, mallee_cloud::enrolment::NODE_STEM)
        .map_err(|e| e.to_string())?;
    tracing::info!(node = node_id, zone = %record.zone, serial = %credentials.info().serial, "enrolled with the controller");
    Ok((credentials, record.zone))
}

/// `mallee node join`: enrols once, then runs the agent until
/// SIGINT/SIGTERM.
pub async fn node_command(command: NodeCommand) -> Result<ExitCode, String> {
    let NodeCommand::Join(args) = command;
    if !args.url.starts_with("https://") {
        return Err(format!(
            "{}: the controller's node listener speaks HTTPS only (https://CONTROLLER:8774)",
            args.url
        ));
    }
    let node_id = data_dir_node_id(&args.node.data_dir).map_err(|e| e.to_string())?;
    // What this node is about to use must be no other cloud's: checked
    // before enrolling, so a refused start spends no token.
    let mut claims = crate::conflicts::Claims::default();
    crate::conflicts::check_ports(&[("--listen", crate::conflicts::Proto::Tcp, args.node.listen)])?;
    let public = args.node.public_range.map(|cidr| PublicNetworkConfig {
        interface: args.node.public_interface.clone(),
        ..PublicNetworkConfig::for_node_dir(&args.node.data_dir, cidr)
    });
    let network = network_config(&args.node.data_dir, args.node.subnet, &args.node.region);
    if !args.node.simulate {
        claims
            .node(
                &args.node.data_dir,
                &node_id,
                &network.state_root,
                public.as_ref(),
            )
            .await?;
    }
    let (credentials, zone) = enrolled(&args, &node_id).await?;
    if let Some(asked) = &args.node.zone
        && *asked != zone
    {
        return Err(format!(
            "this node is enrolled for zone {zone}, not {asked} (remove it with `mallee admin node remove {node_id}` and enrol again to move it)"
        ));
    }
    if args.node.simulate {
        return simulate_command(args, node_id, zone, credentials).await;
    }
    let node = &args.node;
    let mut config = NodeConfig::new(node.data_dir.clone(), &args.url, credentials, network);
    config.public = public;
    if let Some(ip) = underlay_ip(node, &args.url).await {
        let underlay = Underlay::detect(ip).await.map_err(|e| e.to_string())?;
        tracing::info!(underlay = %underlay.local, mtu = underlay.mtu, guest_mtu = underlay.guest_mtu(), "VXLAN underlay");
        config.network.underlay = Some(underlay);
    }
    config.zone = zone;
    config.listen = node.listen;
    config.advertise_url.clone_from(&node.advertise_url);
    apply_vm_args(&mut config, &node.vm);
    let shutdown = mallee_api::server::shutdown_signal();
    let handle = start_node(config).await.map_err(|e| e.to_string())?;
    tracing::info!(url = %handle.url(), "node agent running");
    shutdown.await;
    handle.shutdown().await;
    drop(claims);
    Ok(ExitCode::SUCCESS)
}

/// `mallee node join --simulate`: a simulated agent serves the node API
/// and registers with the controller (heartbeats included) until
/// SIGINT/SIGTERM; its VMs live in memory and end with it.
async fn simulate_command(
    args: JoinArgs,
    node_id: String,
    zone: String,
    credentials: Credentials,
) -> Result<ExitCode, String> {
    let node = args.node;
    let tls = NodeTls::new(&credentials).map_err(|e| e.to_string())?;
    let offered = SimCapacity::default();
    let config = SimConfig {
        node_id: Some(node_id),
        zone,
        capacity: SimCapacity {
            cores: node.vm.node_cores.unwrap_or(offered.cores),
            memory_mib: node.vm.node_memory_mib.unwrap_or(offered.memory_mib),
            disk_gib: node.vm.node_disk_gib.unwrap_or(offered.disk_gib),
        },
        boot_delay: std::time::Duration::from_millis(node.simulate_boot_ms),
        underlay_ip: node.underlay_ip.map(|ip| ip.to_string()),
        ..SimConfig::default()
    }
    .with_controller(&args.url, &tls.client)
    .map_err(|e| e.to_string())?;
    let serve = ServeConfig {
        listen: node.listen,
        advertise_url: node.advertise_url,
        controller_url: Some(args.url),
        ..ServeConfig::new(credentials)
    };
    let shutdown = mallee_api::server::shutdown_signal();
    let server = mallee_node_sim::serve(SimNode::new(config), serve)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(url = %server.url(), node = %server.node().node_id(), "simulated node agent running");
    shutdown.await;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// `mallee purge`: stops every VM of `up`'s node and removes its network;
/// records and disks stay (the next `up` sees the instances' VMs gone).
pub async fn purge_command(args: PurgeArgs) -> Result<ExitCode, String> {
    if args.orphans {
        return purge_orphans(args.under.as_deref()).await;
    }
    let node_dir = up_node_dir(&args.data_dir);
    let subnet = mallee_cloud::vpcs::zone_subnet(0);
    let network = network_config(&node_dir, subnet, mallee_cloud::config::DEFAULT_REGION);
    // The bridge name derives from the directory alone; the range does not
    // matter for removing it.
    let public = PublicNetworkConfig::for_node_dir(&node_dir, subnet);
    purge_node(&node_dir, &network, Some(&public))
        .await
        .map_err(|e| e.to_string())?;
    // The namespace of the single network nodes had before VPCs.
    let legacy = netns_for(&node_dir);
    if std::path::Path::new("/run/netns").join(&legacy).exists() {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &legacy])
            .status();
    }
    // A storage host's NBD export daemons (`up`'s, or a lab host's).
    let storage_dir = up_storage_dir(&args.data_dir);
    let stopped = purge_storage(&storage_dir)
        .await
        .map_err(|e| e.to_string())?;
    if stopped > 0 {
        println!("PURGED\t{}\t{stopped} NBD exports", storage_dir.display());
    }
    println!("PURGED\t{}\t{}", node_dir.display(), public.bridge);
    Ok(ExitCode::SUCCESS)
}

/// `mallee purge --orphans`: removes the leftovers of deleted data
/// directories and says what it removed (and what it left alone: mallee's
/// by name, but with no recorded owner).
async fn purge_orphans(under: Option<&Path>) -> Result<ExitCode, String> {
    let report = mallee_node::orphans::purge_orphans(under)
        .await
        .map_err(|e| e.to_string())?;
    for found in &report.removed {
        let owner = found
            .owner
            .as_ref()
            .map_or_else(|| "-".to_owned(), |o| o.display().to_string());
        println!("REMOVED\t{}\t{}\t{owner}", found.kind, found.name);
    }
    for found in &report.unknown {
        println!(
            "SKIPPED\t{}\t{}\towner not recorded (made by an older mallee)",
            found.kind, found.name
        );
    }
    if report.removed.is_empty() {
        println!("mallee: no orphans found");
    }
    Ok(ExitCode::SUCCESS)
}
