//! The instance networks of a node: one isolated network per VPC, each a
//! network namespace holding one bridge per subnet (gateway = first host of
//! the subnet), one tap per instance interface, dnsmasq handing out static
//! MAC→IP leases and the VPC's DNS resolver, the metadata service's and the
//! resolver's addresses (169.254.169.254, 169.254.169.253 and the VPC's
//! base + 2, on `lo`)
//! and one nftables transaction (rebuilt whole on every change) with:
//!
//! - anti-spoofing per tap: a guest may only send from its own MAC and IPv4
//!   address (plus DHCP from 0.0.0.0), so the metadata service can identify
//!   an instance by (network, source address);
//! - the security groups per tap (see [`crate::firewall`]): inbound only
//!   what the instance's ingress rules allow, outbound only what its egress
//!   rules allow plus DHCP and metadata, replies always (stateful);
//! - when the node has a public network: DNAT of each public IP to its
//!   private address and SNAT back, on a veth pair (`pub0` inside) joined to
//!   the node's public bridge in the host namespace, for ports whose subnet
//!   routes `0.0.0.0/0` to an internet gateway; outbound-only SNAT to a NAT
//!   gateway's elastic IP for ports routed to one; nothing for the others;
//! - when the VPC spans nodes: a vxlan port per subnet bridge (see
//!   `overlay`), which never carries DHCP or ARP for the gateway and lets
//!   in only frames of the VPC's remote instances and their gateways.
//!
//! Every operation converges on the desired state and is safe to repeat
//! after a crash at any point: the ports (tap → instance, MAC, IP, hostname,
//! subnet, public IP) are recorded in the state directory first, then the
//! rules, links, addresses and dnsmasq are made to match them.
//! [`crate::vpc_networks::Networks`] creates and removes these per VPC.
//!
//! This module holds the settings, the ports record and [`NodeNetwork`]'s
//! operations; the pieces live beside it: `links` (namespace, bridges,
//! taps, veth uplink and addresses, through `ip`), `dhcp` (dnsmasq),
//! `dns` (what dnsmasq resolves), `nft`
//! (the nftables ruleset), `overlay` (VXLAN between nodes), `names`
//! (interface names and the checks of names, MACs and host names) and
//! `system` (processes and state files); `owner` records and checks who
//! owns the host-wide objects (public bridge, namespaces).

mod dhcp;
mod dns;
mod links;
mod names;
mod nft;
mod overlay;
pub mod owner;
mod system;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mallee_util::cidr::Ipv4Cidr;
use mallee_util::process::{ProcessError, run};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::firewall::Firewalls;
use names::{normalize_mac, valid_hostname, valid_netns_name};
use system::{host_link_exists, namespace_exists, stop_process};

pub(crate) use names::check_link_name;
pub use names::{bridge_name, tap_name};
pub(crate) use nft::nft_apply;
pub use overlay::{
    RemoteSpec, SegmentSpec, Underlay, VXLAN_OVERHEAD, VXLAN_PORT, VpcOverlay, gateway_mac,
    vxlan_name,
};
pub(crate) use system::write_file;

/// The metadata service's address, on `lo` of every VPC namespace.
pub const METADATA_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
pub use dns::{DNS_ADDR, resolver_of};
/// The nftables tables (families `bridge` and `ip`) of a VPC namespace.
pub const NFT_TABLE: &str = "mallee";
/// The namespace end of the veth pair to the public bridge.
pub const UPLINK: &str = "pub0";

const PORTS_FILE: &str = "ports.json";

/// Errors of the instance network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A command (`ip`, `nft`, dnsmasq) could not run or failed.
    #[error("{0}")]
    Process(#[from] ProcessError),
    /// A command's output could not be understood.
    #[error("unexpected output from `{command}`: {reason}")]
    Output {
        /// The command line.
        command: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a state file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An argument is not acceptable (bad name, MAC, address, subnet).
    #[error("invalid {what}: {value:?}")]
    Invalid {
        /// What was being checked.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// dnsmasq did not come up.
    #[error("dnsmasq in {netns} did not start: {reason}")]
    Dnsmasq {
        /// The namespace.
        netns: String,
        /// What went wrong.
        reason: String,
    },
    /// The kernel lacks something the firewall needs.
    #[error("{0}")]
    Kernel(String),
}

/// The node-wide network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Where each VPC network keeps its state (`DATA/network`); one
    /// directory per network id below it.
    pub state_root: PathBuf,
    /// The subnet of interfaces whose spec names none (specs from before
    /// VPCs).
    pub default_subnet: Ipv4Cidr,
    /// DNS domain handed out by DHCP (`mallee-1.compute.internal`).
    pub domain: String,
    /// The node's end of the VXLAN overlay; `None`: VPCs stay on this
    /// node (no vxlan port, no MTU handed out).
    pub underlay: Option<Underlay>,
}

/// The node's public network: a bridge in the host namespace, which every
/// VPC namespace joins with a veth pair. Host-local, it carries the first
/// host of `cidr` (the VPC namespaces' gateway); with an `interface` it is
/// the zone's public LAN, shared with the other nodes, and carries no
/// address of the host (the LAN's router, if any, has the first host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicNetworkConfig {
    /// Bridge name (≤ 15 characters; `mlp` + 8 hex, see
    /// [`PublicNetworkConfig::for_node_dir`]).
    pub bridge: String,
    /// The zone's public range (`198.18.0.0/24`).
    pub cidr: Ipv4Cidr,
    /// A host interface enslaved to the bridge: the link to the zone's
    /// public LAN (the administrator's choice; never one with addresses).
    pub interface: Option<String>,
}

impl PublicNetworkConfig {
    /// The public network of the node whose data lives in `node_dir`: the
    /// bridge name derives from the (canonical) directory, so it is stable
    /// and unique per node on a host.
    pub fn for_node_dir(node_dir: &Path, cidr: Ipv4Cidr) -> Self {
        let canonical = std::fs::canonicalize(node_dir).unwrap_or_else(|_| node_dir.to_owned());
        let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
        Self {
            bridge: format!("mlp{}", &hex::encode(digest)[..8]),
            cidr,
            interface: None,
        }
    }

    /// The bridge's address (first host of the range), the VPC namespaces'
    /// default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.first_host()
    }

    /// The host namespace's nftables table (family `inet`).
    pub fn host_table(&self) -> String {
        format!("mallee_{}", self.bridge)
    }
}

/// Where one VPC network lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcConfig {
    /// The VPC id the network belongs to.
    pub network_id: String,
    /// Network namespace name, unique on the host.
    pub netns: String,
    /// Ports record, dnsmasq's hosts, lease, pid and log files.
    pub state_dir: PathBuf,
    /// DNS domain handed out by DHCP.
    pub domain: String,
    /// The node's public network, when it has one.
    pub public: Option<PublicNetworkConfig>,
    /// The node's end of the VXLAN overlay, when it has one.
    pub underlay: Option<Underlay>,
}

impl VpcConfig {
    fn validate(&self) -> Result<(), NetworkError> {
        if !valid_netns_name(&self.netns) {
            return Err(NetworkError::Invalid {
                what: "network namespace name",
                value: self.netns.clone(),
            });
        }
        if !self.domain.is_empty() && !valid_hostname(&self.domain) {
            return Err(NetworkError::Invalid {
                what: "domain",
                value: self.domain.clone(),
            });
        }
        Ok(())
    }

    fn file(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    /// The host end of the veth pair to the public bridge.
    pub fn host_veth(&self) -> String {
        let digest = Sha256::digest(self.netns.as_bytes());
        format!("mlv{}", &hex::encode(digest)[..12])
    }
}

/// One interface to plug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// The instance it belongs to (whose firewall applies).
    pub instance_id: String,
    /// MAC address.
    pub mac: String,
    /// Private address (DHCP lease).
    pub ip: Ipv4Addr,
    /// DHCP host name.
    pub hostname: String,
    /// The subnet; its bridge is made on demand.
    pub subnet: Ipv4Cidr,
    /// Public address DNAT'ed to `ip`, when the node has a public network.
    #[serde(default)]
    pub public_ip: Option<Ipv4Addr>,
    /// What the VPC's resolver says about the port.
    #[serde(default)]
    pub dns: PortDns,
    /// How the port reaches the public network.
    #[serde(default)]
    pub internet: PortInternet,
}

/// Where a port's public traffic goes, from its subnet's route table
/// (`0.0.0.0/0`), when the node has a public network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortInternet {
    /// An internet gateway: the port's public address is DNAT'ed in and
    /// SNAT'ed out (records from before route tables).
    #[default]
    Gateway,
    /// A NAT gateway with this elastic IP: outbound SNAT'ed to it,
    /// nothing inbound; the port's own public address is not mapped.
    Nat(Ipv4Addr),
    /// Nothing to or from the public network.
    None,
}

impl Port {
    /// The public address DNAT'ed to the port: its own, and only with an
    /// internet gateway route.
    pub fn mapped_public_ip(&self) -> Option<Ipv4Addr> {
        self.public_ip
            .filter(|_| self.internet == PortInternet::Gateway)
    }

    /// The NAT gateway address its outbound traffic takes.
    pub fn nat_ip(&self) -> Option<Ipv4Addr> {
        match self.internet {
            PortInternet::Nat(ip) => Some(ip),
            _ => None,
        }
    }
}

/// The DNS side of a port: the VPC's resolver lives at its CIDR's base
/// address + 2, and answers the port's names with its private address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortDns {
    /// The VPC's CIDR block (`172.31.0.0/16`) when its resolver is on;
    /// `None` when `enableDnsSupport` is off, and in records from before
    /// the resolver: then it stays off until a port has it.
    pub vpc_cidr: Option<Ipv4Cidr>,
    /// Its public DNS name, which resolves to its private address inside
    /// the VPC, as on AWS.
    pub public_hostname: Option<String>,
    /// The domain its VPC's DHCP options set names (`domain-name`), which
    /// DHCP hands out instead of the node's; `None`: the node's.
    #[serde(default)]
    pub domain_name: Option<String>,
}

type Ports = BTreeMap<String, Port>;

/// One VPC's network on this node (namespace, bridges, dnsmasq, rules).
/// Cheap to clone; clones share its state.
///
/// Changes are group-committed: a change (a port plugged or unplugged, new
/// security groups or overlay) is recorded under a short lock and numbered,
/// then [`NodeNetwork::commit`] makes the namespace match the record as it
/// is *then*. The namespace is made to match one record at a time, so
/// while one commit runs, the changes recorded meanwhile wait and are all
/// applied by the next one: N launches in one VPC cost a few rebuilds of
/// the rules and dnsmasq's hosts, not N, and none loses another's port
/// (every rebuild renders the whole record).
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: VpcConfig,
    /// Serialises read-modify-write of the ports record (short: no command
    /// runs under it); holds the number of the latest change recorded.
    record: Mutex<u64>,
    /// Held while the namespace is made to match the record; holds the
    /// number of the latest change it matches.
    applied: Mutex<u64>,
    firewalls: std::sync::Mutex<Arc<Firewalls>>,
    overlay: std::sync::Mutex<Arc<VpcOverlay>>,
}

impl NodeNetwork {
    /// Builds the network or adopts the one already there (after an agent
    /// restart): namespace, `lo` with the metadata address, the uplink to
    /// the public bridge, the bridges, rules, vxlan ports and dnsmasq for
    /// the recorded ports and `overlay`. dnsmasq is restarted if it died
    /// and reused if it runs.
    pub async fn ensure(
        config: VpcConfig,
        firewalls: Arc<Firewalls>,
        overlay: Arc<VpcOverlay>,
    ) -> Result<Self, NetworkError> {
        config.validate()?;
        tokio::fs::create_dir_all(&config.state_dir)
            .await
            .map_err(|source| NetworkError::Io {
                path: config.state_dir.clone(),
                source,
            })?;
        let network = Self {
            inner: Arc::new(Inner {
                config,
                // Change 1: the record as found (or empty), applied below.
                record: Mutex::new(1),
                applied: Mutex::new(0),
                firewalls: std::sync::Mutex::new(firewalls),
                overlay: std::sync::Mutex::new(overlay),
            }),
        };
        network.converge().await?;
        Ok(network)
    }

    async fn converge(&self) -> Result<(), NetworkError> {
        {
            let _applying = self.inner.applied.lock().await;
            self.ensure_namespace().await?;
            self.ensure_uplink().await?;
        }
        self.commit(1).await
    }

    /// Numbers a change that is not in the ports record (the overlay): the
    /// next commit applies it.
    async fn note_change(&self) -> u64 {
        let mut record = self.inner.record.lock().await;
        *record += 1;
        *record
    }

    /// Changes the ports record with `change` under the record lock and
    /// saves it; returns what `change` returned and the change's number.
    async fn change_ports<T>(
        &self,
        change: impl FnOnce(&mut Ports) -> Result<T, NetworkError>,
    ) -> Result<(T, u64), NetworkError> {
        let mut record = self.inner.record.lock().await;
        let mut ports = self.load_ports().await?;
        let answer = change(&mut ports)?;
        self.save_ports(&ports).await?;
        *record += 1;
        Ok((answer, *record))
    }

    /// Makes the namespace match the ports record, the security groups and
    /// the overlay as they are now, unless a commit since change `change`
    /// was recorded already did. Commits run one at a time; the changes
    /// recorded while one runs are all taken by the next.
    async fn commit(&self, change: u64) -> Result<(), NetworkError> {
        let mut applied = self.inner.applied.lock().await;
        if *applied >= change {
            return Ok(());
        }
        let (current, ports) = {
            let record = self.inner.record.lock().await;
            (*record, self.load_ports().await?)
        };
        self.apply(&ports).await?;
        self.remove_unused_bridges(&ports).await?;
        *applied = current;
        Ok(())
    }

    /// The network namespace's name.
    pub fn netns(&self) -> &str {
        &self.inner.config.netns
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &VpcConfig {
        &self.inner.config
    }

    /// Prefix that runs a program inside the namespace:
    /// `["ip", "netns", "exec", NS]`.
    pub fn exec_prefix(&self) -> Vec<OsString> {
        ["ip", "netns", "exec", self.netns()]
            .into_iter()
            .map(OsString::from)
            .collect()
    }

    /// Replaces the security groups and re-applies the rules (one nft
    /// transaction).
    pub async fn set_firewalls(&self, firewalls: Arc<Firewalls>) -> Result<(), NetworkError> {
        *self
            .inner
            .firewalls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = firewalls;
        // The rules alone (one nft transaction), between two commits: a
        // security-group change must reach the taps within a second, and
        // every later commit renders the rules with these groups too.
        let _applying = self.inner.applied.lock().await;
        let ports = {
            let _record = self.inner.record.lock().await;
            self.load_ports().await?
        };
        self.apply_rules(&ports).await
    }

    /// Replaces the VPC's part of the overlay and makes the bridges, vxlan
    /// ports, forwarding entries and rules match it.
    pub async fn set_overlay(&self, overlay: Arc<VpcOverlay>) -> Result<(), NetworkError> {
        *self
            .inner
            .overlay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = overlay;
        let change = self.note_change().await;
        self.commit(change).await
    }

    /// The VPC's part of the overlay in force.
    pub fn overlay(&self) -> Arc<VpcOverlay> {
        self.inner
            .overlay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Attaches interface `tap` (created as a persistent tap if no link of
    /// that name exists in the namespace) to its subnet's bridge (made if
    /// missing), allows it to send only from the port's MAC and IP, gives
    /// the MAC its DHCP lease and maps its public address. Repeating it is
    /// harmless, and repeating it with another public address moves the
    /// NAT live. A port previously holding the same MAC or IP under another
    /// tap name is replaced (the latest assignment is the truth) and its
    /// tap removed; another port holding the same public address loses it.
    pub async fn plug(&self, tap: &str, port: Port) -> Result<(), NetworkError> {
        check_link_name(tap)?;
        let mut port = port;
        port.mac = normalize_mac(&port.mac)?;
        port.subnet = port.subnet.canonical();
        let subnet = port.subnet;
        if subnet.prefix() > 30 || subnet.prefix() < 8 {
            return Err(NetworkError::Invalid {
                what: "subnet (prefix must be 8..=30)",
                value: subnet.to_string(),
            });
        }
        let ip = port.ip;
        if !subnet.contains(ip)
            || ip == subnet.network()
            || ip == subnet.broadcast()
            || ip == subnet.first_host()
        {
            return Err(NetworkError::Invalid {
                what: "instance address (outside the subnet or reserved)",
                value: ip.to_string(),
            });
        }
        if !valid_hostname(&port.hostname) {
            return Err(NetworkError::Invalid {
                what: "hostname",
                value: port.hostname.clone(),
            });
        }
        let tap_owned = tap.to_owned();
        let (displaced, change) = self
            .change_ports(|ports| {
                // Another subnet of the VPC already using the same range
                // would make two bridges claim one route.
                if let Some((_, other)) = ports.iter().find(|(name, p)| {
                    **name != tap_owned && p.subnet != subnet && p.subnet.overlaps(subnet)
                }) {
                    return Err(NetworkError::Invalid {
                        what: "subnet (overlaps another subnet of the network)",
                        value: format!("{subnet} vs {}", other.subnet),
                    });
                }
                let displaced: Vec<String> = ports
                    .iter()
                    .filter(|(name, p)| **name != tap_owned && (p.mac == port.mac || p.ip == ip))
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in &displaced {
                    tracing::warn!(netns = self.netns(), tap = name, new_tap = %tap_owned, %ip, mac = %port.mac,
                        "port replaced by a new assignment of its MAC or address");
                    ports.remove(name);
                }
                if let Some(public) = port.public_ip {
                    for (name, other) in ports.iter_mut() {
                        if *name != tap_owned && other.public_ip == Some(public) {
                            tracing::info!(netns = self.netns(), tap = name, %public, "public address moved away");
                            other.public_ip = None;
                        }
                    }
                }
                ports.insert(tap_owned.clone(), port);
                Ok(displaced)
            })
            .await?;
        for name in &displaced {
            self.delete_link(name).await?;
        }
        // Rules first: the tap never forwards a frame unfiltered. The
        // commit also made the subnet's bridge, which no later commit
        // removes while the port is recorded.
        self.commit(change).await?;
        if !self.link_exists(tap).await? {
            let created = self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"]).await;
            // A concurrent or half-finished earlier attempt may have made it.
            if let Err(e) = created
                && !self.link_exists(tap).await?
            {
                return Err(e);
            }
        }
        let bridge = bridge_name(subnet);
        self.ip(&["link", "set", "dev", tap, "master", &bridge, "up"])
            .await?;
        Ok(())
    }

    /// Takes public address `public` from whichever port holds it (it
    /// moved to another network). Harmless when none does.
    pub async fn release_public_ip(&self, public: Ipv4Addr) -> Result<(), NetworkError> {
        let (changed, change) = self
            .change_ports(|ports| {
                let mut changed = false;
                for port in ports.values_mut() {
                    if port.public_ip == Some(public) {
                        port.public_ip = None;
                        changed = true;
                    }
                }
                Ok(changed)
            })
            .await?;
        if changed {
            self.commit(change).await?;
        }
        Ok(())
    }

    /// Removes interface `tap` (and any port holding `mac`): its link, its
    /// rules and NAT, its DHCP host entry and lease, and its subnet's bridge
    /// when no port is left on it. Repeating it is harmless.
    pub async fn unplug(&self, tap: &str, mac: &str) -> Result<(), NetworkError> {
        check_link_name(tap)?;
        let mac = normalize_mac(mac)?;
        let (gone, change) = self
            .change_ports(|ports| {
                let gone: Vec<String> = ports
                    .iter()
                    .filter(|(name, port)| *name == tap || port.mac == mac)
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in &gone {
                    ports.remove(name);
                }
                Ok(gone)
            })
            .await?;
        self.delete_link(tap).await?;
        for name in &gone {
            self.delete_link(name).await?;
        }
        self.commit(change).await
    }

    /// The plugged ports by tap name.
    pub async fn ports(&self) -> Result<Vec<(String, Port)>, NetworkError> {
        let _record = self.inner.record.lock().await;
        Ok(self.load_ports().await?.into_iter().collect())
    }

    /// Tears the network down: stops dnsmasq, deletes the namespace (and
    /// with it the bridges, taps, veth pair and rules) and removes the state
    /// directory. Instances must be stopped first; a namespace stays alive
    /// while any process runs in it. Harmless when nothing is there.
    pub async fn destroy(config: &VpcConfig) -> Result<(), NetworkError> {
        config.validate()?;
        if let Some((pid, _)) = dhcp::running_dnsmasq(&config.state_dir).await {
            stop_process(pid).await;
        }
        if namespace_exists(&config.netns) {
            let out = run("ip", &["netns", "del", &config.netns]).await;
            if let Err(e) = out
                && namespace_exists(&config.netns)
            {
                return Err(e.into());
            }
        }
        // The pair dies with the namespace; a half-made one may be left in
        // the host namespace.
        let veth = config.host_veth();
        if host_link_exists(&veth).await {
            let _ = run("ip", &["link", "del", "dev", &veth]).await;
        }
        match tokio::fs::remove_dir_all(&config.state_dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetworkError::Io {
                path: config.state_dir.clone(),
                source,
            }),
        }
    }

    /// The bridges the ports and the overlay need, rules, vxlan ports, NAT
    /// addresses, dnsmasq. Rules come before the vxlan ports join their
    /// bridges, so no frame crosses one unfiltered.
    async fn apply(&self, ports: &Ports) -> Result<(), NetworkError> {
        for subnet in self.wanted_subnets(ports) {
            self.ensure_bridge(subnet).await?;
        }
        self.apply_rules(ports).await?;
        self.sync_overlay(ports).await?;
        self.sync_public_addresses(ports).await?;
        // dnsmasq binds the resolver's address: it must exist first.
        if let Some(resolver) = dns::resolver(ports) {
            self.ip(&["addr", "replace", &format!("{resolver}/32"), "dev", "lo"])
                .await?;
        }
        self.write_hosts(ports).await?;
        self.sync_dnsmasq(ports).await
    }

    async fn load_ports(&self) -> Result<Ports, NetworkError> {
        let path = self.inner.config.file(PORTS_FILE);
        match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NetworkError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ports::new()),
            Err(source) => Err(NetworkError::Io { path, source }),
        }
    }

    async fn save_ports(&self, ports: &Ports) -> Result<(), NetworkError> {
        let json = serde_json::to_vec_pretty(ports).map_err(|e| NetworkError::Io {
            path: self.inner.config.file(PORTS_FILE),
            source: std::io::Error::other(e),
        })?;
        write_file(&self.inner.config.file(PORTS_FILE), &json).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port on 10.0.0.0/24, for the tests of this module's parts.
    pub(super) fn port(instance: &str, mac: &str, ip: [u8; 4]) -> Port {
        Port {
            instance_id: instance.into(),
            mac: mac.into(),
            ip: Ipv4Addr::from(ip),
            hostname: "a".into(),
            subnet: "10.0.0.0/24".parse().expect("subnet"),
            public_ip: None,
            dns: PortDns::default(),
            internet: PortInternet::Gateway,
        }
    }

    #[test]
    fn names_fit_and_are_stable() {
        let a = tap_name("i-0123456789abcdef0");
        assert_eq!(a.len(), 15);
        assert_eq!(a, tap_name("i-0123456789abcdef0"));
        assert_ne!(a, tap_name("i-0123456789abcdef1"));
        assert!(check_link_name(&a).is_ok());
        let bridge = bridge_name("172.31.16.7/20".parse().expect("cidr"));
        assert_eq!(bridge, "brac1f100020");
        assert!(bridge.len() <= 15);
        let public = PublicNetworkConfig::for_node_dir(
            Path::new("/nonexistent/x"),
            "198.18.0.0/24".parse().expect("cidr"),
        );
        assert_eq!(public.bridge.len(), 11);
        assert!(public.bridge.starts_with("mlp"));
        assert_eq!(public.gateway(), Ipv4Addr::new(198, 18, 0, 1));
        let vpc = VpcConfig {
            network_id: "vpc-1".into(),
            netns: "ns".into(),
            state_dir: PathBuf::from("/x"),
            domain: String::new(),
            public: None,
            underlay: None,
        };
        assert_eq!(vpc.host_veth().len(), 15);
    }
}
