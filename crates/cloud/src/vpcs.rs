//! VPCs: every account's default VPC (created the first time the account
//! needs it, AWS's layout: 172.31.0.0/16 with one /20 default subnet per
//! zone and a `default` security group), the VPCs and subnets an account
//! sees, and the addresses its subnets have left.

use std::net::Ipv4Addr;

use mallee_store::{DefaultVpc, SecurityGroup, SecurityGroupRule, Subnet, Vpc};
use mallee_util::cidr::Ipv4Cidr;

use crate::security_groups::firewall::firewall_changed;
use crate::{Cloud, CloudError, Kind, Principal, ids, zones};

/// The CIDR block of every default VPC.
pub const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";

/// The account's default VPC with its subnets and default group, created
/// if the account has none yet (and completed with subnets for zones
/// configured since).
pub async fn default_vpc(cloud: &Cloud, account_id: &str) -> Result<DefaultVpc, CloudError> {
    let zones = &cloud.config.zones;
    if let Some(existing) = cloud.store.default_vpc(account_id).await?
        && zones.iter().all(|z| {
            existing
                .subnets
                .iter()
                .any(|s| &s.zone == z && s.default_for_az)
        })
    {
        return Ok(existing);
    }
    let now = ids::now_millis();
    let vpc_id = ids::resource_id("vpc");
    let group_id = ids::resource_id("sg");
    let subnets = zones
        .iter()
        .enumerate()
        .map(|(i, zone)| Subnet {
            subnet_id: ids::resource_id("subnet"),
            vpc_id: vpc_id.clone(),
            account_id: account_id.to_owned(),
            zone: zone.clone(),
            cidr: zone_subnet(i).to_string(),
            default_for_az: true,
            map_public_ip_on_launch: true,
            created_at: now,
            // Given by the store.
            vni: 0,
        })
        .collect();
    let (default_group, default_rules) =
        default_security_group(account_id, &vpc_id, &group_id, now);
    let template = DefaultVpc {
        vpc: Vpc {
            vpc_id: vpc_id.clone(),
            account_id: account_id.to_owned(),
            cidr: DEFAULT_VPC_CIDR.into(),
            is_default: true,
            created_at: now,
            attributes: Default::default(),
            dhcp_options_id: None,
        },
        subnets,
        default_group,
        default_rules,
    };
    let stored = cloud.store.ensure_default_vpc(&template).await?;
    if stored.vpc.vpc_id == template.vpc.vpc_id {
        firewall_changed(cloud);
    }
    Ok(stored)
}

/// A VPC's `default` security group with AWS's rules: everything from
/// members of the same group in, everything out.
pub fn default_security_group(
    account_id: &str,
    vpc_id: &str,
    group_id: &str,
    now: i64,
) -> (SecurityGroup, Vec<SecurityGroupRule>) {
    let all_rule = |egress: bool| SecurityGroupRule {
        rule_id: ids::resource_id("sgr"),
        group_id: group_id.to_owned(),
        account_id: account_id.to_owned(),
        egress,
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        cidr: None,
        referenced_group_id: None,
        description: None,
        created_at: now,
    };
    let group = SecurityGroup {
        group_id: group_id.to_owned(),
        account_id: account_id.to_owned(),
        vpc_id: vpc_id.to_owned(),
        name: "default".into(),
        description: "default VPC security group".into(),
        created_at: now,
    };
    let rules = vec![
        SecurityGroupRule {
            referenced_group_id: Some(group_id.to_owned()),
            ..all_rule(false)
        },
        SecurityGroupRule {
            cidr: Some("0.0.0.0/0".into()),
            ..all_rule(true)
        },
    ];
    (group, rules)
}

/// Addresses of a subnet AWS leaves to instances: its size minus the five
/// it reserves.
pub fn usable_addresses(net: &Ipv4Cidr) -> u64 {
    net.size().saturating_sub(5)
}

/// The subnet's usable addresses not held by a live instance of its VPC.
pub async fn available_addresses(cloud: &Cloud, subnet: &Subnet) -> Result<u64, CloudError> {
    let net: Ipv4Cidr = subnet
        .cidr
        .parse()
        .map_err(|_| CloudError::Internal(format!("stored subnet CIDR {}", subnet.cidr)))?;
    let used = cloud
        .store
        .private_ips_in_use(&subnet.vpc_id)
        .await?
        .iter()
        .filter_map(|ip| ip.parse::<Ipv4Addr>().ok())
        .filter(|ip| net.contains(*ip))
        .count();
    Ok(usable_addresses(&net).saturating_sub(used as u64))
}

/// The caller's VPCs (its default VPC created first if need be), only
/// those named by `ids` when it names any (every one must exist).
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<Vpc>, CloudError> {
    let account = caller.account_id();
    default_vpc(cloud, account).await?;
    let vpcs = cloud.store.vpcs(account).await?;
    if let Some(missing) = ids.iter().find(|id| !vpcs.iter().any(|v| &v.vpc_id == *id)) {
        return Err(CloudError::not_found(
            Kind::Vpc,
            format!("The vpc ID '{missing}' does not exist"),
        ));
    }
    Ok(vpcs
        .into_iter()
        .filter(|v| ids.is_empty() || ids.contains(&v.vpc_id))
        .collect())
}

/// A subnet as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibleSubnet {
    /// The subnet.
    pub subnet: Subnet,
    /// Its zone's id.
    pub zone_id: String,
    /// Its usable addresses no live instance holds.
    pub available: u64,
}

/// The caller's subnets (its default VPC's created first if need be),
/// only those named by `ids` when it names any (every one must exist),
/// each with its free address count.
pub async fn subnets(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<VisibleSubnet>, CloudError> {
    let account = caller.account_id();
    default_vpc(cloud, account).await?;
    let subnets = cloud.store.subnets(account).await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !subnets.iter().any(|s| &s.subnet_id == *id))
    {
        return Err(CloudError::not_found(
            Kind::Subnet,
            format!("The subnet ID '{missing}' does not exist"),
        ));
    }
    let mut views = Vec::new();
    for subnet in subnets
        .into_iter()
        .filter(|s| ids.is_empty() || ids.contains(&s.subnet_id))
    {
        views.push(VisibleSubnet {
            zone_id: zones::zone_id(&cloud.config, &subnet.zone),
            available: available_addresses(cloud, &subnet).await?,
            subnet,
        });
    }
    Ok(views)
}

/// The private subnet of the `index`-th zone: AWS's default-VPC layout,
/// `172.31.0.0/20`, `172.31.16.0/20`, …
pub fn zone_subnet(index: usize) -> Ipv4Cidr {
    let third = u8::try_from(index.min(15) * 16).unwrap_or(0);
    Ipv4Cidr::new(Ipv4Addr::new(172, 31, third, 0), 20).expect("a /20 is a valid prefix")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_counts_follow_aws() {
        let net: Ipv4Cidr = "172.31.0.0/20".parse().expect("net");
        assert_eq!(usable_addresses(&net), 4091);
        let tiny: Ipv4Cidr = "10.0.0.0/28".parse().expect("net");
        assert_eq!(usable_addresses(&tiny), 11);
    }

    #[tokio::test]
    async fn accounts_see_their_default_vpc_and_subnets() {
        let cloud = crate::testkit::TestCloud::new().await;
        let caller = cloud.principal("owner").await;
        let vpcs = list(&cloud, &caller, &[]).await.expect("vpcs");
        assert_eq!(vpcs.len(), 1);
        assert!(vpcs[0].is_default);
        let named = list(&cloud, &caller, std::slice::from_ref(&vpcs[0].vpc_id))
            .await
            .expect("named");
        assert_eq!(named, vpcs);
        let other = cloud.principal("other").await;
        assert!(matches!(
            list(&cloud, &other, std::slice::from_ref(&vpcs[0].vpc_id)).await,
            Err(CloudError::NotFound {
                kind: Kind::Vpc,
                ..
            })
        ));
        let subnets = subnets(&cloud, &caller, &[]).await.expect("subnets");
        assert_eq!(subnets.len(), 1);
        assert_eq!(subnets[0].zone_id, "mallee-1-az1");
        assert_eq!(subnets[0].available, 4091);
        assert!(
            self::subnets(&cloud, &caller, &["subnet-0123456789abcdef0".into()])
                .await
                .is_err()
        );
    }
}
