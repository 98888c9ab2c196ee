//! Conformance checks of [`crate::InstanceIndex`]: reservations that store
//! all their instances and tags or nothing, client tokens unique per
//! account, compare-and-set updates, addresses and MACs freed by
//! termination, and deletion.

use super::{has_resource, sorted, tag};
use crate::{InstanceRecord, Reservation, Store, StoreError, TagPair};

pub(super) fn reservation(
    id: &str,
    account_id: &str,
    token: Option<&str>,
    created_at: i64,
) -> Reservation {
    Reservation {
        reservation_id: id.into(),
        account_id: account_id.into(),
        client_token: token.map(Into::into),
        request_hash: format!("hash-{id}"),
        created_at,
    }
}

/// A pending instance of `reservation` on `net-a` with `ip` and a MAC
/// ending in `mac`.
pub(super) fn instance(
    id: &str,
    reservation: &Reservation,
    index: i64,
    ip: &str,
    mac: u8,
) -> InstanceRecord {
    InstanceRecord {
        instance_id: id.into(),
        reservation_id: reservation.reservation_id.clone(),
        account_id: reservation.account_id.clone(),
        launch_index: index,
        node_id: "node-1".into(),
        zone: "z".into(),
        network_id: "net-a".into(),
        private_ip: ip.into(),
        mac: format!("02:00:00:00:00:{mac:02x}"),
        state: "pending".into(),
        desired: "running".into(),
        generation: 1,
        revision: 0,
        details: format!("{{\"id\":\"{id}\"}}"),
        created_at: reservation.created_at,
        updated_at: reservation.created_at,
        terminated_at: None,
    }
}

fn instance_ids(instances: &[InstanceRecord]) -> Vec<&str> {
    instances.iter().map(|i| i.instance_id.as_str()).collect()
}

/// The account's instance tags as (resource, key, value).
async fn instance_tags(store: &dyn Store, account_id: &str) -> Vec<(String, String, String)> {
    store
        .tags(account_id)
        .await
        .expect("tags")
        .into_iter()
        .filter(|t| t.resource_type == "instance")
        .map(|t| (t.resource_id, t.key, t.value))
        .collect()
}

async fn in_use(store: &dyn Store, network_id: &str) -> Vec<String> {
    sorted(
        store
            .private_ips_in_use(network_id)
            .await
            .expect("addresses in use"),
    )
}

/// Asserts that `store` refuses `reservation` of `instances` with `tags`
/// and keeps nothing of it; returns the refusal.
async fn refused(
    store: &dyn Store,
    reservation: &Reservation,
    instances: &[InstanceRecord],
    tags: &[TagPair],
) -> StoreError {
    let refusal = store
        .create_reservation(reservation, instances, tags)
        .await
        .expect_err("reservation accepted");
    let token = reservation
        .client_token
        .as_deref()
        .expect("a reservation with a client token");
    assert_eq!(
        store
            .reservation_by_client_token(&reservation.account_id, token)
            .await
            .expect("by token"),
        None,
        "refused reservation was stored"
    );
    for instance in instances {
        let id = &instance.instance_id;
        assert_eq!(
            store.instance(id).await.expect("instance"),
            None,
            "refused reservation stored instance {id}"
        );
    }
    let ids: Vec<String> = instances.iter().map(|i| i.instance_id.clone()).collect();
    assert!(
        store.resources(&ids).await.expect("resources").is_empty(),
        "refused reservation left resource rows"
    );
    refusal
}

/// Runs the instance checks.
pub async fn run(store: &dyn Store) {
    let alpha = "111111111111";
    let beta = "333333333333";
    let gamma = "444444444444";

    reservations_are_atomic(store, alpha).await;
    client_tokens_and_listing(store, alpha, beta, gamma).await;
    compare_and_set(store).await;
    termination_frees_addresses(store, alpha).await;
    deleting_instances(store, alpha, beta).await;
}

async fn reservations_are_atomic(store: &dyn Store, alpha: &str) {
    let r1 = reservation("r-1", alpha, Some("tok-1"), 100);
    let i1 = instance("i-1", &r1, 0, "172.31.0.4", 1);
    let i2 = instance("i-2", &r1, 1, "172.31.0.5", 2);
    store
        .create_reservation(
            &r1,
            &[i1.clone(), i2.clone()],
            &[tag("Name", "web"), tag("env", "prod")],
        )
        .await
        .expect("create reservation");
    assert_eq!(store.instance("i-1").await.expect("get"), Some(i1.clone()));
    assert_eq!(store.instance("i-2").await.expect("get"), Some(i2.clone()));
    assert_eq!(store.instance("i-404").await.expect("get"), None);
    assert_eq!(
        store
            .reservation_by_client_token(alpha, "tok-1")
            .await
            .expect("by token"),
        Some(r1.clone())
    );
    // Instances are taggable resources of type `instance`; every instance
    // of the reservation carries every tag.
    let resources = store
        .resources(&["i-1".into(), "i-2".into()])
        .await
        .expect("resources");
    assert_eq!(resources.len(), 2);
    assert!(
        resources
            .iter()
            .all(|r| r.resource_type == "instance" && r.account_id == alpha),
        "{resources:?}"
    );
    let expected_tags = |ids: &[&str]| {
        ids.iter()
            .flat_map(|id| {
                [("Name", "web"), ("env", "prod")]
                    .map(|(k, v)| ((*id).to_owned(), k.to_owned(), v.to_owned()))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        instance_tags(store, alpha).await,
        expected_tags(&["i-1", "i-2"])
    );
    assert_eq!(in_use(store, "net-a").await, ["172.31.0.4", "172.31.0.5"]);

    // Each attempt below reuses r-2 for i-3 (fine) and an i-4 with `ip` and
    // a MAC ending in `mac`.
    let r2 = reservation("r-2", alpha, Some("tok-2"), 200);
    let attempt = |ip: &str, mac: u8| {
        [
            instance("i-3", &r2, 0, "172.31.0.6", 3),
            instance("i-4", &r2, 1, ip, mac),
        ]
    };
    // A live instance's address on the same network: the whole reservation
    // is refused, including the instance that did not collide and the tags.
    assert!(matches!(
        refused(store, &r2, &attempt("172.31.0.4", 4), &[tag("x", "y")]).await,
        StoreError::Conflict(_)
    ));
    // A live instance's MAC: the same.
    assert!(matches!(
        refused(store, &r2, &attempt("172.31.0.7", 2), &[tag("x", "y")]).await,
        StoreError::Conflict(_)
    ));
    // Tags that cannot be applied (over AWS's 50 per resource) refuse the
    // instances and the reservation too.
    let too_many: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
    assert!(matches!(
        refused(store, &r2, &attempt("172.31.0.7", 4), &too_many).await,
        StoreError::TagLimitExceeded(_)
    ));
    // Two instances of one reservation sharing an address: the same.
    assert!(matches!(
        refused(store, &r2, &attempt("172.31.0.6", 4), &[]).await,
        StoreError::Conflict(_)
    ));
    assert_eq!(
        instance_tags(store, alpha).await,
        expected_tags(&["i-1", "i-2"]),
        "refused reservations changed tags"
    );
    assert_eq!(in_use(store, "net-a").await, ["172.31.0.4", "172.31.0.5"]);
    assert_eq!(
        instance_ids(&store.instances(None).await.expect("all")),
        ["i-1", "i-2"]
    );

    // Nothing of the refused attempts remains: the same ids, token and
    // addresses work. The slice is out of launch order on purpose.
    let [i3, i4] = attempt("172.31.0.7", 4);
    store
        .create_reservation(&r2, &[i4, i3], &[])
        .await
        .expect("reservation after refused ones");
}

async fn client_tokens_and_listing(store: &dyn Store, alpha: &str, beta: &str, gamma: &str) {
    // A token is unique per account.
    let again = reservation("r-3", alpha, Some("tok-1"), 300);
    assert!(matches!(
        store
            .create_reservation(&again, &[instance("i-5", &again, 0, "172.31.0.8", 5)], &[])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.instance("i-5").await.expect("get"), None);
    assert!(!has_resource(store, "i-5").await);
    assert_eq!(
        store
            .reservation_by_client_token(alpha, "tok-1")
            .await
            .expect("by token")
            .map(|r| r.reservation_id),
        Some("r-1".to_owned()),
        "refused token reuse replaced the reservation"
    );
    // Another account may use the same token; launched earlier than
    // alpha's, and on another network, where alpha's addresses are free.
    let other = reservation("r-4", beta, Some("tok-1"), 50);
    let mut i6 = instance("i-6", &other, 0, "172.31.0.4", 6);
    i6.network_id = "net-b".into();
    store
        .create_reservation(&other, &[i6.clone()], &[tag("owner", "beta")])
        .await
        .expect("same token, other account");
    assert_eq!(
        store
            .reservation_by_client_token(beta, "tok-1")
            .await
            .expect("by token"),
        Some(other)
    );
    assert_eq!(
        store
            .reservation_by_client_token(alpha, "tok-1")
            .await
            .expect("by token")
            .map(|r| r.reservation_id),
        Some("r-1".to_owned())
    );
    assert_eq!(
        store
            .reservation_by_client_token(gamma, "tok-1")
            .await
            .expect("by token"),
        None
    );
    assert_eq!(
        store
            .reservation_by_client_token(alpha, "tok-none")
            .await
            .expect("by token"),
        None
    );
    assert_eq!(in_use(store, "net-b").await, ["172.31.0.4"]);

    // Launch time, then launch index; each account sees only its own.
    assert_eq!(
        instance_ids(&store.instances(None).await.expect("all")),
        ["i-6", "i-1", "i-2", "i-3", "i-4"]
    );
    assert_eq!(
        instance_ids(&store.instances(Some(alpha)).await.expect("alpha")),
        ["i-1", "i-2", "i-3", "i-4"]
    );
    assert_eq!(
        store.instances(Some(beta)).await.expect("beta"),
        [i6.clone()]
    );
    assert!(
        store
            .instances(Some(gamma))
            .await
            .expect("gamma")
            .is_empty()
    );
    assert_eq!(
        instance_tags(store, beta).await,
        [("i-6".to_owned(), "owner".to_owned(), "beta".to_owned())]
    );
    assert!(
        instance_tags(store, alpha)
            .await
            .iter()
            .all(|(id, _, _)| id != "i-6"),
        "beta's instance tags listed for alpha"
    );
}

async fn compare_and_set(store: &dyn Store) {
    let stored = store.instance("i-3").await.expect("get").expect("i-3");
    assert_eq!(stored.revision, 0);
    let running = InstanceRecord {
        state: "running".into(),
        generation: 2,
        details: "{\"changed\":true}".into(),
        updated_at: 250,
        ..stored.clone()
    };
    assert!(store.update_instance(&running).await.expect("update"));
    let after = store.instance("i-3").await.expect("get").expect("i-3");
    assert_eq!(
        after,
        InstanceRecord {
            revision: 1,
            ..running.clone()
        },
        "update did not store the record with revision + 1"
    );
    // A writer still holding revision 0 loses, and changes nothing.
    let stale = InstanceRecord {
        state: "stopped".into(),
        desired: "stopped".into(),
        ..stored
    };
    assert!(!store.update_instance(&stale).await.expect("stale update"));
    assert_eq!(
        store.instance("i-3").await.expect("get"),
        Some(after.clone())
    );
    // The current revision wins once, and bumps by exactly one.
    let stale = InstanceRecord {
        state: "stopped".into(),
        ..after.clone()
    };
    assert!(store.update_instance(&stale).await.expect("update"));
    assert!(
        !store
            .update_instance(&stale)
            .await
            .expect("replayed update")
    );
    let after = store.instance("i-3").await.expect("get").expect("i-3");
    assert_eq!((after.revision, after.state.as_str()), (2, "stopped"));
    // A missing instance is not updated.
    let gone = InstanceRecord {
        instance_id: "i-404".into(),
        ..after
    };
    assert!(!store.update_instance(&gone).await.expect("missing update"));
    assert_eq!(store.instance("i-404").await.expect("get"), None);
}

async fn termination_frees_addresses(store: &dyn Store, alpha: &str) {
    let i1 = store.instance("i-1").await.expect("get").expect("i-1");
    let terminated = InstanceRecord {
        state: "terminated".into(),
        desired: "terminated".into(),
        terminated_at: Some(400),
        ..i1.clone()
    };
    assert!(store.update_instance(&terminated).await.expect("terminate"));
    assert_eq!(
        in_use(store, "net-a").await,
        ["172.31.0.5", "172.31.0.6", "172.31.0.7"],
        "a terminated instance still holds its address"
    );
    // The address and the MAC go to a new instance; the terminated one is
    // still listed.
    let r5 = reservation("r-5", alpha, None, 500);
    let reuse = instance("i-7", &r5, 0, "172.31.0.4", 1);
    store
        .create_reservation(&r5, &[reuse], &[])
        .await
        .expect("reuse a terminated instance's address and MAC");
    assert_eq!(
        in_use(store, "net-a").await,
        ["172.31.0.4", "172.31.0.5", "172.31.0.6", "172.31.0.7"]
    );
    assert!(
        store
            .instance("i-1")
            .await
            .expect("get")
            .is_some_and(|i| i.terminated_at == Some(400))
    );
    // Bringing the terminated instance back to life on the taken address
    // is refused and changes nothing.
    let revived = InstanceRecord {
        terminated_at: None,
        revision: 1,
        ..terminated
    };
    assert!(matches!(
        store.update_instance(&revived).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .instance("i-1")
            .await
            .expect("get")
            .expect("i-1")
            .revision,
        1
    );
}

async fn deleting_instances(store: &dyn Store, alpha: &str, beta: &str) {
    // Deleting one of a reservation's two instances keeps the reservation.
    store.delete_instance("i-1").await.expect("delete i-1");
    assert_eq!(store.instance("i-1").await.expect("get"), None);
    assert!(
        !has_resource(store, "i-1").await,
        "deleted instance left its resource row"
    );
    let tags = instance_tags(store, alpha).await;
    assert!(
        tags.iter().all(|(id, _, _)| id != "i-1"),
        "deleted instance left its tags: {tags:?}"
    );
    assert_eq!(
        tags.iter().filter(|(id, _, _)| id == "i-2").count(),
        2,
        "deleting i-1 removed i-2's tags"
    );
    assert!(
        store
            .reservation_by_client_token(alpha, "tok-1")
            .await
            .expect("by token")
            .is_some(),
        "reservation removed while it still had an instance"
    );
    // Deleting the last one removes the reservation, freeing its token.
    store.delete_instance("i-2").await.expect("delete i-2");
    assert_eq!(
        store
            .reservation_by_client_token(alpha, "tok-1")
            .await
            .expect("by token"),
        None,
        "empty reservation kept"
    );
    assert!(instance_tags(store, alpha).await.is_empty());
    // Deleting what is gone is not an error.
    store.delete_instance("i-2").await.expect("delete again");
    store
        .delete_instance("i-404")
        .await
        .expect("delete missing");
    assert_eq!(
        instance_ids(&store.instances(Some(alpha)).await.expect("alpha")),
        ["i-3", "i-4", "i-7"]
    );
    // Beta's instance is untouched by all of alpha's changes.
    assert_eq!(
        instance_ids(&store.instances(Some(beta)).await.expect("beta")),
        ["i-6"]
    );
    assert_eq!(instance_tags(store, beta).await.len(), 1);
    let r6 = reservation("r-6", alpha, Some("tok-1"), 600);
    store
        .create_reservation(&r6, &[instance("i-8", &r6, 0, "172.31.0.8", 8)], &[])
        .await
        .expect("token free again");
    for id in ["i-3", "i-4", "i-7", "i-8", "i-6"] {
        store.delete_instance(id).await.expect("delete");
    }
    assert!(store.instances(None).await.expect("all").is_empty());
    assert!(in_use(store, "net-a").await.is_empty());
    assert!(in_use(store, "net-b").await.is_empty());
    assert_eq!(
        store
            .reservation_by_client_token(beta, "tok-1")
            .await
            .expect("by token"),
        None
    );
}
