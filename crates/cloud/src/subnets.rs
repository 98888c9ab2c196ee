//! Subnets of any VPC: CreateSubnet (a /16 to /28 block inside its VPC's
//! that overlaps no other subnet of the VPC, in a configured zone; its own
//! VNI from the store, so its bridge on every node and its VXLAN segment
//! between nodes are its own), DeleteSubnet (refused while a live instance
//! has its interface there) and ModifySubnetAttribute
//! `MapPublicIpOnLaunch` (off for a new subnet, as AWS has it).

use mallee_store::{StoreError, Subnet, SubnetDeletion, TagPair};
use mallee_util::cidr::Ipv4Cidr;

use crate::vpc_lifecycle::PREFIX_RANGE;
use crate::{Cloud, CloudError, Kind, Principal, ids, vpcs};

/// What CreateSubnet asks for, checked for form by the protocol layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubnet {
    /// `VpcId`.
    pub vpc_id: String,
    /// `CidrBlock`.
    pub cidr: String,
    /// `AvailabilityZone`.
    pub zone: Option<String>,
    /// `AvailabilityZoneId`.
    pub zone_id: Option<String>,
    /// `TagSpecification` of type `subnet`.
    pub tags: Vec<TagPair>,
}

fn subnet_not_found(subnet_id: &str) -> CloudError {
    CloudError::not_found(
        Kind::Subnet,
        format!("The subnet ID '{subnet_id}' does not exist"),
    )
}

/// The zone a new subnet goes to: the one named by name or by id (not
/// both), else the first configured zone.
fn zone_of(cloud: &Cloud, new: &NewSubnet) -> Result<String, CloudError> {
    let zones = &cloud.config.zones;
    let invalid = |what: &str, value: &str| {
        CloudError::Invalid(format!(
            "Value ({value}) for parameter {what} is invalid. Subnets can currently only be created in the following availability zones: {}.",
            zones.join(", ")
        ))
    };
    match (&new.zone, &new.zone_id) {
        (Some(_), Some(_)) => Err(CloudError::InvalidCombination(
            "Only one of AvailabilityZone or AvailabilityZoneId may be specified.".into(),
        )),
        (Some(zone), None) => zones
            .iter()
            .find(|z| *z == zone)
            .cloned()
            .ok_or_else(|| invalid("availabilityZone", zone)),
        (None, Some(id)) => zones
            .iter()
            .enumerate()
            .find(|(i, _)| &cloud.config.zone_id(*i) == id)
            .map(|(_, z)| z.clone())
            .ok_or_else(|| invalid("availabilityZoneId", id)),
        (None, None) => zones
            .first()
            .cloned()
            .ok_or_else(|| CloudError::Internal("no availability zone is configured".into())),
    }
}

/// Creates a subnet in one of the caller's VPCs.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    new: NewSubnet,
) -> Result<Subnet, CloudError> {
    let account = caller.account_id();
    vpcs::default_vpc(cloud, account).await?;
    let vpc = cloud
        .store
        .vpc(&new.vpc_id)
        .await?
        .filter(|v| v.account_id == account)
        .ok_or_else(|| {
            CloudError::not_found(
                Kind::Vpc,
                format!("The vpc ID '{}' does not exist", new.vpc_id),
            )
        })?;
    let cidr = &new.cidr;
    let net = Ipv4Cidr::parse_strict(cidr).map_err(|_| {
        CloudError::Invalid(format!(
            "Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })?;
    let vpc_net: Ipv4Cidr = vpc
        .cidr
        .parse()
        .map_err(|_| CloudError::Internal(format!("stored VPC CIDR {}", vpc.cidr)))?;
    if !PREFIX_RANGE.contains(&net.prefix()) || !vpc_net.contains_net(net) {
        return Err(CloudError::Range {
            kind: Kind::Subnet,
            message: format!("The CIDR '{cidr}' is invalid."),
        });
    }
    let conflict = || CloudError::Duplicate {
        kind: Kind::Subnet,
        message: format!("The CIDR '{cidr}' conflicts with another subnet"),
    };
    let siblings = cloud.store.subnets(account).await?;
    if siblings
        .iter()
        .filter(|s| s.vpc_id == vpc.vpc_id)
        .filter_map(|s| s.cidr.parse::<Ipv4Cidr>().ok())
        .any(|other| other.overlaps(net))
    {
        return Err(conflict());
    }
    let zone = zone_of(cloud, &new)?;
    let subnet = Subnet {
        subnet_id: ids::resource_id("subnet"),
        vpc_id: vpc.vpc_id.clone(),
        account_id: account.to_owned(),
        zone,
        cidr: net.to_string(),
        default_for_az: false,
        map_public_ip_on_launch: false,
        created_at: ids::now_millis(),
        // Given by the store.
        vni: 0,
    };
    let stored = match cloud.store.create_subnet(&subnet, &new.tags).await {
        Ok(stored) => stored,
        // A racing request stored the same block first.
        Err(StoreError::Conflict(_)) => return Err(conflict()),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(subnet = %stored.subnet_id, vpc = %stored.vpc_id, cidr = %stored.cidr, vni = stored.vni, "subnet created");
    Ok(stored)
}

/// Deletes the caller's subnet `subnet_id`.
pub async fn delete(cloud: &Cloud, caller: &Principal, subnet_id: &str) -> Result<(), CloudError> {
    match cloud
        .store
        .delete_subnet(caller.account_id(), subnet_id)
        .await?
    {
        SubnetDeletion::Deleted => {
            tracing::info!(subnet = %subnet_id, "subnet deleted");
            Ok(())
        }
        SubnetDeletion::NotFound => Err(subnet_not_found(subnet_id)),
        SubnetDeletion::InUse { instance_id } => Err(CloudError::Dependency {
            kind: Kind::Subnet,
            message: format!(
                "The subnet '{subnet_id}' has dependencies and cannot be deleted. ({instance_id} is in it)"
            ),
        }),
    }
}

/// Sets whether instances launched in the caller's subnet get a public
/// address unless told otherwise.
pub async fn set_map_public_ip(
    cloud: &Cloud,
    caller: &Principal,
    subnet_id: &str,
    value: bool,
) -> Result<(), CloudError> {
    vpcs::default_vpc(cloud, caller.account_id()).await?;
    let owned = cloud
        .store
        .subnet(subnet_id)
        .await?
        .is_some_and(|s| s.account_id == caller.account_id());
    if !owned
        || !cloud
            .store
            .set_subnet_map_public_ip(subnet_id, value)
            .await?
    {
        return Err(subnet_not_found(subnet_id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;
    use crate::vpc_lifecycle::{self, NewVpc};

    fn new(vpc_id: &str, cidr: &str) -> NewSubnet {
        NewSubnet {
            vpc_id: vpc_id.into(),
            cidr: cidr.into(),
            zone: None,
            zone_id: None,
            tags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn subnets_stay_inside_their_vpc_and_apart() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("owner").await;
        let vpc = vpc_lifecycle::create(
            &cloud,
            &caller,
            NewVpc {
                cidr: "10.0.0.0/16".into(),
                tenancy: None,
                tags: Vec::new(),
            },
        )
        .await
        .expect("vpc");
        let id = vpc.vpc_id.as_str();
        let subnet = create(&cloud, &caller, new(id, "10.0.1.0/24"))
            .await
            .expect("subnet");
        assert_eq!(subnet.zone, cloud.config.zones[0]);
        assert!(!subnet.map_public_ip_on_launch && !subnet.default_for_az);
        assert!(subnet.vni > 0);
        for (cidr, range) in [("10.1.0.0/24", true), ("10.0.0.0/29", true)] {
            assert_eq!(
                matches!(
                    create(&cloud, &caller, new(id, cidr)).await,
                    Err(CloudError::Range {
                        kind: Kind::Subnet,
                        ..
                    })
                ),
                range,
                "{cidr}"
            );
        }
        for overlapping in ["10.0.1.0/24", "10.0.0.0/23", "10.0.1.128/25"] {
            assert!(
                matches!(
                    create(&cloud, &caller, new(id, overlapping)).await,
                    Err(CloudError::Duplicate {
                        kind: Kind::Subnet,
                        ..
                    })
                ),
                "{overlapping}"
            );
        }
        assert!(matches!(
            create(&cloud, &caller, new(id, "10.0.2.1/24")).await,
            Err(CloudError::Invalid(_))
        ));
        let zoned = NewSubnet {
            zone_id: Some(cloud.config.zone_id(0)),
            ..new(id, "10.0.2.0/24")
        };
        assert_eq!(
            create(&cloud, &caller, zoned)
                .await
                .expect("by zone id")
                .zone,
            cloud.config.zones[0]
        );
        let nowhere = NewSubnet {
            zone: Some("elsewhere-1a".into()),
            ..new(id, "10.0.3.0/24")
        };
        assert!(matches!(
            create(&cloud, &caller, nowhere).await,
            Err(CloudError::Invalid(_))
        ));
        let other = cloud.principal("other").await;
        assert!(matches!(
            create(&cloud, &other, new(id, "10.0.4.0/24")).await,
            Err(CloudError::NotFound {
                kind: Kind::Vpc,
                ..
            })
        ));
        assert!(matches!(
            set_map_public_ip(&cloud, &other, &subnet.subnet_id, true).await,
            Err(CloudError::NotFound {
                kind: Kind::Subnet,
                ..
            })
        ));
        set_map_public_ip(&cloud, &caller, &subnet.subnet_id, true)
            .await
            .expect("map");
        assert!(
            cloud
                .store
                .subnet(&subnet.subnet_id)
                .await
                .expect("read")
                .expect("exists")
                .map_public_ip_on_launch
        );
        // The VPC waits for its subnets.
        assert!(matches!(
            vpc_lifecycle::delete(&cloud, &caller, id).await,
            Err(CloudError::Dependency {
                kind: Kind::Vpc,
                ..
            })
        ));
        assert!(matches!(
            delete(&cloud, &other, &subnet.subnet_id).await,
            Err(CloudError::NotFound { .. })
        ));
        delete(&cloud, &caller, &subnet.subnet_id)
            .await
            .expect("delete");
    }
}
