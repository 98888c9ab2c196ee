//! All the instance networks of a node: one [`NodeNetwork`] (namespace)
//! per VPC, made when the first interface of that VPC is plugged, adopted
//! when the agent starts (state in `DATA/network/<network id>/`) and
//! removed with its last interface; the metadata service listening in each;
//! the security-group policy (kept in `DATA/firewall.json`, applied to every
//! namespace); the VXLAN overlay the controller pushes (kept in
//! `DATA/network/overlay.json`, each VPC's part applied to its namespace);
//! and the node's public network: a bridge in the host namespace that every
//! VPC namespace joins with a veth pair (host-local with the first host of
//! the public range, or joined to the zone's public LAN through a host
//! interface), plus a host nftables table that keeps the bridge's traffic
//! from being routed anywhere else.
//!
//! Locking is per VPC, so launches in different VPCs set up their networks
//! at the same time: each VPC has a slot (a read-write lock over its
//! network, `None` while it has none). Plugs and unplugs share the slot's
//! read lock (within the VPC, [`NodeNetwork`] group-commits their
//! changes); making the network (first plug) and removing it (last unplug)
//! take the write lock, so a namespace is made once and never removed
//! under a plug. The firewall policy and the overlay are replaced one at a
//! time and applied to each VPC under its read lock.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mallee_node_api::{FirewallPolicy, InternetRoute, NicSpec, Overlay};
use mallee_util::cidr::Ipv4Cidr;
use mallee_util::process::run;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};
use tokio::task::JoinHandle;

use crate::firewall::{self, FirewallError};
use crate::metadata::{MetadataError, MetadataService};
use crate::network::{
    METADATA_ADDR, NetworkConfig, NetworkError, NodeNetwork, Port, PortDns, PortInternet,
    PublicNetworkConfig, VpcConfig, VpcOverlay, nft_apply, tap_name, vxlan_name,
};

/// The file (under the data directory) holding the latest firewall policy.
pub const FIREWALL_FILE: &str = "firewall.json";
/// The file in a VPC network's state directory that names it.
const VPC_FILE: &str = "vpc.json";
/// The file (under the state root of the networks) holding the latest
/// overlay.
pub const OVERLAY_FILE: &str = "overlay.json";

/// Errors of the node's networks.
#[derive(Debug, thiserror::Error)]
pub enum NetworksError {
    /// Building or changing a network failed.
    #[error("{0}")]
    Network(#[from] NetworkError),
    /// The metadata service could not listen in a namespace.
    #[error("metadata service: {0}")]
    Metadata(#[from] MetadataError),
    /// The firewall policy is not acceptable.
    #[error("{0}")]
    Firewall(#[from] FirewallError),
    /// An interface spec is not usable.
    #[error("invalid interface: {0}")]
    Invalid(String),
    /// The overlay is not acceptable.
    #[error("invalid overlay: {0}")]
    Overlay(String),
}

/// What `DATA/network/<id>/vpc.json` records, so a purge or restart finds
/// the namespace without the node id.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct VpcRecord {
    network_id: String,
    netns: String,
}

#[derive(Debug)]
struct Vpc {
    network: NodeNetwork,
    metadata_task: JoinHandle<()>,
}

/// One VPC's place on the node: its network, `None` before the first plug
/// and after the last unplug.
type Slot = Arc<RwLock<Option<Vpc>>>;

/// The firewall policy and overlay in force.
#[derive(Debug)]
struct Settings {
    policy: FirewallPolicy,
    overlay: Overlay,
}

/// The node's VPC networks, public network and firewall policy.
#[derive(Debug)]
pub struct Networks {
    config: NetworkConfig,
    public: Option<PublicNetworkConfig>,
    node_id: String,
    firewall_file: PathBuf,
    metadata: Arc<MetadataService>,
    /// By network id. A slot, once made, stays (a few bytes per VPC the
    /// node ever had): were it removed, a caller still holding it and a
    /// new one could each make the same namespace.
    vpcs: std::sync::Mutex<BTreeMap<String, Slot>>,
    /// Read briefly (never held while a slot lock is awaited).
    settings: std::sync::Mutex<Settings>,
    /// Held while a new policy or overlay is stored and applied to every
    /// VPC, so two of them are applied in the order they were accepted.
    replacing: Mutex<()>,
}

impl Networks {
    /// Brings up the public network (if configured), loads the firewall
    /// policy from `firewall_file` and adopts every VPC network found under
    /// the state root (one without ports is removed).
    pub async fn open(
        config: NetworkConfig,
        public: Option<PublicNetworkConfig>,
        node_id: &str,
        firewall_file: PathBuf,
        metadata: Arc<MetadataService>,
    ) -> Result<Self, NetworksError> {
        tokio::fs::create_dir_all(&config.state_root)
            .await
            .map_err(|source| NetworkError::Io {
                path: config.state_root.clone(),
                source,
            })?;
        if let Some(public) = &public {
            ensure_public(public).await?;
        }
        let policy = firewall::load(&firewall_file).await?;
        let overlay = load_overlay(&config.state_root.join(OVERLAY_FILE)).await?;
        let networks = Self {
            config,
            public,
            node_id: node_id.to_owned(),
            firewall_file,
            metadata,
            vpcs: std::sync::Mutex::new(BTreeMap::new()),
            settings: std::sync::Mutex::new(Settings { policy, overlay }),
            replacing: Mutex::new(()),
        };
        for record in vpc_records(&networks.config.state_root) {
            let vpc_config = networks.vpc_config(&record.network_id, Some(record.netns));
            let (firewalls, part) = networks.settings_for(&record.network_id)?;
            let network = NodeNetwork::ensure(vpc_config.clone(), firewalls, part).await?;
            if network.ports().await?.is_empty() {
                NodeNetwork::destroy(&vpc_config).await?;
                continue;
            }
            let metadata_task = networks.serve_metadata(&network).await?;
            let vpc = Vpc {
                network,
                metadata_task,
            };
            lock(&networks.vpcs)
                .insert(record.network_id.clone(), Arc::new(RwLock::new(Some(vpc))));
        }
        Ok(networks)
    }

    /// The slot of `network_id`, made empty if it has none.
    fn slot(&self, network_id: &str) -> Slot {
        lock(&self.vpcs)
            .entry(network_id.to_owned())
            .or_default()
            .clone()
    }

    /// Every slot, by network id.
    fn slots(&self) -> Vec<(String, Slot)> {
        lock(&self.vpcs)
            .iter()
            .map(|(id, slot)| (id.clone(), slot.clone()))
            .collect()
    }

    /// The security groups and `network_id`'s part of the overlay in force.
    fn settings_for(
        &self,
        network_id: &str,
    ) -> Result<(Arc<crate::firewall::Firewalls>, Arc<VpcOverlay>), NetworksError> {
        let settings = lock(&self.settings);
        Ok((
            Arc::new(firewall::by_instance(&settings.policy)),
            overlay_part(&settings.overlay, network_id)?,
        ))
    }

    /// The public network, when the node has one.
    pub fn public(&self) -> Option<&PublicNetworkConfig> {
        self.public.as_ref()
    }

    /// The node's end of the overlay, when it has one.
    pub fn underlay(&self) -> Option<crate::network::Underlay> {
        self.config.underlay
    }

    /// The namespace of network `network_id` on this node (whether or not
    /// it exists now): unique on the host, derived from the node id, the
    /// state root and the network id.
    pub fn netns_name(&self, network_id: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.node_id.as_bytes());
        hasher.update([0]);
        hasher.update(self.config.state_root.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(network_id.as_bytes());
        format!("mallee-v{}", &hex::encode(hasher.finalize())[..12])
    }

    fn vpc_config(&self, network_id: &str, netns: Option<String>) -> VpcConfig {
        VpcConfig {
            network_id: network_id.to_owned(),
            netns: netns.unwrap_or_else(|| self.netns_name(network_id)),
            state_dir: self.config.state_root.join(network_id),
            domain: self.config.domain.clone(),
            public: self.public.clone(),
            underlay: self.config.underlay,
        }
    }

    async fn serve_metadata(&self, network: &NodeNetwork) -> Result<JoinHandle<()>, MetadataError> {
        self.metadata
            .serve_in_netns(
                &network.config().network_id,
                network.netns(),
                SocketAddrV4::new(METADATA_ADDR, 80),
            )
            .await
    }

    /// The ids of the networks present now.
    pub async fn network_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for (id, slot) in self.slots() {
            if slot.read().await.is_some() {
                ids.push(id);
            }
        }
        ids
    }

    /// The network of `network_id`, if present.
    pub async fn network(&self, network_id: &str) -> Option<NodeNetwork> {
        let slot = lock(&self.vpcs).get(network_id).cloned()?;
        let vpc = slot.read().await;
        vpc.as_ref().map(|v| v.network.clone())
    }

    /// Plugs `instance_id`'s interface `nic` into its VPC's network (made
    /// now if it is the first) and registers `metadata` for it there.
    /// Returns the prefix that runs QEMU inside the namespace. Repeating
    /// it applies changes live (public address, metadata).
    pub async fn plug(
        &self,
        instance_id: &str,
        nic: &NicSpec,
        metadata: &mallee_node_api::InstanceMetadata,
    ) -> Result<Vec<OsString>, NetworksError> {
        let (network_id, port) = self.port(instance_id, nic, metadata)?;
        let tap = tap_name(instance_id);
        if let Some(public) = port.public_ip {
            // The address may have moved here from another VPC.
            for (id, slot) in self.slots() {
                if id != network_id
                    && let Some(vpc) = slot.read().await.as_ref()
                {
                    vpc.network.release_public_ip(public).await?;
                }
            }
        }
        let slot = self.slot(&network_id);
        let mut vpc = slot.read().await;
        if vpc.is_none() {
            drop(vpc);
            let mut made = slot.write().await;
            if made.is_none() {
                *made = Some(self.make_vpc(&network_id).await?);
            }
            vpc = made.downgrade();
        }
        let network = vpc
            .as_ref()
            .expect("made above under the write lock")
            .network
            .clone();
        let ip = port.ip;
        network.plug(&tap, port).await?;
        self.metadata
            .register_in(&network_id, ip, instance_id, metadata.clone());
        drop(vpc);
        Ok(network.exec_prefix())
    }

    /// Makes the network of `network_id` (called under its slot's write
    /// lock): its record first, so a purge or restart finds it, then the
    /// namespace with the policy and overlay in force, and its metadata
    /// service.
    async fn make_vpc(&self, network_id: &str) -> Result<Vpc, NetworksError> {
        let vpc_config = self.vpc_config(network_id, None);
        tokio::fs::create_dir_all(&vpc_config.state_dir)
            .await
            .map_err(|source| NetworkError::Io {
                path: vpc_config.state_dir.clone(),
                source,
            })?;
        let record = VpcRecord {
            network_id: network_id.to_owned(),
            netns: vpc_config.netns.clone(),
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| NetworkError::Io {
            path: vpc_config.state_dir.join(VPC_FILE),
            source: std::io::Error::other(e),
        })?;
        crate::network::write_file(&vpc_config.state_dir.join(VPC_FILE), &json).await?;
        // Read after the slot is in the map: a policy or overlay accepted
        // later is applied to this VPC by its replacer, which waits for
        // the slot.
        let (firewalls, part) = self.settings_for(network_id)?;
        let network = NodeNetwork::ensure(vpc_config, firewalls, part).await?;
        let metadata_task = self.serve_metadata(&network).await?;
        tracing::info!(network = %network_id, netns = network.netns(), "VPC network created");
        Ok(Vpc {
            network,
            metadata_task,
        })
    }

    /// Unplugs `instance_id`'s interface `nic`, forgets its metadata, and
    /// removes its VPC's network when no interface is left in it.
    pub async fn unplug(&self, instance_id: &str, nic: &NicSpec) -> Result<(), NetworksError> {
        let network_id = self.network_id(nic)?;
        let tap = tap_name(instance_id);
        if let Ok(ip) = nic.private_ip.parse::<Ipv4Addr>() {
            self.metadata
                .unregister_in(&network_id, ip, Some(instance_id));
        }
        let Some(slot) = lock(&self.vpcs).get(&network_id).cloned() else {
            return Ok(());
        };
        // Unplugged under the read lock, beside the VPC's other plugs and
        // unplugs; removing the network takes the write lock, and only if
        // no plug came in meanwhile.
        {
            let held = slot.read().await;
            let Some(vpc) = held.as_ref() else {
                return Ok(());
            };
            vpc.network.unplug(&tap, &nic.mac).await?;
            if !vpc.network.ports().await?.is_empty() {
                return Ok(());
            }
        }
        let mut held = slot.write().await;
        let Some(vpc) = held.as_ref() else {
            return Ok(());
        };
        if vpc.network.ports().await?.is_empty() {
            let vpc = held.take().expect("present: looked up under the same lock");
            vpc.metadata_task.abort();
            let _ = vpc.metadata_task.await;
            NodeNetwork::destroy(vpc.network.config()).await?;
            tracing::info!(network = %network_id, "VPC network removed (no instance left)");
        }
        Ok(())
    }

    /// Applies `policy` to every network unless it is older than the one
    /// applied; returns the generation in force. The policy is stored
    /// before it is applied, so a restart applies it too.
    pub async fn put_firewall(&self, policy: FirewallPolicy) -> Result<u64, NetworksError> {
        firewall::validate(&policy)?;
        let _replacing = self.replacing.lock().await;
        let current = lock(&self.settings).policy.clone();
        if policy.generation < current.generation {
            return Ok(current.generation);
        }
        if policy != current {
            firewall::store(&self.firewall_file, &policy).await?;
            lock(&self.settings).policy = policy.clone();
        }
        let firewalls = Arc::new(firewall::by_instance(&policy));
        for (_, slot) in self.slots() {
            if let Some(vpc) = slot.read().await.as_ref() {
                vpc.network.set_firewalls(firewalls.clone()).await?;
            }
        }
        Ok(policy.generation)
    }

    /// The policy in force.
    pub async fn firewall(&self) -> FirewallPolicy {
        lock(&self.settings).policy.clone()
    }

    /// Applies `overlay` to every network unless it is older than the one
    /// applied; returns the generation in force. Refused whole when any
    /// part is not acceptable. Stored before it is applied, so a restart
    /// applies it too.
    pub async fn put_overlay(&self, overlay: Overlay) -> Result<u64, NetworksError> {
        overlay.check().map_err(NetworksError::Overlay)?;
        let mut parts = BTreeMap::new();
        for network in &overlay.networks {
            let part = VpcOverlay::parse(network)
                .map_err(|e| NetworksError::Overlay(format!("{}: {e}", network.network_id)))?;
            parts.insert(network.network_id.clone(), Arc::new(part));
        }
        let _replacing = self.replacing.lock().await;
        let current_generation = lock(&self.settings).overlay.generation;
        if overlay.generation < current_generation {
            return Ok(current_generation);
        }
        let generation = overlay.generation;
        if overlay != lock(&self.settings).overlay {
            store_overlay(&self.config.state_root.join(OVERLAY_FILE), &overlay).await?;
            lock(&self.settings).overlay = overlay;
        }
        for (id, slot) in self.slots() {
            if let Some(vpc) = slot.read().await.as_ref() {
                let part = parts.get(&id).cloned().unwrap_or_default();
                vpc.network.set_overlay(part).await?;
            }
        }
        Ok(generation)
    }

    /// The overlay in force.
    pub async fn overlay(&self) -> Overlay {
        lock(&self.settings).overlay.clone()
    }

    /// Stops the metadata listeners (the networks stay).
    pub async fn shutdown(&self) {
        for (_, slot) in self.slots() {
            if let Some(vpc) = slot.read().await.as_ref() {
                vpc.metadata_task.abort();
            }
        }
    }

    fn network_id(&self, nic: &NicSpec) -> Result<String, NetworksError> {
        let id = nic.network_id.trim();
        let ok = !id.is_empty()
            && id.len() <= 64
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(id.to_owned())
        } else {
            Err(NetworksError::Invalid(format!(
                "bad network id {:?}",
                nic.network_id
            )))
        }
    }

    fn port(
        &self,
        instance_id: &str,
        nic: &NicSpec,
        metadata: &mallee_node_api::InstanceMetadata,
    ) -> Result<(String, Port), NetworksError> {
        let network_id = self.network_id(nic)?;
        let ip: Ipv4Addr = nic
            .private_ip
            .parse()
            .map_err(|_| NetworksError::Invalid(format!("bad private IP {:?}", nic.private_ip)))?;
        let subnet: Ipv4Cidr = if nic.subnet_cidr.trim().is_empty() {
            self.config.default_subnet
        } else {
            nic.subnet_cidr
                .trim()
                .parse()
                .map_err(|_| NetworksError::Invalid(format!("bad subnet {:?}", nic.subnet_cidr)))?
        };
        let public_ip = match nic.public_ip.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<Ipv4Addr>()
                    .map_err(|_| NetworksError::Invalid(format!("bad public IP {p:?}")))?,
            ),
        };
        let vpc_cidr = match nic.vpc_cidr.trim() {
            "" => None,
            c => Some(
                c.parse::<Ipv4Cidr>()
                    .map_err(|_| NetworksError::Invalid(format!("bad VPC CIDR {c:?}")))?,
            ),
        };
        let internet = match &nic.internet {
            InternetRoute::Gateway => PortInternet::Gateway,
            InternetRoute::None => PortInternet::None,
            InternetRoute::Nat { public_ip } => {
                PortInternet::Nat(public_ip.trim().parse::<Ipv4Addr>().map_err(|_| {
                    NetworksError::Invalid(format!("bad NAT gateway address {public_ip:?}"))
                })?)
            }
        };
        if public_ip.is_some() && self.public.is_none() {
            tracing::warn!(instance = %instance_id, "public IP ignored: the node has no public network");
        }
        Ok((
            network_id,
            Port {
                instance_id: instance_id.to_owned(),
                mac: nic.mac.clone(),
                ip,
                hostname: metadata.local_hostname.clone(),
                subnet,
                public_ip: public_ip.filter(|_| self.public.is_some()),
                dns: PortDns {
                    vpc_cidr: vpc_cidr.filter(|_| nic.dns_support),
                    public_hostname: metadata
                        .public_hostname
                        .clone()
                        .filter(|_| self.public.is_some()),
                    domain_name: nic.domain_name.clone().filter(|d| !d.trim().is_empty()),
                },
                internet,
            },
        ))
    }

    /// Removes every VPC network under `config.state_root` and the public
    /// network (bridge, host table). VMs must be gone first.
    pub async fn purge(
        config: &NetworkConfig,
        public: Option<&PublicNetworkConfig>,
    ) -> Result<(), NetworksError> {
        let overlay = load_overlay(&config.state_root.join(OVERLAY_FILE))
            .await
            .unwrap_or_default();
        for record in vpc_records(&config.state_root) {
            // A vxlan port is made in the host namespace, then moved: one a
            // crash left behind is removed with its network.
            for network in overlay
                .networks
                .iter()
                .filter(|n| n.network_id == record.network_id)
            {
                for segment in &network.segments {
                    let name = vxlan_name(&record.netns, segment.vni);
                    if run("ip", &["link", "show", "dev", &name]).await.is_ok() {
                        run("ip", &["link", "del", "dev", &name])
                            .await
                            .map_err(NetworkError::from)?;
                    }
                }
            }
            let vpc = VpcConfig {
                network_id: record.network_id.clone(),
                netns: record.netns,
                state_dir: config.state_root.join(&record.network_id),
                domain: String::new(),
                public: public.cloned(),
                underlay: None,
            };
            NodeNetwork::destroy(&vpc).await?;
        }
        if let Some(public) = public {
            remove_public(public).await?;
        }
        Ok(())
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `network_id`'s part of `overlay` (none: the VPC is on this node alone).
fn overlay_part(overlay: &Overlay, network_id: &str) -> Result<Arc<VpcOverlay>, NetworksError> {
    match overlay.networks.iter().find(|n| n.network_id == network_id) {
        Some(network) => Ok(Arc::new(VpcOverlay::parse(network)?)),
        None => Ok(Arc::default()),
    }
}

/// The stored overlay (generation 0, no network, when there is none).
async fn load_overlay(path: &Path) -> Result<Overlay, NetworkError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NetworkError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Overlay::default()),
        Err(source) => Err(NetworkError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

async fn store_overlay(path: &Path, overlay: &Overlay) -> Result<(), NetworkError> {
    let json = serde_json::to_vec_pretty(overlay).map_err(|e| NetworkError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    crate::network::write_file(path, &json).await
}

/// The VPC networks recorded under `root`.
fn vpc_records(root: &Path) -> Vec<VpcRecord> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut records: Vec<VpcRecord> = entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join(VPC_FILE)).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    records.sort_by(|a, b| a.network_id.cmp(&b.network_id));
    records
}

/// The public bridge, and the host table that keeps its traffic on the
/// bridge: nothing is routed between it and any other interface of the
/// host. Host-local, the bridge has the range's first host; joined to the
/// zone's public LAN through the configured interface, it has no address
/// of the host (every node's bridge is on that LAN).
async fn ensure_public(public: &PublicNetworkConfig) -> Result<(), NetworkError> {
    crate::network::check_link_name(&public.bridge)?;
    if public.cidr.prefix() > 30 || public.cidr.prefix() < 8 {
        return Err(NetworkError::Invalid {
            what: "public range (prefix must be 8..=30)",
            value: public.cidr.to_string(),
        });
    }
    let bridge = public.bridge.as_str();
    if run("ip", &["link", "show", "dev", bridge]).await.is_err() {
        let made = run("ip", &["link", "add", "name", bridge, "type", "bridge"]).await;
        if let Err(e) = made
            && run("ip", &["link", "show", "dev", bridge]).await.is_err()
        {
            return Err(e.into());
        }
    }
    match &public.interface {
        Some(interface) => join_public_lan(bridge, interface).await?,
        None => {
            let address = format!("{}/{}", public.gateway(), public.cidr.prefix());
            let broadcast = public.cidr.broadcast().to_string();
            run(
                "ip",
                &[
                    "addr",
                    "replace",
                    &address,
                    "broadcast",
                    &broadcast,
                    "dev",
                    bridge,
                ],
            )
            .await?;
        }
    }
    run("ip", &["link", "set", "dev", bridge, "up"]).await?;
    let table = public.host_table();
    let script = format!(
        "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n\
         \x20 chain forward {{\n\
         \x20   type filter hook forward priority 0; policy accept;\n\
         \x20   iifname \"{bridge}\" oifname != \"{bridge}\" drop\n\
         \x20   oifname \"{bridge}\" iifname != \"{bridge}\" drop\n\
         \x20 }}\n}}\n"
    );
    nft_apply(None, &script).await
}

/// Enslaves `interface` to the public bridge, which then carries no host
/// address. An interface with IPv4 addresses is refused: enslaving it would
/// take them from the host (the administrator's management link, say).
async fn join_public_lan(bridge: &str, interface: &str) -> Result<(), NetworkError> {
    crate::network::check_link_name(interface)?;
    let out = run("ip", &["-j", "-4", "addr", "show", "dev", interface]).await?;
    let links: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let addressed = links
        .as_array()
        .into_iter()
        .flatten()
        .any(|l| l["addr_info"].as_array().is_some_and(|a| !a.is_empty()));
    if addressed {
        return Err(NetworkError::Invalid {
            what: "public interface (it has IPv4 addresses, which it would lose)",
            value: interface.to_owned(),
        });
    }
    run("ip", &["-4", "addr", "flush", "dev", bridge]).await?;
    run(
        "ip",
        &["link", "set", "dev", interface, "master", bridge, "up"],
    )
    .await?;
    Ok(())
}

async fn remove_public(public: &PublicNetworkConfig) -> Result<(), NetworkError> {
    crate::network::check_link_name(&public.bridge)?;
    let table = public.host_table();
    nft_apply(
        None,
        &format!("table inet {table}\ndelete table inet {table}\n"),
    )
    .await?;
    if run("ip", &["link", "show", "dev", &public.bridge])
        .await
        .is_ok()
    {
        run("ip", &["link", "del", "dev", &public.bridge]).await?;
    }
    Ok(())
}
