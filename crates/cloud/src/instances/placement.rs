//! Where new instances go: choosing nodes with free capacity in a zone and
//! handing out private addresses and MACs of the zone's network.
//!
//! Capacity is counted by the controller from its own records (what it has
//! placed and not stopped or terminated) against the maximum each node
//! registered, so two concurrent launches never both take the last slot:
//! callers hold [`Compute::placement_lock`](crate::compute::Compute) from choosing
//! until the reservation is stored.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use mallee_store::Node;

use super::model::Instance;

/// What one instance needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Virtual cores.
    pub vcpus: u64,
    /// Memory.
    pub memory_mib: u64,
    /// Disk.
    pub disk_gib: u64,
}

impl Demand {
    /// What an instance with `spec` holds on its node.
    pub fn of(spec: &mallee_node_api::InstanceSpec) -> Self {
        Self {
            vcpus: u64::from(spec.vcpus),
            memory_mib: spec.memory_mib,
            disk_gib: spec.disk_gib,
        }
    }
}

/// A node's free capacity as the controller counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoom {
    /// The node.
    pub node: Node,
    /// Free cores.
    pub cores: u64,
    /// Free memory.
    pub memory_mib: u64,
    /// Free disk.
    pub disk_gib: u64,
}

impl NodeRoom {
    fn fits(&self, d: Demand) -> bool {
        self.cores >= d.vcpus && self.memory_mib >= d.memory_mib && self.disk_gib >= d.disk_gib
    }

    fn take(&mut self, d: Demand) {
        self.cores -= d.vcpus;
        self.memory_mib -= d.memory_mib;
        self.disk_gib -= d.disk_gib;
    }
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Free room on each node of `zone`: registered maximum minus what the
/// controller's instances on it hold.
pub fn rooms(nodes: &[Node], instances: &[Instance], zone: &str) -> Vec<NodeRoom> {
    let mut used: HashMap<&str, Demand> = HashMap::new();
    for i in instances.iter().filter(|i| i.holds_capacity()) {
        let held = Demand::of(&i.details.spec);
        let u = used.entry(i.record.node_id.as_str()).or_insert(Demand {
            vcpus: 0,
            memory_mib: 0,
            disk_gib: 0,
        });
        u.vcpus += held.vcpus;
        u.memory_mib += held.memory_mib;
        u.disk_gib += held.disk_gib;
    }
    nodes
        .iter()
        .filter(|n| n.zone == zone)
        .map(|n| {
            let u = used.get(n.node_id.as_str());
            NodeRoom {
                node: n.clone(),
                cores: unsigned(n.cores_max).saturating_sub(u.map_or(0, |u| u.vcpus)),
                memory_mib: unsigned(n.memory_mib_max)
                    .saturating_sub(u.map_or(0, |u| u.memory_mib)),
                disk_gib: unsigned(n.disk_gib_max).saturating_sub(u.map_or(0, |u| u.disk_gib)),
            }
        })
        .collect()
}

/// Places up to `max` instances of `demand`, each on the node with the most
/// free cores at that point (spreading a reservation over nodes). Returns
/// the chosen node ids, possibly fewer than `max`.
pub fn place(mut rooms: Vec<NodeRoom>, demand: Demand, max: usize) -> Vec<Node> {
    let mut chosen = Vec::new();
    while chosen.len() < max {
        let Some(best) = rooms.iter_mut().filter(|r| r.fits(demand)).max_by(|a, b| {
            a.cores
                .cmp(&b.cores)
                .then(a.memory_mib.cmp(&b.memory_mib))
                .then(b.node.node_id.cmp(&a.node.node_id))
        }) else {
            break;
        };
        best.take(demand);
        chosen.push(best.node.clone());
    }
    chosen
}

/// Takes room for `demand` on the node `node_id` (an instance that goes
/// back to the node it was placed on); `false`, taking nothing, when that
/// node is not among `rooms` or has too little room left.
pub fn take_on(rooms: &mut [NodeRoom], node_id: &str, demand: Demand) -> bool {
    match rooms
        .iter_mut()
        .find(|r| r.node.node_id == node_id && r.fits(demand))
    {
        Some(room) => {
            room.take(demand);
            true
        }
        None => false,
    }
}

/// An IPv4 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// Parses `a.b.c.d/n` (host bits must be zero, prefix 16..=28).
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = s.split_once('/')?;
        let network: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if !(16..=28).contains(&prefix) || u32::from(network) & !Self::mask_of(prefix) != 0 {
            return None;
        }
        Some(Self { network, prefix })
    }

    fn mask_of(prefix: u8) -> u32 {
        u32::MAX << (32 - u32::from(prefix))
    }

    /// Addresses instances may get: AWS reserves the first four and the
    /// last address of every subnet (network, router, DNS, future use,
    /// broadcast).
    pub fn usable(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let base = u32::from(self.network);
        let size = 1u32 << (32 - u32::from(self.prefix));
        (base + 4..base + size - 1).map(Ipv4Addr::from)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The first `count` free addresses of `subnet`, skipping `in_use`.
pub fn free_addresses(subnet: Subnet, in_use: &[String], count: usize) -> Vec<Ipv4Addr> {
    let taken: HashSet<&str> = in_use.iter().map(String::as_str).collect();
    subnet
        .usable()
        .filter(|ip| !taken.contains(ip.to_string().as_str()))
        .take(count)
        .collect()
}

/// A random locally administered unicast MAC (`02:…`), as EC2 hands out.
pub fn random_mac() -> String {
    let bytes: [u8; 5] = rand::random();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]
    )
}

/// EC2's private DNS name for an address: `ip-172-31-0-5.REGION.compute.internal`.
pub fn private_dns_name(ip: Ipv4Addr, region: &str) -> String {
    format!(
        "ip-{}.{region}.compute.internal",
        ip.to_string().replace('.', "-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, cores: i64) -> Node {
        Node {
            node_id: id.into(),
            zone: "z".into(),
            address: String::new(),
            cores_max: cores,
            cores_free: cores,
            memory_mib_max: 4096,
            memory_mib_free: 4096,
            disk_gib_max: 100,
            disk_gib_free: 100,
            updated_at: 0,
            underlay_ip: None,
        }
    }

    #[test]
    fn placement_spreads_and_stops_when_full() {
        let rooms = rooms(&[node("a", 2), node("b", 1)], &[], "z");
        let d = Demand {
            vcpus: 1,
            memory_mib: 256,
            disk_gib: 1,
        };
        let mut chosen: Vec<String> = place(rooms, d, 5).into_iter().map(|n| n.node_id).collect();
        assert_eq!(
            chosen.first().map(String::as_str),
            Some("a"),
            "most free cores first"
        );
        chosen.sort();
        assert_eq!(chosen, ["a", "a", "b"].map(String::from));
    }

    #[test]
    fn taking_room_on_one_node() {
        let mut rooms = rooms(&[node("a", 2), node("b", 1)], &[], "z");
        let d = Demand {
            vcpus: 1,
            memory_mib: 256,
            disk_gib: 1,
        };
        assert!(take_on(&mut rooms, "b", d));
        assert!(!take_on(&mut rooms, "b", d), "b is full");
        assert!(!take_on(&mut rooms, "c", d), "no such node");
        assert!(take_on(&mut rooms, "a", d));
        assert_eq!((rooms[0].cores, rooms[1].cores), (1, 0));
    }

    #[test]
    fn other_zones_are_not_rooms() {
        assert!(rooms(&[node("a", 2)], &[], "other").is_empty());
    }

    #[test]
    fn subnets_reserve_aws_addresses() {
        let s = Subnet::parse("172.31.0.0/28").expect("subnet");
        let all: Vec<String> = s.usable().map(|ip| ip.to_string()).collect();
        assert_eq!(all.first().map(String::as_str), Some("172.31.0.4"));
        assert_eq!(all.last().map(String::as_str), Some("172.31.0.14"));
        assert!(Subnet::parse("172.31.0.1/20").is_none());
        assert!(Subnet::parse("10.0.0.0/8").is_none());
        let free = free_addresses(s, &["172.31.0.4".into()], 2);
        assert_eq!(
            free,
            [Ipv4Addr::new(172, 31, 0, 5), Ipv4Addr::new(172, 31, 0, 6)]
        );
    }

    #[test]
    fn dns_names() {
        assert_eq!(
            private_dns_name(Ipv4Addr::new(172, 31, 0, 5), "mallee-1"),
            "ip-172-31-0-5.mallee-1.compute.internal"
        );
        assert!(random_mac().starts_with("02:"));
    }
}
