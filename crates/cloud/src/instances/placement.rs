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

use mallee_util::cidr::Ipv4Cidr;

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
    pub fn of(spec: &crate::instances::spec::LaunchSpec) -> Self {
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
    /// Instances holding capacity on it (counting those placed by the
    /// launch being planned).
    pub instances: usize,
}

impl NodeRoom {
    fn fits(&self, d: Demand) -> bool {
        self.cores >= d.vcpus && self.memory_mib >= d.memory_mib && self.disk_gib >= d.disk_gib
    }

    fn take(&mut self, d: Demand) {
        self.cores -= d.vcpus;
        self.memory_mib -= d.memory_mib;
        self.disk_gib -= d.disk_gib;
        self.instances += 1;
    }
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Free room on each node of `zone`: registered maximum minus what the
/// controller's instances on it hold.
pub fn rooms(nodes: &[Node], instances: &[Instance], zone: &str) -> Vec<NodeRoom> {
    let mut used: HashMap<&str, Demand> = HashMap::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for i in instances.iter().filter(|i| i.holds_capacity()) {
        *counts.entry(i.record.node_id.as_str()).or_default() += 1;
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
                instances: counts.get(n.node_id.as_str()).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// How a zone chooses among nodes with room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Fewest instances first, so load spreads over every node.
    #[default]
    Spread,
    /// Fill a node before using the next (fewer nodes busy).
    Greedy,
    /// Each instance on the node after the previous one, in turn
    /// (Eucalyptus' default).
    RoundRobin,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Self; 3] = [Self::Spread, Self::Greedy, Self::RoundRobin];

    /// The policy's name in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spread => "spread",
            Self::Greedy => "greedy",
            Self::RoundRobin => "round-robin",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown placement policy {s:?}: spread, greedy or round-robin"))
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Chooses nodes for up to `max` instances of `demand` with `policy`,
/// taking room as it goes (several instances may share a node). For
/// round-robin, `after` is the node the zone placed on last. Returns the
/// chosen nodes, in order, possibly fewer than `max` (only when no node
/// has room for one more).
pub fn place_by(
    policy: Policy,
    mut rooms: Vec<NodeRoom>,
    demand: Demand,
    max: usize,
    after: Option<&str>,
) -> Vec<Node> {
    rooms.sort_by(|a, b| a.node.node_id.cmp(&b.node.node_id));
    let mut last = after.map(str::to_owned);
    let mut chosen = Vec::new();
    while chosen.len() < max {
        let fitting = rooms.iter().enumerate().filter(|(_, r)| r.fits(demand));
        let pick = match policy {
            // Fewest instances, then most free cores, then node id.
            Policy::Spread => fitting
                .min_by(|(_, a), (_, b)| {
                    a.instances
                        .cmp(&b.instances)
                        .then(b.cores.cmp(&a.cores))
                        .then(a.node.node_id.cmp(&b.node.node_id))
                })
                .map(|(i, _)| i),
            // The busiest node that still fits, then node id.
            Policy::Greedy => fitting
                .min_by(|(_, a), (_, b)| {
                    b.instances
                        .cmp(&a.instances)
                        .then(a.node.node_id.cmp(&b.node.node_id))
                })
                .map(|(i, _)| i),
            // The first fitting node after the last one, wrapping around.
            Policy::RoundRobin => {
                let fitting: Vec<usize> = fitting.map(|(i, _)| i).collect();
                fitting
                    .iter()
                    .copied()
                    .find(|i| {
                        last.as_deref()
                            .is_none_or(|l| rooms[*i].node.node_id.as_str() > l)
                    })
                    .or_else(|| fitting.first().copied())
            }
        };
        let Some(index) = pick else {
            break;
        };
        let room = &mut rooms[index];
        room.take(demand);
        last = Some(room.node.node_id.clone());
        chosen.push(room.node.clone());
    }
    chosen
}

/// [`place_by`] with the default policy, [`Policy::Spread`].
pub fn place(rooms: Vec<NodeRoom>, demand: Demand, max: usize) -> Vec<Node> {
    place_by(Policy::Spread, rooms, demand, max, None)
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

/// A subnet's CIDR block as instances use it: `a.b.c.d/n` with host bits
/// zero and a prefix of 16 to 28, as AWS allows.
pub fn subnet(cidr: &str) -> Option<Ipv4Cidr> {
    Ipv4Cidr::parse_strict(cidr)
        .ok()
        .filter(|c| (16..=28).contains(&c.prefix()))
}

/// Addresses instances may get: AWS reserves the first four and the last
/// address of every subnet (network, router, DNS, future use, broadcast).
pub fn usable(subnet: Ipv4Cidr) -> impl Iterator<Item = Ipv4Addr> {
    subnet.hosts().skip(3)
}

/// The first `count` free addresses of `subnet`, skipping `in_use`.
pub fn free_addresses(subnet: Ipv4Cidr, in_use: &[String], count: usize) -> Vec<Ipv4Addr> {
    let taken: HashSet<&str> = in_use.iter().map(String::as_str).collect();
    usable(subnet)
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
            ..Node::default()
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
        let s = subnet("172.31.0.0/28").expect("subnet");
        let all: Vec<String> = usable(s).map(|ip| ip.to_string()).collect();
        assert_eq!(all.first().map(String::as_str), Some("172.31.0.4"));
        assert_eq!(all.last().map(String::as_str), Some("172.31.0.14"));
        assert!(subnet("172.31.0.1/20").is_none());
        assert!(subnet("10.0.0.0/8").is_none());
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
