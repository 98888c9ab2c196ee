//! The VXLAN overlay the controller pushes to each node: every subnet of a
//! VPC is one segment with its own VNI, carried between nodes over their
//! underlay addresses. A node holds the segments of every VPC it has an
//! instance of, floods to the other nodes of that VPC and sends frames for
//! a remote instance's MAC straight to that instance's node.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The largest VNI (VXLAN identifiers are 24 bits; 0 is not used).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// The overlay of one node, replaced whole. `generation` increases with
/// every change; an older overlay than the one in force changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Overlay {
    /// The controller's generation of this overlay.
    pub generation: u64,
    /// One entry per VPC with an instance on the node.
    pub networks: Vec<OverlayNetwork>,
}

/// One VPC as a node sees it across nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayNetwork {
    /// The VPC (the `network_id` of its interfaces' [`crate::NicSpec`]s).
    pub network_id: String,
    /// Every subnet of the VPC: the node bridges each one, so traffic
    /// between subnets is routed on the node it starts on.
    pub segments: Vec<Segment>,
    /// Underlay addresses of the other nodes with instances of this VPC:
    /// broadcasts and frames for unknown MACs go to each.
    pub peers: Vec<String>,
    /// The VPC's interfaces on other nodes.
    pub remote_ports: Vec<RemotePort>,
}

/// One subnet of a VPC: a VXLAN segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The subnet (`172.31.0.0/20`).
    pub subnet_cidr: String,
    /// Its gateway (the first host), the same address on every node.
    pub gateway: String,
    /// The segment's VXLAN network identifier (1..=[`MAX_VNI`]), never
    /// shared with another subnet.
    pub vni: u32,
}

/// An interface of the VPC on another node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemotePort {
    /// Its MAC.
    pub mac: String,
    /// Its private IPv4.
    pub ip: String,
    /// VNI of its subnet's segment.
    pub vni: u32,
    /// Underlay address of the node it is on.
    pub underlay_ip: String,
    /// The names the VPC's resolver answers with its private address (its
    /// private DNS name first, then its public one).
    #[serde(default)]
    pub dns_names: Vec<String>,
}

impl Overlay {
    /// Checks what a node would otherwise refuse half-way: each network is
    /// listed once, addresses, MACs and subnets parse, VNIs are in range and
    /// unique across the overlay, each gateway is its subnet's first host,
    /// and every remote port names a segment of its own network.
    pub fn check(&self) -> Result<(), String> {
        let mut vnis = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for network in &self.networks {
            let id = &network.network_id;
            if !ids.insert(id) {
                return Err(format!("{id} listed twice"));
            }
            let mut own = BTreeSet::new();
            for segment in &network.segments {
                let (addr, prefix) = parse_subnet(&segment.subnet_cidr)
                    .ok_or_else(|| format!("{id}: bad subnet {:?}", segment.subnet_cidr))?;
                let gateway: Ipv4Addr = segment
                    .gateway
                    .parse()
                    .map_err(|_| format!("{id}: bad gateway {:?}", segment.gateway))?;
                let mask = u32::MAX << (32 - prefix);
                let first = (u32::from(addr) & mask) + 1;
                if u32::from(gateway) != first {
                    return Err(format!(
                        "{id}: gateway {gateway} is not the first host of {}",
                        segment.subnet_cidr
                    ));
                }
                if segment.vni == 0 || segment.vni > MAX_VNI {
                    return Err(format!("{id}: VNI {} out of range", segment.vni));
                }
                if !vnis.insert(segment.vni) {
                    return Err(format!("VNI {} used twice", segment.vni));
                }
                own.insert(segment.vni);
            }
            for peer in &network.peers {
                peer.parse::<Ipv4Addr>()
                    .map_err(|_| format!("{id}: bad peer address {peer:?}"))?;
            }
            for port in &network.remote_ports {
                if !unicast_mac(&port.mac) {
                    return Err(format!("{id}: bad remote MAC {:?}", port.mac));
                }
                port.ip
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("{id}: bad remote address {:?}", port.ip))?;
                port.underlay_ip
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("{id}: bad underlay address {:?}", port.underlay_ip))?;
                if !own.contains(&port.vni) {
                    return Err(format!(
                        "{id}: remote port {} names VNI {}, not a segment of the network",
                        port.mac, port.vni
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `aa:bb:cc:dd:ee:ff` (either case), not a group address.
fn unicast_mac(mac: &str) -> bool {
    let octets: Vec<Option<u8>> = mac
        .split(':')
        .map(|o| {
            (o.len() == 2)
                .then(|| u8::from_str_radix(o, 16).ok())
                .flatten()
        })
        .collect();
    octets.len() == 6 && octets.iter().all(Option::is_some) && octets[0].is_some_and(|o| o & 1 == 0)
}

/// `a.b.c.d/n` with `n` in 8..=30 (a subnet with room for a gateway and
/// instances).
fn parse_subnet(cidr: &str) -> Option<(Ipv4Addr, u32)> {
    let (addr, prefix) = cidr.split_once('/')?;
    let prefix: u32 = prefix.parse().ok()?;
    (8..=30)
        .contains(&prefix)
        .then_some(())
        .and(addr.parse().ok().map(|a| (a, prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay() -> Overlay {
        Overlay {
            generation: 1,
            networks: vec![OverlayNetwork {
                network_id: "vpc-1".into(),
                segments: vec![Segment {
                    subnet_cidr: "172.31.0.0/20".into(),
                    gateway: "172.31.0.1".into(),
                    vni: 7,
                }],
                peers: vec!["10.0.0.2".into()],
                remote_ports: vec![RemotePort {
                    mac: "02:00:00:00:00:01".into(),
                    ip: "172.31.0.4".into(),
                    vni: 7,
                    underlay_ip: "10.0.0.2".into(),
                    dns_names: Vec::new(),
                }],
            }],
        }
    }

    #[test]
    fn checks_what_a_node_needs() {
        assert_eq!(overlay().check(), Ok(()));
        let mut bad = overlay();
        bad.networks[0].segments[0].gateway = "172.31.0.2".into();
        assert!(bad.check().expect_err("gateway").contains("first host"));
        let mut bad = overlay();
        bad.networks[0].segments[0].vni = MAX_VNI + 1;
        assert!(bad.check().expect_err("vni").contains("out of range"));
        let mut bad = overlay();
        bad.networks[0].remote_ports[0].vni = 8;
        assert!(bad.check().expect_err("segment").contains("not a segment"));
        let mut bad = overlay();
        bad.networks[0].remote_ports[0].mac = "01:00:5e:00:00:01".into();
        assert!(bad.check().expect_err("mac").contains("bad remote MAC"));
        let mut bad = overlay();
        let again = bad.networks[0].clone();
        bad.networks.push(again);
        assert!(bad.check().expect_err("twice").contains("listed twice"));
        let mut bad = overlay();
        bad.networks[0].peers.push("nowhere".into());
        assert!(bad.check().expect_err("peer").contains("bad peer"));
        let mut bad = overlay();
        bad.networks[0].segments[0].subnet_cidr = "172.31.0.0/31".into();
        assert!(bad.check().expect_err("prefix").contains("bad subnet"));
        let mut twice = overlay();
        let mut other = twice.networks[0].clone();
        other.network_id = "vpc-2".into();
        other.remote_ports.clear();
        twice.networks.push(other);
        assert!(twice.check().expect_err("shared").contains("used twice"));
    }
}
