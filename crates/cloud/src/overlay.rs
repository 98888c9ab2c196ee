//! The VXLAN overlay that makes a VPC one network across nodes (see
//! docs/networking.md, "Across nodes"). Every subnet is a segment with the
//! VNI the store gave it. A node with an instance of a VPC is told every
//! segment of that VPC (it bridges them all, so traffic between subnets is
//! routed on the node where it starts), the underlay addresses of the
//! other nodes with instances of the VPC (where broadcasts go), and the
//! MAC, address and node of each of those instances (where their frames
//! go). The reconciler pushes each node its overlay as it pushes the
//! firewall policy: whole, when it changed, and again every
//! [`crate::reconciler::FIREWALL_REFRESH`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use mallee_node_api::{NodeReport, Overlay, OverlayNetwork, RemotePort, Segment};
use mallee_store::{Node, StoreError, Subnet};

use crate::Cloud;
use crate::instances::model::{Instance, InstanceState};

/// One interface of an instance that has, or is about to have, a VM on its
/// node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPort {
    /// The node it is on.
    pub node_id: String,
    /// Its VPC.
    pub network_id: String,
    /// Its subnet (`172.31.0.0/20`).
    pub subnet_cidr: String,
    /// Its MAC.
    pub mac: String,
    /// Its private address.
    pub ip: String,
    /// The names the VPC's resolver gives it: its private DNS name, then
    /// its public one when it has a public address.
    pub dns_names: Vec<String>,
}

/// The interfaces of `instance` that its node holds: none for a stopped
/// or terminated instance (its node has unplugged them) or a bare-metal
/// machine.
pub fn placed_ports(instance: &Instance) -> Vec<PlacedPort> {
    if matches!(
        instance.state,
        InstanceState::Stopped | InstanceState::Terminated
    ) || crate::metal::names::is_metal(instance)
    {
        return Vec::new();
    }
    instance
        .details
        .spec
        .nics
        .iter()
        .enumerate()
        .map(|(index, nic)| PlacedPort {
            node_id: instance.record.node_id.clone(),
            network_id: nic.network_id.clone(),
            subnet_cidr: nic.subnet_cidr.clone(),
            mac: nic.mac.clone(),
            ip: nic.private_ip.clone(),
            // The instance's DNS names belong to its primary interface.
            dns_names: if index == 0 {
                let metadata = &instance.details.spec.metadata;
                std::iter::once(metadata.local_hostname.clone())
                    .chain(metadata.public_hostname.clone())
                    .filter(|n| !n.is_empty())
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect()
}

/// Each node's overlay networks (without a generation), for every node of
/// `nodes`: a node without ports gets none. `subnets` holds each VPC's
/// subnets by VPC id. A node without an underlay address is nobody's peer
/// and its instances are nobody's remote ports (nothing could reach them);
/// a port whose subnet is not among its VPC's is left out.
pub fn plan(
    ports: &[PlacedPort],
    nodes: &[Node],
    subnets: &HashMap<String, Vec<Subnet>>,
) -> BTreeMap<String, Vec<OverlayNetwork>> {
    let underlay: HashMap<&str, &str> = nodes
        .iter()
        .filter_map(|n| {
            let ip = n.underlay_ip.as_deref().filter(|ip| !ip.is_empty())?;
            Some((n.node_id.as_str(), ip))
        })
        .collect();
    let vni = |port: &PlacedPort| {
        subnets
            .get(&port.network_id)?
            .iter()
            .find(|s| s.cidr == port.subnet_cidr)
            .map(|s| s.vni)
    };
    // VPC -> the nodes holding its ports.
    let mut holders: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for port in ports {
        holders
            .entry(port.network_id.as_str())
            .or_default()
            .insert(port.node_id.as_str());
    }
    let mut plans = BTreeMap::new();
    for node in nodes {
        let own = node.node_id.as_str();
        let own_underlay = underlay.get(own).copied();
        let mut networks = Vec::new();
        for (network_id, on) in holders.iter().filter(|(_, on)| on.contains(own)) {
            let mut segments: Vec<Segment> = subnets
                .get(*network_id)
                .into_iter()
                .flatten()
                .filter_map(segment)
                .collect();
            segments.sort_by(|a, b| a.subnet_cidr.cmp(&b.subnet_cidr));
            let peers: BTreeSet<String> = on
                .iter()
                .filter(|n| **n != own)
                .filter_map(|n| underlay.get(n).copied())
                .filter(|ip| Some(*ip) != own_underlay)
                .map(str::to_owned)
                .collect();
            let mut remote_ports: Vec<RemotePort> = ports
                .iter()
                .filter(|p| p.network_id == *network_id && p.node_id != own)
                .filter_map(|p| {
                    Some(RemotePort {
                        mac: p.mac.clone(),
                        ip: p.ip.clone(),
                        vni: vni(p)?,
                        underlay_ip: (*underlay.get(p.node_id.as_str())?).to_owned(),
                        dns_names: p.dns_names.clone(),
                    })
                })
                .collect();
            remote_ports.sort_by(|a, b| a.mac.cmp(&b.mac));
            networks.push(OverlayNetwork {
                network_id: (*network_id).to_owned(),
                segments,
                peers: peers.into_iter().collect(),
                remote_ports,
            });
        }
        plans.insert(node.node_id.clone(), networks);
    }
    plans
}

/// A subnet as a segment: its gateway is its first host. `None` for a
/// subnet whose CIDR does not parse (never stored by the cloud).
fn segment(subnet: &Subnet) -> Option<Segment> {
    let cidr: mallee_util::cidr::Ipv4Cidr = subnet.cidr.parse().ok()?;
    let gateway = cidr.first_host();
    Some(Segment {
        subnet_cidr: subnet.cidr.clone(),
        gateway: gateway.to_string(),
        vni: subnet.vni,
    })
}

/// Computes every node's overlay from the store and sends it to each node
/// that answered its report (see [`crate::reconciler::push_state`]).
pub async fn push(
    cloud: &Arc<Cloud>,
    nodes: &[Node],
    reports: &HashMap<String, Option<NodeReport>>,
) -> Result<(), StoreError> {
    let mut ports = Vec::new();
    let mut accounts = BTreeSet::new();
    for record in cloud.store.instances(None).await? {
        let Ok(instance) = Instance::decode(record) else {
            continue;
        };
        let placed = placed_ports(&instance);
        if !placed.is_empty() {
            accounts.insert(instance.record.account_id.clone());
        }
        ports.extend(placed);
    }
    let mut subnets: HashMap<String, Vec<Subnet>> = HashMap::new();
    for account in &accounts {
        for subnet in cloud.store.subnets(account).await? {
            subnets
                .entry(subnet.vpc_id.clone())
                .or_default()
                .push(subnet);
        }
    }
    let plans = plan(&ports, nodes, &subnets);
    for node in nodes {
        if !matches!(reports.get(&node.node_id), Some(Some(_))) {
            continue;
        }
        let networks = plans.get(&node.node_id).cloned().unwrap_or_default();
        crate::reconciler::push_state(
            cloud,
            node,
            &cloud.compute.overlays,
            "overlay",
            networks,
            |client, generation, networks| async move {
                client
                    .put_overlay(Overlay {
                        generation,
                        networks,
                    })
                    .await
            },
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(node: &str, vpc: &str, cidr: &str, mac: &str, ip: &str) -> PlacedPort {
        PlacedPort {
            node_id: node.into(),
            network_id: vpc.into(),
            subnet_cidr: cidr.into(),
            mac: mac.into(),
            ip: ip.into(),
            dns_names: vec![format!("ip-{}.r.compute.internal", ip.replace('.', "-"))],
        }
    }

    fn subnet(vpc: &str, cidr: &str, vni: u32) -> Subnet {
        Subnet {
            subnet_id: format!("subnet-{vni}"),
            vpc_id: vpc.into(),
            account_id: "111111111111".into(),
            zone: "z".into(),
            cidr: cidr.into(),
            default_for_az: true,
            map_public_ip_on_launch: true,
            created_at: 0,
            vni,
        }
    }

    fn node(id: &str, underlay: Option<&str>) -> Node {
        Node {
            underlay_ip: underlay.map(str::to_owned),
            ..crate::testkit::node(id, "z", 4, 4096, 100)
        }
    }

    #[test]
    fn each_node_learns_its_vpcs_peers_and_remote_ports() {
        let (a, b) = ("172.31.0.0/20", "172.31.16.0/20");
        let ports = [
            port("n1", "vpc-1", a, "02:00:00:00:00:01", "172.31.0.4"),
            port("n2", "vpc-1", b, "02:00:00:00:00:02", "172.31.16.4"),
            port("n3", "vpc-1", a, "02:00:00:00:00:03", "172.31.0.5"),
            port("n2", "vpc-2", a, "02:00:00:00:00:04", "172.31.0.4"),
            // A node without an underlay: nobody's peer.
            port("n4", "vpc-1", a, "02:00:00:00:00:05", "172.31.0.6"),
            // A subnet the VPC does not have: left out.
            port(
                "n3",
                "vpc-1",
                "10.9.0.0/24",
                "02:00:00:00:00:06",
                "10.9.0.4",
            ),
        ];
        let nodes = [
            node("n1", Some("10.0.0.1")),
            node("n2", Some("10.0.0.2")),
            node("n3", Some("10.0.0.3")),
            node("n4", None),
            node("n5", Some("10.0.0.5")),
        ];
        let subnets = HashMap::from([
            (
                "vpc-1".to_owned(),
                vec![subnet("vpc-1", b, 8), subnet("vpc-1", a, 7)],
            ),
            ("vpc-2".to_owned(), vec![subnet("vpc-2", a, 9)]),
        ]);
        let plans = plan(&ports, &nodes, &subnets);
        assert_eq!(plans["n5"], Vec::new(), "a node without ports gets nothing");
        let n1 = &plans["n1"];
        assert_eq!(n1.len(), 1);
        assert_eq!(n1[0].network_id, "vpc-1");
        assert_eq!(
            n1[0]
                .segments
                .iter()
                .map(|s| (s.subnet_cidr.as_str(), s.gateway.as_str(), s.vni))
                .collect::<Vec<_>>(),
            [(a, "172.31.0.1", 7), (b, "172.31.16.1", 8)],
            "every subnet of the VPC, with its own VNI"
        );
        assert_eq!(n1[0].peers, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(
            n1[0]
                .remote_ports
                .iter()
                .map(|p| (p.mac.as_str(), p.vni, p.underlay_ip.as_str()))
                .collect::<Vec<_>>(),
            [
                ("02:00:00:00:00:02", 8, "10.0.0.2"),
                ("02:00:00:00:00:03", 7, "10.0.0.3")
            ]
        );
        // The VPC's resolver on n1 names them.
        for p in &n1[0].remote_ports {
            assert_eq!(
                p.dns_names,
                [format!("ip-{}.r.compute.internal", p.ip.replace('.', "-"))]
            );
        }
        // n2 holds both VPCs; vpc-2 exists on no other node.
        let n2 = &plans["n2"];
        assert_eq!(
            n2.iter().map(|n| n.network_id.as_str()).collect::<Vec<_>>(),
            ["vpc-1", "vpc-2"]
        );
        assert!(n2[1].peers.is_empty() && n2[1].remote_ports.is_empty());
        assert_eq!(n2[1].segments[0].vni, 9, "another VPC, another VNI");
        // The node without an underlay still gets its VPC's peers.
        assert_eq!(plans["n4"][0].peers, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    }
}
