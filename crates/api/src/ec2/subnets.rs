//! CreateSubnet, DeleteSubnet, ModifySubnetAttribute and DescribeSubnets
//! on the wire (`mallee_cloud::subnets` decides; `mallee_cloud::vpcs`
//! lists what the caller sees with free address counts).

use mallee_cloud::subnets::{self, NewSubnet};
use mallee_cloud::vpcs::{self, VisibleSubnet};
use mallee_cloud::zones;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

struct SubnetView<'a> {
    seen: &'a VisibleSubnet,
    arn: String,
    tags: &'a [(String, String)],
}

impl Filterable for SubnetView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let s = &self.seen.subnet;
        Some(vec![match name {
            "subnet-id" | "subnetId" => s.subnet_id.clone(),
            "subnet-arn" => self.arn.clone(),
            "vpc-id" | "vpcId" => s.vpc_id.clone(),
            "availability-zone" | "availabilityZone" => s.zone.clone(),
            "availability-zone-id" | "availabilityZoneId" => self.seen.zone_id.clone(),
            "cidr-block" | "cidrBlock" | "cidr" => s.cidr.clone(),
            "default-for-az" | "defaultForAz" => s.default_for_az.to_string(),
            "map-public-ip-on-launch" => s.map_public_ip_on_launch.to_string(),
            "available-ip-address-count" => self.seen.available.to_string(),
            "state" => "available".into(),
            "owner-id" => s.account_id.clone(),
            _ => return None,
        }])
    }
    fn tags(&self) -> &[(String, String)] {
        self.tags
    }
    fn taggable(&self) -> bool {
        true
    }
}

const SUBNET_FILTERS: &[&str] = &[
    "subnet-id",
    "subnetId",
    "subnet-arn",
    "vpc-id",
    "vpcId",
    "availability-zone",
    "availabilityZone",
    "availability-zone-id",
    "availabilityZoneId",
    "cidr-block",
    "cidrBlock",
    "cidr",
    "default-for-az",
    "defaultForAz",
    "map-public-ip-on-launch",
    "available-ip-address-count",
    "state",
    "owner-id",
];

/// DescribeSubnets input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeSubnets {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeSubnets {
    /// Reads `SubnetId.N`, `Filter.N`, `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, SUBNET_FILTERS, true)?;
        Ok(Self {
            ids: params.list("SubnetId")?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's subnets with their free address counts.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let subnets = vpcs::subnets(ctx.cloud, ctx.principal, &self.ids).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<SubnetView<'_>> = subnets
            .iter()
            .map(|seen| SubnetView {
                seen,
                arn: subnet_arn(ctx, seen),
                tags: tags.of(&seen.subnet.subnet_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self
            .page
            .apply(selected, |v| v.seen.subnet.subnet_id.clone());
        Ok(ctx.respond("DescribeSubnets", |w| {
            w.items("subnetSet", page, |w, view| {
                write_subnet(w, view.seen, &view.arn, view.tags);
            });
            w.opt_text("nextToken", next);
        }))
    }
}

/// The ARN of a subnet.
fn subnet_arn(ctx: &Ec2Context<'_>, seen: &VisibleSubnet) -> String {
    format!(
        "arn:aws:ec2:{}:{}:subnet/{}",
        ctx.cloud.config.region, seen.subnet.account_id, seen.subnet.subnet_id
    )
}

/// A subnet's fields, as CreateSubnet's `subnet` and DescribeSubnets'
/// items carry them.
fn write_subnet(w: &mut XmlWriter, seen: &VisibleSubnet, arn: &str, tags: &[(String, String)]) {
    let s = &seen.subnet;
    w.text("subnetId", &s.subnet_id);
    w.text("subnetArn", arn);
    w.text("state", "available");
    w.text("ownerId", &s.account_id);
    w.text("vpcId", &s.vpc_id);
    w.text("cidrBlock", &s.cidr);
    w.elem("ipv6CidrBlockAssociationSet", |_| {});
    w.text("availableIpAddressCount", seen.available);
    w.text("availabilityZone", &s.zone);
    w.text("availabilityZoneId", &seen.zone_id);
    w.text("defaultForAz", s.default_for_az);
    w.text("mapPublicIpOnLaunch", s.map_public_ip_on_launch);
    w.text("mapCustomerOwnedIpOnLaunch", false);
    w.text("assignIpv6AddressOnCreation", false);
    w.text("enableDns64", false);
    w.text("ipv6Native", false);
    w.elem("privateDnsNameOptionsOnLaunch", |w| {
        w.text("hostnameType", "ip-name");
        w.text("enableResourceNameDnsARecord", false);
        w.text("enableResourceNameDnsAAAARecord", false);
    });
    write_tag_set(w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// CreateSubnet input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSubnet(NewSubnet);

impl CreateSubnet {
    /// Reads `VpcId`, `CidrBlock`, `AvailabilityZone`, `AvailabilityZoneId`
    /// and `TagSpecification.N` (type `subnet`); IPv6 and IPAM are refused.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let unsupported = [
            "Ipv6CidrBlock",
            "Ipv4IpamPoolId",
            "Ipv6IpamPoolId",
            "Ipv4NetmaskLength",
            "Ipv6NetmaskLength",
            "OutpostArn",
        ];
        let ipv6_native = params.bool("Ipv6Native")? == Some(true);
        if let Some(name) = unsupported
            .iter()
            .find(|n| params.get(n).is_some_and(|v| !v.is_empty()))
            .copied()
            .or(ipv6_native.then_some("Ipv6Native"))
        {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                format!("mallee subnets have one IPv4 CIDR block: {name} is not supported."),
            ));
        }
        let non_empty = |name: &str| {
            params
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Ok(Self(NewSubnet {
            vpc_id: params.required_non_empty("VpcId")?.to_owned(),
            cidr: params.required_non_empty("CidrBlock")?.to_owned(),
            zone: non_empty("AvailabilityZone"),
            zone_id: non_empty("AvailabilityZoneId"),
            tags: parse_tag_specifications(params, "subnet")?,
        }))
    }

    /// Creates the subnet.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let tags: Vec<(String, String)> = self
            .0
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        let subnet = subnets::create(ctx.cloud, ctx.principal, self.0).await?;
        let seen = VisibleSubnet {
            zone_id: zones::zone_id(&ctx.cloud.config, &subnet.zone),
            available: vpcs::available_addresses(ctx.cloud, &subnet).await?,
            subnet,
        };
        let arn = subnet_arn(ctx, &seen);
        Ok(ctx.respond("CreateSubnet", |w| {
            w.elem("subnet", |w| write_subnet(w, &seen, &arn, &tags));
        }))
    }
}

/// DeleteSubnet input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteSubnet {
    subnet_id: String,
}

impl DeleteSubnet {
    /// Reads `SubnetId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            subnet_id: params.required_non_empty("SubnetId")?.to_owned(),
        })
    }

    /// Deletes the subnet unless an instance is in it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        subnets::delete(ctx.cloud, ctx.principal, &self.subnet_id).await?;
        Ok(ctx.respond_true("DeleteSubnet"))
    }
}

/// ModifySubnetAttribute input: `MapPublicIpOnLaunch` only.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifySubnetAttribute {
    subnet_id: String,
    map_public_ip: bool,
}

impl ModifySubnetAttribute {
    /// Reads `SubnetId` and `MapPublicIpOnLaunch.Value`; the IPv6, DNS and
    /// Outposts attributes are refused.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let subnet_id = params.required_non_empty("SubnetId")?.to_owned();
        let map_public_ip = params.bool("MapPublicIpOnLaunch.Value")?;
        let others = [
            "AssignIpv6AddressOnCreation.Value",
            "MapCustomerOwnedIpOnLaunch.Value",
            "CustomerOwnedIpv4Pool",
            "EnableDns64.Value",
            "EnableResourceNameDnsARecordOnLaunch.Value",
            "EnableResourceNameDnsAAAARecordOnLaunch.Value",
            "PrivateDnsHostnameTypeOnLaunch",
            "EnableLniAtDeviceIndex",
            "DisableLniAtDeviceIndex.Value",
        ];
        let other = others.iter().find(|n| params.get(n).is_some());
        match (map_public_ip, other) {
            (Some(value), None) => Ok(Self {
                subnet_id,
                map_public_ip: value,
            }),
            (Some(_), Some(_)) => Err(Ec2Error::InvalidParameterCombination(
                "Only one attribute can be modified at a time".into(),
            )),
            (None, Some(name)) => Err(Ec2Error::refused(
                "UnsupportedOperation",
                format!("mallee subnets support only MapPublicIpOnLaunch, not {name}."),
            )),
            (None, None) => Err(Ec2Error::InvalidParameterCombination(
                "No attributes specified.".into(),
            )),
        }
    }

    /// Sets the attribute.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        subnets::set_map_public_ip(
            ctx.cloud,
            ctx.principal,
            &self.subnet_id,
            self.map_public_ip,
        )
        .await?;
        Ok(ctx.respond_true("ModifySubnetAttribute"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::test_params as params;

    #[test]
    fn one_subnet_attribute_at_a_time() {
        let ok = ModifySubnetAttribute::parse(&params(&[
            ("SubnetId", "subnet-1"),
            ("MapPublicIpOnLaunch.Value", "true"),
        ]))
        .expect("parse");
        assert!(ok.map_public_ip);
        assert!(ModifySubnetAttribute::parse(&params(&[("SubnetId", "subnet-1")])).is_err());
        assert!(
            ModifySubnetAttribute::parse(&params(&[
                ("SubnetId", "subnet-1"),
                ("EnableDns64.Value", "true"),
            ]))
            .is_err()
        );
        assert!(CreateSubnet::parse(&params(&[("VpcId", "vpc-1")])).is_err());
    }
}
