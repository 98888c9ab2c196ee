//! Zone capacity as the controller counts it: how many instances of a given
//! size fit now and at most, summed node by node (an instance never spans
//! nodes). A node's maximum is what it registered; what is free is that
//! maximum minus what the controller placed on it, and only on nodes that
//! take new instances (up and not disabled).

use super::placement::NodeRoom;

/// The nodes of one zone.
#[derive(Debug, Clone, Default)]
pub struct ZoneCapacity {
    /// Each node's room, and whether it takes new instances now.
    pub nodes: Vec<(NodeRoom, bool)>,
}

impl ZoneCapacity {
    /// `(free, max)` instances of a type with these needs.
    pub fn fits(&self, vcpus: u32, memory_mib: u32, disk_gib: u32) -> (u64, u64) {
        let per_node = |cores: u64, memory: u64, disk: u64| -> u64 {
            let by = |have: u64, need: u32| {
                if need == 0 {
                    u64::MAX
                } else {
                    have / u64::from(need)
                }
            };
            by(cores, vcpus)
                .min(by(memory, memory_mib))
                .min(by(disk, disk_gib))
        };
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        self.nodes
            .iter()
            .fold((0, 0), |(free, max), (room, schedulable)| {
                let n = &room.node;
                let node_free = if *schedulable {
                    per_node(room.cores, room.memory_mib, room.disk_gib)
                } else {
                    0
                };
                (
                    free + node_free,
                    max + per_node(
                        unsigned(n.cores_max),
                        unsigned(n.memory_mib_max),
                        unsigned(n.disk_gib_max),
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mallee_store::Node;

    fn room(cores: i64, mem: i64, disk: i64) -> NodeRoom {
        NodeRoom {
            node: Node {
                node_id: "n".into(),
                zone: "z".into(),
                cores_max: cores,
                memory_mib_max: mem,
                disk_gib_max: disk,
                ..Node::default()
            },
            cores: (cores / 2) as u64,
            memory_mib: (mem / 2) as u64,
            disk_gib: (disk / 2) as u64,
            instances: 1,
        }
    }

    #[test]
    fn sums_per_node_minimum_and_only_schedulable_nodes_are_free() {
        assert_eq!(ZoneCapacity::default().fits(1, 256, 5), (0, 0));
        let mut zone = ZoneCapacity {
            nodes: vec![(room(8, 1024, 100), true), (room(2, 8192, 10), true)],
        };
        // node 1: min(8, 4, 20) = 4 max, min(4, 2, 10) = 2 free
        // node 2: min(2, 32, 2) = 2 max, min(1, 16, 1) = 1 free
        assert_eq!(zone.fits(1, 256, 5), (3, 6));
        // Node 2 down or disabled: its room is not on offer.
        zone.nodes[1].1 = false;
        assert_eq!(zone.fits(1, 256, 5), (2, 6));
    }
}
