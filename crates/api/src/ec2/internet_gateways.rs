//! CreateInternetGateway, AttachInternetGateway, DetachInternetGateway,
//! DeleteInternetGateway and DescribeInternetGateways on the wire
//! (`mallee_cloud::internet_gateways` decides and applies them).

use mallee_cloud::internet_gateways;
use mallee_store::InternetGateway;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

/// `<internetGateway>`'s content, as Create and Describe write it. AWS
/// shows an attached gateway's attachment as `available`.
fn write_gateway<'a>(
    w: &mut XmlWriter,
    gateway: &InternetGateway,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    w.text("internetGatewayId", &gateway.internet_gateway_id);
    w.text("ownerId", &gateway.account_id);
    w.items("attachmentSet", gateway.vpc_id.iter(), |w, vpc_id| {
        w.text("vpcId", vpc_id);
        w.text("state", "available");
    });
    write_tag_set(w, tags);
}

/// An `igw-` id, refused in AWS's words when it is not one.
fn gateway_id(params: &QueryParams) -> Result<String, Ec2Error> {
    let id = params.required_non_empty("InternetGatewayId")?;
    if !id.starts_with("igw-") {
        return Err(Ec2Error::refused(
            "InvalidInternetGatewayID.Malformed",
            format!("Invalid id: \"{id}\" (expecting \"igw-...\")"),
        ));
    }
    Ok(id.to_owned())
}

/// CreateInternetGateway input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateInternetGateway {
    tags: Vec<mallee_store::TagPair>,
}

impl CreateInternetGateway {
    /// Reads `TagSpecification.N` (`internet-gateway`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            tags: parse_tag_specifications(params, "internet-gateway")?,
        })
    }

    /// Makes a detached gateway.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let gateway = internet_gateways::create(ctx.cloud, ctx.principal, &self.tags).await?;
        Ok(ctx.respond("CreateInternetGateway", |w| {
            w.elem("internetGateway", |w| {
                write_gateway(
                    w,
                    &gateway,
                    self.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
                );
            });
        }))
    }
}

/// AttachInternetGateway and DetachInternetGateway input.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayAttachment {
    gateway_id: String,
    vpc_id: String,
}

impl GatewayAttachment {
    fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            gateway_id: gateway_id(params)?,
            vpc_id: params.required_non_empty("VpcId")?.to_owned(),
        })
    }
}

/// AttachInternetGateway input.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachInternetGateway(GatewayAttachment);

impl AttachInternetGateway {
    /// Reads `InternetGatewayId`, `VpcId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        GatewayAttachment::parse(params).map(Self)
    }

    /// Attaches it; the VPC's instances routed to it go public at once.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        internet_gateways::attach(ctx.cloud, ctx.principal, &self.0.gateway_id, &self.0.vpc_id)
            .await?;
        Ok(ctx.respond("AttachInternetGateway", |w| w.text("return", true)))
    }
}

/// DetachInternetGateway input.
#[derive(Debug, Clone, PartialEq)]
pub struct DetachInternetGateway(GatewayAttachment);

impl DetachInternetGateway {
    /// Reads `InternetGatewayId`, `VpcId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        GatewayAttachment::parse(params).map(Self)
    }

    /// Detaches it; the VPC's instances routed to it lose the public
    /// network at once.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        internet_gateways::detach(ctx.cloud, ctx.principal, &self.0.gateway_id, &self.0.vpc_id)
            .await?;
        Ok(ctx.respond("DetachInternetGateway", |w| w.text("return", true)))
    }
}

/// DeleteInternetGateway input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteInternetGateway {
    gateway_id: String,
}

impl DeleteInternetGateway {
    /// Reads `InternetGatewayId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            gateway_id: gateway_id(params)?,
        })
    }

    /// Deletes a detached gateway.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        internet_gateways::delete(ctx.cloud, ctx.principal, &self.gateway_id).await?;
        Ok(ctx.respond("DeleteInternetGateway", |w| w.text("return", true)))
    }
}

struct GatewayView<'a> {
    gateway: &'a InternetGateway,
    tags: &'a [(String, String)],
}

impl Filterable for GatewayView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let g = self.gateway;
        Some(match name {
            "internet-gateway-id" => vec![g.internet_gateway_id.clone()],
            "owner-id" => vec![g.account_id.clone()],
            "attachment.vpc-id" => g.vpc_id.iter().cloned().collect(),
            "attachment.state" => g.vpc_id.iter().map(|_| "available".to_owned()).collect(),
            _ => return None,
        })
    }
    fn tags(&self) -> &[(String, String)] {
        self.tags
    }
    fn taggable(&self) -> bool {
        true
    }
}

const GATEWAY_FILTERS: &[&str] = &[
    "internet-gateway-id",
    "owner-id",
    "attachment.vpc-id",
    "attachment.state",
];

/// DescribeInternetGateways input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeInternetGateways {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeInternetGateways {
    /// Reads `InternetGatewayId.N`, `Filter.N`, `MaxResults` (5–1000),
    /// `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, GATEWAY_FILTERS, true)?;
        Ok(Self {
            ids: params.list("InternetGatewayId")?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's gateways (its default VPC's made first if need be).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let gateways = internet_gateways::list(ctx.cloud, ctx.principal, &self.ids).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<GatewayView<'_>> = gateways
            .iter()
            .map(|gateway| GatewayView {
                gateway,
                tags: tags.of(&gateway.internet_gateway_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self
            .page
            .apply(selected, |v| v.gateway.internet_gateway_id.clone());
        Ok(ctx.respond("DescribeInternetGateways", |w| {
            w.items("internetGatewaySet", page, |w, view| {
                write_gateway(
                    w,
                    view.gateway,
                    view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
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
    fn ids_must_be_gateway_ids() {
        assert!(matches!(
            DeleteInternetGateway::parse(&params(&[("InternetGatewayId", "vpc-1")])),
            Err(Ec2Error::Refused {
                code: "InvalidInternetGatewayID.Malformed",
                ..
            })
        ));
        assert!(matches!(
            AttachInternetGateway::parse(&params(&[("InternetGatewayId", "igw-1")])),
            Err(Ec2Error::Query(_))
        ));
        assert!(matches!(
            DescribeInternetGateways::parse(&params(&[
                ("Filter.1.Name", "vpc-id"),
                ("Filter.1.Value.1", "x")
            ])),
            Err(Ec2Error::InvalidParameterValue(_))
        ));
    }
}
