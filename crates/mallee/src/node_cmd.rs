//! The node agent from the command line: `mallee node` (an agent joining a
//! controller), the agent `mallee up` runs beside its controller, and
//! `mallee purge` (stop every VM of a data directory and remove its
//! network).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use mallee_node::agent::{NodeConfig, NodeHandle, purge_node, start_node};
use mallee_node::network::{NetworkConfig, PublicNetworkConfig, Underlay};
use mallee_node_sim::{ServeConfig, SimCapacity, SimConfig, SimNode};
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

/// `mallee node` arguments.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Controller base URL.
    #[arg(long, env = "MALLEE_CONTROLLER")]
    pub controller: String,
    /// Cluster token (the controller's DATA/node.token).
    #[arg(long, env = "MALLEE_NODE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Node data directory (instances, image cache, node id).
    #[arg(long, env = "MALLEE_NODE_DATA_DIR", default_value = "./mallee-node")]
    pub data_dir: PathBuf,
    /// Address of the node API.
    #[arg(long, default_value = "127.0.0.1:8775")]
    pub listen: SocketAddr,
    /// URL the controller uses to reach this node (default: from --listen).
    #[arg(long)]
    pub advertise_url: Option<String>,
    /// Availability zone the node serves.
    #[arg(long, default_value = "mallee-1a")]
    pub zone: String,
    /// The zone's instance subnet (the controller's layout: 172.31.0.0/20
    /// for the first zone, 172.31.16.0/20 for the second, …).
    #[arg(long, default_value = "172.31.0.0/20")]
    pub subnet: Ipv4Cidr,
    /// Region (for instances' DNS names).
    #[arg(long, default_value = mallee_cloud::config::DEFAULT_REGION)]
    pub region: String,
    /// The zone's public range: a host-local bridge with its first address
    /// carries the instances' public IPs (none: public IPs are ignored).
    #[arg(long)]
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
async fn underlay_ip(args: &NodeArgs) -> Option<Ipv4Addr> {
    if args.underlay_ip.is_some() {
        return args.underlay_ip;
    }
    let url = reqwest::Url::parse(&args.controller).ok()?;
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

/// Starts the node agent `mallee up` runs for its first zone.
pub async fn start_up_node(
    cloud: &mallee_cloud::Cloud,
    token: &str,
    vm: &VmArgs,
) -> Result<NodeHandle, String> {
    let config = &cloud.config;
    let node_dir = up_node_dir(&config.data_dir);
    std::fs::create_dir_all(&node_dir)
        .map_err(|e| format!("cannot create {}: {e}", node_dir.display()))?;
    let zone = config
        .zones
        .first()
        .cloned()
        .ok_or("no availability zone configured")?;
    let subnet = mallee_cloud::vpcs::zone_subnet(0);
    let mut node = NodeConfig::new(
        node_dir.clone(),
        &config.endpoint(),
        token,
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

/// `mallee node`: runs an agent until SIGINT/SIGTERM.
pub async fn node_command(args: NodeArgs) -> Result<ExitCode, String> {
    if args.simulate {
        return simulate_command(args).await;
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let mut config = NodeConfig::new(
        args.data_dir.clone(),
        &args.controller,
        &args.token,
        network_config(&args.data_dir, args.subnet, &args.region),
    );
    config.public = args.public_range.map(|cidr| PublicNetworkConfig {
        interface: args.public_interface.clone(),
        ..PublicNetworkConfig::for_node_dir(&args.data_dir, cidr)
    });
    if let Some(ip) = underlay_ip(&args).await {
        let underlay = Underlay::detect(ip).await.map_err(|e| e.to_string())?;
        tracing::info!(underlay = %underlay.local, mtu = underlay.mtu, guest_mtu = underlay.guest_mtu(), "VXLAN underlay");
        config.network.underlay = Some(underlay);
    }
    config.zone = args.zone;
    config.listen = args.listen;
    config.advertise_url = args.advertise_url;
    apply_vm_args(&mut config, &args.vm);
    let node = start_node(config).await.map_err(|e| e.to_string())?;
    tracing::info!(url = %node.url(), "node agent running");
    mallee_api::server::shutdown_signal().await;
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// `mallee node --simulate`: a simulated agent serves the node API and
/// registers with the controller (heartbeats included) until
/// SIGINT/SIGTERM; its VMs live in memory and end with it.
async fn simulate_command(args: NodeArgs) -> Result<ExitCode, String> {
    let offered = SimCapacity::default();
    let config = SimConfig {
        zone: args.zone,
        capacity: SimCapacity {
            cores: args.vm.node_cores.unwrap_or(offered.cores),
            memory_mib: args.vm.node_memory_mib.unwrap_or(offered.memory_mib),
            disk_gib: args.vm.node_disk_gib.unwrap_or(offered.disk_gib),
        },
        boot_delay: std::time::Duration::from_millis(args.simulate_boot_ms),
        underlay_ip: args.underlay_ip.map(|ip| ip.to_string()),
        ..SimConfig::default()
    }
    .with_controller(&args.controller, &args.token);
    let serve = ServeConfig {
        listen: args.listen,
        advertise_url: args.advertise_url,
        controller_url: Some(args.controller),
        ..ServeConfig::new(&args.token)
    };
    let server = mallee_node_sim::serve(SimNode::new(config), serve)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(url = %server.url(), node = %server.node().node_id(), "simulated node agent running");
    mallee_api::server::shutdown_signal().await;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// `mallee purge`: stops every VM of `up`'s node and removes its network;
/// records and disks stay (the next `up` sees the instances' VMs gone).
pub async fn purge_command(args: PurgeArgs) -> Result<ExitCode, String> {
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
    println!("PURGED\t{}\t{}", node_dir.display(), public.bridge);
    Ok(ExitCode::SUCCESS)
}
