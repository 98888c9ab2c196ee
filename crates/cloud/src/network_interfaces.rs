//! Network interfaces (DescribeNetworkInterfaces): every instance in a VPC
//! has one primary interface, `eni-…`, whose id is chosen at launch and
//! kept in the instance's details (migration 0023 gave one to instances
//! launched before), with the instance's subnet, address, MAC, groups and
//! public address. It lives as long as its instance: a terminated
//! instance's interface is gone, as AWS deletes it on termination.

use std::collections::HashMap;

use crate::instances::lookup;
use crate::instances::model::{Instance, InstanceState};
use crate::{Cloud, CloudError, Kind, Principal};

/// An elastic IP on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElasticIp {
    /// `eipalloc-…`.
    pub allocation_id: String,
    /// `eipassoc-…`.
    pub association_id: Option<String>,
}

/// One interface as its owner sees it.
#[derive(Debug, Clone)]
pub struct Interface {
    /// The instance it is attached to (device 0).
    pub instance: Instance,
    /// Its security groups as (id, name).
    pub groups: Vec<(String, String)>,
    /// The elastic IP behind its public address, if it is one.
    pub elastic_ip: Option<ElasticIp>,
}

impl Interface {
    /// `eni-…`.
    pub fn id(&self) -> &str {
        &self.instance.details.network_interface_id
    }

    /// `eni-attach-…`: stable, from the interface id.
    pub fn attachment_id(&self) -> String {
        self.id().replacen("eni-", "eni-attach-", 1)
    }

    /// Its public address, if it has one.
    pub fn public_ip(&self) -> Option<&str> {
        self.instance.details.spec.metadata.public_ipv4.as_deref()
    }
}

/// The caller's interfaces, only those named by `ids` when it names any
/// (every one must exist).
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<Interface>, CloudError> {
    let instances: Vec<Instance> = lookup::all(cloud, caller)
        .await?
        .into_iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .filter(|i| !i.details.network_interface_id.is_empty())
        .collect();
    if let Some(missing) = ids.iter().find(|id| {
        !instances
            .iter()
            .any(|i| &i.details.network_interface_id == *id)
    }) {
        return Err(CloudError::not_found(
            Kind::NetworkInterface,
            format!("The networkInterface ID '{missing}' does not exist"),
        ));
    }
    let elastic: HashMap<String, ElasticIp> = cloud
        .store
        .addresses(Some(caller.account_id()))
        .await?
        .into_iter()
        .filter(|a| !a.auto_assigned)
        .filter_map(|a| {
            a.instance_id.clone().map(|instance| {
                (
                    instance,
                    ElasticIp {
                        allocation_id: a.allocation_id,
                        association_id: a.association_id,
                    },
                )
            })
        })
        .collect();
    Ok(instances
        .into_iter()
        .filter(|i| ids.is_empty() || ids.contains(&i.details.network_interface_id))
        .map(|instance| {
            let d = &instance.details;
            let groups = d
                .security_group_ids
                .iter()
                .cloned()
                .zip(d.spec.metadata.security_groups.iter().cloned())
                .collect();
            Interface {
                groups,
                elastic_ip: elastic.get(instance.id()).cloned(),
                instance,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    #[tokio::test]
    async fn unknown_interfaces_are_not_found() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("owner").await;
        assert!(list(&cloud, &caller, &[]).await.expect("none").is_empty());
        assert!(matches!(
            list(&cloud, &caller, &["eni-0123456789abcdef0".into()]).await,
            Err(CloudError::NotFound {
                kind: Kind::NetworkInterface,
                ..
            })
        ));
    }
}
