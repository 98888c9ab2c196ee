//! Conformance of [`crate::NetworkIndex`]: default VPCs (idempotent and
//! race-safe), groups, rules, memberships and what blocks a deletion.

use crate::{
    DefaultVpc, GroupDeletion, InstanceRecord, Reservation, SecurityGroup, SecurityGroupRule,
    Store, StoreError, Subnet, TagPair, Vpc, VpcAttributes,
};

fn template(account_id: &str, suffix: &str, zones: &[&str]) -> DefaultVpc {
    let vpc_id = format!("vpc-{suffix}");
    let group_id = format!("sg-default-{suffix}");
    DefaultVpc {
        vpc: Vpc {
            vpc_id: vpc_id.clone(),
            account_id: account_id.into(),
            cidr: "172.31.0.0/16".into(),
            is_default: true,
            created_at: 10,
            attributes: VpcAttributes::default(),
            dhcp_options_id: None,
        },
        subnets: zones
            .iter()
            .enumerate()
            .map(|(i, zone)| Subnet {
                subnet_id: format!("subnet-{suffix}-{i}"),
                vpc_id: vpc_id.clone(),
                account_id: account_id.into(),
                zone: (*zone).into(),
                cidr: format!("172.31.{}.0/20", i * 16),
                default_for_az: true,
                map_public_ip_on_launch: true,
                created_at: 10,
                // The store gives the VNI; whatever the caller says is
                // ignored.
                vni: 4242,
            })
            .collect(),
        default_group: group(&group_id, account_id, &vpc_id, "default"),
        default_rules: vec![
            rule(&format!("sgr-in-{suffix}"), &group_id, account_id, false).with_group(&group_id),
            rule(&format!("sgr-out-{suffix}"), &group_id, account_id, true).with_cidr("0.0.0.0/0"),
        ],
    }
}

fn group(id: &str, account_id: &str, vpc_id: &str, name: &str) -> SecurityGroup {
    SecurityGroup {
        group_id: id.into(),
        account_id: account_id.into(),
        vpc_id: vpc_id.into(),
        name: name.into(),
        description: format!("{name} group"),
        created_at: 20,
    }
}

/// An all-protocols rule without a peer; callers add one.
fn rule(id: &str, group_id: &str, account_id: &str, egress: bool) -> SecurityGroupRule {
    SecurityGroupRule {
        rule_id: id.into(),
        group_id: group_id.into(),
        account_id: account_id.into(),
        egress,
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        cidr: None,
        referenced_group_id: None,
        description: None,
        created_at: 30,
    }
}

trait RuleExt {
    fn with_cidr(self, cidr: &str) -> Self;
    fn with_group(self, group_id: &str) -> Self;
    fn tcp(self, from: i32, to: i32) -> Self;
}

impl RuleExt for SecurityGroupRule {
    fn with_cidr(mut self, cidr: &str) -> Self {
        self.cidr = Some(cidr.into());
        self
    }
    fn with_group(mut self, group_id: &str) -> Self {
        self.referenced_group_id = Some(group_id.into());
        self
    }
    fn tcp(mut self, from: i32, to: i32) -> Self {
        self.protocol = "tcp".into();
        self.from_port = Some(from);
        self.to_port = Some(to);
        self
    }
}

fn rule_ids(rules: &[SecurityGroupRule]) -> Vec<&str> {
    rules.iter().map(|r| r.rule_id.as_str()).collect()
}

async fn resource_types(store: &dyn Store, ids: &[&str]) -> Vec<String> {
    let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    let mut found: Vec<String> = store
        .resources(&ids)
        .await
        .expect("resources")
        .into_iter()
        .map(|r| format!("{}={}", r.resource_id, r.resource_type))
        .collect();
    found.sort();
    found
}

/// Runs the network checks.
pub async fn run(store: &dyn Store) {
    let alpha = "777777777777";
    let beta = "888888888888";
    super::create_accounts(store, &[(alpha, "net-alpha"), (beta, "net-beta")]).await;
    default_vpcs(store, alpha, beta).await;
    vpc_attributes(store, alpha).await;
    groups_and_rules(store, alpha, beta).await;
    rule_updates(store, alpha).await;
    memberships(store, alpha).await;
    launch_memberships(store, alpha).await;
}

async fn vpc_attributes(store: &dyn Store, alpha: &str) {
    let vpc = store
        .default_vpc(alpha)
        .await
        .expect("read")
        .expect("made by default_vpcs")
        .vpc;
    assert_eq!(
        vpc.attributes,
        VpcAttributes::default(),
        "DNS on by default"
    );
    let off = VpcAttributes {
        dns_support: false,
        dns_hostnames: false,
        address_usage_metrics: true,
    };
    assert!(
        store
            .set_vpc_attributes(&vpc.vpc_id, &off)
            .await
            .expect("set")
    );
    let read = store.vpc(&vpc.vpc_id).await.expect("read").expect("exists");
    assert_eq!(read.attributes, off);
    assert_eq!(
        store.vpcs(alpha).await.expect("list")[0].attributes,
        off,
        "listed as read"
    );
    assert!(
        !store
            .set_vpc_attributes("vpc-nosuch", &off)
            .await
            .expect("set")
    );
    assert!(
        store
            .set_vpc_attributes(&vpc.vpc_id, &VpcAttributes::default())
            .await
            .expect("set back")
    );
}

async fn default_vpcs(store: &dyn Store, alpha: &str, beta: &str) {
    assert_eq!(store.default_vpc(alpha).await.expect("none yet"), None);
    let generation = store.firewall_generation().await.expect("generation");
    // Two racing first calls store one VPC and agree on it.
    let first = template(alpha, "a1", &["z1", "z2"]);
    let second = template(alpha, "a2", &["z1", "z2"]);
    let (x, y) = tokio::join!(
        store.ensure_default_vpc(&first),
        store.ensure_default_vpc(&second)
    );
    let (x, y) = (x.expect("first"), y.expect("second"));
    assert_eq!(x, y, "racing calls returned different default VPCs");
    assert!(x == store.ensure_default_vpc(&first).await.expect("again"));
    assert_eq!(store.vpcs(alpha).await.expect("vpcs").len(), 1);
    let winner = if x.vpc.vpc_id == "vpc-a1" { "a1" } else { "a2" };
    let loser = if winner == "a1" { "a2" } else { "a1" };
    assert_eq!(x.vpc.vpc_id, format!("vpc-{winner}"));
    assert!(x.vpc.is_default);
    assert_eq!(x.default_group.name, "default");
    assert_eq!(
        x.subnets
            .iter()
            .map(|s| (s.zone.as_str(), s.cidr.as_str(), s.default_for_az))
            .collect::<Vec<_>>(),
        [
            ("z1", "172.31.0.0/20", true),
            ("z2", "172.31.16.0/20", true)
        ]
    );
    assert_eq!(
        rule_ids(&x.default_rules),
        [format!("sgr-in-{winner}"), format!("sgr-out-{winner}")]
    );
    assert!(
        store.firewall_generation().await.expect("generation") > generation,
        "creating the default group did not raise the firewall generation"
    );
    assert!(
        store
            .resources(&[format!("vpc-{loser}"), format!("sg-default-{loser}")])
            .await
            .expect("loser rows")
            .is_empty(),
        "the losing template left rows behind"
    );
    assert_eq!(
        resource_types(
            store,
            &[
                &format!("vpc-{winner}"),
                &format!("subnet-{winner}-0"),
                &format!("sg-default-{winner}"),
                &format!("sgr-out-{winner}"),
            ]
        )
        .await,
        [
            format!("sg-default-{winner}=security-group"),
            format!("sgr-out-{winner}=security-group-rule"),
            format!("subnet-{winner}-0=subnet"),
            format!("vpc-{winner}=vpc"),
        ]
    );
    // A zone configured later gets its subnet; existing ones are kept.
    let grown = store
        .ensure_default_vpc(&template(alpha, "a3", &["z1", "z2", "z3"]))
        .await
        .expect("grown");
    assert_eq!(grown.vpc, x.vpc);
    assert_eq!(
        grown
            .subnets
            .iter()
            .map(|s| s.subnet_id.as_str())
            .collect::<Vec<_>>(),
        [
            format!("subnet-{winner}-0"),
            format!("subnet-{winner}-1"),
            "subnet-a3-2".into()
        ]
    );
    assert_eq!(
        grown.subnets[2].vpc_id, x.vpc.vpc_id,
        "added subnet must join the existing VPC"
    );
    // Accounts are separate.
    let b = store
        .ensure_default_vpc(&template(beta, "b1", &["z1"]))
        .await
        .expect("beta");
    assert_eq!(b.vpc.vpc_id, "vpc-b1");
    assert_eq!(
        store.vpcs(beta).await.expect("beta vpcs"),
        vec![b.vpc.clone()]
    );
    assert_eq!(
        store.subnets(beta).await.expect("beta subnets"),
        b.subnets.clone()
    );
    assert_eq!(store.vpc("vpc-b1").await.expect("vpc"), Some(b.vpc.clone()));
    assert_eq!(
        store.subnet("subnet-b1-0").await.expect("subnet"),
        Some(b.subnets[0].clone())
    );
    assert_eq!(store.subnet("subnet-none").await.expect("subnet"), None);
    assert_eq!(
        store.default_vpc(beta).await.expect("beta default"),
        Some(b.clone())
    );
    subnet_vnis(store, &grown, &b).await;
}

/// Every subnet has its own VNI, of any account or VPC; later subnets get
/// higher ones (a VNI is never given twice).
async fn subnet_vnis(store: &dyn Store, alpha: &DefaultVpc, beta: &DefaultVpc) {
    let all: Vec<&Subnet> = alpha.subnets.iter().chain(&beta.subnets).collect();
    let mut vnis: Vec<u32> = all.iter().map(|s| s.vni).collect();
    assert!(
        vnis.iter()
            .all(|v| (1..=crate::MAX_VNI).contains(v) && *v != 4242),
        "VNIs must come from the store: {vnis:?}"
    );
    vnis.sort_unstable();
    vnis.dedup();
    assert_eq!(vnis.len(), all.len(), "two subnets share a VNI: {all:?}");
    assert!(
        alpha.subnets[2].vni > alpha.subnets[0].vni.max(alpha.subnets[1].vni),
        "a later subnet got an older VNI"
    );
    assert!(beta.subnets[0].vni > alpha.subnets[2].vni);
    for subnet in all {
        let stored = store
            .subnet(&subnet.subnet_id)
            .await
            .expect("subnet")
            .expect("exists");
        assert_eq!(stored.vni, subnet.vni, "a subnet's VNI changed");
    }
}

async fn groups_and_rules(store: &dyn Store, alpha: &str, beta: &str) {
    let vpc = store
        .default_vpc(alpha)
        .await
        .expect("default")
        .expect("exists");
    let vpc_id = vpc.vpc.vpc_id.clone();
    let web = group("sg-web", alpha, &vpc_id, "web");
    let tags = [TagPair {
        key: "env".into(),
        value: "prod".into(),
    }];
    let egress = rule("sgr-web-out", "sg-web", alpha, true).with_cidr("0.0.0.0/0");
    store
        .create_security_group(&web, std::slice::from_ref(&egress), &tags)
        .await
        .expect("create web");
    // Names are unique per VPC; a failed create leaves nothing.
    let clash = group("sg-web2", alpha, &vpc_id, "web");
    assert!(matches!(
        store
            .create_security_group(
                &clash,
                &[rule("sgr-x", "sg-web2", alpha, true).with_cidr("10.0.0.0/8")],
                &[]
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.security_group("sg-web2").await.expect("clash"), None);
    assert!(
        resource_types(store, &["sg-web2", "sgr-x"])
            .await
            .is_empty()
    );
    // A group in another account's VPC is refused.
    assert!(matches!(
        store
            .create_security_group(&group("sg-sneaky", beta, &vpc_id, "sneaky"), &[], &[])
            .await,
        Err(StoreError::NotFound(_))
    ));
    let tagged: Vec<_> = store
        .tags(alpha)
        .await
        .expect("tags")
        .into_iter()
        .filter(|t| t.resource_id == "sg-web")
        .map(|t| (t.resource_type, t.key, t.value))
        .collect();
    assert_eq!(
        tagged,
        [(
            "security-group".to_owned(),
            "env".to_owned(),
            "prod".to_owned()
        )]
    );
    let names: Vec<String> = store
        .security_groups(alpha)
        .await
        .expect("groups")
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"default".to_owned()) && names.contains(&"web".to_owned()));
    assert!(
        store
            .security_groups(beta)
            .await
            .expect("beta groups")
            .iter()
            .all(|g| g.account_id == beta)
    );

    // Rules: added all or none, duplicates refused.
    let before = store.firewall_generation().await.expect("generation");
    let ssh = rule("sgr-ssh", "sg-web", alpha, false)
        .tcp(22, 22)
        .with_cidr("10.0.0.0/8");
    let from_default = rule("sgr-from-default", "sg-web", alpha, false)
        .tcp(80, 80)
        .with_group(&vpc.default_group.group_id);
    store
        .add_security_group_rules(&[ssh.clone(), from_default.clone()], &tags)
        .await
        .expect("add rules");
    assert!(store.firewall_generation().await.expect("generation") > before);
    let mut dup = ssh.clone();
    dup.rule_id = "sgr-dup".into();
    dup.description = Some("other words".into());
    let fresh = rule("sgr-fresh", "sg-web", alpha, false)
        .tcp(443, 443)
        .with_cidr("0.0.0.0/0");
    assert!(matches!(
        store
            .add_security_group_rules(&[fresh.clone(), dup], &[])
            .await,
        Err(StoreError::Conflict(_))
    ));
    let dangling = rule("sgr-dangling", "sg-web", alpha, false).with_group("sg-gone");
    assert!(matches!(
        store.add_security_group_rules(&[dangling], &[]).await,
        Err(StoreError::NotFound(_))
    ));
    let web_rules = store
        .rules_of_groups(&["sg-web".into()])
        .await
        .expect("web rules");
    assert_eq!(
        rule_ids(&web_rules),
        ["sgr-from-default", "sgr-ssh", "sgr-web-out"],
        "ingress first, then egress; the refused batch added nothing"
    );
    assert_eq!(web_rules[1], ssh);
    assert!(
        resource_types(store, &["sgr-fresh", "sgr-dup", "sgr-dangling"])
            .await
            .is_empty()
    );
    let all = store.security_group_rules(alpha).await.expect("all rules");
    assert_eq!(all.len(), web_rules.len() + vpc.default_rules.len());
    assert!(
        store
            .security_group_rules(beta)
            .await
            .expect("beta rules")
            .iter()
            .all(|r| r.account_id == beta)
    );
    assert!(
        store
            .tags(alpha)
            .await
            .expect("tags")
            .iter()
            .any(|t| t.resource_id == "sgr-ssh" && t.resource_type == "security-group-rule")
    );

    // The default group is referenced by web's rule: it cannot go.
    assert_eq!(
        store
            .delete_security_group(alpha, &vpc.default_group.group_id)
            .await
            .expect("delete referenced"),
        GroupDeletion::Referenced {
            group_id: "sg-web".into()
        }
    );
    assert_eq!(
        store
            .remove_security_group_rules(&["sgr-from-default".into(), "sgr-nothing".into()])
            .await
            .expect("remove"),
        1
    );
    assert!(
        resource_types(store, &["sgr-from-default"])
            .await
            .is_empty()
    );
    assert_eq!(
        store
            .delete_security_group(beta, "sg-web")
            .await
            .expect("other account"),
        GroupDeletion::NotFound
    );
    assert_eq!(
        store
            .delete_security_group(alpha, "sg-web")
            .await
            .expect("delete web"),
        GroupDeletion::Deleted
    );
    assert_eq!(store.security_group("sg-web").await.expect("gone"), None);
    assert!(
        resource_types(store, &["sg-web", "sgr-ssh", "sgr-web-out"])
            .await
            .is_empty(),
        "deleting a group left resource rows"
    );
    assert!(
        store
            .tags(alpha)
            .await
            .expect("tags")
            .iter()
            .all(|t| t.resource_id != "sg-web" && t.resource_id != "sgr-ssh")
    );
    assert_eq!(
        store
            .delete_security_group(alpha, "sg-web")
            .await
            .expect("again"),
        GroupDeletion::NotFound
    );
}

/// Rules changed in place: all or none, ids kept, duplicates and missing
/// rules or peers refused, the firewall generation raised.
async fn rule_updates(store: &dyn Store, alpha: &str) {
    let vpc = store
        .default_vpc(alpha)
        .await
        .expect("default")
        .expect("exists");
    let group_id = "sg-upd";
    let ssh = rule("sgr-upd-ssh", group_id, alpha, false)
        .tcp(22, 22)
        .with_cidr("10.0.0.0/8");
    let web = rule("sgr-upd-web", group_id, alpha, false)
        .tcp(80, 80)
        .with_cidr("10.0.0.0/8");
    store
        .create_security_group(
            &group(group_id, alpha, &vpc.vpc.vpc_id, "upd"),
            &[ssh.clone(), web.clone()],
            &[],
        )
        .await
        .expect("create");
    let stored = || async {
        store
            .rules_of_groups(&[group_id.to_owned()])
            .await
            .expect("rules")
    };
    let before = stored().await;
    // The same flow as the other rule: refused, nothing changed.
    let clash = SecurityGroupRule {
        description: Some("clash".into()),
        ..ssh.clone().tcp(80, 80)
    };
    assert!(matches!(
        store.update_security_group_rules(&[clash]).await,
        Err(StoreError::Conflict(id)) if id == "sgr-upd-ssh"
    ));
    // One good change and an unknown rule: nothing changed.
    let dns = SecurityGroupRule {
        protocol: "udp".into(),
        from_port: Some(53),
        to_port: Some(53),
        cidr: None,
        referenced_group_id: Some(vpc.default_group.group_id.clone()),
        description: Some("dns".into()),
        ..ssh.clone()
    };
    let unknown = rule("sgr-upd-none", group_id, alpha, false).with_cidr("1.2.3.4/32");
    assert!(matches!(
        store
            .update_security_group_rules(&[dns.clone(), unknown])
            .await,
        Err(StoreError::NotFound(id)) if id == "sgr-upd-none"
    ));
    let gone_peer = ssh.clone().with_group("sg-nonexistent");
    assert!(matches!(
        store.update_security_group_rules(&[gone_peer]).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(stored().await, before, "a refused update changed rules");
    let generation = store.firewall_generation().await.expect("generation");
    store
        .update_security_group_rules(std::slice::from_ref(&dns))
        .await
        .expect("update");
    assert!(store.firewall_generation().await.expect("generation") > generation);
    let after = stored().await;
    assert_eq!(rule_ids(&after), rule_ids(&before), "ids and order kept");
    let changed = after
        .iter()
        .find(|r| r.rule_id == "sgr-upd-ssh")
        .expect("kept");
    assert_eq!(changed, &dns);
    assert_eq!(
        store
            .delete_security_group(alpha, group_id)
            .await
            .expect("delete"),
        GroupDeletion::Deleted
    );
}

fn network_instance(id: &str, reservation: &Reservation, ip: &str, mac: u8) -> InstanceRecord {
    InstanceRecord {
        network_id: "vpc-net".into(),
        ..super::instances::instance(id, reservation, 0, ip, mac)
    }
}

async fn memberships(store: &dyn Store, alpha: &str) {
    let vpc = store
        .default_vpc(alpha)
        .await
        .expect("default")
        .expect("exists");
    let db = group("sg-db", alpha, &vpc.vpc.vpc_id, "db");
    store
        .create_security_group(&db, &[], &[])
        .await
        .expect("create db");
    let r = super::instances::reservation("r-net", alpha, None, 500);
    let live = network_instance("i-net-live", &r, "172.31.0.10", 0xa1);
    let gone = network_instance("i-net-gone", &r, "172.31.0.11", 0xa2);
    store
        .create_reservation(&r, &[live.clone(), gone.clone()], &[])
        .await
        .expect("reservation");
    let default_id = vpc.default_group.group_id.clone();
    assert!(matches!(
        store
            .set_instance_groups("i-missing", std::slice::from_ref(&default_id))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_instance_groups("i-net-live", &["sg-db".into(), "sg-missing".into()])
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .instance_groups("i-net-live")
            .await
            .expect("groups")
            .is_empty(),
        "a refused membership change was applied"
    );
    let before = store.firewall_generation().await.expect("generation");
    store
        .set_instance_groups("i-net-live", &["sg-db".into(), default_id.clone()])
        .await
        .expect("set live");
    store
        .set_instance_groups("i-net-gone", std::slice::from_ref(&default_id))
        .await
        .expect("set gone");
    assert!(store.firewall_generation().await.expect("generation") > before);
    assert_eq!(
        store.instance_groups("i-net-live").await.expect("groups"),
        ["sg-db".to_owned(), default_id.clone()]
    );
    assert_eq!(
        store
            .instances_in_group(&default_id)
            .await
            .expect("members"),
        ["i-net-gone", "i-net-live"]
    );
    assert_eq!(
        store
            .delete_security_group(alpha, "sg-db")
            .await
            .expect("in use"),
        GroupDeletion::InUse {
            instance_id: "i-net-live".into()
        }
    );
    // Only live instances hold a group.
    store
        .set_instance_groups("i-net-live", std::slice::from_ref(&default_id))
        .await
        .expect("move live");
    assert_eq!(
        store.instance_groups("i-net-live").await.expect("groups"),
        std::slice::from_ref(&default_id)
    );
    store
        .set_instance_groups("i-net-gone", &["sg-db".into()])
        .await
        .expect("gone into db");
    let mut terminated = store
        .instance("i-net-gone")
        .await
        .expect("instance")
        .expect("exists");
    terminated.state = "terminated".into();
    terminated.terminated_at = Some(600);
    assert!(store.update_instance(&terminated).await.expect("terminate"));
    assert_eq!(
        store
            .delete_security_group(alpha, "sg-db")
            .await
            .expect("only terminated members"),
        GroupDeletion::Deleted
    );
    assert!(
        store
            .instance_groups("i-net-gone")
            .await
            .expect("groups")
            .is_empty()
    );
    // Memberships go with the instance.
    store
        .delete_instance("i-net-live")
        .await
        .expect("delete instance");
    assert_eq!(
        store
            .instances_in_group(&default_id)
            .await
            .expect("members"),
        Vec::<String>::new()
    );
}

/// A launch records its instances' groups in its own transaction: all of
/// them, or (a group gone meanwhile) nothing at all.
async fn launch_memberships(store: &dyn Store, alpha: &str) {
    let vpc = store
        .default_vpc(alpha)
        .await
        .expect("default")
        .expect("exists");
    let default_id = vpc.default_group.group_id.clone();
    let r = super::instances::reservation("r-net-launch", alpha, None, 700);
    let a = network_instance("i-net-launch-a", &r, "172.31.0.20", 0xb1);
    let b = network_instance("i-net-launch-b", &r, "172.31.0.21", 0xb2);
    let before = store.firewall_generation().await.expect("generation");
    store
        .create_launch(&crate::Launch {
            reservation: &r,
            instances: &[a, b],
            volumes: &[],
            groups: std::slice::from_ref(&default_id),
            tags: &[],
            volume_tags: &[],
            interfaces: &[],
            interface_tags: &[],
        })
        .await
        .expect("launch with groups");
    assert!(store.firewall_generation().await.expect("generation") > before);
    for id in ["i-net-launch-a", "i-net-launch-b"] {
        assert_eq!(
            store.instance_groups(id).await.expect("groups"),
            std::slice::from_ref(&default_id)
        );
    }
    let r2 = super::instances::reservation("r-net-launch-2", alpha, None, 701);
    let c = network_instance("i-net-launch-c", &r2, "172.31.0.22", 0xb3);
    assert!(matches!(
        store
            .create_launch(&crate::Launch {
                reservation: &r2,
                instances: &[c],
                volumes: &[],
                groups: &[default_id.clone(), "sg-missing".into()],
                tags: &[],
                volume_tags: &[],
                interfaces: &[],
                interface_tags: &[],
            })
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .instance("i-net-launch-c")
            .await
            .expect("instance")
            .is_none()
    );
    assert!(
        store
            .instance_groups("i-net-launch-c")
            .await
            .expect("groups")
            .is_empty()
    );
}
