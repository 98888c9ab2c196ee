//! A VPC network's part of the VXLAN overlay (see
//! [`mallee_node_api::Overlay`]): every subnet of the VPC is a segment
//! with its own VNI. For each segment the VPC namespace has the subnet's
//! bridge (whose gateway address and MAC are the same on every node) and,
//! once another node holds the VPC, a vxlan port on that bridge: made in
//! the node's host namespace (so its UDP socket, port 4789, is on the
//! underlay address) and moved into the VPC namespace, `nolearning`, its
//! bridge port not learning either. Its forwarding entries come only from
//! the controller: a flood entry per peer node (broadcasts and unknown
//! MACs go to each) and, per remote instance, its MAC → its node, a bridge
//! entry sending that MAC to the port, and a permanent neighbour entry so
//! the gateway routes to it between subnets without ARP crossing nodes.
//! Everything is read back and corrected on every change, so a repeat
//! after a crash converges.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use mallee_node_api::OverlayNetwork;
use mallee_util::cidr::Ipv4Cidr;
use mallee_util::process::{Cmd, run};
use sha2::{Digest, Sha256};

use super::names::{normalize_mac, valid_hostname};
use super::system::host_link_exists;
use super::{NetworkError, NodeNetwork, Ports, bridge_name};

/// The UDP port of VXLAN (IANA's).
pub const VXLAN_PORT: u16 = 4789;
/// What VXLAN over IPv4 adds to every frame: outer IPv4 (20), UDP (8),
/// VXLAN (8) and the inner Ethernet header (14).
pub const VXLAN_OVERHEAD: u32 = 50;
/// The largest MTU guests are given: their taps are 1500.
const GUEST_MTU_MAX: u32 = 1500;
/// The all-zero MAC of flood entries.
const FLOOD: &str = "00:00:00:00:00:00";

/// The node's end of the overlay: the address VXLAN is sent from and
/// received on, and the MTU of the link carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Underlay {
    /// The node's address on the network between nodes.
    pub local: Ipv4Addr,
    /// MTU of the interface holding `local`.
    pub mtu: u32,
}

impl Underlay {
    /// The underlay at `local`, with the MTU of the interface of this
    /// (network) namespace that holds it; an error when none does.
    pub async fn detect(local: Ipv4Addr) -> Result<Self, NetworkError> {
        let command = "ip -j -4 addr show";
        let out = Cmd::new("ip")
            .args(["-j", "-4", "addr", "show"])
            .run()
            .await?;
        let links: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| NetworkError::Output {
                command: command.into(),
                reason: e.to_string(),
            })?;
        let wanted = local.to_string();
        for link in links.as_array().into_iter().flatten() {
            let holds = link["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["local"].as_str() == Some(wanted.as_str()));
            if holds {
                let mtu = link["mtu"]
                    .as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .ok_or_else(|| NetworkError::Output {
                        command: command.into(),
                        reason: format!("no MTU for the link holding {local}"),
                    })?;
                return Ok(Self { local, mtu });
            }
        }
        Err(NetworkError::Invalid {
            what: "underlay address (not an address of this host)",
            value: wanted,
        })
    }

    /// The source address of this host's route to `peer`: the default
    /// underlay address of a node whose controller is at `peer`. `None`
    /// when there is no route.
    pub async fn source_toward(peer: Ipv4Addr) -> Option<Ipv4Addr> {
        let out = run("ip", &["-j", "route", "get", &peer.to_string()])
            .await
            .ok()?;
        let routes: serde_json::Value = serde_json::from_str(&out).ok()?;
        routes.get(0)?["prefsrc"].as_str()?.parse().ok()
    }

    /// The MTU guests get (DHCP option 26): the underlay's less VXLAN's
    /// overhead, at most 1500.
    pub fn guest_mtu(&self) -> u32 {
        self.mtu
            .saturating_sub(VXLAN_OVERHEAD)
            .clamp(576, GUEST_MTU_MAX)
    }
}

/// A segment of the VPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpec {
    /// The subnet (canonical).
    pub subnet: Ipv4Cidr,
    /// Its VNI.
    pub vni: u32,
}

/// An interface of the VPC on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSpec {
    /// MAC (normalised).
    pub mac: String,
    /// Private address.
    pub ip: Ipv4Addr,
    /// Its segment.
    pub vni: u32,
    /// Its node's underlay address.
    pub underlay: Ipv4Addr,
    /// The names the VPC's resolver gives its address.
    pub dns_names: Vec<String>,
}

/// One VPC's part of the overlay, checked and parsed. The default (no
/// segment) is a VPC on this node alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpcOverlay {
    /// The VPC's subnets.
    pub segments: Vec<SegmentSpec>,
    /// Underlay addresses of the other nodes with the VPC.
    pub peers: BTreeSet<Ipv4Addr>,
    /// The VPC's interfaces on other nodes.
    pub remotes: Vec<RemoteSpec>,
}

impl VpcOverlay {
    /// Parses the controller's description of one VPC (checked by
    /// [`mallee_node_api::Overlay::check`] first); overlapping segments are
    /// refused.
    pub fn parse(network: &OverlayNetwork) -> Result<Self, NetworkError> {
        let invalid = |what: &'static str, value: &str| NetworkError::Invalid {
            what,
            value: value.to_owned(),
        };
        let mut segments: Vec<SegmentSpec> = Vec::new();
        for segment in &network.segments {
            let subnet: Ipv4Cidr = segment
                .subnet_cidr
                .parse()
                .map_err(|_| invalid("segment subnet", &segment.subnet_cidr))?;
            let subnet = subnet.canonical();
            if let Some(other) = segments.iter().find(|s| s.subnet.overlaps(subnet)) {
                return Err(invalid(
                    "segment subnet (overlaps another segment)",
                    &format!("{subnet} vs {}", other.subnet),
                ));
            }
            segments.push(SegmentSpec {
                subnet,
                vni: segment.vni,
            });
        }
        let peers = network
            .peers
            .iter()
            .map(|p| p.parse().map_err(|_| invalid("peer address", p)))
            .collect::<Result<_, _>>()?;
        let remotes = network
            .remote_ports
            .iter()
            .map(|r| {
                Ok(RemoteSpec {
                    mac: normalize_mac(&r.mac)?,
                    ip: r.ip.parse().map_err(|_| invalid("remote address", &r.ip))?,
                    vni: r.vni,
                    underlay: r
                        .underlay_ip
                        .parse()
                        .map_err(|_| invalid("remote underlay address", &r.underlay_ip))?,
                    dns_names: r
                        .dns_names
                        .iter()
                        .map(|n| {
                            if valid_hostname(n) {
                                Ok(n.to_ascii_lowercase())
                            } else {
                                Err(invalid("remote DNS name", n))
                            }
                        })
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, NetworkError>>()?;
        Ok(Self {
            segments,
            peers,
            remotes,
        })
    }
}

/// The gateway's MAC on the bridge of `subnet`: the same on every node
/// (derived from the subnet alone), so a guest's ARP entry for its
/// gateway stays right wherever its frames are routed. Locally
/// administered, and distinct from instance MACs (which start `02:`).
pub fn gateway_mac(subnet: Ipv4Cidr) -> String {
    let [a, b, c, d] = subnet.network().octets();
    format!("0a:{:02x}:{a:02x}:{b:02x}:{c:02x}:{d:02x}", subnet.prefix())
}

/// The vxlan port of segment `vni` of the VPC in `netns`: unique per node
/// and VPC (it is made in the host namespace first), at most 15
/// characters, the same after a restart.
pub fn vxlan_name(netns: &str, vni: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(netns.as_bytes());
    hasher.update(vni.to_be_bytes());
    format!("mvx{}", &hex::encode(hasher.finalize())[..12])
}

/// A vxlan port the VPC namespace should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OverlayPort {
    /// Link name.
    pub name: String,
    /// The segment.
    pub segment: SegmentSpec,
    /// MACs whose frames may come in through it: the remote instances'
    /// and the gateway's (frames another node routed into the subnet).
    pub sources: BTreeSet<String>,
}

impl NodeNetwork {
    /// The subnets to bridge: the ports' and the overlay's segments (a
    /// segment overlapping a port's other subnet is left out; the ports
    /// are the truth on this node).
    pub(super) fn wanted_subnets(&self, ports: &Ports) -> BTreeSet<Ipv4Cidr> {
        let mut subnets: BTreeSet<Ipv4Cidr> = ports.values().map(|p| p.subnet).collect();
        let overlay = self.overlay();
        for segment in &overlay.segments {
            if subnets
                .iter()
                .all(|s| *s == segment.subnet || !s.overlaps(segment.subnet))
            {
                subnets.insert(segment.subnet);
            } else {
                tracing::warn!(netns = self.netns(), subnet = %segment.subnet,
                    "segment overlaps a local subnet; not bridged");
            }
        }
        subnets
    }

    /// The vxlan ports wanted now: one per bridged segment, once the node
    /// has an underlay and the VPC another node.
    pub(super) fn overlay_ports(&self, ports: &Ports) -> Vec<OverlayPort> {
        let overlay = self.overlay();
        if self.inner.config.underlay.is_none() || overlay.peers.is_empty() {
            return Vec::new();
        }
        let bridged = self.wanted_subnets(ports);
        overlay
            .segments
            .iter()
            .filter(|s| bridged.contains(&s.subnet))
            .map(|segment| OverlayPort {
                name: vxlan_name(self.netns(), segment.vni),
                segment: *segment,
                sources: overlay
                    .remotes
                    .iter()
                    .filter(|r| r.vni == segment.vni)
                    .map(|r| r.mac.clone())
                    .chain([gateway_mac(segment.subnet)])
                    .collect(),
            })
            .collect()
    }

    /// The vxlan ports, their forwarding entries and the neighbour entries
    /// of remote instances, made to match the overlay and `ports` (an
    /// instance on this node is never sent away, whatever the overlay
    /// says). Stale ports and entries go.
    pub(super) async fn sync_overlay(&self, ports: &Ports) -> Result<(), NetworkError> {
        let wanted = self.overlay_ports(ports);
        let names: BTreeSet<&str> = wanted.iter().map(|p| p.name.as_str()).collect();
        for (name, vni, local) in self.vxlan_links().await? {
            let current = wanted.iter().find(|p| p.name == name).is_some_and(|p| {
                vni == p.segment.vni && local == self.inner.config.underlay.map(|u| u.local)
            });
            if !names.contains(name.as_str()) || !current {
                self.delete_link(&name).await?;
            }
        }
        let overlay = self.overlay();
        let local_macs: BTreeSet<&str> = ports.values().map(|p| p.mac.as_str()).collect();
        let local_ips: BTreeSet<Ipv4Addr> = ports.values().map(|p| p.ip).collect();
        let mut neighbours = BTreeMap::new();
        for port in &wanted {
            self.ensure_vxlan(port).await?;
            let remotes: Vec<&RemoteSpec> = overlay
                .remotes
                .iter()
                .filter(|r| r.vni == port.segment.vni && !local_macs.contains(r.mac.as_str()))
                .collect();
            self.sync_fdb(&port.name, &overlay.peers, &remotes).await?;
            let bridge = bridge_name(port.segment.subnet);
            for remote in remotes.iter().filter(|r| !local_ips.contains(&r.ip)) {
                neighbours.insert(remote.ip, (bridge.clone(), remote.mac.clone()));
            }
        }
        self.sync_neighbours(&neighbours).await
    }

    /// The namespace's vxlan links: name, VNI and local address.
    async fn vxlan_links(&self) -> Result<Vec<(String, u32, Option<Ipv4Addr>)>, NetworkError> {
        let out = self
            .ip(&["-d", "-j", "link", "show", "type", "vxlan"])
            .await?;
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        Ok(parsed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|link| {
                let data = &link["linkinfo"]["info_data"];
                Some((
                    link["ifname"].as_str()?.to_owned(),
                    u32::try_from(data["id"].as_u64()?).ok()?,
                    data["local"].as_str().and_then(|l| l.parse().ok()),
                ))
            })
            .collect())
    }

    /// The vxlan port of a segment, on its bridge, up, not learning.
    async fn ensure_vxlan(&self, port: &OverlayPort) -> Result<(), NetworkError> {
        let Some(underlay) = self.inner.config.underlay else {
            return Ok(());
        };
        let name = port.name.as_str();
        if !self.link_exists(name).await? {
            // Made in the host namespace, whose underlay address its socket
            // binds; one left there by a crash before the move goes first.
            if host_link_exists(name).await {
                run("ip", &["link", "del", "dev", name]).await?;
            }
            run(
                "ip",
                &[
                    "link",
                    "add",
                    name,
                    "type",
                    "vxlan",
                    "id",
                    &port.segment.vni.to_string(),
                    "local",
                    &underlay.local.to_string(),
                    "dstport",
                    &VXLAN_PORT.to_string(),
                    "nolearning",
                ],
            )
            .await?;
            run("ip", &["link", "set", "dev", name, "netns", self.netns()]).await?;
        }
        let mtu = underlay.mtu.saturating_sub(VXLAN_OVERHEAD).to_string();
        let bridge = bridge_name(port.segment.subnet);
        self.ip(&["link", "set", "dev", name, "mtu", &mtu]).await?;
        self.ip(&["link", "set", "dev", name, "master", &bridge])
            .await?;
        self.ip(&[
            "link",
            "set",
            "dev",
            name,
            "type",
            "bridge_slave",
            "learning",
            "off",
        ])
        .await?;
        self.ip(&["link", "set", "dev", name, "up"]).await?;
        Ok(())
    }

    /// The forwarding entries of vxlan port `name`: a flood entry per
    /// peer, and per remote instance its node (on the vxlan device) and
    /// the port (on the bridge).
    async fn sync_fdb(
        &self,
        name: &str,
        peers: &BTreeSet<Ipv4Addr>,
        remotes: &[&RemoteSpec],
    ) -> Result<(), NetworkError> {
        let out = Cmd::new("bridge")
            .args(["-n", self.netns(), "-j", "fdb", "show", "dev", name])
            .run()
            .await?;
        let entries: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let mut flood = BTreeSet::new();
        let mut sent: BTreeMap<String, String> = BTreeMap::new();
        let mut bridged = BTreeSet::new();
        for entry in entries.as_array().into_iter().flatten() {
            let Some(mac) = entry["mac"].as_str() else {
                continue;
            };
            let is_self = entry["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "self"));
            match (is_self, entry["dst"].as_str()) {
                (true, Some(dst)) if mac == FLOOD => {
                    flood.insert(dst.to_owned());
                }
                (true, Some(dst)) => {
                    sent.insert(mac.to_owned(), dst.to_owned());
                }
                // The port's own address is the bridge's "permanent" entry.
                (false, _) if entry["state"] == "static" => {
                    bridged.insert(mac.to_owned());
                }
                _ => {}
            }
        }
        let mut batch = String::new();
        let peers: BTreeSet<String> = peers.iter().map(Ipv4Addr::to_string).collect();
        for dst in flood.difference(&peers) {
            batch.push_str(&format!("fdb del {FLOOD} dev {name} dst {dst} self\n"));
        }
        for dst in peers.difference(&flood) {
            batch.push_str(&format!(
                "fdb append {FLOOD} dev {name} dst {dst} self permanent\n"
            ));
        }
        let wanted: BTreeMap<&str, String> = remotes
            .iter()
            .map(|r| (r.mac.as_str(), r.underlay.to_string()))
            .collect();
        for (mac, dst) in &sent {
            if !wanted.contains_key(mac.as_str()) {
                batch.push_str(&format!("fdb del {mac} dev {name} dst {dst} self\n"));
            }
        }
        for mac in bridged.iter().filter(|m| !wanted.contains_key(m.as_str())) {
            batch.push_str(&format!("fdb del {mac} dev {name} master\n"));
        }
        for (mac, dst) in &wanted {
            if sent.get(*mac) != Some(dst) {
                batch.push_str(&format!(
                    "fdb replace {mac} dev {name} dst {dst} self permanent\n"
                ));
            }
            if !bridged.contains(*mac) {
                batch.push_str(&format!("fdb replace {mac} dev {name} master static\n"));
            }
        }
        self.batch("bridge", batch).await
    }

    /// The namespace's permanent neighbour entries: exactly `wanted`
    /// (address → bridge and MAC).
    async fn sync_neighbours(
        &self,
        wanted: &BTreeMap<Ipv4Addr, (String, String)>,
    ) -> Result<(), NetworkError> {
        let out = self
            .ip(&["-j", "-4", "neigh", "show", "nud", "permanent"])
            .await?;
        let entries: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let mut batch = String::new();
        let mut present = BTreeMap::new();
        for entry in entries.as_array().into_iter().flatten() {
            let (Some(dst), Some(dev)) = (entry["dst"].as_str(), entry["dev"].as_str()) else {
                continue;
            };
            let Ok(ip) = dst.parse::<Ipv4Addr>() else {
                continue;
            };
            let mac = entry["lladdr"].as_str().unwrap_or_default().to_owned();
            match wanted.get(&ip) {
                Some((bridge, want)) if bridge == dev => {
                    present.insert(ip, mac == *want);
                }
                _ => batch.push_str(&format!("neigh del {ip} dev {dev}\n")),
            }
        }
        for (ip, (bridge, mac)) in wanted {
            if present.get(ip) != Some(&true) {
                batch.push_str(&format!(
                    "neigh replace {ip} lladdr {mac} dev {bridge} nud permanent\n"
                ));
            }
        }
        self.batch("ip", batch).await
    }

    /// Runs `program` (`ip` or `bridge`) in the namespace with the
    /// commands of `batch`, one a line; nothing when it is empty.
    async fn batch(&self, program: &str, batch: String) -> Result<(), NetworkError> {
        if !batch.is_empty() {
            Cmd::new(program)
                .args(["-n", self.netns(), "-batch", "-"])
                .stdin(batch)
                .run()
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mallee_node_api::{RemotePort, Segment};

    #[test]
    fn gateway_macs_and_port_names_are_stable() {
        let subnet: Ipv4Cidr = "172.31.16.0/20".parse().expect("cidr");
        assert_eq!(gateway_mac(subnet), "0a:14:ac:1f:10:00");
        let name = vxlan_name("mallee-vabc", 7);
        assert_eq!(name.len(), 15);
        assert_eq!(name, vxlan_name("mallee-vabc", 7));
        assert_ne!(name, vxlan_name("mallee-vabc", 8));
        assert_ne!(name, vxlan_name("mallee-vabd", 7));
    }

    #[test]
    fn guest_mtu_leaves_room_for_vxlan() {
        let at = |mtu| Underlay {
            local: Ipv4Addr::LOCALHOST,
            mtu,
        };
        assert_eq!(at(1500).guest_mtu(), 1450);
        assert_eq!(at(9000).guest_mtu(), 1500);
        assert_eq!(at(65536).guest_mtu(), 1500);
    }

    #[test]
    fn overlapping_segments_are_refused() {
        let segment = |cidr: &str, vni| Segment {
            subnet_cidr: cidr.into(),
            gateway: String::new(),
            vni,
        };
        let mut network = OverlayNetwork {
            network_id: "vpc-1".into(),
            segments: vec![segment("172.31.0.0/20", 1), segment("172.31.16.0/20", 2)],
            peers: vec!["10.0.0.2".into()],
            remote_ports: vec![RemotePort {
                mac: "02:AA:00:00:00:01".into(),
                ip: "172.31.0.9".into(),
                vni: 1,
                underlay_ip: "10.0.0.2".into(),
                dns_names: Vec::new(),
            }],
        };
        let parsed = VpcOverlay::parse(&network).expect("parses");
        assert_eq!(parsed.remotes[0].mac, "02:aa:00:00:00:01");
        assert_eq!(parsed.peers.len(), 1);
        network.segments.push(segment("172.31.8.0/24", 3));
        assert!(VpcOverlay::parse(&network).is_err());
    }
}
