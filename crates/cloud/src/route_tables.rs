//! Route tables: Create/Delete/Describe, their routes (CreateRoute,
//! ReplaceRoute, DeleteRoute) and subnet associations (Associate,
//! Disassociate, ReplaceRouteTableAssociation, the main one included),
//! with AWS's checks. Each change that can alter where a subnet's
//! `0.0.0.0/0` traffic goes is applied to the VPC's running instances at
//! once (see [`crate::routing`]).

use mallee_store::{Route, RouteTable, RouteTableAssociation, RouteTarget, StoreError, TagPair};
use mallee_util::cidr::Ipv4Cidr;

use crate::routing::{self, RoutingView};
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// A route's target as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRequest {
    /// `GatewayId` (`igw-…`).
    Gateway(String),
    /// `NatGatewayId`.
    NatGateway(String),
    /// `InstanceId`.
    Instance(String),
    /// `NetworkInterfaceId`.
    NetworkInterface(String),
}

fn not_found(id: &str) -> CloudError {
    CloudError::not_found(
        Kind::RouteTable,
        format!("The routeTable ID '{id}' does not exist"),
    )
}

fn dependencies(id: &str) -> CloudError {
    CloudError::Dependency {
        kind: Kind::RouteTable,
        message: format!("The routeTable '{id}' has dependencies and cannot be deleted."),
    }
}

/// The caller's table `id`.
async fn owned(cloud: &Cloud, caller: &Principal, id: &str) -> Result<RouteTable, CloudError> {
    routing::ensure(cloud, caller.account_id()).await?;
    cloud
        .store
        .route_table(id)
        .await?
        .filter(|t| t.account_id == caller.account_id())
        .ok_or_else(|| not_found(id))
}

/// `destination` in canonical form, refused as AWS does when it is not an
/// IPv4 CIDR block.
fn destination(value: &str) -> Result<String, CloudError> {
    value
        .parse::<Ipv4Cidr>()
        .map(|c| c.canonical().to_string())
        .map_err(|_| {
            CloudError::Invalid(format!(
                "Value ({value}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block."
            ))
        })
}

/// Makes a table in the caller's VPC `vpc_id`, with its `local` route.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    vpc_id: &str,
    tags: &[TagPair],
) -> Result<RouteTable, CloudError> {
    let vpc = routing::owned_vpc(cloud, caller, vpc_id).await?;
    routing::ensure_main(cloud, &vpc).await?;
    let table = RouteTable {
        route_table_id: ids::resource_id("rtb"),
        account_id: vpc.account_id.clone(),
        vpc_id: vpc.vpc_id.clone(),
        created_at: ids::now_millis(),
        routes: vec![Route {
            destination: vpc.cidr.clone(),
            target: RouteTarget::Local,
            with_table: true,
        }],
        associations: Vec::new(),
    };
    cloud.store.create_route_table(&table, tags).await?;
    Ok(table)
}

/// The caller's tables (only those named by `ids` when it names any,
/// every one of which must exist), with what their routes' states are
/// read from.
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<(Vec<RouteTable>, RoutingView), CloudError> {
    let account = caller.account_id();
    routing::ensure(cloud, account).await?;
    let tables = cloud.store.route_tables(account).await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !tables.iter().any(|t| &t.route_table_id == *id))
    {
        return Err(not_found(missing));
    }
    let tables = tables
        .into_iter()
        .filter(|t| ids.is_empty() || ids.contains(&t.route_table_id))
        .collect();
    Ok((tables, RoutingView::load(cloud, account).await?))
}

/// Deletes the caller's table `id`, refused while it is main or has
/// associations.
pub async fn delete(cloud: &Cloud, caller: &Principal, id: &str) -> Result<(), CloudError> {
    let table = owned(cloud, caller, id).await?;
    if !table.associations.is_empty() {
        return Err(dependencies(id));
    }
    match cloud.store.delete_route_table(id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_found(id)),
        Err(StoreError::Conflict(_)) => Err(dependencies(id)),
        Err(e) => Err(e.into()),
    }
}

/// The stored target `target` names, checked as AWS does: it exists, is
/// the caller's and lives in the table's VPC; a gateway may not take
/// traffic meant for the VPC itself.
async fn resolve_target(
    cloud: &Cloud,
    caller: &Principal,
    table: &RouteTable,
    destination: &str,
    target: &TargetRequest,
) -> Result<RouteTarget, CloudError> {
    let account = caller.account_id();
    let view = RoutingView::load(cloud, account).await?;
    let inside_vpc = match (
        destination.parse::<Ipv4Cidr>(),
        cloud
            .store
            .vpc(&table.vpc_id)
            .await?
            .and_then(|v| v.cidr.parse::<Ipv4Cidr>().ok()),
    ) {
        (Ok(dest), Some(vpc)) => dest.prefix() >= vpc.prefix() && vpc.contains(dest.network()),
        _ => false,
    };
    let gateway_inside = |id: &str| {
        CloudError::Invalid(format!(
            "The destination CIDR block {destination} is equal to or more specific than one of this VPC's CIDR blocks. This route can target only an interface or an instance (not {id})."
        ))
    };
    Ok(match target {
        TargetRequest::Gateway(id) => {
            let gateway = view
                .gateways
                .iter()
                .find(|g| &g.internet_gateway_id == id)
                .ok_or_else(|| {
                    CloudError::not_found(
                        Kind::Gateway,
                        format!("The gateway ID '{id}' does not exist"),
                    )
                })?;
            if gateway.vpc_id.as_deref() != Some(table.vpc_id.as_str()) {
                return Err(CloudError::Invalid(format!(
                    "route table {} and network gateway {id} belong to different networks",
                    table.route_table_id
                )));
            }
            if inside_vpc {
                return Err(gateway_inside(id));
            }
            RouteTarget::Gateway(id.clone())
        }
        TargetRequest::NatGateway(id) => {
            let nat = view
                .nats
                .iter()
                .find(|n| &n.nat_gateway_id == id && n.state != "deleted")
                .ok_or_else(|| {
                    CloudError::not_found(
                        Kind::NatGateway,
                        format!("The natGateway ID '{id}' does not exist"),
                    )
                })?;
            if nat.vpc_id != table.vpc_id {
                return Err(CloudError::Invalid(format!(
                    "route table {} and NAT gateway {id} belong to different networks",
                    table.route_table_id
                )));
            }
            if inside_vpc {
                return Err(gateway_inside(id));
            }
            RouteTarget::NatGateway(id.clone())
        }
        TargetRequest::Instance(id) | TargetRequest::NetworkInterface(id) => {
            let interface = matches!(target, TargetRequest::NetworkInterface(_));
            let missing = || {
                if interface {
                    CloudError::not_found(
                        Kind::NetworkInterface,
                        format!("The networkInterface ID '{id}' does not exist"),
                    )
                } else {
                    CloudError::instances_not_found(&[id.as_str()])
                }
            };
            let instance_id = view.live_targets.get(id).ok_or_else(missing)?;
            let instance = cloud
                .store
                .instance(instance_id)
                .await?
                .ok_or_else(missing)?;
            let in_vpc = crate::instances::model::Instance::from_record(instance)?
                .details
                .vpc_id
                == table.vpc_id;
            if !in_vpc {
                return Err(CloudError::Invalid(format!(
                    "route table {} and {id} belong to different networks",
                    table.route_table_id
                )));
            }
            if interface {
                RouteTarget::NetworkInterface(id.clone())
            } else {
                RouteTarget::Instance(id.clone())
            }
        }
    })
}

/// What a route change does to the VPC's instances: only the internet
/// route decides public traffic.
async fn after_route_change(
    cloud: &Cloud,
    caller: &Principal,
    table: &RouteTable,
    destination: &str,
) -> Result<(), CloudError> {
    if destination == routing::INTERNET {
        routing::refresh(cloud, caller, &table.vpc_id).await?;
    }
    Ok(())
}

/// Adds a route to the caller's table `id`.
pub async fn create_route(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    destination_cidr: &str,
    target: &TargetRequest,
) -> Result<(), CloudError> {
    let table = owned(cloud, caller, id).await?;
    let destination = destination(destination_cidr)?;
    let route = Route {
        target: resolve_target(cloud, caller, &table, &destination, target).await?,
        destination: destination.clone(),
        with_table: false,
    };
    let exists = || {
        CloudError::duplicate(
            Kind::Route,
            format!("The route identified by {destination} already exists."),
        )
    };
    if table.routes.iter().any(|r| r.destination == destination) {
        return Err(exists());
    }
    match cloud.store.create_route(id, &route).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(exists()),
        Err(StoreError::NotFound(_)) => return Err(not_found(id)),
        Err(e) => return Err(e.into()),
    }
    after_route_change(cloud, caller, &table, &destination).await
}

/// Points the caller's table `id`'s route for `destination_cidr` at
/// another target.
pub async fn replace_route(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    destination_cidr: &str,
    target: &TargetRequest,
) -> Result<(), CloudError> {
    let table = owned(cloud, caller, id).await?;
    let destination = destination(destination_cidr)?;
    let missing = || {
        CloudError::Invalid(format!(
            "There is no route defined for '{destination}' in the route table. Use CreateRoute instead."
        ))
    };
    let Some(current) = table.routes.iter().find(|r| r.destination == destination) else {
        return Err(missing());
    };
    if current.target == RouteTarget::Local {
        return Err(CloudError::Invalid(format!(
            "cannot replace local route {destination} in route table {id}"
        )));
    }
    let route = Route {
        target: resolve_target(cloud, caller, &table, &destination, target).await?,
        destination: destination.clone(),
        with_table: false,
    };
    if !cloud.store.replace_route(id, &route).await? {
        return Err(missing());
    }
    after_route_change(cloud, caller, &table, &destination).await
}

/// Removes the caller's table `id`'s route for `destination_cidr` (never
/// the local one).
pub async fn delete_route(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    destination_cidr: &str,
) -> Result<(), CloudError> {
    let table = owned(cloud, caller, id).await?;
    let destination = destination(destination_cidr)?;
    let missing = || {
        CloudError::not_found(
            Kind::Route,
            format!("no route with destination-cidr-block {destination} in route table {id}"),
        )
    };
    let Some(route) = table.routes.iter().find(|r| r.destination == destination) else {
        return Err(missing());
    };
    if route.target == RouteTarget::Local {
        return Err(CloudError::Invalid(format!(
            "cannot remove local route {destination} in route table {id}"
        )));
    }
    if !cloud.store.delete_route(id, &destination).await? {
        return Err(missing());
    }
    after_route_change(cloud, caller, &table, &destination).await
}

/// Associates the caller's subnet `subnet_id` with its table `id`; the
/// new association's id.
pub async fn associate(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    subnet_id: &str,
) -> Result<String, CloudError> {
    let table = owned(cloud, caller, id).await?;
    let subnet = cloud
        .store
        .subnet(subnet_id)
        .await?
        .filter(|s| s.account_id == caller.account_id())
        .ok_or_else(|| {
            CloudError::not_found(
                Kind::Subnet,
                format!("The subnet ID '{subnet_id}' does not exist"),
            )
        })?;
    if subnet.vpc_id != table.vpc_id {
        return Err(CloudError::Invalid(format!(
            "Route table {id} and subnet {subnet_id} belong to different networks."
        )));
    }
    let association = RouteTableAssociation {
        association_id: ids::resource_id("rtbassoc"),
        route_table_id: id.to_owned(),
        vpc_id: table.vpc_id.clone(),
        subnet_id: Some(subnet_id.to_owned()),
    };
    match cloud.store.associate_route_table(&association).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(CloudError::in_use(
                Kind::Association,
                format!(
                    "the specified association for route table {id} conflicts with an existing association"
                ),
            ));
        }
        Err(StoreError::NotFound(_)) => return Err(not_found(id)),
        Err(e) => return Err(e.into()),
    }
    routing::refresh(cloud, caller, &table.vpc_id).await?;
    Ok(association.association_id)
}

/// The caller's association `association_id`.
async fn owned_association(
    cloud: &Cloud,
    caller: &Principal,
    association_id: &str,
) -> Result<RouteTableAssociation, CloudError> {
    routing::ensure(cloud, caller.account_id()).await?;
    cloud
        .store
        .route_tables(caller.account_id())
        .await?
        .into_iter()
        .flat_map(|t| t.associations)
        .find(|a| a.association_id == association_id)
        .ok_or_else(|| {
            CloudError::not_found(
                Kind::RouteTableAssociation,
                format!("The association ID '{association_id}' does not exist"),
            )
        })
}

/// Removes the caller's subnet association `association_id` (the subnet
/// falls back to the main table).
pub async fn disassociate(
    cloud: &Cloud,
    caller: &Principal,
    association_id: &str,
) -> Result<(), CloudError> {
    let association = owned_association(cloud, caller, association_id).await?;
    if association.main() {
        return Err(CloudError::Invalid(format!(
            "cannot disassociate the main route table association {association_id}"
        )));
    }
    if cloud
        .store
        .disassociate_route_table(association_id)
        .await?
        .is_none()
    {
        return Err(CloudError::not_found(
            Kind::RouteTableAssociation,
            format!("The association ID '{association_id}' does not exist"),
        ));
    }
    routing::refresh(cloud, caller, &association.vpc_id).await
}

/// Moves the caller's association `association_id` (a subnet's, or the
/// VPC's main one) to its table `id`; the new association's id.
pub async fn replace_association(
    cloud: &Cloud,
    caller: &Principal,
    association_id: &str,
    id: &str,
) -> Result<String, CloudError> {
    let association = owned_association(cloud, caller, association_id).await?;
    let table = owned(cloud, caller, id).await?;
    if table.vpc_id != association.vpc_id {
        return Err(CloudError::Invalid(format!(
            "Route table {id} and association {association_id} belong to different networks."
        )));
    }
    let new_id = ids::resource_id("rtbassoc");
    let replaced = cloud
        .store
        .replace_route_table_association(association_id, id, &new_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => not_found(id),
            other => other.into(),
        })?;
    if replaced.is_none() {
        return Err(CloudError::not_found(
            Kind::RouteTableAssociation,
            format!("The association ID '{association_id}' does not exist"),
        ));
    }
    routing::refresh(cloud, caller, &table.vpc_id).await?;
    Ok(new_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internet_gateways;
    use crate::testkit::TestCloud;
    use crate::vpcs;

    #[tokio::test]
    async fn routes_and_associations_follow_aws_rules() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("acct").await;
        let vpc = vpcs::default_vpc(&cloud, caller.account_id())
            .await
            .expect("vpc");
        let vpc_id = vpc.vpc.vpc_id.as_str();
        let subnet_id = vpc.subnets[0].subnet_id.as_str();
        let (tables, _) = list(&cloud, &caller, &[]).await.expect("list");
        let main = tables[0].clone();
        let igw = internet_gateways::list(&cloud, &caller, &[])
            .await
            .expect("igws")[0]
            .internet_gateway_id
            .clone();

        let table = create(&cloud, &caller, vpc_id, &[]).await.expect("create");
        let id = table.route_table_id.as_str();
        assert_eq!(table.routes.len(), 1);
        // A gateway may not take the VPC's own traffic; routes are unique.
        assert!(matches!(
            create_route(
                &cloud,
                &caller,
                id,
                "172.31.4.0/24",
                &TargetRequest::Gateway(igw.clone())
            )
            .await,
            Err(CloudError::Invalid(_))
        ));
        assert!(matches!(
            create_route(
                &cloud,
                &caller,
                id,
                "0.0.0.0/0",
                &TargetRequest::Gateway("igw-0123456789abcdef0".into())
            )
            .await,
            Err(CloudError::NotFound {
                kind: Kind::Gateway,
                ..
            })
        ));
        create_route(
            &cloud,
            &caller,
            id,
            "0.0.0.0/0",
            &TargetRequest::Gateway(igw.clone()),
        )
        .await
        .expect("route");
        assert!(matches!(
            create_route(
                &cloud,
                &caller,
                id,
                "0.0.0.0/0",
                &TargetRequest::Gateway(igw.clone())
            )
            .await,
            Err(CloudError::Duplicate {
                kind: Kind::Route,
                ..
            })
        ));
        assert!(matches!(
            delete_route(&cloud, &caller, id, "172.31.0.0/16").await,
            Err(CloudError::Invalid(_))
        ));
        assert!(matches!(
            delete_route(&cloud, &caller, id, "10.0.0.0/8").await,
            Err(CloudError::NotFound {
                kind: Kind::Route,
                ..
            })
        ));
        assert!(matches!(
            replace_route(
                &cloud,
                &caller,
                id,
                "10.0.0.0/8",
                &TargetRequest::Gateway(igw.clone())
            )
            .await,
            Err(CloudError::Invalid(_))
        ));

        // Associations: one per subnet, main ones only replaced.
        let association = associate(&cloud, &caller, id, subnet_id)
            .await
            .expect("associate");
        assert!(matches!(
            associate(&cloud, &caller, &main.route_table_id, subnet_id).await,
            Err(CloudError::InUse {
                kind: Kind::Association,
                ..
            })
        ));
        assert!(matches!(
            delete(&cloud, &caller, id).await,
            Err(CloudError::Dependency { .. })
        ));
        let main_association = main.associations[0].association_id.clone();
        assert!(matches!(
            disassociate(&cloud, &caller, &main_association).await,
            Err(CloudError::Invalid(_))
        ));
        let new_main = replace_association(&cloud, &caller, &main_association, id)
            .await
            .expect("replace main");
        assert!(matches!(
            delete(&cloud, &caller, &main.route_table_id).await,
            Ok(())
        ));
        disassociate(&cloud, &caller, &association)
            .await
            .expect("disassociate");
        assert!(matches!(
            disassociate(&cloud, &caller, &association).await,
            Err(CloudError::NotFound {
                kind: Kind::RouteTableAssociation,
                ..
            })
        ));
        let (tables, view) = list(&cloud, &caller, &[id.to_owned()]).await.expect("list");
        assert_eq!(tables[0].associations[0].association_id, new_main);
        assert!(tables[0].associations[0].main());
        assert_eq!(
            routing::route_state(&tables[0].routes[1], vpc_id, &view),
            "active"
        );
        delete_route(&cloud, &caller, id, "0.0.0.0/0")
            .await
            .expect("delete route");

        let other = cloud.principal("other").await;
        assert!(matches!(
            delete(&cloud, &other, id).await,
            Err(CloudError::NotFound {
                kind: Kind::RouteTable,
                ..
            })
        ));
        assert!(matches!(
            disassociate(&cloud, &other, &new_main).await,
            Err(CloudError::NotFound { .. })
        ));
    }
}
