//! What a VPC's routes mean for traffic, shared by internet gateways,
//! route tables and NAT gateways.
//!
//! Every VPC has a main route table with its `local` route, made the first
//! time anything asks (so VPCs from before route tables get theirs); a
//! default VPC's also routes `0.0.0.0/0` to an internet gateway made and
//! attached with it, as on AWS. A subnet uses the table it is associated
//! with, else its VPC's main table; that table's `0.0.0.0/0` route decides
//! how the subnet's interfaces reach the public network ([`Internet`]):
//! through an internet gateway attached to the VPC (public and elastic IPs
//! work both ways), through an available NAT gateway (outbound only,
//! SNAT'ed to its elastic IP), or not at all. Every change to routes,
//! associations, attachments or NAT gateways recomputes that for the VPC's
//! live instances and gives the changed ones a new spec generation, so
//! their nodes apply it to the running ports at once.

use std::collections::HashMap;

use mallee_store::{
    InternetGateway, NatGateway, Route, RouteTable, RouteTableAssociation, RouteTarget, Vpc,
};

use crate::instances::model::InstanceState;
use crate::instances::spec::Internet;
use crate::instances::{lifecycle, quota};
use crate::{Cloud, CloudError, Kind, Principal, ids, vpcs};

/// The destination whose route decides public traffic.
pub const INTERNET: &str = "0.0.0.0/0";

/// A route's state: `active`, or `blackhole` when its target is gone (a
/// detached or deleted gateway, a deleted NAT gateway, a terminated
/// instance).
pub fn route_state(route: &Route, vpc_id: &str, view: &RoutingView) -> &'static str {
    let alive = match &route.target {
        RouteTarget::Local => true,
        RouteTarget::Gateway(id) => view
            .gateways
            .iter()
            .any(|g| &g.internet_gateway_id == id && g.vpc_id.as_deref() == Some(vpc_id)),
        RouteTarget::NatGateway(id) => view.nats.iter().any(|n| {
            &n.nat_gateway_id == id && matches!(n.state.as_str(), "pending" | "available")
        }),
        RouteTarget::Instance(id) | RouteTarget::NetworkInterface(id) => {
            view.live_targets.contains_key(id)
        }
    };
    if alive { "active" } else { "blackhole" }
}

/// An account's gateways, NAT gateways and live instances (by instance id
/// and primary interface id, each naming the instance), which route states
/// and the internet route are read from.
#[derive(Debug, Default)]
pub struct RoutingView {
    /// The account's internet gateways.
    pub gateways: Vec<InternetGateway>,
    /// The account's NAT gateways.
    pub nats: Vec<NatGateway>,
    /// Live (not terminated) instances and their primary interfaces, each
    /// mapped to its instance id.
    pub live_targets: HashMap<String, String>,
}

impl RoutingView {
    /// The account's gateways and NAT gateways, without instances: enough
    /// for [`RoutingView::internet`], which never routes through one.
    pub async fn gateways(cloud: &Cloud, account_id: &str) -> Result<Self, CloudError> {
        Ok(Self {
            gateways: cloud.store.internet_gateways(account_id).await?,
            nats: cloud.store.nat_gateways(account_id).await?,
            live_targets: HashMap::new(),
        })
    }

    /// Loads the account's.
    pub async fn load(cloud: &Cloud, account_id: &str) -> Result<Self, CloudError> {
        let mut live_targets = HashMap::new();
        for instance in quota::all_instances(cloud).await? {
            if instance.record.account_id != account_id
                || instance.state == InstanceState::Terminated
            {
                continue;
            }
            let id = instance.id().to_owned();
            let eni = instance.details.network_interface_id.clone();
            if !eni.is_empty() {
                live_targets.insert(eni, id.clone());
            }
            live_targets.insert(id.clone(), id);
        }
        Ok(Self {
            gateways: cloud.store.internet_gateways(account_id).await?,
            nats: cloud.store.nat_gateways(account_id).await?,
            live_targets,
        })
    }

    /// What `table`'s `0.0.0.0/0` route gives its subnets.
    pub fn internet(&self, table: &RouteTable) -> Internet {
        let Some(route) = table.routes.iter().find(|r| r.destination == INTERNET) else {
            return Internet::None;
        };
        if route_state(route, &table.vpc_id, self) != "active" {
            return Internet::None;
        }
        match &route.target {
            RouteTarget::Gateway(_) => Internet::Gateway,
            RouteTarget::NatGateway(id) => self
                .nats
                .iter()
                .find(|n| &n.nat_gateway_id == id)
                .map_or(Internet::None, |n| Internet::Nat(n.public_ip.clone())),
            // Routing through an instance is recorded, not forwarded.
            _ => Internet::None,
        }
    }
}

/// The table `subnet_id` of `vpc_id` uses: its association's, else the
/// VPC's main table.
pub fn effective_table<'a>(
    tables: &'a [RouteTable],
    vpc_id: &str,
    subnet_id: &str,
) -> Option<&'a RouteTable> {
    let associated = |pred: &dyn Fn(&RouteTableAssociation) -> bool| {
        tables
            .iter()
            .filter(|t| t.vpc_id == vpc_id)
            .find(|t| t.associations.iter().any(pred))
    };
    associated(&|a| a.subnet_id.as_deref() == Some(subnet_id)).or_else(|| associated(&|a| a.main()))
}

/// The main table of `vpc`, made (with a default VPC's gateway and
/// internet route) if it has none.
pub async fn ensure_main(cloud: &Cloud, vpc: &Vpc) -> Result<RouteTable, CloudError> {
    let now = ids::now_millis();
    let table_id = ids::resource_id("rtb");
    let mut routes = vec![Route {
        destination: vpc.cidr.clone(),
        target: RouteTarget::Local,
        with_table: true,
    }];
    let gateway = vpc.is_default.then(|| InternetGateway {
        internet_gateway_id: ids::resource_id("igw"),
        account_id: vpc.account_id.clone(),
        vpc_id: Some(vpc.vpc_id.clone()),
        created_at: now,
    });
    if let Some(gateway) = &gateway {
        // AWS lists the default VPC's internet route as made by CreateRoute.
        routes.push(Route {
            destination: INTERNET.into(),
            target: RouteTarget::Gateway(gateway.internet_gateway_id.clone()),
            with_table: false,
        });
    }
    let main = RouteTable {
        route_table_id: table_id.clone(),
        account_id: vpc.account_id.clone(),
        vpc_id: vpc.vpc_id.clone(),
        created_at: now,
        routes,
        associations: vec![RouteTableAssociation {
            association_id: ids::resource_id("rtbassoc"),
            route_table_id: table_id,
            vpc_id: vpc.vpc_id.clone(),
            subnet_id: None,
        }],
    };
    Ok(cloud
        .store
        .ensure_main_route_table(&main, gateway.as_ref())
        .await?)
}

/// Makes sure the account's default VPC exists and every VPC of the
/// account has its main table.
pub async fn ensure(cloud: &Cloud, account_id: &str) -> Result<(), CloudError> {
    vpcs::default_vpc(cloud, account_id).await?;
    for vpc in cloud.store.vpcs(account_id).await? {
        ensure_main(cloud, &vpc).await?;
    }
    Ok(())
}

/// How interfaces of `subnet_id` (of `vpc_id`, an `account_id` VPC) reach
/// the public network now.
pub async fn internet_of(
    cloud: &Cloud,
    account_id: &str,
    vpc_id: &str,
    subnet_id: &str,
) -> Result<Internet, CloudError> {
    if let Some(vpc) = cloud.store.vpc(vpc_id).await? {
        ensure_main(cloud, &vpc).await?;
    }
    let tables = cloud.store.route_tables(account_id).await?;
    let Some(table) = effective_table(&tables, vpc_id, subnet_id) else {
        return Ok(Internet::None);
    };
    Ok(RoutingView::gateways(cloud, account_id)
        .await?
        .internet(table))
}

/// Recomputes how the caller's live instances in `vpc_id` reach the
/// public network, and gives those whose answer changed a new spec
/// generation (their nodes apply it to the running ports).
pub async fn refresh(cloud: &Cloud, caller: &Principal, vpc_id: &str) -> Result<(), CloudError> {
    let account = caller.account_id();
    let tables = cloud.store.route_tables(account).await?;
    let view = RoutingView::gateways(cloud, account).await?;
    let mut wanted: HashMap<String, Internet> = HashMap::new();
    for instance in quota::all_instances(cloud).await? {
        if instance.record.account_id != account
            || instance.state == InstanceState::Terminated
            || instance.details.vpc_id != vpc_id
        {
            continue;
        }
        let internet = effective_table(&tables, vpc_id, &instance.details.subnet_id)
            .map_or(Internet::None, |t| view.internet(t));
        let current = instance.details.spec.nics.first().map(|n| &n.internet);
        if current != Some(&internet) {
            wanted.insert(instance.id().to_owned(), internet);
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = wanted.keys().cloned().collect();
    lifecycle::change(cloud, caller, &ids, |instance, _| {
        let Some(internet) = wanted.get(instance.id()) else {
            return Ok(false);
        };
        let Some(nic) = instance.details.spec.nics.first_mut() else {
            return Ok(false);
        };
        if &nic.internet == internet {
            return Ok(false);
        }
        nic.internet = internet.clone();
        // The node gets the new spec and rewires the port.
        instance.record.generation += 1;
        Ok(true)
    })
    .await?;
    Ok(())
}

/// The caller's VPC `vpc_id` (its default VPC made first if need be), with
/// AWS's not-found error otherwise.
pub async fn owned_vpc(cloud: &Cloud, caller: &Principal, vpc_id: &str) -> Result<Vpc, CloudError> {
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
    async fn the_default_vpc_routes_to_its_gateway_and_others_nowhere() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("acct").await;
        let account = caller.account_id();
        let vpc = vpcs::default_vpc(&cloud, account).await.expect("vpc");
        let subnet = &vpc.subnets[0];
        let internet = internet_of(&cloud, account, &vpc.vpc.vpc_id, &subnet.subnet_id)
            .await
            .expect("internet");
        assert_eq!(internet, Internet::Gateway);
        // Made once: asking again changes nothing.
        let first = cloud.store.route_tables(account).await.expect("tables");
        ensure(&cloud, account).await.expect("ensure");
        assert_eq!(
            cloud.store.route_tables(account).await.expect("again"),
            first
        );
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].routes.len(), 2);
        let gateways = cloud.store.internet_gateways(account).await.expect("igws");
        assert_eq!(gateways.len(), 1);
        assert_eq!(
            first[0].routes[1].target,
            RouteTarget::Gateway(gateways[0].internet_gateway_id.clone())
        );
        // A detached gateway makes its route a blackhole.
        cloud
            .store
            .detach_internet_gateway(&gateways[0].internet_gateway_id, &vpc.vpc.vpc_id)
            .await
            .expect("detach");
        let view = RoutingView::load(&cloud, account).await.expect("view");
        assert_eq!(
            route_state(&first[0].routes[1], &vpc.vpc.vpc_id, &view),
            "blackhole"
        );
        assert_eq!(view.internet(&first[0]), Internet::None);
    }

    /// The stored instance's internet route and spec generation.
    async fn nic_of(cloud: &Cloud, id: &str) -> (Internet, i64) {
        let record = cloud.store.instance(id).await.expect("get").expect("there");
        let generation = record.generation;
        let instance = crate::instances::model::Instance::decode(record).expect("decode");
        (instance.details.spec.nics[0].internet.clone(), generation)
    }

    #[tokio::test]
    async fn running_instances_follow_their_subnets_route_with_a_new_generation() {
        use crate::route_tables::{self, TargetRequest};
        use crate::testkit::InstanceBuilder;

        let cloud = TestCloud::new().await;
        let caller = cloud.principal("acct").await;
        let account = caller.account_id();
        let vpc = vpcs::default_vpc(&cloud, account).await.expect("vpc");
        let (vpc_id, subnet_id) = (vpc.vpc.vpc_id.as_str(), vpc.subnets[0].subnet_id.as_str());
        let id = "i-00000000000000f01";
        InstanceBuilder::new(id, account)
            .placed_in(vpc_id, subnet_id)
            .store(&cloud)
            .await;
        ensure(&cloud, account).await.expect("ensure");
        let main = cloud.store.route_tables(account).await.expect("tables")[0].clone();
        let igw = cloud.store.internet_gateways(account).await.expect("igws")[0]
            .internet_gateway_id
            .clone();
        let to_igw = TargetRequest::Gateway(igw);
        assert_eq!(nic_of(&cloud, id).await, (Internet::Gateway, 1));
        route_tables::delete_route(&cloud, &caller, &main.route_table_id, INTERNET)
            .await
            .expect("delete route");
        assert_eq!(nic_of(&cloud, id).await, (Internet::None, 2));
        route_tables::create_route(&cloud, &caller, &main.route_table_id, INTERNET, &to_igw)
            .await
            .expect("route back");
        assert_eq!(nic_of(&cloud, id).await, (Internet::Gateway, 3));
        // A route for another destination leaves the spec alone.
        route_tables::create_route(&cloud, &caller, &main.route_table_id, "10.0.0.0/8", &to_igw)
            .await
            .expect("other route");
        assert_eq!(nic_of(&cloud, id).await, (Internet::Gateway, 3));
    }
}
