//! Conformance checks of the store's Describe queries (issue 18):
//! `instances_matching`, `key_pairs_matching` and `resource_tags` select
//! exactly what AWS's filter patterns say (OR within a condition, AND
//! across conditions, `*` `?` and `\` escapes, GLOB's own `[` taken
//! literally), agree with the in-memory reference of every query, page by
//! instance id, and never show another account's rows.

use super::instances::reservation;
use super::{create_accounts, key_pair, tag};
use crate::{
    InstanceCondition as C, InstanceField as F, InstanceQuery, InstanceRecord, KeyPairCondition,
    KeyPairField, KeyPairQuery, Store, TagPair,
};

const ALPHA: &str = "555555555551";
const BETA: &str = "555555555552";

/// `i-q{n}` of `account` in `vpc`/`subnet`, of `itype` from `image`, with
/// `key`, in `state`.
#[allow(clippy::too_many_arguments)]
fn instance(
    n: u8,
    account: &str,
    reservation_id: &str,
    vpc: &str,
    subnet: &str,
    itype: &str,
    image: &str,
    key: Option<&str>,
    state: &str,
) -> InstanceRecord {
    let details = serde_json::json!({
        "spec": {"instance_type": itype, "metadata": {"ami_id": image}},
        "key_name": key,
        "subnet_id": subnet,
    });
    InstanceRecord {
        instance_id: format!("i-q{n:02}"),
        reservation_id: reservation_id.into(),
        account_id: account.into(),
        launch_index: i64::from(n),
        node_id: "node-1".into(),
        zone: if n.is_multiple_of(2) {
            "zone-a"
        } else {
            "zone-b"
        }
        .into(),
        network_id: vpc.into(),
        private_ip: format!("10.55.0.{n}"),
        mac: format!("02:00:00:55:00:{n:02x}"),
        state: state.into(),
        desired: "running".into(),
        generation: 1,
        revision: 0,
        details: details.to_string(),
        created_at: 1000 - i64::from(n),
        updated_at: 1000,
        terminated_at: (state == "terminated").then_some(1000),
    }
}

/// Runs the query checks.
pub async fn run(store: &dyn Store) {
    create_accounts(store, &[(ALPHA, "queries-a"), (BETA, "queries-b")]).await;
    instance_queries(store).await;
    key_pair_queries(store).await;
}

async fn instance_queries(store: &dyn Store) {
    let r1 = reservation("r-q1", ALPHA, None, 10);
    let kinds = [
        (
            "vpc-1",
            "subnet-1",
            "t3.micro",
            "ami-1",
            Some("k1"),
            "running",
        ),
        ("vpc-1", "subnet-1", "t3.small", "ami-1", None, "running"),
        (
            "vpc-1",
            "subnet-2",
            "t3.micro",
            "ami-2",
            Some("k2"),
            "stopped",
        ),
        (
            "vpc-2",
            "subnet-3",
            "m5.large",
            "ami-1",
            Some("k1"),
            "running",
        ),
        (
            "vpc-2",
            "subnet-3",
            "t3.micro",
            "ami-3",
            Some("k[1]"),
            "terminated",
        ),
        ("vpc-2", "subnet-4", "t3.micro", "ami-2", None, "pending"),
    ];
    let mut alpha: Vec<InstanceRecord> = Vec::new();
    for round in 0..2u8 {
        for (j, (vpc, subnet, itype, image, key, state)) in kinds.iter().enumerate() {
            let n = round * 10 + u8::try_from(j).expect("small") + 1;
            alpha.push(instance(
                n,
                ALPHA,
                &r1.reservation_id,
                vpc,
                subnet,
                itype,
                image,
                *key,
                state,
            ));
        }
    }
    store
        .create_reservation(&r1, &alpha, &[tag("fleet", "q")])
        .await
        .expect("alpha instances");
    let put = |ids: &[&str], tags: Vec<TagPair>| {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        async move { store.put_tags(ALPHA, &ids, &tags).await.expect("tags") }
    };
    put(
        &["i-q01", "i-q11"],
        vec![tag("Name", "web-1"), tag("env", "prod")],
    )
    .await;
    put(&["i-q02"], vec![tag("Name", "web-2"), tag("env", "dev")]).await;
    put(&["i-q03"], vec![tag("Name", "db[1]"), tag("env", "prod")]).await;
    put(&["i-q04"], vec![tag("role*", "x?y")]).await;
    // Another account's instance that every condition would select.
    let r2 = reservation("r-q2", BETA, None, 10);
    let other = instance(
        99,
        BETA,
        &r2.reservation_id,
        "vpc-1",
        "subnet-1",
        "t3.micro",
        "ami-1",
        Some("k1"),
        "running",
    );
    store
        .create_reservation(&r2, std::slice::from_ref(&other), &[tag("Name", "web-1")])
        .await
        .expect("beta instance");

    let all = store.instances(Some(ALPHA)).await.expect("all");
    let tags = store.tags(ALPHA).await.expect("tags");
    let field = |field: F, patterns: &[&str]| C::Field {
        field,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
    };
    let strings = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let cases: Vec<(Vec<C>, Vec<&str>)> = vec![
        (vec![], vec![]),
        (
            vec![field(F::State, &["running"])],
            vec!["i-q01", "i-q02", "i-q04", "i-q11", "i-q12", "i-q14"],
        ),
        (
            vec![field(F::State, &["stopped", "pend*"])],
            vec!["i-q03", "i-q06", "i-q13", "i-q16"],
        ),
        (
            vec![
                field(F::NetworkId, &["vpc-2"]),
                field(F::InstanceType, &["t3.*"]),
            ],
            vec!["i-q05", "i-q06", "i-q15", "i-q16"],
        ),
        (
            vec![field(F::SubnetId, &["subnet-3"])],
            vec!["i-q04", "i-q05", "i-q14", "i-q15"],
        ),
        (
            vec![field(F::ImageId, &["ami-2"]), field(F::Zone, &["zone-b"])],
            vec!["i-q03", "i-q13"],
        ),
        (
            vec![field(F::KeyName, &["k1"])],
            vec!["i-q01", "i-q04", "i-q11", "i-q14"],
        ),
        // GLOB's `[` is a literal character in an AWS pattern.
        (vec![field(F::KeyName, &["k[1]"])], vec!["i-q05", "i-q15"]),
        (vec![field(F::KeyName, &["k[*"])], vec!["i-q05", "i-q15"]),
        (
            vec![field(F::KeyName, &["*"])],
            vec![
                "i-q01", "i-q03", "i-q04", "i-q05", "i-q11", "i-q13", "i-q14", "i-q15",
            ],
        ),
        // A terminated instance has no private address.
        (
            vec![field(F::LivePrivateIp, &["10.55.0.5", "10.55.0.6"])],
            vec!["i-q06"],
        ),
        (
            vec![field(F::InstanceId, &["i-q1?"])],
            vec!["i-q11", "i-q12", "i-q13", "i-q14", "i-q15", "i-q16"],
        ),
        (
            vec![
                field(F::ReservationId, &["r-q1"]),
                field(F::InstanceId, &["i-q0[1-3]"]),
            ],
            vec![],
        ),
        (
            vec![C::Tag {
                key: "Name".into(),
                values: strings(&["web-*"]),
            }],
            vec!["i-q01", "i-q02", "i-q11"],
        ),
        (
            vec![C::Tag {
                key: "Name".into(),
                values: strings(&["db[1]"]),
            }],
            vec!["i-q03"],
        ),
        (
            vec![
                C::Tag {
                    key: "env".into(),
                    values: strings(&["prod"]),
                },
                field(F::State, &["running"]),
            ],
            vec!["i-q01", "i-q11"],
        ),
        (vec![C::TagKey(strings(&["role\\*"]))], vec!["i-q04"]),
        (vec![C::TagValue(strings(&["x\\?y"]))], vec!["i-q04"]),
        (vec![C::TagValue(strings(&["x?y"]))], vec!["i-q04"]),
        (
            vec![C::TagKey(strings(&["fleet"]))],
            alpha.iter().map(|i| i.instance_id.as_str()).collect(),
        ),
        (vec![field(F::State, &[])], vec![]),
        // Details without a VPC or subnet read as empty ones.
        (
            vec![field(F::VpcId, &[""]), field(F::SubnetId, &["subnet-4"])],
            vec!["i-q06", "i-q16"],
        ),
        (
            vec![C::Tag {
                key: "Name".into(),
                values: vec![],
            }],
            vec![],
        ),
    ];
    for (conditions, expected) in cases {
        let query = InstanceQuery {
            conditions: conditions.clone(),
            ..Default::default()
        };
        let found = store
            .instances_matching(ALPHA, &query)
            .await
            .expect("query");
        let found_ids: Vec<&str> = found.iter().map(|i| i.instance_id.as_str()).collect();
        let reference = query.apply(all.clone(), &tags);
        assert_eq!(found, reference, "{conditions:?}: the in-memory reference");
        if conditions.is_empty() {
            assert_eq!(found.len(), 12, "no condition: every instance");
        } else {
            assert_eq!(found_ids, expected, "{conditions:?}");
        }
    }

    // Ids, exact, with conditions.
    let by_ids = store
        .instances_matching(
            ALPHA,
            &InstanceQuery {
                ids: strings(&["i-q01", "i-q03", "i-q99", "i-q0?"]),
                conditions: vec![field(F::State, &["running"])],
                ..Default::default()
            },
        )
        .await
        .expect("ids");
    assert_eq!(by_ids.len(), 1);
    assert_eq!(
        by_ids[0],
        all.iter()
            .find(|i| i.instance_id == "i-q01")
            .cloned()
            .expect("i-q01")
    );

    // Pages of 5 in id order, with a condition, cover it all once.
    let condition = vec![field(F::InstanceType, &["t3.*"])];
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .instances_matching(
                ALPHA,
                &InstanceQuery {
                    conditions: condition.clone(),
                    after: after.clone(),
                    limit: Some(3),
                    ..Default::default()
                },
            )
            .await
            .expect("page");
        assert!(page.len() <= 3);
        seen.extend(page.iter().map(|i| i.instance_id.clone()));
        match page.last() {
            Some(last) if page.len() == 3 => after = Some(last.instance_id.clone()),
            _ => break,
        }
    }
    let every: Vec<String> = InstanceQuery {
        conditions: condition,
        ..Default::default()
    }
    .apply(all.clone(), &tags)
    .into_iter()
    .map(|i| i.instance_id)
    .collect();
    assert_eq!(seen, every);
    assert_eq!(seen.len(), 10);

    // The tags of exactly the resources asked for, in one call.
    let page_tags: Vec<(String, String)> = store
        .resource_tags(&strings(&["i-q02", "i-q04", "i-q77"]))
        .await
        .expect("resource tags")
        .into_iter()
        .map(|t| (t.resource_id, t.key))
        .collect();
    let expected: Vec<(String, String)> = [
        ("i-q02", "Name"),
        ("i-q02", "env"),
        ("i-q02", "fleet"),
        ("i-q04", "fleet"),
        ("i-q04", "role*"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(page_tags, expected);
    assert!(store.resource_tags(&[]).await.expect("none").is_empty());

    // Another account's instances are never selected, nor are these
    // selected for it.
    let other_found = store
        .instances_matching(BETA, &InstanceQuery::default())
        .await
        .expect("beta");
    assert_eq!(other_found, vec![other.clone()]);
    assert!(
        store
            .instances_matching(
                BETA,
                &InstanceQuery {
                    ids: strings(&["i-q01"]),
                    ..Default::default()
                }
            )
            .await
            .expect("beta by alpha's id")
            .is_empty()
    );

    for instance in alpha.iter().chain([&other]) {
        store
            .delete_instance(&instance.instance_id)
            .await
            .expect("delete");
    }
}

async fn key_pair_queries(store: &dyn Store) {
    for (id, name, key_type, tags) in [
        ("key-k1", "web-a", "rsa", vec![tag("env", "prod")]),
        (
            "key-k2",
            "web-b",
            "ed25519",
            vec![tag("env", "dev"), tag("t[1]", "v")],
        ),
        ("key-k3", "db", "rsa", vec![]),
    ] {
        let mut kp = key_pair(id, ALPHA, name);
        kp.key_type = key_type.into();
        store.create_key_pair(&kp, &tags).await.expect("key pair");
    }
    store
        .create_key_pair(&key_pair("key-k9", BETA, "web-a"), &[tag("env", "prod")])
        .await
        .expect("other account's key pair");
    let strings = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let names = |query: KeyPairQuery| async move {
        store
            .key_pairs_matching(ALPHA, &query)
            .await
            .expect("query")
            .into_iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
    };
    let field = |field: KeyPairField, patterns: &[&str]| KeyPairCondition::Field {
        field,
        patterns: strings(patterns),
    };
    assert_eq!(
        names(KeyPairQuery::default()).await,
        ["db", "web-a", "web-b"]
    );
    assert_eq!(
        names(KeyPairQuery {
            names: strings(&["web-b", "db", "nope"]),
            ..Default::default()
        })
        .await,
        ["db", "web-b"]
    );
    assert_eq!(
        names(KeyPairQuery {
            ids: strings(&["key-k1"]),
            conditions: vec![field(KeyPairField::KeyType, &["rsa"])],
            ..Default::default()
        })
        .await,
        ["web-a"]
    );
    assert_eq!(
        names(KeyPairQuery {
            conditions: vec![
                field(KeyPairField::Name, &["web-*"]),
                field(KeyPairField::KeyType, &["ed*", "dsa"]),
            ],
            ..Default::default()
        })
        .await,
        ["web-b"]
    );
    assert_eq!(
        names(KeyPairQuery {
            conditions: vec![KeyPairCondition::Tag {
                key: "env".into(),
                values: strings(&["prod", "qa"]),
            }],
            ..Default::default()
        })
        .await,
        ["web-a"]
    );
    assert_eq!(
        names(KeyPairQuery {
            conditions: vec![KeyPairCondition::TagKey(strings(&["t[1]"]))],
            ..Default::default()
        })
        .await,
        ["web-b"]
    );
    assert_eq!(
        names(KeyPairQuery {
            conditions: vec![KeyPairCondition::TagValue(strings(&["d*"]))],
            ..Default::default()
        })
        .await,
        ["web-b"]
    );
    assert!(
        names(KeyPairQuery {
            conditions: vec![field(KeyPairField::Fingerprint, &[])],
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        names(KeyPairQuery {
            conditions: vec![field(KeyPairField::KeyPairId, &["key-k?"])],
            ..Default::default()
        })
        .await,
        ["db", "web-a", "web-b"]
    );
    for id in ["key-k1", "key-k2", "key-k3"] {
        store.delete_key_pair(ALPHA, id).await.expect("delete");
    }
    store.delete_key_pair(BETA, "key-k9").await.expect("delete");
}
