//! CreateNatGateway, DeleteNatGateway and DescribeNatGateways on the wire
//! (`mallee_cloud::nat_gateways` decides and applies them).

use mallee_cloud::ids::iso8601;
use mallee_cloud::nat_gateways::{self, Create};
use mallee_store::NatGateway;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

fn write_gateway<'a>(
    w: &mut XmlWriter,
    nat: &NatGateway,
    association: Option<&str>,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    // Only a live gateway holds its elastic IP's association.
    let association = association.filter(|_| matches!(nat.state.as_str(), "available" | "pending"));
    w.text("createTime", iso8601(nat.created_at));
    if let Some(at) = nat.deleted_at {
        w.text("deleteTime", iso8601(at));
    }
    w.items("natGatewayAddressSet", [nat], |w, nat| {
        w.text("allocationId", &nat.allocation_id);
        w.opt_text("associationId", association);
        w.text("networkInterfaceId", &nat.interface_id);
        w.text("privateIp", &nat.private_ip);
        w.text("publicIp", &nat.public_ip);
        w.text("isPrimary", true);
        w.text(
            "status",
            match nat.state.as_str() {
                "pending" => "associating",
                "deleting" => "disassociating",
                "failed" => "failed",
                _ => "succeeded",
            },
        );
    });
    w.text("natGatewayId", &nat.nat_gateway_id);
    w.text("state", &nat.state);
    w.text("subnetId", &nat.subnet_id);
    w.text("vpcId", &nat.vpc_id);
    w.text("connectivityType", "public");
    write_tag_set(w, tags);
}

/// CreateNatGateway input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateNatGateway(Create);

impl CreateNatGateway {
    /// Reads `SubnetId`, `AllocationId`, `ConnectivityType`,
    /// `ClientToken`, `TagSpecification.N` (`natgateway`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let private = match params.get("ConnectivityType") {
            None | Some("public") => false,
            Some("private") => true,
            Some(other) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter connectivityType is invalid. Valid values: public, private."
                )));
            }
        };
        Ok(Self(Create {
            subnet_id: params.required_non_empty("SubnetId")?.to_owned(),
            allocation_id: params
                .get("AllocationId")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            private,
            client_token: params
                .get("ClientToken")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            tags: parse_tag_specifications(params, "natgateway")?,
        }))
    }

    /// Makes the gateway with its elastic IP.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let nat = nat_gateways::create(ctx.cloud, ctx.principal, &self.0).await?;
        let associations = nat_gateways::associations(ctx.cloud, ctx.principal).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        Ok(ctx.respond("CreateNatGateway", |w| {
            w.opt_text("clientToken", self.0.client_token.as_deref());
            w.elem("natGateway", |w| {
                write_gateway(
                    w,
                    &nat,
                    associations.get(&nat.allocation_id).map(String::as_str),
                    tags.of(&nat.nat_gateway_id)
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
            });
        }))
    }
}

/// DeleteNatGateway input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteNatGateway {
    id: String,
}

impl DeleteNatGateway {
    /// Reads `NatGatewayId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            id: params.required_non_empty("NatGatewayId")?.to_owned(),
        })
    }

    /// Deletes it: its routes' traffic stops, its elastic IP is free.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        nat_gateways::delete(ctx.cloud, ctx.principal, &self.id).await?;
        Ok(ctx.respond("DeleteNatGateway", |w| w.text("natGatewayId", &self.id)))
    }
}

struct NatView<'a> {
    nat: &'a NatGateway,
    tags: &'a [(String, String)],
}

impl Filterable for NatView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let n = self.nat;
        Some(vec![match name {
            "nat-gateway-id" => n.nat_gateway_id.clone(),
            "state" => n.state.clone(),
            "subnet-id" => n.subnet_id.clone(),
            "vpc-id" => n.vpc_id.clone(),
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

const NAT_FILTERS: &[&str] = &["nat-gateway-id", "state", "subnet-id", "vpc-id"];

/// DescribeNatGateways input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeNatGateways {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeNatGateways {
    /// Reads `NatGatewayId.N`, `Filter.N`, `MaxResults` (5–1000),
    /// `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, NAT_FILTERS, true)?;
        Ok(Self {
            ids: params.list("NatGatewayId")?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's gateways, deleted ones for an hour.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let nats = nat_gateways::list(ctx.cloud, ctx.principal, &self.ids).await?;
        let associations = nat_gateways::associations(ctx.cloud, ctx.principal).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<NatView<'_>> = nats
            .iter()
            .map(|nat| NatView {
                nat,
                tags: tags.of(&nat.nat_gateway_id),
            })
            .filter(|v| filter::matches(&self.filters, v))
            .collect();
        let (page, next) = self.page.apply(selected, |v| v.nat.nat_gateway_id.clone());
        Ok(ctx.respond("DescribeNatGateways", |w| {
            w.items("natGatewaySet", page, |w, v| {
                write_gateway(
                    w,
                    v.nat,
                    associations.get(&v.nat.allocation_id).map(String::as_str),
                    v.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
            });
            w.opt_text("nextToken", next);
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::test_params as params;

    #[test]
    fn connectivity_is_public_or_private() {
        let nat = CreateNatGateway::parse(&params(&[
            ("SubnetId", "subnet-1"),
            ("AllocationId", "eipalloc-1"),
        ]))
        .expect("parses");
        assert!(!nat.0.private);
        assert!(matches!(
            CreateNatGateway::parse(&params(&[
                ("SubnetId", "subnet-1"),
                ("ConnectivityType", "both")
            ])),
            Err(Ec2Error::InvalidParameterValue(_))
        ));
        assert!(matches!(
            CreateNatGateway::parse(&params(&[("AllocationId", "eipalloc-1")])),
            Err(Ec2Error::Query(_))
        ));
    }
}
