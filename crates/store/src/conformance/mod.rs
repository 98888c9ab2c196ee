//! The conformance suite every [`Store`] backend must pass. Backends call
//! [`run`] from their own tests with a fresh, empty store; it takes any
//! `&dyn Store`, so one suite serves every backend. Compiled only with the
//! crate's `conformance` feature, which those tests enable.

mod addresses;
mod enrolment;
mod identity;
mod images;
mod instances;
mod launch_templates;
mod lease;
mod metal;
mod network;
mod objects;
mod queries;
mod routing;
mod snapshots;
mod volumes;
mod vpcs;

use crate::{AccessKey, Account, KeyPair, Store, StoreError, TagPair, TagSelector, User};

fn account(id: &str, name: &str) -> (Account, User) {
    (
        Account {
            account_id: id.into(),
            name: name.into(),
            is_admin: false,
            created_at: 1,
            iam_generation: 0,
        },
        User {
            account_id: id.into(),
            user_name: "admin".into(),
            user_id: format!("AIDA{id}"),
            created_at: 1,
        },
    )
}

/// Creates each `(id, name)` account with its first user.
async fn create_accounts(store: &dyn Store, accounts: &[(&str, &str)]) {
    for (id, name) in accounts {
        let (account, user) = account(id, name);
        store
            .create_account(&account, &user)
            .await
            .expect("create account");
    }
}

/// Whether `resource_id` is a stored resource.
async fn has_resource(store: &dyn Store, resource_id: &str) -> bool {
    !store
        .resources(&[resource_id.to_owned()])
        .await
        .expect("resources")
        .is_empty()
}

fn key_pair(id: &str, account_id: &str, name: &str) -> KeyPair {
    KeyPair {
        key_pair_id: id.into(),
        account_id: account_id.into(),
        name: name.into(),
        key_type: "rsa".into(),
        fingerprint: "aa:bb".into(),
        public_key: "ssh-rsa AAAA".into(),
        created_at: 2,
    }
}

fn tag(key: &str, value: &str) -> TagPair {
    TagPair {
        key: key.into(),
        value: value.into(),
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Runs every check against `store`, panicking with a message on the first
/// difference from the contract.
pub async fn run(store: &dyn Store) {
    accounts_and_keys(store).await;
    key_pairs_and_tags(store).await;
    tag_queries(store).await;
    settings(store).await;
    nodes(store).await;
    objects::run(store).await;
    images::run(store).await;
    instances::run(store).await;
    queries::run(store).await;
    launch_templates::run(store).await;
    addresses::run(store).await;
    network::run(store).await;
    vpcs::run(store).await;
    routing::run(store).await;
    volumes::run(store).await;
    snapshots::run(store).await;
    metal::run(store).await;
    enrolment::run(store).await;
    identity::run(store).await;
    identity::signing_certificates(store).await;
    lease::run(store).await;
}

async fn nodes(store: &dyn Store) {
    let mut node = crate::Node {
        node_id: "node-1".into(),
        zone: "z".into(),
        address: "127.0.0.1:1".into(),
        cores_max: 4,
        cores_free: 4,
        memory_mib_max: 4096,
        memory_mib_free: 4096,
        disk_gib_max: 100,
        disk_gib_free: 100,
        updated_at: 1,
        version: "0.1.0".into(),
        accel: "kvm".into(),
        underlay_ip: None,
        disabled: false,
        role: "compute".into(),
    };
    store.upsert_node(&node).await.expect("insert node");
    assert_eq!(store.nodes().await.expect("nodes"), vec![node.clone()]);
    node.cores_free = 2;
    node.accel = "tcg (no /dev/kvm)".into();
    node.underlay_ip = Some("192.0.2.10".into());
    node.role = "storage".into();
    store.upsert_node(&node).await.expect("update node");
    assert_eq!(store.nodes().await.expect("nodes"), vec![node.clone()]);

    // Maintenance: disabling survives the node's next heartbeat, which
    // carries `disabled: false` like every report.
    assert!(
        store
            .set_node_disabled("node-1", true)
            .await
            .expect("disable")
    );
    assert!(
        !store
            .set_node_disabled("node-9", true)
            .await
            .expect("unknown")
    );
    node.updated_at = 2;
    store.upsert_node(&node).await.expect("heartbeat");
    let stored = store.nodes().await.expect("nodes");
    assert!(stored[0].disabled, "{stored:?}");
    assert_eq!(stored[0].updated_at, 2);
    assert!(
        store
            .set_node_disabled("node-1", false)
            .await
            .expect("enable")
    );
    assert_eq!(store.nodes().await.expect("nodes"), vec![node]);
}

async fn accounts_and_keys(store: &dyn Store) {
    let (a, u) = account("111111111111", "alpha");
    store.create_account(&a, &u).await.expect("create account");
    let (dup, dup_user) = account("222222222222", "alpha");
    assert!(matches!(
        store.create_account(&dup, &dup_user).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .account_by_name("alpha")
            .await
            .expect("by name")
            .is_some()
    );
    assert!(
        store
            .account_by_id("222222222222")
            .await
            .expect("by id")
            .is_none(),
        "failed create left a row"
    );
    let key = AccessKey {
        access_key_id: "AKIAALPHA".into(),
        secret_access_key: "secret".into(),
        account_id: a.account_id.clone(),
        user_name: "admin".into(),
        active: true,
        created_at: 3,
    };
    store.create_access_key(&key).await.expect("create key");
    let (found, owner) = store
        .access_key("AKIAALPHA")
        .await
        .expect("lookup")
        .expect("present");
    assert_eq!(found, key);
    assert_eq!(owner, a);
    let orphan = AccessKey {
        account_id: "999999999999".into(),
        access_key_id: "AKIAORPHAN".into(),
        ..key
    };
    assert!(
        store.create_access_key(&orphan).await.is_err(),
        "key without user accepted"
    );
    assert!(
        store
            .access_key("AKIANOPE")
            .await
            .expect("lookup")
            .is_none()
    );
    let (b, bu) = account("333333333333", "beta");
    store.create_account(&b, &bu).await.expect("create beta");
    let names: Vec<_> = store
        .accounts()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
}

/// `tags_matching` selects exactly what AWS's filter patterns say, in
/// order, a page at a time.
async fn tag_queries(store: &dyn Store) {
    use crate::{TagCondition as C, TagQuery};
    let account = "444444444441";
    create_accounts(store, &[(account, "tag-queries")]).await;
    for (id, tags) in [
        (
            "key-q1",
            vec![tag("env", "prod"), tag("k*1", "a[b]"), tag("team", "x")],
        ),
        ("key-q2", vec![tag("env", "dev"), tag("k71", "v")]),
        ("key-q3", vec![tag("k7", "v7"), tag("other", "prod")]),
    ] {
        store
            .create_key_pair(&key_pair(id, account, id), &tags)
            .await
            .expect("key pair");
    }
    let ids = |q: TagQuery| async move {
        store
            .tags_matching(account, &q)
            .await
            .expect("query")
            .into_iter()
            .map(|t| format!("{}/{}", t.resource_id, t.key))
            .collect::<Vec<_>>()
    };
    let q = |conditions: Vec<C>| TagQuery {
        conditions,
        ..Default::default()
    };
    assert_eq!(ids(q(vec![])).await.len(), 7);
    assert_eq!(
        ids(q(vec![C::Key(vec!["k7*".into()])])).await,
        ["key-q2/k71", "key-q3/k7"]
    );
    assert_eq!(
        ids(q(vec![C::Key(vec!["k\\*1".into()])])).await,
        ["key-q1/k*1"]
    );
    assert_eq!(
        ids(q(vec![C::Key(vec!["k?1".into()])])).await,
        ["key-q1/k*1", "key-q2/k71"]
    );
    assert_eq!(
        ids(q(vec![C::Value(vec!["a[b]".into()])])).await,
        ["key-q1/k*1"]
    );
    assert_eq!(
        ids(q(vec![
            C::Value(vec!["prod".into()]),
            C::Key(vec!["env".into(), "other".into()])
        ]))
        .await,
        ["key-q1/env", "key-q3/other"]
    );
    // Every tag of the resources tagged env=prod or env=dev*.
    assert_eq!(
        ids(q(vec![C::ResourceTag {
            key: "env".into(),
            values: vec!["dev*".into()]
        }]))
        .await,
        ["key-q2/env", "key-q2/k71"]
    );
    assert_eq!(
        ids(q(vec![
            C::ResourceId(vec!["key-q3".into()]),
            C::ResourceType(vec!["key-pair".into()])
        ]))
        .await,
        ["key-q3/k7", "key-q3/other"]
    );
    assert!(
        ids(q(vec![C::ResourceType(vec!["instance".into()])]))
            .await
            .is_empty()
    );
    assert!(ids(q(vec![C::Key(vec![])])).await.is_empty());
    // Pages.
    let first = ids(TagQuery {
        limit: Some(3),
        ..Default::default()
    })
    .await;
    assert_eq!(first, ["key-q1/env", "key-q1/k*1", "key-q1/team"]);
    let next = ids(TagQuery {
        after: Some(("key-q1".into(), "team".into())),
        limit: Some(3),
        ..Default::default()
    })
    .await;
    assert_eq!(next, ["key-q2/env", "key-q2/k71", "key-q3/k7"]);
    // Other accounts' tags are never seen.
    assert!(
        store
            .tags_matching(
                "111111111111",
                &q(vec![C::ResourceId(vec!["key-q*".into()])])
            )
            .await
            .expect("other")
            .is_empty()
    );
    for id in ["key-q1", "key-q2", "key-q3"] {
        store.delete_key_pair(account, id).await.expect("delete");
    }
}

async fn key_pairs_and_tags(store: &dyn Store) {
    let alpha = "111111111111";
    let beta = "333333333333";
    store
        .create_key_pair(&key_pair("key-1", alpha, "one"), &[tag("env", "prod")])
        .await
        .expect("create key pair");
    assert!(matches!(
        store
            .create_key_pair(&key_pair("key-2", alpha, "one"), &[])
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Same name in another account is fine.
    store
        .create_key_pair(&key_pair("key-3", beta, "one"), &[])
        .await
        .expect("other account");
    // Tags on a resource the account does not own fail as a whole.
    let err = store
        .put_tags(alpha, &["key-1".into(), "key-3".into()], &[tag("a", "b")])
        .await
        .expect_err("cross-account tag");
    assert!(matches!(err, StoreError::NotFound(id) if id == "key-3"));
    let tags = store.tags(alpha).await.expect("tags");
    assert_eq!(tags.len(), 1, "failed put_tags left tags behind: {tags:?}");
    assert_eq!(tags[0].resource_type, "key-pair");
    // Overwrite a value, add another.
    store
        .put_tags(
            alpha,
            &["key-1".into()],
            &[tag("env", "dev"), tag("team", "")],
        )
        .await
        .expect("put tags");
    let tags = store.tags(alpha).await.expect("tags");
    assert_eq!(
        tags.iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect::<Vec<_>>(),
        [("env", "dev"), ("team", "")]
    );
    // One resource's tags, whoever asks; unknown ids have none.
    let of_one = store
        .resource_tags(&["key-1".into(), "key-nope".into()])
        .await
        .expect("resource tags");
    assert_eq!(
        of_one
            .iter()
            .map(|t| (t.resource_id.as_str(), t.key.as_str(), t.value.as_str()))
            .collect::<Vec<_>>(),
        [("key-1", "env", "dev"), ("key-1", "team", "")]
    );
    // Value-qualified delete only removes a match.
    let only_prod = TagSelector {
        key: "env".into(),
        value: Some("prod".into()),
    };
    store
        .delete_tags(alpha, &["key-1".into()], &[only_prod])
        .await
        .expect("delete");
    assert_eq!(store.tags(alpha).await.expect("tags").len(), 2);
    let env = TagSelector {
        key: "env".into(),
        value: None,
    };
    store
        .delete_tags(alpha, &["key-1".into()], &[env])
        .await
        .expect("delete");
    assert_eq!(store.tags(alpha).await.expect("tags").len(), 1);
    // Limit of 50 tags per resource, all or nothing.
    let many: Vec<_> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
    assert!(matches!(
        store.put_tags(alpha, &["key-1".into()], &many).await,
        Err(StoreError::TagLimitExceeded(_))
    ));
    assert_eq!(store.tags(alpha).await.expect("tags").len(), 1);
    // Deleting the key pair removes its tags; deleting again reports absence.
    assert!(
        store
            .delete_key_pair(alpha, "key-1")
            .await
            .expect("delete kp")
    );
    assert!(
        !store
            .delete_key_pair(alpha, "key-1")
            .await
            .expect("delete kp again")
    );
    assert!(store.tags(alpha).await.expect("tags").is_empty());
    assert!(
        !store
            .delete_key_pair(alpha, "key-3")
            .await
            .expect("other account's"),
        "deleted another account's key"
    );
    assert_eq!(store.key_pairs(beta).await.expect("beta keys").len(), 1);
}

async fn settings(store: &dyn Store) {
    assert_eq!(store.setting("x").await.expect("get"), None);
    store.set_setting("x", "1").await.expect("set");
    store.set_setting("x", "2").await.expect("set");
    assert_eq!(store.setting("x").await.expect("get").as_deref(), Some("2"));
}
