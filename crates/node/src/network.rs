//! The instance network of a node: one isolated layer-2 segment per network
//! (today one per node, one per VPC later), built from a network namespace
//! holding bridge `br0`, one tap per instance interface, dnsmasq handing out
//! static MAC→IP leases, and nftables rules that pin every tap to its MAC and
//! IPv4 address.
//!
//! The namespace has no link to the host's network, so no guest traffic can
//! leave the machine. The bridge carries the gateway address (first host of
//! the subnet) and 169.254.169.254/32, where the metadata service listens;
//! because the anti-spoofing rules guarantee that an IPv4 packet from a tap
//! carries that tap's address, the metadata service can identify an instance
//! by its source address alone.
//!
//! Every operation converges on the desired state and is safe to repeat after
//! a crash at any point: the ports (tap → MAC, IP, hostname) are recorded in
//! the state directory first, then the dnsmasq hosts file, the nftables table
//! (rebuilt whole on every change, so nothing stale survives an unplug) and
//! the links are made to match them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::Mutex;

/// The bridge inside every network namespace.
pub const BRIDGE: &str = "br0";
/// The metadata service's address, present on every bridge.
pub const METADATA_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The nftables table (family `bridge`) holding the per-tap rules.
pub const NFT_TABLE: &str = "mallee";

const PORTS_FILE: &str = "ports.json";
const HOSTS_FILE: &str = "dnsmasq.hosts";
const LEASES_FILE: &str = "dnsmasq.leases";
const PID_FILE: &str = "dnsmasq.pid";
const LOG_FILE: &str = "dnsmasq.log";

/// Errors of the instance network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A command could not be started at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
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
}

/// An IPv4 network in CIDR notation (`172.31.0.0/20`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address as written (host bits may be set).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The netmask (`255.255.240.0` for /20).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_bits())
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits())
    }

    /// The first host address, which is the gateway (as in AWS subnets).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()).wrapping_add(1))
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.network())
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || NetworkError::Invalid {
            what: "IPv4 CIDR",
            value: s.to_owned(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if prefix > 32 {
            return Err(invalid());
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Where and how a network is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Network namespace name, unique on the host (`mallee-nd0a1b2c3d`).
    pub netns: String,
    /// The instances' subnet; its first host is the gateway.
    pub subnet: Ipv4Cidr,
    /// Directory for the ports record, dnsmasq's hosts, lease, pid and log
    /// files. Created if missing.
    pub state_dir: PathBuf,
    /// DNS domain handed out by DHCP (`mallee-1.compute.internal`).
    pub domain: String,
}

impl NetworkConfig {
    fn validate(&self) -> Result<(), NetworkError> {
        if !valid_netns_name(&self.netns) {
            return Err(NetworkError::Invalid {
                what: "network namespace name",
                value: self.netns.clone(),
            });
        }
        // At least a gateway and one instance; /31 and /32 have no room.
        if self.subnet.prefix > 30 || self.subnet.prefix < 8 {
            return Err(NetworkError::Invalid {
                what: "subnet (prefix must be 8..=30)",
                value: self.subnet.to_string(),
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
}

/// One plugged interface, as recorded in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Port {
    mac: String,
    ip: Ipv4Addr,
    hostname: String,
}

type Ports = BTreeMap<String, Port>;

/// A node's instance network (one namespace, bridge, dnsmasq and rule set).
/// Cheap to clone; clones share one lock so changes are applied in order.
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: NetworkConfig,
    /// Serialises read-modify-write of the ports record and everything
    /// derived from it.
    lock: Mutex<()>,
}

impl NodeNetwork {
    /// Builds the network or adopts the one already there (after an agent
    /// restart): namespace, `lo`, bridge with the gateway and metadata
    /// addresses, the nftables rules and dnsmasq for the recorded ports.
    /// dnsmasq is restarted if it died and reused if it runs.
    pub async fn ensure(config: NetworkConfig) -> Result<Self, NetworkError> {
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
            }),
        };
        network.converge().await?;
        Ok(network)
    }

    async fn converge(&self) -> Result<(), NetworkError> {
        let _guard = self.inner.lock.lock().await;
        self.ensure_namespace().await?;
        self.ensure_bridge().await?;
        let ports = self.load_ports().await?;
        self.apply_rules(&ports).await?;
        self.write_hosts(&ports).await?;
        self.sync_dnsmasq(&ports).await?;
        Ok(())
    }

    /// The network namespace's name.
    pub fn netns(&self) -> &str {
        &self.inner.config.netns
    }

    /// The gateway address (first host of the subnet), on `br0`.
    pub fn gateway(&self) -> Ipv4Addr {
        self.inner.config.subnet.first_host()
    }

    /// The subnet.
    pub fn subnet(&self) -> Ipv4Cidr {
        self.inner.config.subnet
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &NetworkConfig {
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

    /// Attaches interface `tap` (created as a persistent tap if no link of
    /// that name exists in the namespace) to the bridge, allows it to send
    /// only from `mac` and `ip`, and gives `mac` the DHCP lease `ip` with
    /// `hostname`. Repeating it is harmless; a port previously holding the
    /// same MAC or IP under another tap name is replaced (the latest
    /// assignment is the truth) and its tap removed.
    pub async fn plug(
        &self,
        tap: &str,
        mac: &str,
        ip: Ipv4Addr,
        hostname: &str,
    ) -> Result<(), NetworkError> {
        check_link_name(tap)?;
        let mac = normalize_mac(mac)?;
        let subnet = self.inner.config.subnet;
        if !subnet.contains(ip)
            || ip == subnet.network()
            || ip == subnet.broadcast()
            || ip == self.gateway()
        {
            return Err(NetworkError::Invalid {
                what: "instance address (outside the subnet or reserved)",
                value: ip.to_string(),
            });
        }
        if !valid_hostname(hostname) {
            return Err(NetworkError::Invalid {
                what: "hostname",
                value: hostname.to_owned(),
            });
        }
        let _guard = self.inner.lock.lock().await;
        let mut ports = self.load_ports().await?;
        let displaced: Vec<String> = ports
            .iter()
            .filter(|(name, port)| *name != tap && (port.mac == mac || port.ip == ip))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &displaced {
            tracing::warn!(netns = self.netns(), tap = name, new_tap = tap, %ip, %mac,
                "port replaced by a new assignment of its MAC or address");
            ports.remove(name);
        }
        ports.insert(
            tap.to_owned(),
            Port {
                mac: mac.clone(),
                ip,
                hostname: hostname.to_owned(),
            },
        );
        self.save_ports(&ports).await?;
        for name in &displaced {
            self.delete_link(name).await?;
        }
        // Rules first: the tap never forwards a frame unfiltered.
        self.apply_rules(&ports).await?;
        self.write_hosts(&ports).await?;
        self.sync_dnsmasq(&ports).await?;
        if !self.link_exists(tap).await? {
            let created = self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"]).await;
            // A concurrent or half-finished earlier attempt may have made it.
            if let Err(e) = created
                && !self.link_exists(tap).await?
            {
                return Err(e);
            }
        }
        self.ip(&["link", "set", "dev", tap, "master", BRIDGE, "up"])
            .await?;
        Ok(())
    }

    /// Removes interface `tap` (and any port holding `mac`): its link, its
    /// rules, its DHCP host entry and lease. Repeating it is harmless.
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
        self.apply_rules(&ports).await?;
        self.write_hosts(&ports).await?;
        self.sync_dnsmasq(&ports).await?;
        Ok(())
    }

    /// The plugged ports: `(tap, mac, ip, hostname)`, ordered by tap name.
    pub async fn ports(&self) -> Result<Vec<(String, String, Ipv4Addr, String)>, NetworkError> {
        let _guard = self.inner.lock.lock().await;
        Ok(self
            .load_ports()
            .await?
            .into_iter()
            .map(|(tap, p)| (tap, p.mac, p.ip, p.hostname))
            .collect())
    }

    /// Tears the network down: stops dnsmasq, deletes the namespace (and
    /// with it the bridge, taps and rules) and removes the state files.
    /// Instances must be stopped first; a namespace stays alive while any
    /// process runs in it. Harmless when nothing is there.
    pub async fn destroy(config: &NetworkConfig) -> Result<(), NetworkError> {
        config.validate()?;
        if let Some((pid, _)) = running_dnsmasq(config).await {
            stop_process(pid).await;
        }
        if namespace_exists(&config.netns) {
            let out = run("ip", &["netns", "del", &config.netns]).await;
            if let Err(e) = out
                && namespace_exists(&config.netns)
            {
                return Err(e);
            }
        }
        for name in [PORTS_FILE, HOSTS_FILE, LEASES_FILE, PID_FILE] {
            remove_file_if_exists(&config.file(name)).await?;
        }
        Ok(())
    }

    async fn ensure_namespace(&self) -> Result<(), NetworkError> {
        let ns = self.netns();
        if !namespace_exists(ns)
            && let Err(e) = run("ip", &["netns", "add", ns]).await
            && !namespace_exists(ns)
        {
            return Err(e);
        }
        self.ip(&["link", "set", "dev", "lo", "up"]).await?;
        Ok(())
    }

    async fn ensure_bridge(&self) -> Result<(), NetworkError> {
        if !self.link_exists(BRIDGE).await? {
            // STP off (the default) so ports forward at once.
            self.ip(&["link", "add", "name", BRIDGE, "type", "bridge"])
                .await?;
        }
        let subnet = self.inner.config.subnet;
        let wanted = [
            format!("{}/{}", self.gateway(), subnet.prefix),
            format!("{METADATA_ADDR}/32"),
        ];
        // Drop addresses from an earlier configuration (another subnet).
        for present in self.bridge_addresses().await? {
            if !wanted.contains(&present) {
                self.ip(&["addr", "del", &present, "dev", BRIDGE]).await?;
            }
        }
        let broadcast = subnet.broadcast().to_string();
        self.ip(&[
            "addr",
            "replace",
            &wanted[0],
            "broadcast",
            &broadcast,
            "dev",
            BRIDGE,
        ])
        .await?;
        self.ip(&["addr", "replace", &wanted[1], "dev", BRIDGE])
            .await?;
        self.ip(&["link", "set", "dev", BRIDGE, "up"]).await?;
        Ok(())
    }

    async fn bridge_addresses(&self) -> Result<Vec<String>, NetworkError> {
        let out = self
            .ip(&["-j", "-4", "addr", "show", "dev", BRIDGE])
            .await?;
        let parsed: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| NetworkError::Command {
                command: format!("ip -n {} -j -4 addr show dev {BRIDGE}", self.netns()),
                status: "unparsable output".to_owned(),
                stderr: e.to_string(),
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
        let out = Command::new("ip")
            .args(["-n", self.netns(), "link", "show", "dev", name])
            .output()
            .await
            .map_err(|source| NetworkError::Spawn {
                command: format!("ip -n {} link show dev {name}", self.netns()),
                source,
            })?;
        Ok(out.status.success())
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
        let mut full = vec!["-n", self.netns()];
        full.extend_from_slice(args);
        run("ip", &full).await
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
        write_atomic(&self.inner.config.file(PORTS_FILE), &json).await
    }

    async fn write_hosts(&self, ports: &Ports) -> Result<(), NetworkError> {
        write_atomic(
            &self.inner.config.file(HOSTS_FILE),
            hosts_file(ports).as_bytes(),
        )
        .await
    }

    /// Replaces the whole nftables table in one transaction.
    async fn apply_rules(&self, ports: &Ports) -> Result<(), NetworkError> {
        let script = ruleset(ports);
        let command = format!("ip netns exec {} nft -f -", self.netns());
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.netns(), "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|source| NetworkError::Spawn {
                command: command.clone(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|source| NetworkError::Spawn {
                    command: command.clone(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| NetworkError::Spawn {
                command: command.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(NetworkError::Command {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    fn dnsmasq_args(&self) -> Vec<String> {
        let c = &self.inner.config;
        let path = |name: &str| c.file(name).display().to_string();
        let mut args = vec![
            "--conf-file=/dev/null".to_owned(),
            // DHCP only: no DNS server at all.
            "--port=0".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--bind-interfaces".to_owned(),
            format!("--interface={BRIDGE}"),
            "--except-interface=lo".to_owned(),
            // Only addresses listed in the hosts file are handed out.
            format!(
                "--dhcp-range={},static,{},12h",
                c.subnet.network(),
                c.subnet.netmask()
            ),
            format!("--dhcp-hostsfile={}", path(HOSTS_FILE)),
            format!("--dhcp-leasefile={}", path(LEASES_FILE)),
            format!("--dhcp-option=option:router,{}", self.gateway()),
            // Answer at once for addresses we own, including to clients
            // with leases from before a restart.
            "--dhcp-authoritative".to_owned(),
            format!("--pid-file={}", path(PID_FILE)),
            format!("--log-facility={}", path(LOG_FILE)),
            // The hosts file lives in the agent's private state directory
            // and is re-read on SIGHUP, after dnsmasq would have dropped to
            // an unprivileged user that cannot read it.
            "--user=root".to_owned(),
        ];
        if !c.domain.is_empty() {
            args.push(format!("--dhcp-option=option:domain-name,{}", c.domain));
        }
        args
    }

    /// Makes dnsmasq serve `ports`: started when not running (or running
    /// with other arguments), restarted with a cleaned lease file when a
    /// lease would block an assignment, otherwise told to re-read the hosts
    /// file.
    async fn sync_dnsmasq(&self, ports: &Ports) -> Result<(), NetworkError> {
        let config = &self.inner.config;
        let args = self.dnsmasq_args();
        let running = running_dnsmasq(config).await;
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
            write_atomic(&leases_path, kept.as_bytes()).await?;
        }
        remove_file_if_exists(&config.file(PID_FILE)).await?;
        let mut full = vec!["netns", "exec", self.netns(), "dnsmasq"];
        full.extend(args.iter().map(String::as_str));
        // dnsmasq daemonises; its parent exits only once the daemon is set
        // up (or with the error that stopped it).
        run("ip", &full).await?;
        for _ in 0..100 {
            if running_dnsmasq(config).await.is_some() {
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

/// The nftables script replacing table `bridge mallee`. Frames from a port
/// not listed are dropped (prerouting policy), so a link attached to the
/// bridge by mistake carries nothing.
fn ruleset(ports: &Ports) -> String {
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
    }
    s.push_str(
        "  chain prerouting {\n    type filter hook prerouting priority -200; policy drop;\n",
    );
    for tap in ports.keys() {
        s.push_str(&format!("    iifname \"{tap}\" jump port_{tap}\n"));
    }
    s.push_str("  }\n}\n");
    s
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

/// The pid and command line of this network's dnsmasq, if it runs. The
/// command line must name our pid file, so a recycled pid is never taken for
/// ours.
async fn running_dnsmasq(config: &NetworkConfig) -> Option<(i32, Vec<String>)> {
    let pid_path = config.file(PID_FILE);
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

fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Runs a command, returning stdout; failure carries its stderr.
async fn run(program: &str, args: &[&str]) -> Result<String, NetworkError> {
    let command = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| NetworkError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetworkError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetworkError> {
    let tmp = path.with_extension("tmp");
    let io = |source| NetworkError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
    file.write_all(bytes).await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    drop(file);
    tokio::fs::rename(&tmp, path).await.map_err(io)
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

fn check_link_name(name: &str) -> Result<(), NetworkError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != BRIDGE
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

    #[test]
    fn cidr_arithmetic() {
        let c: Ipv4Cidr = "172.31.5.9/20".parse().expect("parses");
        assert_eq!(c.to_string(), "172.31.5.9/20");
        assert_eq!(c.network(), Ipv4Addr::new(172, 31, 0, 0));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 240, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(172, 31, 15, 255));
        assert_eq!(c.first_host(), Ipv4Addr::new(172, 31, 0, 1));
        assert!(c.contains(Ipv4Addr::new(172, 31, 15, 254)));
        assert!(!c.contains(Ipv4Addr::new(172, 31, 16, 1)));
        for bad in ["172.31.0.0", "172.31.0.0/33", "x/20", "172.31.0.0/"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
        let all: Ipv4Cidr = "0.0.0.0/0".parse().expect("parses");
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn tap_names_fit_and_are_stable() {
        let a = tap_name("i-0123456789abcdef0");
        assert_eq!(a.len(), 15);
        assert_eq!(a, tap_name("i-0123456789abcdef0"));
        assert_ne!(a, tap_name("i-0123456789abcdef1"));
        assert!(check_link_name(&a).is_ok());
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
            Port {
                mac: "02:00:00:00:00:01".into(),
                ip: Ipv4Addr::new(10, 0, 0, 5),
                hostname: "a".into(),
            },
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
    fn ruleset_lists_every_port() {
        let mut ports = Ports::new();
        ports.insert(
            "tapa".into(),
            Port {
                mac: "02:00:00:00:00:01".into(),
                ip: Ipv4Addr::new(10, 0, 0, 5),
                hostname: "a".into(),
            },
        );
        let rules = ruleset(&ports);
        assert!(rules.contains("iifname \"tapa\" jump port_tapa"));
        assert!(rules.contains("ether saddr != 02:00:00:00:00:01 drop"));
        assert!(rules.contains("ip saddr 10.0.0.5 accept"));
        assert!(rules.starts_with("table bridge mallee\ndelete table bridge mallee\n"));
    }
}
