//! The instance networks of a node: one isolated network per VPC, each a
//! network namespace holding one bridge per subnet (gateway = first host of
//! the subnet), one tap per instance interface, dnsmasq handing out static
//! MAC→IP leases, the metadata service's address (169.254.169.254, on `lo`)
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
//!   the node's public bridge in the host namespace.
//!
//! Every operation converges on the desired state and is safe to repeat
//! after a crash at any point: the ports (tap → instance, MAC, IP, hostname,
//! subnet, public IP) are recorded in the state directory first, then the
//! rules, links, addresses and dnsmasq are made to match them.
//! [`crate::networks::Networks`] creates and removes these per VPC.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mallee_util::cidr::Ipv4Cidr;
use mallee_util::durable;
use mallee_util::process::{Cmd, ProcessError, run};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::firewall::{Direction, ESTABLISHED_MARK, Firewalls};

/// The metadata service's address, on `lo` of every VPC namespace.
pub const METADATA_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The nftables tables (families `bridge` and `ip`) of a VPC namespace.
pub const NFT_TABLE: &str = "mallee";
/// The namespace end of the veth pair to the public bridge.
pub const UPLINK: &str = "pub0";

const PORTS_FILE: &str = "ports.json";
const HOSTS_FILE: &str = "dnsmasq.hosts";
const LEASES_FILE: &str = "dnsmasq.leases";
const PID_FILE: &str = "dnsmasq.pid";
const LOG_FILE: &str = "dnsmasq.log";

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
}

/// The node's public network: a bridge in the host namespace carrying the
/// first host of `cidr`, which every VPC namespace joins with a veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicNetworkConfig {
    /// Bridge name (≤ 15 characters; `mlp` + 8 hex, see
    /// [`PublicNetworkConfig::for_node_dir`]).
    pub bridge: String,
    /// The zone's public range (`198.18.0.0/24`).
    pub cidr: Ipv4Cidr,
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
}

type Ports = BTreeMap<String, Port>;

/// The bridge of `subnet` inside a VPC namespace: `br` + the network
/// address in hex + the prefix (`brac1f000020` for 172.31.0.0/20).
pub fn bridge_name(subnet: Ipv4Cidr) -> String {
    format!(
        "br{:08x}{:02}",
        u32::from(subnet.network()),
        subnet.prefix()
    )
}

/// One VPC's network on this node (namespace, bridges, dnsmasq, rules).
/// Cheap to clone; clones share one lock so changes are applied in order.
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: VpcConfig,
    /// Serialises read-modify-write of the ports record and everything
    /// derived from it.
    lock: Mutex<()>,
    firewalls: std::sync::Mutex<Arc<Firewalls>>,
}

impl NodeNetwork {
    /// Builds the network or adopts the one already there (after an agent
    /// restart): namespace, `lo` with the metadata address, the uplink to
    /// the public bridge, the bridges, rules and dnsmasq for the recorded
    /// ports. dnsmasq is restarted if it died and reused if it runs.
    pub async fn ensure(
        config: VpcConfig,
        firewalls: Arc<Firewalls>,
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
                lock: Mutex::new(()),
                firewalls: std::sync::Mutex::new(firewalls),
            }),
        };
        network.converge().await?;
        Ok(network)
    }

    async fn converge(&self) -> Result<(), NetworkError> {
        let _guard = self.inner.lock.lock().await;
        self.ensure_namespace().await?;
        self.ensure_uplink().await?;
        let ports = self.load_ports().await?;
        self.apply(&ports).await?;
        self.remove_unused_bridges(&ports).await
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
        let _guard = self.inner.lock.lock().await;
        let ports = self.load_ports().await?;
        self.apply_rules(&ports).await
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
        let _guard = self.inner.lock.lock().await;
        let mut ports = self.load_ports().await?;
        // Another subnet of the VPC already using the same range would make
        // two bridges claim one route.
        if let Some((_, other)) = ports
            .iter()
            .find(|(name, p)| *name != tap && p.subnet != subnet && p.subnet.overlaps(subnet))
        {
            return Err(NetworkError::Invalid {
                what: "subnet (overlaps another subnet of the network)",
                value: format!("{subnet} vs {}", other.subnet),
            });
        }
        let displaced: Vec<String> = ports
            .iter()
            .filter(|(name, p)| *name != tap && (p.mac == port.mac || p.ip == ip))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &displaced {
            tracing::warn!(netns = self.netns(), tap = name, new_tap = tap, %ip, mac = %port.mac,
                "port replaced by a new assignment of its MAC or address");
            ports.remove(name);
        }
        if let Some(public) = port.public_ip {
            for (name, other) in ports.iter_mut() {
                if name != tap && other.public_ip == Some(public) {
                    tracing::info!(netns = self.netns(), tap = name, %public, "public address moved away");
                    other.public_ip = None;
                }
            }
        }
        ports.insert(tap.to_owned(), port);
        self.save_ports(&ports).await?;
        for name in &displaced {
            self.delete_link(name).await?;
        }
        // Rules first: the tap never forwards a frame unfiltered.
        self.apply(&ports).await?;
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
        self.remove_unused_bridges(&ports).await
    }

    /// Takes public address `public` from whichever port holds it (it
    /// moved to another network). Harmless when none does.
    pub async fn release_public_ip(&self, public: Ipv4Addr) -> Result<(), NetworkError> {
        let _guard = self.inner.lock.lock().await;
        let mut ports = self.load_ports().await?;
        let mut changed = false;
        for port in ports.values_mut() {
            if port.public_ip == Some(public) {
                port.public_ip = None;
                changed = true;
            }
        }
        if changed {
            self.save_ports(&ports).await?;
            self.apply(&ports).await?;
        }
        Ok(())
    }

    /// Removes interface `tap` (and any port holding `mac`): its link, its
    /// rules and NAT, its DHCP host entry and lease, and its subnet's bridge
    /// when no port is left on it. Repeating it is harmless.
    pub async fn unplug(&self, tap: &str, mac: &str) -> Result<(), NetworkError> {
        check_link_name(tap)?;
        let mac = normalize_mac(mac)?;
        let _guard = self.inner.lock.lock().await;
        let mut ports = self.load_ports().await?;
        let gone: Vec<String> = ports
            .iter()
            .filter(|(name, port)| *name == tap || port.mac == mac)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            ports.remove(name);
        }
        self.save_ports(&ports).await?;
        self.delete_link(tap).await?;
        for name in &gone {
            self.delete_link(name).await?;
        }
        self.apply(&ports).await?;
        self.remove_unused_bridges(&ports).await
    }

    /// The plugged ports by tap name.
    pub async fn ports(&self) -> Result<Vec<(String, Port)>, NetworkError> {
        let _guard = self.inner.lock.lock().await;
        Ok(self.load_ports().await?.into_iter().collect())
    }

    /// Tears the network down: stops dnsmasq, deletes the namespace (and
    /// with it the bridges, taps, veth pair and rules) and removes the state
    /// directory. Instances must be stopped first; a namespace stays alive
    /// while any process runs in it. Harmless when nothing is there.
    pub async fn destroy(config: &VpcConfig) -> Result<(), NetworkError> {
        config.validate()?;
        if let Some((pid, _)) = running_dnsmasq(&config.state_dir).await {
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

    /// Rules, NAT addresses, the bridges the ports need, dnsmasq.
    async fn apply(&self, ports: &Ports) -> Result<(), NetworkError> {
        for subnet in ports.values().map(|p| p.subnet).collect::<BTreeSet<_>>() {
            self.ensure_bridge(subnet).await?;
        }
        self.apply_rules(ports).await?;
        self.sync_public_addresses(ports).await?;
        self.write_hosts(ports).await?;
        self.sync_dnsmasq(ports).await
    }

    async fn ensure_namespace(&self) -> Result<(), NetworkError> {
        let ns = self.netns();
        if !namespace_exists(ns)
            && let Err(e) = run("ip", &["netns", "add", ns]).await
            && !namespace_exists(ns)
        {
            return Err(e.into());
        }
        self.ip(&["link", "set", "dev", "lo", "up"]).await?;
        self.ip(&[
            "addr",
            "replace",
            &format!("{METADATA_ADDR}/32"),
            "dev",
            "lo",
        ])
        .await?;
        // br_netfilter runs conntrack on bridged frames; the firewall's
        // replies-are-allowed rule depends on it.
        if !Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
            let _ = run("modprobe", &["br_netfilter"]).await;
        }
        if !Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
            return Err(NetworkError::Kernel(
                "the kernel's br_netfilter is needed for stateful security groups \
                 (modprobe br_netfilter)"
                    .to_owned(),
            ));
        }
        let mut sysctl = vec!["netns", "exec", ns, "sysctl", "-q", "-w"];
        sysctl.extend([
            "net.ipv4.ip_forward=1",
            "net.bridge.bridge-nf-call-iptables=1",
        ]);
        run("ip", &sysctl).await?;
        Ok(())
    }

    /// The veth pair to the public bridge, the routes through it.
    async fn ensure_uplink(&self) -> Result<(), NetworkError> {
        let Some(public) = &self.inner.config.public else {
            return Ok(());
        };
        let host = self.inner.config.host_veth();
        if !self.link_exists(UPLINK).await? {
            if host_link_exists(&host).await {
                run("ip", &["link", "del", "dev", &host]).await?;
            }
            run(
                "ip",
                &[
                    "link",
                    "add",
                    "name",
                    &host,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    UPLINK,
                    "netns",
                    self.netns(),
                ],
            )
            .await?;
        }
        run(
            "ip",
            &["link", "set", "dev", &host, "master", &public.bridge, "up"],
        )
        .await?;
        self.ip(&["link", "set", "dev", UPLINK, "up"]).await?;
        self.uplink_routes(public).await
    }

    async fn ensure_bridge(&self, subnet: Ipv4Cidr) -> Result<(), NetworkError> {
        let bridge = bridge_name(subnet);
        if !self.link_exists(&bridge).await? {
            // STP off (the default) so ports forward at once.
            let made = self
                .ip(&["link", "add", "name", &bridge, "type", "bridge"])
                .await;
            if let Err(e) = made
                && !self.link_exists(&bridge).await?
            {
                return Err(e);
            }
        }
        // Bridged IPv4 through conntrack, whatever the namespace default.
        self.ip(&[
            "link",
            "set",
            "dev",
            &bridge,
            "type",
            "bridge",
            "nf_call_iptables",
            "1",
        ])
        .await?;
        let gateway = format!("{}/{}", subnet.first_host(), subnet.prefix());
        let broadcast = subnet.broadcast().to_string();
        self.ip(&[
            "addr",
            "replace",
            &gateway,
            "broadcast",
            &broadcast,
            "dev",
            &bridge,
        ])
        .await?;
        self.ip(&["link", "set", "dev", &bridge, "up"]).await?;
        Ok(())
    }

    /// Deletes the bridges no port uses any more.
    async fn remove_unused_bridges(&self, ports: &Ports) -> Result<(), NetworkError> {
        let wanted: BTreeSet<String> = ports.values().map(|p| bridge_name(p.subnet)).collect();
        let out = self.ip(&["-j", "link", "show", "type", "bridge"]).await?;
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        for link in parsed.as_array().into_iter().flatten() {
            if let Some(name) = link["ifname"].as_str()
                && !wanted.contains(name)
            {
                self.delete_link(name).await?;
            }
        }
        Ok(())
    }

    /// The public addresses on the uplink: exactly those of the ports.
    async fn sync_public_addresses(&self, ports: &Ports) -> Result<(), NetworkError> {
        let Some(public) = &self.inner.config.public else {
            return Ok(());
        };
        let wanted: BTreeSet<String> = ports
            .values()
            .filter_map(|p| p.public_ip)
            .map(|ip| format!("{ip}/32"))
            .collect();
        let present = self.addresses(UPLINK).await?;
        // New ones before stale ones go: removing a device's last address
        // flushes its routes.
        for addr in &wanted {
            if present.contains(addr) {
                continue;
            }
            self.ip(&["addr", "replace", addr, "dev", UPLINK]).await?;
            // Whoever on the public network cached another owner's MAC for
            // this address (it moved here) learns the new one: the host
            // forgets it, the others hear a gratuitous ARP (best effort).
            let ip = addr.trim_end_matches("/32");
            let _ = run("ip", &["neigh", "del", ip, "dev", &public.bridge]).await;
            let _ = run(
                "ip",
                &[
                    "netns",
                    "exec",
                    self.netns(),
                    "busybox",
                    "arping",
                    "-U",
                    "-c",
                    "1",
                    "-w",
                    "1",
                    "-I",
                    UPLINK,
                    "-s",
                    ip,
                    ip,
                ],
            )
            .await;
        }
        for addr in &present {
            if !wanted.contains(addr) {
                self.ip(&["addr", "del", addr, "dev", UPLINK]).await?;
            }
        }
        self.uplink_routes(public).await
    }

    /// The public range on-link and the default route via the bridge.
    async fn uplink_routes(&self, public: &PublicNetworkConfig) -> Result<(), NetworkError> {
        let range = public.cidr.canonical().to_string();
        self.ip(&["route", "replace", &range, "dev", UPLINK])
            .await?;
        let gateway = public.gateway().to_string();
        self.ip(&[
            "route", "replace", "default", "via", &gateway, "dev", UPLINK, "onlink",
        ])
        .await?;
        Ok(())
    }

    async fn addresses(&self, link: &str) -> Result<Vec<String>, NetworkError> {
        let out = self.ip(&["-j", "-4", "addr", "show", "dev", link]).await?;
        let parsed: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| NetworkError::Output {
                command: format!("ip -n {} -j -4 addr show dev {link}", self.netns()),
                reason: e.to_string(),
            })?;
        let mut addrs = Vec::new();
        for link in parsed.as_array().into_iter().flatten() {
            for info in link["addr_info"].as_array().into_iter().flatten() {
                if let (Some(local), Some(len)) =
                    (info["local"].as_str(), info["prefixlen"].as_u64())
                {
                    addrs.push(format!("{local}/{len}"));
                }
            }
        }
        Ok(addrs)
    }

    async fn link_exists(&self, name: &str) -> Result<bool, NetworkError> {
        Ok(Cmd::new("ip")
            .args(["-n", self.netns(), "link", "show", "dev", name])
            .succeeds()
            .await?)
    }

    async fn delete_link(&self, name: &str) -> Result<(), NetworkError> {
        if self.link_exists(name).await?
            && let Err(e) = self.ip(&["link", "del", "dev", name]).await
            && self.link_exists(name).await?
        {
            return Err(e);
        }
        Ok(())
    }

    /// `ip -n NS ARGS…`, returning stdout.
    async fn ip(&self, args: &[&str]) -> Result<String, NetworkError> {
        Ok(Cmd::new("ip")
            .args(["-n", self.netns()])
            .args(args)
            .run()
            .await?)
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

    async fn write_hosts(&self, ports: &Ports) -> Result<(), NetworkError> {
        write_file(
            &self.inner.config.file(HOSTS_FILE),
            hosts_file(ports).as_bytes(),
        )
        .await
    }

    /// Replaces the namespace's tables in one transaction.
    async fn apply_rules(&self, ports: &Ports) -> Result<(), NetworkError> {
        let firewalls = self
            .inner
            .firewalls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let uplink = self.inner.config.public.is_some().then_some(UPLINK);
        let script = ruleset(ports, &firewalls, uplink);
        nft_apply(Some(self.netns()), &script).await
    }

    fn dnsmasq_args(&self, ports: &Ports) -> Vec<String> {
        let c = &self.inner.config;
        let path = |name: &str| c.file(name).display().to_string();
        let mut args = vec![
            "--conf-file=/dev/null".to_owned(),
            // DHCP only: no DNS server at all.
            "--port=0".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--bind-interfaces".to_owned(),
            "--except-interface=lo".to_owned(),
        ];
        for subnet in ports.values().map(|p| p.subnet).collect::<BTreeSet<_>>() {
            let bridge = bridge_name(subnet);
            args.push(format!("--interface={bridge}"));
            // Only addresses listed in the hosts file are handed out.
            args.push(format!(
                "--dhcp-range=set:{bridge},{},static,{},12h",
                subnet.network(),
                subnet.netmask()
            ));
            args.push(format!(
                "--dhcp-option=tag:{bridge},option:router,{}",
                subnet.first_host()
            ));
        }
        args.extend([
            format!("--dhcp-hostsfile={}", path(HOSTS_FILE)),
            format!("--dhcp-leasefile={}", path(LEASES_FILE)),
            // Answer at once for addresses we own, including to clients
            // with leases from before a restart.
            "--dhcp-authoritative".to_owned(),
            format!("--pid-file={}", path(PID_FILE)),
            format!("--log-facility={}", path(LOG_FILE)),
            // The hosts file lives in the agent's private state directory
            // and is re-read on SIGHUP, after dnsmasq would have dropped to
            // an unprivileged user that cannot read it.
            "--user=root".to_owned(),
        ]);
        if !c.domain.is_empty() {
            args.push(format!("--dhcp-option=option:domain-name,{}", c.domain));
        }
        args
    }

    /// Makes dnsmasq serve `ports`: started when not running (or running
    /// with other arguments, as when a subnet came or went), restarted with
    /// a cleaned lease file when a lease would block an assignment,
    /// otherwise told to re-read the hosts file; stopped when no port is
    /// left.
    async fn sync_dnsmasq(&self, ports: &Ports) -> Result<(), NetworkError> {
        let config = &self.inner.config;
        let running = running_dnsmasq(&config.state_dir).await;
        if ports.is_empty() {
            if let Some((pid, _)) = running {
                stop_process(pid).await;
            }
            return Ok(());
        }
        let args = self.dnsmasq_args(ports);
        let leases_path = config.file(LEASES_FILE);
        let leases = match tokio::fs::read_to_string(&leases_path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(NetworkError::Io {
                    path: leases_path,
                    source,
                });
            }
        };
        let kept = kept_leases(&leases, ports);
        let stale = kept != leases;
        match running {
            Some((pid, ref cmdline)) if !stale && cmdline.get(1..) == Some(&args[..]) => {
                kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|e| NetworkError::Dnsmasq {
                    netns: self.netns().to_owned(),
                    reason: format!("SIGHUP to {pid}: {e}"),
                })?;
                return Ok(());
            }
            Some((pid, _)) => stop_process(pid).await,
            None => {}
        }
        // dnsmasq only reads its lease file at start; a lease held by a MAC
        // that no longer owns the address would make it refuse the new owner.
        if stale {
            write_file(&leases_path, kept.as_bytes()).await?;
        }
        remove_file_if_exists(&config.file(PID_FILE)).await?;
        let mut full = vec!["netns", "exec", self.netns(), "dnsmasq"];
        full.extend(args.iter().map(String::as_str));
        // dnsmasq daemonises; its parent exits only once the daemon is set
        // up (or with the error that stopped it).
        run("ip", &full).await?;
        for _ in 0..100 {
            if running_dnsmasq(&config.state_dir).await.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(NetworkError::Dnsmasq {
            netns: self.netns().to_owned(),
            reason: format!(
                "no live process in {} (see {})",
                config.file(PID_FILE).display(),
                config.file(LOG_FILE).display()
            ),
        })
    }
}

/// The tap name for an instance: `tap` + 12 hex digits of a hash of its id,
/// so it fits Linux's 15-character limit and is the same after a restart.
pub fn tap_name(instance_id: &str) -> String {
    let digest = Sha256::digest(instance_id.as_bytes());
    format!("tap{}", &hex::encode(digest)[..12])
}

/// The nftables script replacing tables `bridge mallee` and `ip mallee`.
///
/// `bridge mallee`: frames from a port not listed are dropped (prerouting
/// policy), so a link attached to a bridge by mistake carries nothing; a
/// port may send only from its MAC and address; what leaves a port passes
/// its instance's egress chain (forward and input hooks), what reaches a
/// port its ingress chain (forward and output hooks).
///
/// `ip mallee`: the conntrack mark the bridge chains read, and with an
/// uplink the public addresses' DNAT/SNAT, no forwarding from the public
/// side except to DNAT'ed flows and their replies, and no private source
/// address leaving through the uplink.
fn ruleset(ports: &Ports, firewalls: &Firewalls, uplink: Option<&str>) -> String {
    let mark = format!("meta mark & {ESTABLISHED_MARK:#x} == {ESTABLISHED_MARK:#x}");
    let mut s = format!(
        "table bridge {NFT_TABLE}\ndelete table bridge {NFT_TABLE}\ntable bridge {NFT_TABLE} {{\n"
    );
    for (tap, port) in ports {
        let Port { mac, ip, .. } = port;
        s.push_str(&format!(
            "  chain port_{tap} {{\n\
             \x20   ether saddr != {mac} drop\n\
             \x20   ether type arp arp htype 1 arp ptype ip arp saddr ether {mac} arp saddr ip {{ 0.0.0.0, {ip} }} accept\n\
             \x20   ether type ip ip saddr {ip} accept\n\
             \x20   ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept\n\
             \x20   drop\n\
             \x20 }}\n"
        ));
        let firewall = firewalls.get(&port.instance_id);
        s.push_str(&format!(
            "  chain egress_{tap} {{\n\
             \x20   {mark} return\n\
             \x20   ether type arp return\n\
             \x20   ether type ip ip protocol udp udp sport 68 udp dport 67 return\n\
             \x20   ether type ip ip daddr {METADATA_ADDR} ip protocol tcp tcp dport 80 return\n"
        ));
        if let Some(fw) = firewall {
            for rule in crate::firewall::render(&fw.egress, Direction::Egress, "return") {
                s.push_str(&format!("    {rule}\n"));
            }
        }
        s.push_str("    drop\n  }\n");
        s.push_str(&format!(
            "  chain ingress_{tap} {{\n\
             \x20   {mark} accept\n\
             \x20   ether type arp accept\n\
             \x20   ether type ip ip protocol udp udp sport 67 udp dport 68 accept\n"
        ));
        if let Some(fw) = firewall {
            for rule in crate::firewall::render(&fw.ingress, Direction::Ingress, "accept") {
                s.push_str(&format!("    {rule}\n"));
            }
        }
        s.push_str("    drop\n  }\n");
    }
    let hook = |name: &str, hook: &str, priority: i32, policy: &str, body: String| {
        format!(
            "  chain {name} {{\n    type filter hook {hook} priority {priority}; policy {policy};\n{body}  }}\n"
        )
    };
    let each = |f: &dyn Fn(&str) -> String| -> String { ports.keys().map(|t| f(t)).collect() };
    s.push_str(&hook(
        "prerouting",
        "prerouting",
        -200,
        "drop",
        each(&|t| format!("    iifname \"{t}\" jump port_{t}\n")),
    ));
    s.push_str(&hook(
        "forward",
        "forward",
        0,
        "drop",
        each(&|t| format!("    iifname \"{t}\" jump egress_{t}\n"))
            + &each(&|t| format!("    oifname \"{t}\" jump ingress_{t}\n")),
    ));
    s.push_str(&hook(
        "input",
        "input",
        0,
        "accept",
        each(&|t| format!("    iifname \"{t}\" jump egress_{t}\n")),
    ));
    s.push_str(&hook(
        "output",
        "output",
        0,
        "accept",
        each(&|t| format!("    oifname \"{t}\" jump ingress_{t}\n")),
    ));
    s.push_str("}\n");

    let set_mark = format!(
        "    meta mark set meta mark & {:#x}\n    ct state established,related meta mark set meta mark | {ESTABLISHED_MARK:#x}\n",
        !ESTABLISHED_MARK
    );
    s.push_str(&format!(
        "table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\ntable ip {NFT_TABLE} {{\n"
    ));
    s.push_str(&hook(
        "mark_in",
        "prerouting",
        -150,
        "accept",
        set_mark.clone(),
    ));
    s.push_str(&hook("mark_out", "output", -150, "accept", set_mark));
    if let Some(uplink) = uplink {
        let mapped: Vec<(Ipv4Addr, Ipv4Addr)> = ports
            .values()
            .filter_map(|p| p.public_ip.map(|public| (public, p.ip)))
            .collect();
        let mut dnat = String::new();
        let mut snat = String::new();
        for (public, private) in &mapped {
            dnat.push_str(&format!(
                "    iifname \"{uplink}\" ip daddr {public} dnat to {private}\n"
            ));
            snat.push_str(&format!(
                "    oifname \"{uplink}\" ip saddr {private} snat to {public}\n"
            ));
        }
        s.push_str(&format!(
            "  chain public_dnat {{\n    type nat hook prerouting priority -100; policy accept;\n{dnat}  }}\n"
        ));
        s.push_str(&format!(
            "  chain public_snat {{\n    type nat hook postrouting priority 100; policy accept;\n{snat}  }}\n"
        ));
        s.push_str(&hook(
            "forward",
            "forward",
            0,
            "accept",
            format!(
                "    iifname \"{uplink}\" ct state established,related accept\n\
                 \x20   iifname \"{uplink}\" ct status dnat accept\n\
                 \x20   iifname \"{uplink}\" drop\n"
            ),
        ));
        let mut leak = String::new();
        if !mapped.is_empty() {
            let publics: Vec<String> = mapped.iter().map(|(p, _)| p.to_string()).collect();
            leak.push_str(&format!(
                "    oifname \"{uplink}\" ip saddr {{ {} }} accept\n",
                publics.join(", ")
            ));
        }
        leak.push_str(&format!("    oifname \"{uplink}\" drop\n"));
        s.push_str(&hook("leak", "postrouting", 200, "accept", leak));
    }
    s.push_str("}\n");
    s
}

/// Runs `nft -f -` with `script` (inside `netns` when given): one
/// transaction, applied whole or not at all.
pub(crate) async fn nft_apply(netns: Option<&str>, script: &str) -> Result<(), NetworkError> {
    let nft = match netns {
        Some(ns) => Cmd::new("ip").args(["netns", "exec", ns, "nft"]),
        None => Cmd::new("nft"),
    };
    nft.args(["-f", "-"]).stdin(script).run().await?;
    Ok(())
}

/// dnsmasq's `--dhcp-hostsfile`: `mac,ip,name`. The name is the first
/// label only: DHCP's host-name option carries the short name (the domain
/// goes in option 15), and dnsmasq rejects a qualified name whose domain is
/// not its own `--domain`.
fn hosts_file(ports: &Ports) -> String {
    ports
        .values()
        .map(|p| {
            let short = p.hostname.split('.').next().unwrap_or(&p.hostname);
            format!("{},{},{short}\n", p.mac, p.ip)
        })
        .collect()
}

/// The lease file without leases whose MAC or address no longer matches a
/// port (dnsmasq's format: `expiry mac ip hostname client-id`).
fn kept_leases(leases: &str, ports: &Ports) -> String {
    leases
        .lines()
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let (_, Some(mac), Some(ip)) = (fields.next(), fields.next(), fields.next()) else {
                return false;
            };
            let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                return false;
            };
            ports
                .values()
                .any(|p| p.mac.eq_ignore_ascii_case(mac) && p.ip == ip)
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

async fn host_link_exists(name: &str) -> bool {
    Cmd::new("ip")
        .args(["link", "show", "dev", name])
        .succeeds()
        .await
        .unwrap_or(false)
}

/// The pid and command line of this network's dnsmasq, if it runs. The
/// command line must name our pid file, so a recycled pid is never taken for
/// ours.
async fn running_dnsmasq(state_dir: &Path) -> Option<(i32, Vec<String>)> {
    let pid_path = state_dir.join(PID_FILE);
    let pid: i32 = tokio::fs::read_to_string(&pid_path)
        .await
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let raw = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
    let cmdline: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let is_dnsmasq = cmdline
        .first()
        .is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "dnsmasq"));
    let ours = cmdline
        .iter()
        .any(|a| a.strip_prefix("--pid-file=") == Some(&pid_path.display().to_string()));
    // A zombie has an empty cmdline and is excluded above.
    (is_dnsmasq && ours).then_some((pid, cmdline))
}

/// SIGTERM, then SIGKILL after two seconds.
async fn stop_process(pid: i32) {
    let pid = Pid::from_raw(pid);
    if kill(pid, Signal::SIGTERM).is_err() {
        return;
    }
    for _ in 0..100 {
        if !process_alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = kill(pid, Signal::SIGKILL);
    for _ in 0..50 {
        if !process_alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn process_alive(pid: Pid) -> bool {
    // dnsmasq is not our child (it daemonised), so it is reaped by init;
    // a zombie's state is `Z` until then.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub(crate) fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Stores `bytes` at `path` durably (see [`durable::write_atomic`]).
pub(crate) async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), NetworkError> {
    durable::write_atomic_async(path, bytes)
        .await
        .map_err(|source| NetworkError::Io {
            path: path.to_owned(),
            source,
        })
}

async fn remove_file_if_exists(path: &Path) -> Result<(), NetworkError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetworkError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

pub(crate) fn check_link_name(name: &str) -> Result<(), NetworkError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "lo"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NetworkError::Invalid {
            what: "interface name",
            value: name.to_owned(),
        })
    }
}

fn valid_netns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Letters, digits, `-` and `.`; what a DHCP host name or domain may hold
/// (and nothing that could break a dnsmasq hosts-file line).
fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `aa:bb:cc:dd:ee:ff`, lower case; unicast only.
fn normalize_mac(mac: &str) -> Result<String, NetworkError> {
    let invalid = || NetworkError::Invalid {
        what: "MAC address",
        value: mac.to_owned(),
    };
    let octets: Vec<u8> = mac
        .split(':')
        .map(|o| {
            if o.len() == 2 {
                u8::from_str_radix(o, 16).map_err(|_| invalid())
            } else {
                Err(invalid())
            }
        })
        .collect::<Result<_, _>>()?;
    if octets.len() != 6 || octets[0] & 1 == 1 {
        return Err(invalid());
    }
    Ok(octets
        .iter()
        .map(|o| format!("{o:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(instance: &str, mac: &str, ip: [u8; 4]) -> Port {
        Port {
            instance_id: instance.into(),
            mac: mac.into(),
            ip: Ipv4Addr::from(ip),
            hostname: "a".into(),
            subnet: "10.0.0.0/24".parse().expect("subnet"),
            public_ip: None,
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
        };
        assert_eq!(vpc.host_veth().len(), 15);
    }

    #[test]
    fn macs_are_checked_and_normalised() {
        assert_eq!(
            normalize_mac("02:AB:cd:00:01:ff").expect("valid"),
            "02:ab:cd:00:01:ff"
        );
        for bad in [
            "",
            "02:ab:cd:00:01",
            "01:00:5e:00:00:01",
            "02:ab:cd:00:01:fff",
            "zz:ab:cd:00:01:ff",
        ] {
            assert!(normalize_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stale_leases_are_dropped() {
        let mut ports = Ports::new();
        ports.insert(
            "tap1".into(),
            port("i-1", "02:00:00:00:00:01", [10, 0, 0, 5]),
        );
        let leases = "100 02:00:00:00:00:01 10.0.0.5 a *\n\
                      100 02:00:00:00:00:02 10.0.0.6 b *\n\
                      100 02:00:00:00:00:03 10.0.0.5 c *\n";
        assert_eq!(
            kept_leases(leases, &ports),
            "100 02:00:00:00:00:01 10.0.0.5 a *\n"
        );
    }

    #[test]
    fn ruleset_lists_every_port_its_firewall_and_nat() {
        let mut ports = Ports::new();
        let mut a = port("i-a", "02:00:00:00:00:01", [10, 0, 0, 5]);
        a.public_ip = Some(Ipv4Addr::new(198, 18, 0, 9));
        ports.insert("tapa".into(), a);
        let mut firewalls = Firewalls::new();
        firewalls.insert(
            "i-a".into(),
            mallee_node_api::InstanceFirewall {
                instance_id: "i-a".into(),
                ingress: vec![mallee_node_api::FirewallRule {
                    protocol: "tcp".into(),
                    from_port: Some(22),
                    to_port: Some(22),
                    cidrs: vec!["0.0.0.0/0".into()],
                }],
                egress: Vec::new(),
            },
        );
        let rules = ruleset(&ports, &firewalls, Some(UPLINK));
        assert!(rules.contains("iifname \"tapa\" jump port_tapa"));
        assert!(rules.contains("iifname \"tapa\" jump egress_tapa"));
        assert!(rules.contains("oifname \"tapa\" jump ingress_tapa"));
        assert!(rules.contains("ether saddr != 02:00:00:00:00:01 drop"));
        assert!(rules.contains("ip saddr 10.0.0.5 accept"));
        assert!(rules.contains("ip protocol tcp tcp dport 22 accept"));
        assert!(rules.contains("ip daddr 198.18.0.9 dnat to 10.0.0.5"));
        assert!(rules.contains("ip saddr 10.0.0.5 snat to 198.18.0.9"));
        assert!(rules.starts_with("table bridge mallee\ndelete table bridge mallee\n"));
        let bare = ruleset(&ports, &Firewalls::new(), None);
        assert!(!bare.contains("dport 22"));
        assert!(!bare.contains("dnat"));
    }
}
