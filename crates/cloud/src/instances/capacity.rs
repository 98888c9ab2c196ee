//! Zone capacity from the nodes' reports: how many instances of a given size
//! fit now and at most, summed node by node (an instance never spans nodes).

use mallee_store::Node;

/// The nodes of one zone.
#[derive(Debug, Clone, Default)]
pub struct ZoneCapacity {
    /// Nodes serving the zone.
    pub nodes: Vec<Node>,
}

impl ZoneCapacity {
    /// `(free, max)` instances of a type with these needs.
    pub fn fits(&self, vcpus: u32, memory_mib: u32, disk_gib: u32) -> (u64, u64) {
        let per_node = |cores: i64, memory: i64, disk: i64| -> u64 {
            let by = |have: i64, need: u32| {
                if need == 0 {
                    u64::MAX
                } else {
                    (have.max(0) as u64) / u64::from(need)
                }
            };
            by(cores, vcpus)
                .min(by(memory, memory_mib))
                .min(by(disk, disk_gib))
        };
        self.nodes.iter().fold((0, 0), |(free, max), n| {
            (
                free + per_node(n.cores_free, n.memory_mib_free, n.disk_gib_free),
                max + per_node(n.cores_max, n.memory_mib_max, n.disk_gib_max),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(cores: i64, mem: i64, disk: i64) -> Node {
        Node {
            node_id: "n".into(),
            zone: "z".into(),
            address: String::new(),
            cores_max: cores,
            cores_free: cores / 2,
            memory_mib_max: mem,
            memory_mib_free: mem / 2,
            disk_gib_max: disk,
            disk_gib_free: disk / 2,
            updated_at: 0,
            underlay_ip: None,
        }
    }

    #[test]
    fn sums_per_node_minimum() {
        assert_eq!(ZoneCapacity::default().fits(1, 256, 5), (0, 0));
        let zone = ZoneCapacity {
            nodes: vec![node(8, 1024, 100), node(2, 8192, 10)],
        };
        // node 1: min(8, 4, 20) = 4 max, min(4, 2, 10) = 2 free
        // node 2: min(2, 32, 2) = 2 max, min(1, 16, 1) = 1 free
        assert_eq!(zone.fits(1, 256, 5), (3, 6));
    }
}
