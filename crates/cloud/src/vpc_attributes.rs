//! A VPC's attributes (DescribeVpcAttribute, ModifyVpcAttribute) and what
//! the DNS ones change where traffic flows: `enableDnsSupport` turns the
//! VPC's resolver on or off on every node holding its instances, and
//! `enableDnsHostnames` gives its instances public DNS names or takes them
//! away (DescribeInstances' `PublicDnsName`, the metadata service's
//! `public-hostname`, the resolver's public names and the public DNS
//! server). Running instances follow at once: their specs change and their
//! nodes apply them.

use mallee_store::VpcAttributes;

use crate::instances::model::InstanceState;
use crate::instances::{lifecycle, quota};
use crate::{Cloud, CloudError, Kind, Principal, addresses, vpcs};

/// One attribute, as ModifyVpcAttribute names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcAttribute {
    /// `enableDnsSupport`.
    DnsSupport,
    /// `enableDnsHostnames`.
    DnsHostnames,
    /// `enableNetworkAddressUsageMetrics`.
    AddressUsageMetrics,
}

impl VpcAttribute {
    /// The attribute `name` names (AWS's spelling).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "enableDnsSupport" => Self::DnsSupport,
            "enableDnsHostnames" => Self::DnsHostnames,
            "enableNetworkAddressUsageMetrics" => Self::AddressUsageMetrics,
            _ => return None,
        })
    }

    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::DnsSupport => "enableDnsSupport",
            Self::DnsHostnames => "enableDnsHostnames",
            Self::AddressUsageMetrics => "enableNetworkAddressUsageMetrics",
        }
    }

    /// Its value in `attributes`.
    pub fn of(self, attributes: &VpcAttributes) -> bool {
        match self {
            Self::DnsSupport => attributes.dns_support,
            Self::DnsHostnames => attributes.dns_hostnames,
            Self::AddressUsageMetrics => attributes.address_usage_metrics,
        }
    }

    fn set(self, attributes: &mut VpcAttributes, value: bool) {
        match self {
            Self::DnsSupport => attributes.dns_support = value,
            Self::DnsHostnames => attributes.dns_hostnames = value,
            Self::AddressUsageMetrics => attributes.address_usage_metrics = value,
        }
    }
}

/// The attributes of the caller's VPC `vpc_id`.
pub async fn describe(
    cloud: &Cloud,
    caller: &Principal,
    vpc_id: &str,
) -> Result<VpcAttributes, CloudError> {
    Ok(owned(cloud, caller, vpc_id).await?.attributes)
}

/// Sets one attribute of the caller's VPC `vpc_id`, and makes its running
/// instances follow a DNS one.
pub async fn modify(
    cloud: &Cloud,
    caller: &Principal,
    vpc_id: &str,
    attribute: VpcAttribute,
    value: bool,
) -> Result<(), CloudError> {
    let vpc = owned(cloud, caller, vpc_id).await?;
    let mut attributes = vpc.attributes;
    // AWS refuses public names without the resolver.
    if attribute == VpcAttribute::DnsHostnames && value && !attributes.dns_support {
        return Err(CloudError::Invalid(
            "enableDnsHostnames can only be enabled when enableDnsSupport is enabled.".into(),
        ));
    }
    if attribute == VpcAttribute::DnsSupport && !value && attributes.dns_hostnames {
        return Err(CloudError::Invalid(
            "enableDnsSupport can only be disabled when enableDnsHostnames is disabled.".into(),
        ));
    }
    attribute.set(&mut attributes, value);
    if attributes == vpc.attributes {
        return Ok(());
    }
    cloud.store.set_vpc_attributes(vpc_id, &attributes).await?;
    if attribute == VpcAttribute::AddressUsageMetrics {
        return Ok(());
    }
    let members: Vec<String> = quota::all_instances(cloud)
        .await?
        .into_iter()
        .filter(|i| i.record.account_id == caller.account_id())
        .filter(|i| i.state != InstanceState::Terminated)
        .filter(|i| i.details.spec.nics.iter().any(|n| n.network_id == vpc_id))
        .map(|i| i.id().to_owned())
        .collect();
    if members.is_empty() {
        return Ok(());
    }
    let domain = cloud.config.public_domain();
    lifecycle::change(cloud, caller, &members, |instance, _| {
        let details = &mut instance.details;
        for nic in details
            .spec
            .nics
            .iter_mut()
            .filter(|n| n.network_id == vpc_id)
        {
            nic.dns = attributes.into();
        }
        let ip = details.spec.metadata.public_ipv4.clone();
        addresses::set_public_ip(details, ip.as_deref(), &domain);
        // The node gets the new spec: its resolver and metadata follow.
        instance.record.generation += 1;
        Ok(true)
    })
    .await?;
    Ok(())
}

/// The caller's VPC `vpc_id` (its default VPC made first if need be).
async fn owned(
    cloud: &Cloud,
    caller: &Principal,
    vpc_id: &str,
) -> Result<mallee_store::Vpc, CloudError> {
    vpcs::default_vpc(cloud, caller.account_id()).await?;
    match cloud.store.vpc(vpc_id).await? {
        Some(vpc) if vpc.account_id == caller.account_id() => Ok(vpc),
        _ => Err(CloudError::not_found(
            Kind::Vpc,
            format!("The vpc ID '{vpc_id}' does not exist"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    #[tokio::test]
    async fn dns_attributes_are_kept_checked_and_the_owners_only() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("acct").await;
        let vpc = vpcs::default_vpc(&cloud, caller.account_id())
            .await
            .expect("vpc")
            .vpc;
        let id = vpc.vpc_id.as_str();
        assert_eq!(
            describe(&cloud, &caller, id).await.expect("describe"),
            VpcAttributes::default()
        );
        // The resolver cannot go while public names need it.
        assert!(matches!(
            modify(&cloud, &caller, id, VpcAttribute::DnsSupport, false).await,
            Err(CloudError::Invalid(_))
        ));
        modify(&cloud, &caller, id, VpcAttribute::DnsHostnames, false)
            .await
            .expect("hostnames off");
        modify(&cloud, &caller, id, VpcAttribute::DnsSupport, false)
            .await
            .expect("support off");
        assert!(matches!(
            modify(&cloud, &caller, id, VpcAttribute::DnsHostnames, true).await,
            Err(CloudError::Invalid(_))
        ));
        modify(&cloud, &caller, id, VpcAttribute::AddressUsageMetrics, true)
            .await
            .expect("metrics on");
        let now = describe(&cloud, &caller, id).await.expect("describe");
        assert_eq!(
            (
                now.dns_support,
                now.dns_hostnames,
                now.address_usage_metrics
            ),
            (false, false, true)
        );
        let other = cloud.principal("other").await;
        assert!(matches!(
            describe(&cloud, &other, id).await,
            Err(CloudError::NotFound {
                kind: Kind::Vpc,
                ..
            })
        ));
        assert_eq!(
            VpcAttribute::parse("enableDnsSupport"),
            Some(VpcAttribute::DnsSupport)
        );
        assert_eq!(VpcAttribute::parse("enableDns"), None);
    }
}
