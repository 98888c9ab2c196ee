//! DescribeNodes (a Eucalyptus extension, as `euca-describe-nodes`): the
//! cloud's nodes with their health, heartbeat age, accelerator and
//! capacity, for the administrators' console page. Callers need
//! `ec2:DescribeNodes` and an administrator account
//! ([`mallee_cloud::node_status::describe`]).

use mallee_cloud::node_status::{self, NodeStatus};

use crate::query::QueryParams;

use super::{Ec2Context, Ec2Error};

/// DescribeNodes input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeNodes {
    names: Vec<String>,
}

impl DescribeNodes {
    /// Reads `NodeName.N` (every node when absent).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            names: params.list("NodeName")?,
        })
    }

    /// Lists the nodes.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let now = mallee_cloud::ids::now_millis();
        let nodes: Vec<NodeStatus> = node_status::describe(&*ctx.cloud.store, ctx.principal, now)
            .await?
            .into_iter()
            .filter(|n| self.names.is_empty() || self.names.contains(&n.node.node_id))
            .collect();
        Ok(ctx.respond("DescribeNodes", |w| {
            w.items("nodeSet", &nodes, |w, n| {
                w.text("nodeName", &n.node.node_id);
                w.text("availabilityZone", &n.node.zone);
                w.text("address", &n.node.address);
                w.text("health", n.health.name());
                w.text("disabled", n.node.disabled);
                w.text("schedulable", n.schedulable());
                w.text("heartbeatAgeMillis", n.heartbeat_age_ms);
                w.text("version", &n.node.version);
                w.text("accelerator", &n.node.accel);
                w.elem("capacity", |w| {
                    w.text("maxCores", n.node.cores_max);
                    w.text("usedCores", n.used.cores);
                    w.text("freeCores", n.free.cores);
                    w.text("maxMemoryMib", n.node.memory_mib_max);
                    w.text("usedMemoryMib", n.used.memory_mib);
                    w.text("freeMemoryMib", n.free.memory_mib);
                    w.text("maxDiskGib", n.node.disk_gib_max);
                    w.text("usedDiskGib", n.used.disk_gib);
                    w.text("freeDiskGib", n.free.disk_gib);
                });
                w.items("instanceSet", &n.instances, |w, id| {
                    w.text("instanceId", id)
                });
            });
        }))
    }
}
