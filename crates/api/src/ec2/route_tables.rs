//! Route tables on the wire: CreateRouteTable, DeleteRouteTable,
//! DescribeRouteTables, CreateRoute, ReplaceRoute, DeleteRoute,
//! AssociateRouteTable, DisassociateRouteTable and
//! ReplaceRouteTableAssociation (`mallee_cloud::route_tables` decides and
//! applies them).

use mallee_cloud::route_tables::{self, TargetRequest};
use mallee_cloud::routing::{RoutingView, route_state};
use mallee_store::{Route, RouteTable, RouteTarget, TagPair};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

fn route_table_id(params: &QueryParams) -> Result<String, Ec2Error> {
    let id = params.required_non_empty("RouteTableId")?;
    if !id.starts_with("rtb-") {
        return Err(Ec2Error::refused(
            "InvalidRouteTableID.Malformed",
            format!("Invalid id: \"{id}\" (expecting \"rtb-...\")"),
        ));
    }
    Ok(id.to_owned())
}

/// `DestinationCidrBlock`; the IPv6 and prefix-list destinations are
/// refused as unsupported.
fn destination(params: &QueryParams) -> Result<String, Ec2Error> {
    for other in ["DestinationIpv6CidrBlock", "DestinationPrefixListId"] {
        if params.get(other).is_some_and(|v| !v.is_empty()) {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                format!("{other} is not supported; routes take an IPv4 DestinationCidrBlock."),
            ));
        }
    }
    match params.get("DestinationCidrBlock").filter(|v| !v.is_empty()) {
        Some(v) => Ok(v.to_owned()),
        None => Err(Ec2Error::refused(
            "MissingParameter",
            "The request must contain the parameter destinationCidrBlock or destinationIpv6CidrBlock",
        )),
    }
}

/// Exactly one of `GatewayId`, `NatGatewayId`, `InstanceId`,
/// `NetworkInterfaceId`; the targets mallee has no such resource for are
/// refused as unsupported.
fn target(params: &QueryParams) -> Result<TargetRequest, Ec2Error> {
    for other in [
        "VpcPeeringConnectionId",
        "TransitGatewayId",
        "EgressOnlyInternetGatewayId",
        "LocalGatewayId",
        "CarrierGatewayId",
        "VpcEndpointId",
        "CoreNetworkArn",
    ] {
        if params.get(other).is_some_and(|v| !v.is_empty()) {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                format!("Routes to a {other} are not supported."),
            ));
        }
    }
    let given: Vec<TargetRequest> = [
        (
            "GatewayId",
            TargetRequest::Gateway as fn(String) -> TargetRequest,
        ),
        ("NatGatewayId", TargetRequest::NatGateway),
        ("InstanceId", TargetRequest::Instance),
        ("NetworkInterfaceId", TargetRequest::NetworkInterface),
    ]
    .into_iter()
    .filter_map(|(name, make)| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| make(v.to_owned()))
    })
    .collect();
    match <[TargetRequest; 1]>::try_from(given) {
        Ok([one]) => Ok(one),
        Err(_) => Err(Ec2Error::InvalidParameterCombination(
            "The request must contain exactly one of gatewayId, natGatewayId, instanceId or networkInterfaceId".into(),
        )),
    }
}

fn write_route(w: &mut XmlWriter, route: &Route, table: &RouteTable, view: &RoutingView) {
    w.text("destinationCidrBlock", &route.destination);
    match &route.target {
        RouteTarget::Local => w.text("gatewayId", "local"),
        RouteTarget::Gateway(id) => w.text("gatewayId", id),
        RouteTarget::NatGateway(id) => w.text("natGatewayId", id),
        RouteTarget::Instance(id) => {
            w.text("instanceId", id);
            w.text("instanceOwnerId", &table.account_id);
        }
        RouteTarget::NetworkInterface(id) => {
            w.opt_text("instanceId", view.live_targets.get(id));
            w.text("networkInterfaceId", id);
        }
    }
    w.text("state", route_state(route, &table.vpc_id, view));
    w.text(
        "origin",
        if route.with_table {
            "CreateRouteTable"
        } else {
            "CreateRoute"
        },
    );
}

fn write_table<'a>(
    w: &mut XmlWriter,
    table: &RouteTable,
    view: &RoutingView,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    w.text("routeTableId", &table.route_table_id);
    w.text("vpcId", &table.vpc_id);
    w.text("ownerId", &table.account_id);
    w.items("routeSet", &table.routes, |w, route| {
        write_route(w, route, table, view);
    });
    w.items("associationSet", &table.associations, |w, a| {
        w.text("main", a.main());
        w.text("routeTableAssociationId", &a.association_id);
        w.text("routeTableId", &a.route_table_id);
        w.opt_text("subnetId", a.subnet_id.as_deref());
        w.elem("associationState", |w| w.text("state", "associated"));
    });
    w.elem("propagatingVgwSet", |_| {});
    write_tag_set(w, tags);
}

/// CreateRouteTable input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRouteTable {
    vpc_id: String,
    tags: Vec<TagPair>,
}

impl CreateRouteTable {
    /// Reads `VpcId`, `TagSpecification.N` (`route-table`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            vpc_id: params.required_non_empty("VpcId")?.to_owned(),
            tags: parse_tag_specifications(params, "route-table")?,
        })
    }

    /// Makes the table with its local route.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let table =
            route_tables::create(ctx.cloud, ctx.principal, &self.vpc_id, &self.tags).await?;
        let view = RoutingView::default();
        Ok(ctx.respond("CreateRouteTable", |w| {
            w.elem("routeTable", |w| {
                write_table(
                    w,
                    &table,
                    &view,
                    self.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
                );
            });
        }))
    }
}

/// DeleteRouteTable input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRouteTable {
    id: String,
}

impl DeleteRouteTable {
    /// Reads `RouteTableId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            id: route_table_id(params)?,
        })
    }

    /// Deletes a table that is neither main nor associated.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        route_tables::delete(ctx.cloud, ctx.principal, &self.id).await?;
        Ok(ctx.respond("DeleteRouteTable", |w| w.text("return", true)))
    }
}

/// CreateRoute and ReplaceRoute input.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRequest {
    id: String,
    destination: String,
    target: TargetRequest,
}

impl RouteRequest {
    fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            id: route_table_id(params)?,
            destination: destination(params)?,
            target: target(params)?,
        })
    }
}

/// CreateRoute input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRoute(RouteRequest);

impl CreateRoute {
    /// Reads `RouteTableId`, `DestinationCidrBlock` and one target.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        RouteRequest::parse(params).map(Self)
    }

    /// Adds the route; an internet route applies to running instances.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let r = &self.0;
        route_tables::create_route(ctx.cloud, ctx.principal, &r.id, &r.destination, &r.target)
            .await?;
        Ok(ctx.respond("CreateRoute", |w| w.text("return", true)))
    }
}

/// ReplaceRoute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaceRoute(RouteRequest);

impl ReplaceRoute {
    /// Reads `RouteTableId`, `DestinationCidrBlock` and one target.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        RouteRequest::parse(params).map(Self)
    }

    /// Points the route elsewhere.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let r = &self.0;
        route_tables::replace_route(ctx.cloud, ctx.principal, &r.id, &r.destination, &r.target)
            .await?;
        Ok(ctx.respond("ReplaceRoute", |w| w.text("return", true)))
    }
}

/// DeleteRoute input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRoute {
    id: String,
    destination: String,
}

impl DeleteRoute {
    /// Reads `RouteTableId`, `DestinationCidrBlock`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            id: route_table_id(params)?,
            destination: destination(params)?,
        })
    }

    /// Removes the route.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        route_tables::delete_route(ctx.cloud, ctx.principal, &self.id, &self.destination).await?;
        Ok(ctx.respond("DeleteRoute", |w| w.text("return", true)))
    }
}

/// AssociateRouteTable input.
#[derive(Debug, Clone, PartialEq)]
pub struct AssociateRouteTable {
    id: String,
    subnet_id: String,
}

impl AssociateRouteTable {
    /// Reads `RouteTableId`, `SubnetId` (gateway associations are not
    /// supported).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        if params.get("GatewayId").is_some_and(|v| !v.is_empty()) {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                "Gateway route table associations are not supported.",
            ));
        }
        Ok(Self {
            id: route_table_id(params)?,
            subnet_id: params.required_non_empty("SubnetId")?.to_owned(),
        })
    }

    /// Associates the subnet; its instances follow the table at once.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let association =
            route_tables::associate(ctx.cloud, ctx.principal, &self.id, &self.subnet_id).await?;
        Ok(ctx.respond("AssociateRouteTable", |w| {
            w.text("associationId", &association);
            w.elem("associationState", |w| w.text("state", "associated"));
        }))
    }
}

/// DisassociateRouteTable input.
#[derive(Debug, Clone, PartialEq)]
pub struct DisassociateRouteTable {
    association_id: String,
}

impl DisassociateRouteTable {
    /// Reads `AssociationId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            association_id: params.required_non_empty("AssociationId")?.to_owned(),
        })
    }

    /// Removes the association; the subnet uses the main table again.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        route_tables::disassociate(ctx.cloud, ctx.principal, &self.association_id).await?;
        Ok(ctx.respond("DisassociateRouteTable", |w| w.text("return", true)))
    }
}

/// ReplaceRouteTableAssociation input.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaceRouteTableAssociation {
    association_id: String,
    id: String,
}

impl ReplaceRouteTableAssociation {
    /// Reads `AssociationId`, `RouteTableId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            association_id: params.required_non_empty("AssociationId")?.to_owned(),
            id: route_table_id(params)?,
        })
    }

    /// Moves the association (the main one included) to the table.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let new_id = route_tables::replace_association(
            ctx.cloud,
            ctx.principal,
            &self.association_id,
            &self.id,
        )
        .await?;
        Ok(ctx.respond("ReplaceRouteTableAssociation", |w| {
            w.text("newAssociationId", &new_id);
            w.elem("associationState", |w| w.text("state", "associated"));
        }))
    }
}

struct TableView<'a> {
    table: &'a RouteTable,
    view: &'a RoutingView,
    tags: &'a [(String, String)],
}

impl Filterable for TableView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let t = self.table;
        let associations = t.associations.iter();
        let routes = t.routes.iter();
        let target = |kind: &str| -> Vec<String> {
            t.routes
                .iter()
                .filter_map(|r| match (&r.target, kind) {
                    (RouteTarget::Local, "gateway") => Some("local".to_owned()),
                    (RouteTarget::Gateway(id), "gateway")
                    | (RouteTarget::NatGateway(id), "nat")
                    | (RouteTarget::Instance(id), "instance")
                    | (RouteTarget::NetworkInterface(id), "interface") => Some(id.clone()),
                    _ => None,
                })
                .collect()
        };
        Some(match name {
            "route-table-id" => vec![t.route_table_id.clone()],
            "vpc-id" => vec![t.vpc_id.clone()],
            "owner-id" => vec![t.account_id.clone()],
            "association.main" => associations.map(|a| a.main().to_string()).collect(),
            "association.subnet-id" => associations.filter_map(|a| a.subnet_id.clone()).collect(),
            "association.route-table-association-id" => {
                associations.map(|a| a.association_id.clone()).collect()
            }
            "association.route-table-id" => {
                associations.map(|a| a.route_table_id.clone()).collect()
            }
            "association.association-state" => associations.map(|_| "associated".into()).collect(),
            "route.destination-cidr-block" => routes.map(|r| r.destination.clone()).collect(),
            "route.gateway-id" => target("gateway"),
            "route.nat-gateway-id" => target("nat"),
            "route.instance-id" => target("instance"),
            "route.network-interface-id" => target("interface"),
            "route.state" => routes
                .map(|r| route_state(r, &t.vpc_id, self.view).to_owned())
                .collect(),
            "route.origin" => routes
                .map(|r| {
                    if r.with_table {
                        "CreateRouteTable".to_owned()
                    } else {
                        "CreateRoute".to_owned()
                    }
                })
                .collect(),
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

const TABLE_FILTERS: &[&str] = &[
    "route-table-id",
    "vpc-id",
    "owner-id",
    "association.main",
    "association.subnet-id",
    "association.route-table-association-id",
    "association.route-table-id",
    "association.association-state",
    "route.destination-cidr-block",
    "route.gateway-id",
    "route.nat-gateway-id",
    "route.instance-id",
    "route.network-interface-id",
    "route.state",
    "route.origin",
];

/// DescribeRouteTables input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeRouteTables {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeRouteTables {
    /// Reads `RouteTableId.N`, `Filter.N`, `MaxResults` (5–100),
    /// `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, TABLE_FILTERS, true)?;
        Ok(Self {
            ids: params.list("RouteTableId")?,
            filters,
            page: PageRequest::parse(params, 5, 100)?,
        })
    }

    /// Lists the caller's tables (every VPC's main table made first if
    /// need be), with each route's state.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let (tables, view) = route_tables::list(ctx.cloud, ctx.principal, &self.ids).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<TableView<'_>> = tables
            .iter()
            .map(|table| TableView {
                table,
                view: &view,
                tags: tags.of(&table.route_table_id),
            })
            .filter(|v| filter::matches(&self.filters, v))
            .collect();
        let (page, next) = self
            .page
            .apply(selected, |v| v.table.route_table_id.clone());
        Ok(ctx.respond("DescribeRouteTables", |w| {
            w.items("routeTableSet", page, |w, v| {
                write_table(
                    w,
                    v.table,
                    v.view,
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
    fn a_route_names_one_ipv4_destination_and_one_target() {
        let ok = CreateRoute::parse(&params(&[
            ("RouteTableId", "rtb-1"),
            ("DestinationCidrBlock", "0.0.0.0/0"),
            ("GatewayId", "igw-1"),
        ]))
        .expect("parses");
        assert_eq!(ok.0.target, TargetRequest::Gateway("igw-1".into()));
        assert!(matches!(
            CreateRoute::parse(&params(&[
                ("RouteTableId", "rtb-1"),
                ("DestinationCidrBlock", "0.0.0.0/0"),
                ("GatewayId", "igw-1"),
                ("NatGatewayId", "nat-1"),
            ])),
            Err(Ec2Error::InvalidParameterCombination(_))
        ));
        assert!(matches!(
            CreateRoute::parse(&params(&[
                ("RouteTableId", "rtb-1"),
                ("DestinationIpv6CidrBlock", "::/0"),
                ("GatewayId", "igw-1"),
            ])),
            Err(Ec2Error::Refused {
                code: "UnsupportedOperation",
                ..
            })
        ));
        assert!(matches!(
            DeleteRoute::parse(&params(&[("RouteTableId", "rtb-1")])),
            Err(Ec2Error::Refused {
                code: "MissingParameter",
                ..
            })
        ));
        assert!(matches!(
            DeleteRouteTable::parse(&params(&[("RouteTableId", "igw-1")])),
            Err(Ec2Error::Refused {
                code: "InvalidRouteTableID.Malformed",
                ..
            })
        ));
    }
}
