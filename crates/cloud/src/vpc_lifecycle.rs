//! Custom VPCs: CreateVpc (a CIDR block of /16 to /28 that the cloud's
//! own networks leave free, a `default` security group with AWS's rules,
//! DNS support on and DNS host names off as AWS gives a new VPC) and
//! DeleteVpc (refused while a subnet, another security group or a live
//! instance is in it). Two VPCs may use the same CIDR: each is its own
//! network namespace on every node and its own VXLAN segments between
//! nodes, so nothing is shared (docs/networking.md, "Custom VPCs").

use std::net::Ipv4Addr;

use mallee_store::{StoreError, TagPair, Vpc, VpcAttributes, VpcDeletion};
use mallee_util::cidr::Ipv4Cidr;

use crate::security_groups::firewall_changed;
use crate::{Cloud, CloudError, Kind, Principal, ids, vpcs};

/// The smallest and largest VPC and subnet blocks AWS allows.
pub const PREFIX_RANGE: std::ops::RangeInclusive<u8> = 16..=28;

/// Ranges no VPC may use: the link-local block holds the metadata service
/// and the resolver, loopback and multicast are not unicast networks.
const RESERVED: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(224, 0, 0, 0), 3),
];

/// `cidr` as a block a VPC can have: well formed with host bits zero
/// (`InvalidParameterValue` otherwise), /16 to /28 and clear of reserved
/// ranges and of the cloud's public ranges, which every VPC namespace
/// routes to (`InvalidVpc.Range` otherwise, as AWS names a range it
/// refuses).
pub fn vpc_cidr(cloud: &Cloud, cidr: &str) -> Result<Ipv4Cidr, CloudError> {
    let net = Ipv4Cidr::parse_strict(cidr).map_err(|_| {
        CloudError::Invalid(format!(
            "Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })?;
    let range = || CloudError::Range {
        kind: Kind::Vpc,
        message: format!("The CIDR '{cidr}' is invalid."),
    };
    if !PREFIX_RANGE.contains(&net.prefix()) {
        return Err(range());
    }
    let reserved = RESERVED
        .iter()
        .filter_map(|(addr, prefix)| Ipv4Cidr::new(*addr, *prefix).ok())
        .chain(cloud.config.public_ranges.iter().map(|r| r.cidr.0));
    if reserved.into_iter().any(|r| r.overlaps(net)) {
        return Err(range());
    }
    Ok(net)
}

/// What CreateVpc asks for, checked for form by the protocol layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVpc {
    /// `CidrBlock`.
    pub cidr: String,
    /// `InstanceTenancy` (`default` when not given).
    pub tenancy: Option<String>,
    /// `TagSpecification` of type `vpc`.
    pub tags: Vec<TagPair>,
}

/// Creates a VPC for the caller with its default security group.
pub async fn create(cloud: &Cloud, caller: &Principal, new: NewVpc) -> Result<Vpc, CloudError> {
    let account = caller.account_id();
    match new.tenancy.as_deref() {
        None | Some("default") => {}
        Some("dedicated" | "host") => {
            return Err(CloudError::Unsupported(
                "mallee places every instance on shared nodes: only the 'default' instance tenancy is supported.".into(),
            ));
        }
        Some(other) => {
            return Err(CloudError::Invalid(format!(
                "Value ({other}) for parameter instanceTenancy is invalid. Valid values: default, dedicated, host"
            )));
        }
    }
    let net = vpc_cidr(cloud, &new.cidr)?;
    // The account's default VPC and group exist before any other, so the
    // default VPC is always the one created first.
    vpcs::default_vpc(cloud, account).await?;
    let now = ids::now_millis();
    let vpc = Vpc {
        vpc_id: ids::resource_id("vpc"),
        account_id: account.to_owned(),
        cidr: net.to_string(),
        is_default: false,
        created_at: now,
        // AWS: a new VPC resolves names but gives no public ones.
        attributes: VpcAttributes {
            dns_support: true,
            dns_hostnames: false,
            address_usage_metrics: false,
        },
        dhcp_options_id: None,
    };
    let group_id = ids::resource_id("sg");
    let (group, rules) = vpcs::default_security_group(account, &vpc.vpc_id, &group_id, now);
    cloud
        .store
        .create_vpc(&vpc, &group, &rules, &new.tags)
        .await?;
    firewall_changed(cloud);
    // Its main route table, with the local route only.
    crate::routing::ensure_main(cloud, &vpc).await?;
    tracing::info!(vpc = %vpc.vpc_id, account = %account, cidr = %vpc.cidr, "VPC created");
    Ok(vpc)
}

fn vpc_not_found(vpc_id: &str) -> CloudError {
    CloudError::not_found(Kind::Vpc, format!("The vpc ID '{vpc_id}' does not exist"))
}

/// Deletes the caller's VPC `vpc_id` and its default security group.
pub async fn delete(cloud: &Cloud, caller: &Principal, vpc_id: &str) -> Result<(), CloudError> {
    let account = caller.account_id();
    let vpc = cloud
        .store
        .vpc(vpc_id)
        .await?
        .filter(|v| v.account_id == account)
        .ok_or_else(|| vpc_not_found(vpc_id))?;
    if vpc.is_default {
        // Launches without a subnet, and tools that assume one, need it;
        // mallee would only make it again.
        return Err(CloudError::Unsupported(
            "mallee keeps every account's default VPC: it cannot be deleted.".into(),
        ));
    }
    match cloud.store.delete_vpc(account, vpc_id).await {
        Ok(VpcDeletion::Deleted) => {
            firewall_changed(cloud);
            tracing::info!(vpc = %vpc_id, account = %account, "VPC deleted");
            Ok(())
        }
        Ok(VpcDeletion::NotFound) | Err(StoreError::NotFound(_)) => Err(vpc_not_found(vpc_id)),
        Ok(VpcDeletion::Dependency { resource_id }) => Err(CloudError::Dependency {
            kind: Kind::Vpc,
            message: format!(
                "The vpc '{vpc_id}' has dependencies and cannot be deleted. ({resource_id} is in it)"
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    fn new(cidr: &str) -> NewVpc {
        NewVpc {
            cidr: cidr.into(),
            tenancy: None,
            tags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn vpcs_are_made_checked_and_deleted() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("owner").await;
        let vpc = create(&cloud, &caller, new("10.0.0.0/16"))
            .await
            .expect("vpc");
        assert!(!vpc.is_default);
        assert!(vpc.attributes.dns_support && !vpc.attributes.dns_hostnames);
        // The same CIDR again is another VPC.
        let twin = create(&cloud, &caller, new("10.0.0.0/16"))
            .await
            .expect("twin");
        assert_ne!(twin.vpc_id, vpc.vpc_id);
        let groups = cloud
            .store
            .security_groups(caller.account_id())
            .await
            .expect("groups");
        assert!(
            groups
                .iter()
                .any(|g| g.vpc_id == vpc.vpc_id && g.name == "default")
        );
        for (cidr, range) in [
            ("10.0.0.0/8", true),
            ("10.0.0.0/29", true),
            ("169.254.0.0/16", true),
            ("10.0.0.1/16", false),
            ("10.0.0.0", false),
            ("banana", false),
        ] {
            let err = create(&cloud, &caller, new(cidr)).await.expect_err(cidr);
            assert_eq!(
                matches!(
                    err,
                    CloudError::Range {
                        kind: Kind::Vpc,
                        ..
                    }
                ),
                range,
                "{cidr}: {err:?}"
            );
        }
        let public = cloud.config.public_ranges[0].cidr.to_string();
        assert!(matches!(
            create(&cloud, &caller, new(&public)).await,
            Err(CloudError::Range { .. })
        ));
        assert!(matches!(
            create(
                &cloud,
                &caller,
                NewVpc {
                    tenancy: Some("dedicated".into()),
                    ..new("10.1.0.0/16")
                }
            )
            .await,
            Err(CloudError::Unsupported(_))
        ));
        let other = cloud.principal("other").await;
        assert!(matches!(
            delete(&cloud, &other, &vpc.vpc_id).await,
            Err(CloudError::NotFound {
                kind: Kind::Vpc,
                ..
            })
        ));
        let default = vpcs::default_vpc(&cloud, caller.account_id())
            .await
            .expect("default");
        assert!(matches!(
            delete(&cloud, &caller, &default.vpc.vpc_id).await,
            Err(CloudError::Unsupported(_))
        ));
        delete(&cloud, &caller, &vpc.vpc_id).await.expect("delete");
        assert!(cloud.store.vpc(&vpc.vpc_id).await.expect("read").is_none());
        assert!(matches!(
            delete(&cloud, &caller, &vpc.vpc_id).await,
            Err(CloudError::NotFound {
                kind: Kind::Vpc,
                ..
            })
        ));
    }
}
