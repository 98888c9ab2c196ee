//! Conformance of [`crate::VpcIndex`]: custom VPCs with their default
//! group, subnets with VNIs of their own, DHCP options sets, and what
//! blocks each deletion.

use super::{has_resource, tag};
use crate::{
    DhcpOptions, DhcpOptionsDeletion, SecurityGroup, SecurityGroupRule, Store, StoreError, Subnet,
    SubnetDeletion, Vpc, VpcAttributes, VpcDeletion,
};

fn vpc(id: &str, account_id: &str, cidr: &str) -> Vpc {
    Vpc {
        vpc_id: id.into(),
        account_id: account_id.into(),
        cidr: cidr.into(),
        is_default: false,
        created_at: 40,
        attributes: VpcAttributes {
            dns_hostnames: false,
            ..VpcAttributes::default()
        },
        dhcp_options_id: None,
    }
}

fn default_group(vpc_id: &str, account_id: &str) -> (SecurityGroup, Vec<SecurityGroupRule>) {
    let group_id = format!("sg-of-{vpc_id}");
    let group = SecurityGroup {
        group_id: group_id.clone(),
        account_id: account_id.into(),
        vpc_id: vpc_id.into(),
        name: "default".into(),
        description: "default VPC security group".into(),
        created_at: 40,
    };
    let rule = SecurityGroupRule {
        rule_id: format!("sgr-of-{vpc_id}"),
        group_id: group_id.clone(),
        account_id: account_id.into(),
        egress: false,
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        cidr: None,
        referenced_group_id: Some(group_id),
        description: None,
        created_at: 40,
    };
    (group, vec![rule])
}

fn subnet(id: &str, vpc_id: &str, account_id: &str, cidr: &str) -> Subnet {
    Subnet {
        subnet_id: id.into(),
        vpc_id: vpc_id.into(),
        account_id: account_id.into(),
        zone: "z1".into(),
        cidr: cidr.into(),
        default_for_az: false,
        map_public_ip_on_launch: false,
        created_at: 41,
        vni: 0,
    }
}

/// The (key, value) tags of one resource.
async fn tags_of(store: &dyn Store, id: &str) -> Vec<(String, String)> {
    store
        .resource_tags(&[id.to_owned()])
        .await
        .expect("tags")
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect()
}

fn pair(key: &str, value: &str) -> Vec<(String, String)> {
    vec![(key.to_owned(), value.to_owned())]
}

async fn create(store: &dyn Store, v: &Vpc) {
    let (group, rules) = default_group(&v.vpc_id, &v.account_id);
    store
        .create_vpc(v, &group, &rules, &[tag("Name", &v.vpc_id)])
        .await
        .expect("create vpc");
}

/// Runs the custom VPC checks.
pub async fn run(store: &dyn Store) {
    let alpha = "515151515151";
    let beta = "616161616161";
    super::create_accounts(
        store,
        &[(alpha, "custom-vpc-alpha"), (beta, "custom-vpc-beta")],
    )
    .await;
    vpcs_and_subnets(store, alpha, beta).await;
    dhcp_options(store, alpha, beta).await;
}

async fn vpcs_and_subnets(store: &dyn Store, alpha: &str, beta: &str) {
    let generation = store.firewall_generation().await.expect("generation");
    let one = vpc("vpc-custom-1", alpha, "10.0.0.0/16");
    create(store, &one).await;
    // Two VPCs may use the same CIDR.
    let two = vpc("vpc-custom-2", alpha, "10.0.0.0/16");
    create(store, &two).await;
    assert!(store.firewall_generation().await.expect("generation") > generation);
    assert_eq!(
        store.vpc("vpc-custom-1").await.expect("read"),
        Some(one.clone())
    );
    assert_eq!(
        store
            .vpcs(alpha)
            .await
            .expect("list")
            .iter()
            .map(|v| v.vpc_id.as_str())
            .collect::<Vec<_>>(),
        ["vpc-custom-1", "vpc-custom-2"]
    );
    assert!(store.vpcs(beta).await.expect("list").is_empty());
    let groups = store.security_groups(alpha).await.expect("groups");
    assert!(
        groups
            .iter()
            .any(|g| g.vpc_id == "vpc-custom-1" && g.name == "default")
    );
    assert_eq!(
        tags_of(store, "vpc-custom-1").await,
        pair("Name", "vpc-custom-1")
    );
    // A VPC naming a DHCP options set it does not own is refused whole.
    let bad = Vpc {
        dhcp_options_id: Some("dopt-nosuch".into()),
        ..vpc("vpc-custom-bad", alpha, "10.1.0.0/16")
    };
    let (group, rules) = default_group(&bad.vpc_id, alpha);
    assert!(matches!(
        store.create_vpc(&bad, &group, &rules, &[]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!has_resource(store, "vpc-custom-bad").await);

    // Subnets: a VNI each, never a duplicate CIDR, only in the owner's VPC.
    let a = store
        .create_subnet(
            &subnet("subnet-c1", "vpc-custom-1", alpha, "10.0.1.0/24"),
            &[tag("tier", "web")],
        )
        .await
        .expect("subnet");
    let b = store
        .create_subnet(
            &subnet("subnet-c2", "vpc-custom-2", alpha, "10.0.1.0/24"),
            &[],
        )
        .await
        .expect("same CIDR in another VPC");
    assert!(a.vni > 0 && b.vni > 0 && a.vni != b.vni);
    assert_eq!(
        store.subnet("subnet-c1").await.expect("read"),
        Some(a.clone())
    );
    assert_eq!(tags_of(store, "subnet-c1").await, pair("tier", "web"));
    assert!(matches!(
        store
            .create_subnet(&subnet("subnet-c3", "vpc-custom-1", alpha, "10.0.1.0/24"), &[])
            .await,
        Err(StoreError::Conflict(id)) if id == "subnet-c1"
    ));
    assert!(matches!(
        store
            .create_subnet(
                &subnet("subnet-c4", "vpc-custom-1", beta, "10.0.2.0/24"),
                &[]
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!has_resource(store, "subnet-c3").await);
    assert!(!has_resource(store, "subnet-c4").await);
    assert!(
        store
            .set_subnet_map_public_ip("subnet-c1", true)
            .await
            .expect("set")
    );
    assert!(
        store
            .subnet("subnet-c1")
            .await
            .expect("read")
            .expect("exists")
            .map_public_ip_on_launch
    );
    assert!(
        !store
            .set_subnet_map_public_ip("subnet-nosuch", true)
            .await
            .expect("set")
    );

    // A live instance in the subnet keeps it and its VPC.
    let r = super::instances::reservation("r-custom", alpha, None, 800);
    let mut instance = super::instances::instance("i-custom", &r, 0, "10.0.1.4", 0xc1);
    instance.network_id = "vpc-custom-1".into();
    instance.details = r#"{"vpc_id":"vpc-custom-1","subnet_id":"subnet-c1"}"#.into();
    store
        .create_reservation(&r, std::slice::from_ref(&instance), &[])
        .await
        .expect("reservation");
    assert_eq!(
        store
            .delete_subnet(alpha, "subnet-c1")
            .await
            .expect("delete"),
        SubnetDeletion::InUse {
            instance_id: "i-custom".into()
        }
    );
    assert_eq!(
        store
            .delete_subnet(beta, "subnet-c1")
            .await
            .expect("delete"),
        SubnetDeletion::NotFound
    );
    assert_eq!(
        store
            .delete_vpc(alpha, "vpc-custom-1")
            .await
            .expect("delete"),
        VpcDeletion::Dependency {
            resource_id: "subnet-c1".into()
        }
    );
    instance.terminated_at = Some(900);
    instance.state = "terminated".into();
    instance.revision = 0;
    assert!(store.update_instance(&instance).await.expect("terminate"));
    assert_eq!(
        store
            .delete_subnet(alpha, "subnet-c1")
            .await
            .expect("delete"),
        SubnetDeletion::Deleted
    );
    assert!(store.subnet("subnet-c1").await.expect("read").is_none());
    assert!(!has_resource(store, "subnet-c1").await);

    // Another group blocks the VPC; its default group does not.
    let extra = SecurityGroup {
        group_id: "sg-custom-extra".into(),
        name: "extra".into(),
        ..default_group("vpc-custom-1", alpha).0
    };
    store
        .create_security_group(&extra, &[], &[])
        .await
        .expect("group");
    assert_eq!(
        store
            .delete_vpc(alpha, "vpc-custom-1")
            .await
            .expect("delete"),
        VpcDeletion::Dependency {
            resource_id: "sg-custom-extra".into()
        }
    );
    assert_eq!(
        store
            .delete_security_group(alpha, "sg-custom-extra")
            .await
            .expect("delete group"),
        crate::GroupDeletion::Deleted
    );
    assert_eq!(
        store
            .delete_vpc(beta, "vpc-custom-1")
            .await
            .expect("delete"),
        VpcDeletion::NotFound
    );
    let generation = store.firewall_generation().await.expect("generation");
    assert_eq!(
        store
            .delete_vpc(alpha, "vpc-custom-1")
            .await
            .expect("delete"),
        VpcDeletion::Deleted
    );
    assert!(store.firewall_generation().await.expect("generation") > generation);
    assert!(store.vpc("vpc-custom-1").await.expect("read").is_none());
    for gone in ["vpc-custom-1", "sg-of-vpc-custom-1", "sgr-of-vpc-custom-1"] {
        assert!(!has_resource(store, gone).await, "{gone} left behind");
    }
    assert!(
        store
            .security_group("sg-of-vpc-custom-1")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        store
            .delete_vpc(alpha, "vpc-custom-1")
            .await
            .expect("again"),
        VpcDeletion::NotFound
    );
    // The default VPC is not deleted here.
    if let Some(default) = store.default_vpc(alpha).await.expect("default") {
        assert_eq!(
            store
                .delete_vpc(alpha, &default.vpc.vpc_id)
                .await
                .expect("delete"),
            VpcDeletion::NotFound
        );
    }
    // Clean up the second VPC for the next checks.
    assert_eq!(
        store
            .delete_subnet(alpha, "subnet-c2")
            .await
            .expect("delete"),
        SubnetDeletion::Deleted
    );
    assert_eq!(
        store
            .delete_vpc(alpha, "vpc-custom-2")
            .await
            .expect("delete"),
        VpcDeletion::Deleted
    );
}

async fn dhcp_options(store: &dyn Store, alpha: &str, beta: &str) {
    let options = DhcpOptions {
        dhcp_options_id: "dopt-one".into(),
        account_id: alpha.into(),
        configurations: vec![
            ("domain-name".into(), vec!["corp.example".into()]),
            (
                "domain-name-servers".into(),
                vec!["AmazonProvidedDNS".into()],
            ),
        ],
        created_at: 50,
    };
    store
        .create_dhcp_options(&options, &[tag("Name", "corp")])
        .await
        .expect("create");
    assert_eq!(
        store.dhcp_options(alpha).await.expect("list"),
        std::slice::from_ref(&options)
    );
    assert!(store.dhcp_options(beta).await.expect("list").is_empty());
    assert_eq!(tags_of(store, "dopt-one").await, pair("Name", "corp"));
    let with = Vpc {
        dhcp_options_id: Some("dopt-one".into()),
        ..vpc("vpc-dopt", alpha, "10.2.0.0/16")
    };
    create(store, &with).await;
    assert_eq!(
        store
            .vpc("vpc-dopt")
            .await
            .expect("read")
            .expect("exists")
            .dhcp_options_id
            .as_deref(),
        Some("dopt-one")
    );
    assert_eq!(
        store
            .delete_dhcp_options(alpha, "dopt-one")
            .await
            .expect("delete"),
        DhcpOptionsDeletion::InUse {
            vpc_id: "vpc-dopt".into()
        }
    );
    assert_eq!(
        store
            .delete_dhcp_options(beta, "dopt-one")
            .await
            .expect("delete"),
        DhcpOptionsDeletion::NotFound
    );
    // Another account's VPC or set is not found.
    assert!(matches!(
        store.associate_dhcp_options(beta, "vpc-dopt", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .associate_dhcp_options(alpha, "vpc-dopt", Some("dopt-nosuch"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    store
        .associate_dhcp_options(alpha, "vpc-dopt", None)
        .await
        .expect("default");
    assert_eq!(
        store
            .vpc("vpc-dopt")
            .await
            .expect("read")
            .expect("exists")
            .dhcp_options_id,
        None
    );
    assert_eq!(
        store
            .delete_dhcp_options(alpha, "dopt-one")
            .await
            .expect("delete"),
        DhcpOptionsDeletion::Deleted
    );
    assert!(!has_resource(store, "dopt-one").await);
    assert!(store.dhcp_options(alpha).await.expect("list").is_empty());
    assert_eq!(
        store.delete_vpc(alpha, "vpc-dopt").await.expect("delete"),
        VpcDeletion::Deleted
    );
}
