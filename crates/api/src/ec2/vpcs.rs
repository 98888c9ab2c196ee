//! DescribeVpcs and DescribeSubnets on the wire: filters, pages and XML
//! over the VPCs and subnets the caller sees (`mallee_cloud::vpcs`, which
//! creates an account's default VPC the first time it needs one).

use mallee_cloud::vpcs::{self, VisibleSubnet};
use mallee_store::Vpc;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;

use super::tags::{TagsByResource, write_tag_set};
use super::{Ec2Context, Ec2Error};

struct VpcView<'a> {
    vpc: &'a Vpc,
    tags: &'a [(String, String)],
}

impl VpcView<'_> {
    fn association_id(&self) -> String {
        let hex = self
            .vpc
            .vpc_id
            .strip_prefix("vpc-")
            .unwrap_or(&self.vpc.vpc_id);
        format!("vpc-cidr-assoc-{hex}")
    }
}

impl Filterable for VpcView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let vpc = self.vpc;
        Some(vec![match name {
            "vpc-id" => vpc.vpc_id.clone(),
            "cidr" | "cidr-block-association.cidr-block" | "cidrBlock" => vpc.cidr.clone(),
            "cidr-block-association.association-id" => self.association_id(),
            "cidr-block-association.state" => "associated".into(),
            "is-default" | "isDefault" => vpc.is_default.to_string(),
            "state" => "available".into(),
            "owner-id" => vpc.account_id.clone(),
            "dhcp-options-id" => "default".into(),
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

const VPC_FILTERS: &[&str] = &[
    "vpc-id",
    "cidr",
    "cidrBlock",
    "cidr-block-association.cidr-block",
    "cidr-block-association.association-id",
    "cidr-block-association.state",
    "is-default",
    "isDefault",
    "state",
    "owner-id",
    "dhcp-options-id",
];

/// DescribeVpcs input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeVpcs {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeVpcs {
    /// Reads `VpcId.N`, `Filter.N`, `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, VPC_FILTERS, true)?;
        Ok(Self {
            ids: params.list("VpcId")?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's VPCs (creating the default one first if needed).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let vpcs = vpcs::list(ctx.cloud, ctx.principal, &self.ids).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<VpcView<'_>> = vpcs
            .iter()
            .map(|vpc| VpcView {
                vpc,
                tags: tags.of(&vpc.vpc_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self.page.apply(selected, |v| v.vpc.vpc_id.clone());
        Ok(ctx.respond("DescribeVpcs", |w| {
            w.items("vpcSet", page, |w, view| {
                let vpc = view.vpc;
                w.text("vpcId", &vpc.vpc_id);
                w.text("ownerId", &vpc.account_id);
                w.text("state", "available");
                w.text("cidrBlock", &vpc.cidr);
                w.items("cidrBlockAssociationSet", [&vpc.cidr], |w, cidr| {
                    w.text("cidrBlock", cidr);
                    w.text("associationId", view.association_id());
                    w.elem("cidrBlockState", |w| w.text("state", "associated"));
                });
                w.text("dhcpOptionsId", "default");
                w.text("instanceTenancy", "default");
                w.text("isDefault", vpc.is_default);
                write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            });
            w.opt_text("nextToken", next);
        }))
    }
}

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
        let region = &ctx.cloud.config.region;
        let selected: Vec<SubnetView<'_>> = subnets
            .iter()
            .map(|seen| SubnetView {
                seen,
                arn: format!(
                    "arn:aws:ec2:{region}:{}:subnet/{}",
                    seen.subnet.account_id, seen.subnet.subnet_id
                ),
                tags: tags.of(&seen.subnet.subnet_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self
            .page
            .apply(selected, |v| v.seen.subnet.subnet_id.clone());
        Ok(ctx.respond("DescribeSubnets", |w| {
            w.items("subnetSet", page, |w, view| {
                let s = &view.seen.subnet;
                w.text("subnetId", &s.subnet_id);
                w.text("subnetArn", &view.arn);
                w.text("state", "available");
                w.text("ownerId", &s.account_id);
                w.text("vpcId", &s.vpc_id);
                w.text("cidrBlock", &s.cidr);
                w.elem("ipv6CidrBlockAssociationSet", |_| {});
                w.text("availableIpAddressCount", view.seen.available);
                w.text("availabilityZone", &s.zone);
                w.text("availabilityZoneId", &view.seen.zone_id);
                w.text("defaultForAz", s.default_for_az);
                w.text("mapPublicIpOnLaunch", s.map_public_ip_on_launch);
                w.text("mapCustomerOwnedIpOnLaunch", false);
                w.text("assignIpv6AddressOnCreation", false);
                w.text("enableDns64", false);
                w.text("ipv6Native", false);
                write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            });
            w.opt_text("nextToken", next);
        }))
    }
}
