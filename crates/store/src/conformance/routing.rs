//! Conformance of [`crate::RoutingIndex`]: main tables made once, gateway
//! attachments one to one, routes one per destination, associations one
//! per subnet, and what blocks a deletion.

use crate::{
    DefaultVpc, InternetGateway, NatGateway, Route, RouteTable, RouteTableAssociation, RouteTarget,
    SecurityGroup, Store, StoreError, Subnet, Vpc, VpcAttributes, VpcDeletion,
};

const ACCOUNT: &str = "730000000061";

async fn vpc(store: &dyn Store, suffix: &str) -> (String, String) {
    let vpc_id = format!("vpc-rt-{suffix}");
    let subnet_id = format!("subnet-rt-{suffix}");
    let template = DefaultVpc {
        vpc: Vpc {
            vpc_id: vpc_id.clone(),
            account_id: ACCOUNT.into(),
            cidr: "172.31.0.0/16".into(),
            is_default: true,
            created_at: 1,
            attributes: VpcAttributes::default(),
            dhcp_options_id: None,
        },
        subnets: vec![Subnet {
            subnet_id: subnet_id.clone(),
            vpc_id: vpc_id.clone(),
            account_id: ACCOUNT.into(),
            zone: "z".into(),
            cidr: "172.31.0.0/20".into(),
            default_for_az: true,
            map_public_ip_on_launch: true,
            created_at: 1,
            vni: 0,
        }],
        default_group: SecurityGroup {
            group_id: format!("sg-rt-{suffix}"),
            account_id: ACCOUNT.into(),
            vpc_id: vpc_id.clone(),
            name: "default".into(),
            description: "d".into(),
            created_at: 1,
        },
        default_rules: Vec::new(),
    };
    let stored = store.ensure_default_vpc(&template).await.expect("vpc");
    (stored.vpc.vpc_id, stored.subnets[0].subnet_id.clone())
}

fn route(destination: &str, target: RouteTarget) -> Route {
    Route {
        destination: destination.into(),
        target,
        with_table: false,
    }
}

fn table(id: &str, vpc_id: &str, main: Option<&str>) -> RouteTable {
    RouteTable {
        route_table_id: id.into(),
        account_id: ACCOUNT.into(),
        vpc_id: vpc_id.into(),
        created_at: 2,
        routes: vec![Route {
            with_table: true,
            ..route("172.31.0.0/16", RouteTarget::Local)
        }],
        associations: main
            .map(|a| RouteTableAssociation {
                association_id: a.into(),
                route_table_id: id.into(),
                vpc_id: vpc_id.into(),
                subnet_id: None,
            })
            .into_iter()
            .collect(),
    }
}

fn gateway(id: &str, vpc_id: Option<&str>) -> InternetGateway {
    InternetGateway {
        internet_gateway_id: id.into(),
        account_id: ACCOUNT.into(),
        vpc_id: vpc_id.map(str::to_owned),
        created_at: 3,
    }
}

pub(super) async fn run(store: &dyn Store) {
    super::create_accounts(store, &[(ACCOUNT, "routing-one")]).await;
    let (vpc_id, subnet_id) = vpc(store, "a").await;

    // The main table is made once, with its gateway; a second template
    // stores nothing.
    let mut first = table("rtb-main", &vpc_id, Some("rtbassoc-main"));
    first.routes.push(Route {
        with_table: true,
        ..route("0.0.0.0/0", RouteTarget::Gateway("igw-default".into()))
    });
    let main = store
        .ensure_main_route_table(&first, Some(&gateway("igw-default", Some(&vpc_id))))
        .await
        .expect("main");
    assert_eq!(main, first);
    let again = store
        .ensure_main_route_table(
            &table("rtb-other", &vpc_id, Some("rtbassoc-other")),
            Some(&gateway("igw-other", Some(&vpc_id))),
        )
        .await
        .expect("main again");
    assert_eq!(again, first);
    assert!(store.route_table("rtb-other").await.expect("get").is_none());
    assert!(
        store
            .internet_gateway("igw-other")
            .await
            .expect("get")
            .is_none()
    );
    assert!(super::has_resource(store, "igw-default").await);
    assert!(matches!(
        store
            .ensure_main_route_table(&table("rtb-x", "vpc-nothing", Some("rtbassoc-x")), None)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // One gateway per VPC, one VPC per gateway; attached ones stay.
    store
        .create_internet_gateway(&gateway("igw-two", None), &[super::tag("Name", "two")])
        .await
        .expect("create");
    assert!(matches!(
        store.attach_internet_gateway("igw-two", &vpc_id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.attach_internet_gateway("igw-none", &vpc_id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_internet_gateway("igw-default").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        !store
            .detach_internet_gateway("igw-default", "vpc-else")
            .await
            .expect("detach")
    );
    assert!(
        store
            .detach_internet_gateway("igw-default", &vpc_id)
            .await
            .expect("detach")
    );
    store
        .attach_internet_gateway("igw-two", &vpc_id)
        .await
        .expect("attach");
    assert!(matches!(
        store.attach_internet_gateway("igw-two", &vpc_id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .internet_gateway("igw-two")
            .await
            .expect("get")
            .and_then(|g| g.vpc_id),
        Some(vpc_id.clone())
    );
    assert!(
        store
            .delete_internet_gateway("igw-default")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_internet_gateway("igw-default")
            .await
            .expect("again")
    );
    assert!(!super::has_resource(store, "igw-default").await);
    let gateways = store.internet_gateways(ACCOUNT).await.expect("list");
    assert_eq!(gateways, vec![gateway("igw-two", Some(&vpc_id))]);

    // Routes: one per destination, replaced in place, removed.
    store
        .create_route_table(&table("rtb-b", &vpc_id, None), &[])
        .await
        .expect("table");
    let nat_route = route("0.0.0.0/0", RouteTarget::NatGateway("nat-1".into()));
    store
        .create_route("rtb-b", &nat_route)
        .await
        .expect("route");
    assert!(matches!(
        store.create_route("rtb-b", &nat_route).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_route("rtb-none", &nat_route).await,
        Err(StoreError::NotFound(_))
    ));
    let to_igw = route("0.0.0.0/0", RouteTarget::Gateway("igw-two".into()));
    assert!(
        store
            .replace_route("rtb-b", &to_igw)
            .await
            .expect("replace")
    );
    assert!(
        !store
            .replace_route("rtb-b", &route("10.9.0.0/16", RouteTarget::Local))
            .await
            .expect("replace none")
    );
    let b = store.route_table("rtb-b").await.expect("get").expect("b");
    assert_eq!(b.routes[1], to_igw);
    assert!(b.routes[0].with_table);

    // Associations: one per subnet, moved, removed; main ones stay.
    let association = RouteTableAssociation {
        association_id: "rtbassoc-b".into(),
        route_table_id: "rtb-b".into(),
        vpc_id: vpc_id.clone(),
        subnet_id: Some(subnet_id.clone()),
    };
    store
        .associate_route_table(&association)
        .await
        .expect("associate");
    assert!(matches!(
        store
            .associate_route_table(&RouteTableAssociation {
                association_id: "rtbassoc-b2".into(),
                route_table_id: "rtb-main".into(),
                ..association.clone()
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.delete_route_table("rtb-b").await,
        Err(StoreError::Conflict(_))
    ));
    let moved = store
        .replace_route_table_association("rtbassoc-b", "rtb-main", "rtbassoc-c")
        .await
        .expect("replace")
        .expect("existed");
    assert_eq!(moved.subnet_id.as_deref(), Some(subnet_id.as_str()));
    assert!(
        store
            .replace_route_table_association("rtbassoc-b", "rtb-main", "rtbassoc-d")
            .await
            .expect("replace gone")
            .is_none()
    );
    // The main association moves and stays main.
    let main_moved = store
        .replace_route_table_association("rtbassoc-main", "rtb-b", "rtbassoc-main2")
        .await
        .expect("replace main")
        .expect("existed");
    assert!(main_moved.main());
    assert!(
        store
            .disassociate_route_table("rtbassoc-main2")
            .await
            .expect("main stays")
            .is_none()
    );
    assert_eq!(
        store
            .disassociate_route_table("rtbassoc-c")
            .await
            .expect("disassociate"),
        Some(RouteTableAssociation {
            association_id: "rtbassoc-c".into(),
            route_table_id: "rtb-main".into(),
            ..association.clone()
        })
    );
    let tables = store.route_tables(ACCOUNT).await.expect("tables");
    assert_eq!(
        tables
            .iter()
            .map(|t| (t.route_table_id.as_str(), t.associations.len()))
            .collect::<Vec<_>>(),
        vec![("rtb-b", 1), ("rtb-main", 0)]
    );
    assert!(store.delete_route_table("rtb-main").await.expect("delete"));
    assert!(!store.delete_route_table("rtb-main").await.expect("again"));
    assert!(!super::has_resource(store, "rtb-main").await);

    // NAT gateways: an elastic IP serves one live gateway.
    let nat = NatGateway {
        nat_gateway_id: "nat-1".into(),
        account_id: ACCOUNT.into(),
        vpc_id: vpc_id.clone(),
        subnet_id: subnet_id.clone(),
        allocation_id: "eipalloc-1".into(),
        public_ip: "198.18.0.9".into(),
        private_ip: "172.31.15.254".into(),
        interface_id: "eni-1".into(),
        state: "pending".into(),
        client_token: Some("t".into()),
        created_at: 4,
        deleted_at: None,
    };
    store.create_nat_gateway(&nat, &[]).await.expect("nat");
    let second = NatGateway {
        nat_gateway_id: "nat-2".into(),
        ..nat.clone()
    };
    assert!(matches!(
        store.create_nat_gateway(&second, &[]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .set_nat_gateway_state("nat-1", "pending", "available", None)
            .await
            .expect("state")
    );
    assert!(
        !store
            .set_nat_gateway_state("nat-1", "pending", "available", None)
            .await
            .expect("not pending")
    );
    assert!(
        store
            .set_nat_gateway_state("nat-1", "available", "deleted", Some(9))
            .await
            .expect("deleted")
    );
    store
        .create_nat_gateway(&second, &[])
        .await
        .expect("the address is free again");
    let nats = store.nat_gateways(ACCOUNT).await.expect("nats");
    assert_eq!(nats.len(), 2);
    assert_eq!(
        (nats[0].state.as_str(), nats[0].deleted_at),
        ("deleted", Some(9))
    );
    assert_eq!(store.nat_gateway("nat-2").await.expect("get"), Some(second));

    custom_vpc_goes_with_its_main_table(store).await;
}

/// A custom VPC is kept by an attached gateway or another table, and
/// deleted with its main table.
async fn custom_vpc_goes_with_its_main_table(store: &dyn Store) {
    let vpc = Vpc {
        vpc_id: "vpc-rt-custom".into(),
        account_id: ACCOUNT.into(),
        cidr: "10.5.0.0/16".into(),
        is_default: false,
        created_at: 5,
        attributes: VpcAttributes::default(),
        dhcp_options_id: None,
    };
    let group = SecurityGroup {
        group_id: "sg-rt-custom".into(),
        account_id: ACCOUNT.into(),
        vpc_id: vpc.vpc_id.clone(),
        name: "default".into(),
        description: "d".into(),
        created_at: 5,
    };
    store
        .create_vpc(&vpc, &group, &[], &[])
        .await
        .expect("custom vpc");
    let main = table("rtb-custom-main", &vpc.vpc_id, Some("rtbassoc-cm"));
    store
        .ensure_main_route_table(&main, None)
        .await
        .expect("main");
    store
        .create_internet_gateway(&gateway("igw-custom", Some(&vpc.vpc_id)), &[])
        .await
        .expect("gateway");
    let refused = |id: &str| VpcDeletion::Dependency {
        resource_id: id.into(),
    };
    assert_eq!(
        store
            .delete_vpc(ACCOUNT, &vpc.vpc_id)
            .await
            .expect("refused"),
        refused("igw-custom")
    );
    assert!(
        store
            .detach_internet_gateway("igw-custom", &vpc.vpc_id)
            .await
            .expect("detach")
    );
    store
        .create_route_table(&table("rtb-custom-2", &vpc.vpc_id, None), &[])
        .await
        .expect("table");
    assert_eq!(
        store
            .delete_vpc(ACCOUNT, &vpc.vpc_id)
            .await
            .expect("refused"),
        refused("rtb-custom-2")
    );
    assert!(
        store
            .delete_route_table("rtb-custom-2")
            .await
            .expect("delete")
    );
    assert_eq!(
        store
            .delete_vpc(ACCOUNT, &vpc.vpc_id)
            .await
            .expect("deleted"),
        VpcDeletion::Deleted
    );
    assert!(
        store
            .route_table("rtb-custom-main")
            .await
            .expect("get")
            .is_none()
    );
    assert!(!super::has_resource(store, "rtb-custom-main").await);
}
