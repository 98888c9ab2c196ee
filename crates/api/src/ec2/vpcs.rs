//! CreateVpc, DeleteVpc and DescribeVpcs on the wire: filters, pages and
//! XML over the VPCs the caller sees (`mallee_cloud::vpcs`, which creates
//! an account's default VPC the first time it needs one, and
//! `mallee_cloud::vpc_lifecycle` for custom ones).

use mallee_cloud::vpc_lifecycle::{self, NewVpc};
use mallee_cloud::{dhcp_options, vpcs};
use mallee_store::Vpc;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

struct VpcView<'a> {
    vpc: &'a Vpc,
    tags: &'a [(String, String)],
}

/// The id of a VPC's (only) IPv4 CIDR block association.
fn association_id(vpc: &Vpc) -> String {
    let hex = vpc.vpc_id.strip_prefix("vpc-").unwrap_or(&vpc.vpc_id);
    format!("vpc-cidr-assoc-{hex}")
}

/// The VPC's `dhcpOptionsId`: its set, or `default`.
fn dhcp_options_id(vpc: &Vpc) -> &str {
    vpc.dhcp_options_id
        .as_deref()
        .unwrap_or(dhcp_options::DEFAULT)
}

/// A VPC's fields, as CreateVpc's `vpc` and DescribeVpcs' items carry them.
fn write_vpc(w: &mut XmlWriter, vpc: &Vpc, tags: &[(String, String)]) {
    w.text("vpcId", &vpc.vpc_id);
    w.text("ownerId", &vpc.account_id);
    w.text("state", "available");
    w.text("cidrBlock", &vpc.cidr);
    w.items("cidrBlockAssociationSet", [&vpc.cidr], |w, cidr| {
        w.text("cidrBlock", cidr);
        w.text("associationId", association_id(vpc));
        w.elem("cidrBlockState", |w| w.text("state", "associated"));
    });
    w.elem("ipv6CidrBlockAssociationSet", |_| {});
    w.text("dhcpOptionsId", dhcp_options_id(vpc));
    w.text("instanceTenancy", "default");
    w.text("isDefault", vpc.is_default);
    write_tag_set(w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

impl Filterable for VpcView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let vpc = self.vpc;
        Some(vec![match name {
            "vpc-id" => vpc.vpc_id.clone(),
            // `cidr-block` is what Ansible's ec2_vpc_net sends; EC2 takes it.
            "cidr" | "cidr-block" | "cidr-block-association.cidr-block" | "cidrBlock" => {
                vpc.cidr.clone()
            }
            "cidr-block-association.association-id" => association_id(vpc),
            "cidr-block-association.state" => "associated".into(),
            "is-default" | "isDefault" => vpc.is_default.to_string(),
            "state" => "available".into(),
            "owner-id" => vpc.account_id.clone(),
            "dhcp-options-id" => dhcp_options_id(vpc).to_owned(),
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
    "cidr-block",
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
            w.items("vpcSet", page, |w, view| write_vpc(w, view.vpc, view.tags));
            w.opt_text("nextToken", next);
        }))
    }
}

/// CreateVpc input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateVpc(NewVpc);

impl CreateVpc {
    /// Reads `CidrBlock`, `InstanceTenancy` and `TagSpecification.N` (type
    /// `vpc`); IPv6 blocks and IPAM pools are refused.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let unsupported = [
            "Ipv6CidrBlock",
            "Ipv6Pool",
            "Ipv6IpamPoolId",
            "Ipv4IpamPoolId",
            "Ipv6NetmaskLength",
            "Ipv4NetmaskLength",
        ];
        let amazon_ipv6 = params.bool("AmazonProvidedIpv6CidrBlock")? == Some(true);
        if let Some(name) = unsupported
            .iter()
            .find(|n| params.get(n).is_some_and(|v| !v.is_empty()))
            .copied()
            .or(amazon_ipv6.then_some("AmazonProvidedIpv6CidrBlock"))
        {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                format!("mallee VPCs have one IPv4 CIDR block: {name} is not supported."),
            ));
        }
        let cidr = params
            .get("CidrBlock")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Ec2Error::refused(
                    "MissingParameter",
                    "Either 'cidrBlock' or 'ipv4IpamPoolId' should be provided.",
                )
            })?;
        Ok(Self(NewVpc {
            cidr: cidr.to_owned(),
            tenancy: params.get("InstanceTenancy").map(str::to_owned),
            tags: parse_tag_specifications(params, "vpc")?,
        }))
    }

    /// Creates the VPC with its default security group.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let tags: Vec<(String, String)> = self
            .0
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        let vpc = vpc_lifecycle::create(ctx.cloud, ctx.principal, self.0).await?;
        Ok(ctx.respond("CreateVpc", |w| {
            w.elem("vpc", |w| write_vpc(w, &vpc, &tags));
        }))
    }
}

/// DeleteVpc input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteVpc {
    vpc_id: String,
}

impl DeleteVpc {
    /// Reads `VpcId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            vpc_id: params.required_non_empty("VpcId")?.to_owned(),
        })
    }

    /// Deletes the VPC unless something is still in it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        vpc_lifecycle::delete(ctx.cloud, ctx.principal, &self.vpc_id).await?;
        Ok(ctx.respond_true("DeleteVpc"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::test_params as params;

    #[test]
    fn create_vpc_takes_one_ipv4_block() {
        let ok = CreateVpc::parse(&params(&[
            ("CidrBlock", "10.0.0.0/16"),
            ("AmazonProvidedIpv6CidrBlock", "false"),
            ("InstanceTenancy", "default"),
        ]))
        .expect("parse");
        assert_eq!(ok.0.cidr, "10.0.0.0/16");
        assert!(CreateVpc::parse(&params(&[])).is_err());
        assert!(
            CreateVpc::parse(&params(&[
                ("CidrBlock", "10.0.0.0/16"),
                ("AmazonProvidedIpv6CidrBlock", "true"),
            ]))
            .is_err()
        );
    }
}
