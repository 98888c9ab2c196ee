//! Conformance checks of [`crate::AddressIndex`]: unique addresses under
//! racing allocations, whole-or-nothing changes with compare-and-set,
//! elastic IP limits, tags, and orphan detection.

use futures_util::future::join_all;

use super::has_resource;
use crate::{
    AddressChange, AddressOutcome, AddressRecord, InstanceRecord, Reservation, Store, StoreError,
    TagPair,
};

const ONE: &str = "777777777701";
const TWO: &str = "777777777702";

fn address(id: &str, account: &str, ip: &str) -> AddressRecord {
    AddressRecord {
        allocation_id: id.into(),
        account_id: account.into(),
        public_ip: ip.into(),
        zone: "z".into(),
        domain: "vpc".into(),
        association_id: None,
        instance_id: None,
        private_ip: None,
        auto_assigned: false,
        replaced_auto_ip: None,
        ptr_record: None,
        revision: 0,
        created_at: 10,
    }
}

fn insert(addresses: Vec<AddressRecord>) -> AddressChange {
    AddressChange {
        insert: addresses,
        ..AddressChange::default()
    }
}

fn instance(id: &str, reservation: &str, account: &str, ip: &str, mac: u8) -> InstanceRecord {
    InstanceRecord {
        instance_id: id.into(),
        reservation_id: reservation.into(),
        account_id: account.into(),
        launch_index: 0,
        node_id: "node-1".into(),
        zone: "z".into(),
        network_id: "net-addresses".into(),
        private_ip: ip.into(),
        mac: format!("02:00:00:00:aa:{mac:02x}"),
        state: "pending".into(),
        desired: "running".into(),
        generation: 1,
        revision: 0,
        details: "{}".into(),
        created_at: 1,
        updated_at: 1,
        terminated_at: None,
    }
}

async fn get(store: &dyn Store, id: &str) -> Option<AddressRecord> {
    store.address(id).await.expect("address")
}

async fn apply(store: &dyn Store, change: &AddressChange) -> AddressOutcome {
    store.apply_address_change(change).await.expect("apply")
}

/// Runs the address checks.
pub async fn run(store: &dyn Store) {
    super::create_accounts(store, &[(ONE, "addresses-one"), (TWO, "addresses-two")]).await;
    allocation(store).await;
    racing_allocations(store).await;
    association(store).await;
    release_and_orphans(store).await;
}

async fn allocation(store: &dyn Store) {
    let tags = vec![TagPair {
        key: "Name".into(),
        value: "web".into(),
    }];
    let mut change = insert(vec![address("eipalloc-1", ONE, "198.18.0.10")]);
    change.tags = tags.clone();
    change.elastic_ip_limit = Some((ONE.into(), 2));
    assert_eq!(apply(store, &change).await, AddressOutcome::Applied);
    let stored = get(store, "eipalloc-1").await.expect("allocated");
    assert_eq!(stored, address("eipalloc-1", ONE, "198.18.0.10"));

    // The domain name is kept by a compare-and-set update and cleared by
    // another; a stale record changes nothing.
    let mut named = stored.clone();
    named.ptr_record = Some("mail.example.com".into());
    let update = |record: &AddressRecord| AddressChange {
        update: vec![record.clone()],
        ..AddressChange::default()
    };
    assert_eq!(apply(store, &update(&named)).await, AddressOutcome::Applied);
    let renamed = get(store, "eipalloc-1").await.expect("kept");
    assert_eq!(renamed.ptr_record.as_deref(), Some("mail.example.com"));
    assert_eq!(renamed.revision, stored.revision + 1);
    let mut stale = named.clone();
    stale.ptr_record = Some("stale.example.com".into());
    assert_eq!(apply(store, &update(&stale)).await, AddressOutcome::Stale);
    let mut reset = renamed.clone();
    reset.ptr_record = None;
    assert_eq!(apply(store, &update(&reset)).await, AddressOutcome::Applied);
    let stored = get(store, "eipalloc-1").await.expect("kept");
    assert_eq!(stored.ptr_record, None);
    let resources = store
        .resources(&["eipalloc-1".to_owned()])
        .await
        .expect("resources");
    assert_eq!(resources.len(), 1, "an elastic IP is a resource");
    assert_eq!(resources[0].resource_type, "elastic-ip");
    assert_eq!(resources[0].account_id, ONE);
    let tagged: Vec<_> = store
        .tags(ONE)
        .await
        .expect("tags")
        .into_iter()
        .map(|t| (t.resource_id, t.key, t.value))
        .collect();
    assert_eq!(
        tagged,
        vec![("eipalloc-1".into(), "Name".into(), "web".into())]
    );

    // A held address is refused, and the other records of the change are
    // not stored either.
    let taken = insert(vec![
        address("eipalloc-2", TWO, "198.18.0.11"),
        address("eipalloc-3", TWO, "198.18.0.10"),
    ]);
    assert_eq!(
        apply(store, &taken).await,
        AddressOutcome::PublicIpTaken("198.18.0.10".into())
    );
    assert_eq!(get(store, "eipalloc-2").await, None, "partial change kept");
    assert!(
        !has_resource(store, "eipalloc-2").await,
        "refused allocation left a resource"
    );

    // The limit counts elastic IPs only; auto-assigned ones are free of it.
    let mut auto = address("eipalloc-auto-1", ONE, "198.18.0.12");
    auto.auto_assigned = true;
    auto.instance_id = Some("i-none".into());
    auto.association_id = Some("eipassoc-auto-1".into());
    let mut change = insert(vec![auto, address("eipalloc-4", ONE, "198.18.0.13")]);
    change.elastic_ip_limit = Some((ONE.into(), 2));
    assert_eq!(apply(store, &change).await, AddressOutcome::Applied);
    let mut over = insert(vec![address("eipalloc-5", ONE, "198.18.0.14")]);
    over.elastic_ip_limit = Some((ONE.into(), 2));
    assert_eq!(apply(store, &over).await, AddressOutcome::LimitExceeded);
    assert_eq!(
        get(store, "eipalloc-5").await,
        None,
        "over-limit address kept"
    );
    assert!(
        !has_resource(store, "eipalloc-auto-1").await,
        "an auto-assigned address is not a resource"
    );

    let ips: Vec<String> = store
        .addresses(Some(ONE))
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.public_ip)
        .collect();
    assert_eq!(ips, vec!["198.18.0.10", "198.18.0.12", "198.18.0.13"]);
    assert!(store.addresses(Some(TWO)).await.expect("list").is_empty());
    assert_eq!(
        store
            .address_by_public_ip("198.18.0.13")
            .await
            .expect("by ip")
            .map(|a| a.allocation_id),
        Some("eipalloc-4".into())
    );
    let mut in_use = store.public_ips_in_use("z").await.expect("in use");
    in_use.sort();
    assert_eq!(in_use, vec!["198.18.0.10", "198.18.0.12", "198.18.0.13"]);
    assert!(
        store
            .public_ips_in_use("other")
            .await
            .expect("in use")
            .is_empty()
    );

    // Clean up for the next checks.
    let mut clean = AddressChange::default();
    for id in ["eipalloc-1", "eipalloc-auto-1", "eipalloc-4"] {
        clean.delete.push(get(store, id).await.expect("exists"));
    }
    assert_eq!(apply(store, &clean).await, AddressOutcome::Applied);
    assert!(store.addresses(Some(ONE)).await.expect("list").is_empty());
    assert!(
        store.tags(ONE).await.expect("tags").is_empty(),
        "released address kept its tags"
    );
}

async fn racing_allocations(store: &dyn Store) {
    let attempt = |n: usize| {
        let change = insert(vec![address(
            &format!("eipalloc-race-{n}"),
            if n.is_multiple_of(2) { ONE } else { TWO },
            "198.18.0.50",
        )]);
        async move { store.apply_address_change(&change).await }
    };
    let results = join_all((0..6).map(attempt)).await;
    let applied = results
        .iter()
        .filter(|r| matches!(r, Ok(AddressOutcome::Applied)))
        .count();
    assert_eq!(applied, 1, "racing allocations of one address: {results:?}");
    assert!(
        results.iter().all(|r| matches!(
            r,
            Ok(AddressOutcome::Applied | AddressOutcome::PublicIpTaken(_))
        )),
        "losers must see the address taken: {results:?}"
    );
    let holder = store
        .address_by_public_ip("198.18.0.50")
        .await
        .expect("by ip")
        .expect("held");
    let clean = AddressChange {
        delete: vec![holder],
        ..AddressChange::default()
    };
    assert_eq!(apply(store, &clean).await, AddressOutcome::Applied);
}

async fn association(store: &dyn Store) {
    let reservation = Reservation {
        reservation_id: "r-addresses".into(),
        account_id: ONE.into(),
        client_token: None,
        request_hash: "h".into(),
        created_at: 1,
    };
    let i1 = instance("i-addr-1", "r-addresses", ONE, "172.31.0.4", 1);
    let i2 = instance("i-addr-2", "r-addresses", ONE, "172.31.0.5", 2);
    store
        .create_reservation(&reservation, &[i1.clone(), i2.clone()], &[])
        .await
        .expect("reservation");
    let change = insert(vec![
        address("eipalloc-a", ONE, "198.18.0.20"),
        address("eipalloc-b", ONE, "198.18.0.21"),
    ]);
    assert_eq!(apply(store, &change).await, AddressOutcome::Applied);

    // Associate a with i1, changing i1's details in the same transaction.
    let mut a = get(store, "eipalloc-a").await.expect("a");
    a.association_id = Some("eipassoc-a".into());
    a.instance_id = Some("i-addr-1".into());
    a.private_ip = Some("172.31.0.4".into());
    let mut i1_new = i1.clone();
    i1_new.generation = 2;
    i1_new.details = "{\"public\":\"198.18.0.20\"}".into();
    i1_new.updated_at = 5;
    let change = AddressChange {
        update: vec![a.clone()],
        instances: vec![i1_new.clone()],
        ..AddressChange::default()
    };
    assert_eq!(apply(store, &change).await, AddressOutcome::Applied);
    let stored = get(store, "eipalloc-a").await.expect("a");
    assert_eq!(stored.revision, 1, "an update bumps the revision");
    assert_eq!(stored.instance_id.as_deref(), Some("i-addr-1"));
    assert_eq!(stored.association_id.as_deref(), Some("eipassoc-a"));
    let i1_stored = store.instance("i-addr-1").await.expect("i1").expect("i1");
    assert_eq!(i1_stored.generation, 2);
    assert_eq!(i1_stored.details, i1_new.details);
    assert_eq!(i1_stored.revision, 1);
    assert_eq!(
        store
            .address_of_instance("i-addr-1")
            .await
            .expect("of instance")
            .map(|a| a.allocation_id),
        Some("eipalloc-a".into())
    );

    // The same change again is stale (both records moved on): nothing is
    // applied.
    assert_eq!(apply(store, &change).await, AddressOutcome::Stale);
    // A valid address update with a stale instance applies nothing.
    let mut b = get(store, "eipalloc-b").await.expect("b");
    b.association_id = Some("eipassoc-b".into());
    b.instance_id = Some("i-addr-2".into());
    b.private_ip = Some("172.31.0.5".into());
    let stale_instance = AddressChange {
        update: vec![b.clone()],
        instances: vec![i1_new.clone()],
        ..AddressChange::default()
    };
    assert_eq!(apply(store, &stale_instance).await, AddressOutcome::Stale);
    assert_eq!(
        get(store, "eipalloc-b").await.expect("b").instance_id,
        None,
        "stale change applied an address update"
    );

    // An instance never holds two addresses.
    let mut b_on_i1 = b.clone();
    b_on_i1.instance_id = Some("i-addr-1".into());
    let two = AddressChange {
        update: vec![b_on_i1.clone()],
        ..AddressChange::default()
    };
    assert_eq!(apply(store, &two).await, AddressOutcome::Stale);

    // Moving i1 from a to b in one change (detach, then attach) works
    // whatever order the updates are given in.
    let mut a_free = get(store, "eipalloc-a").await.expect("a");
    a_free.association_id = None;
    a_free.instance_id = None;
    a_free.private_ip = None;
    b_on_i1.association_id = Some("eipassoc-b".into());
    b_on_i1.replaced_auto_ip = Some("198.18.0.99".into());
    let moved = AddressChange {
        update: vec![b_on_i1, a_free],
        ..AddressChange::default()
    };
    assert_eq!(apply(store, &moved).await, AddressOutcome::Applied);
    let b = get(store, "eipalloc-b").await.expect("b");
    assert_eq!(b.instance_id.as_deref(), Some("i-addr-1"));
    assert_eq!(b.replaced_auto_ip.as_deref(), Some("198.18.0.99"));
    assert_eq!(get(store, "eipalloc-a").await.expect("a").instance_id, None);

    // A stale delete removes nothing.
    let mut stale_b = b.clone();
    stale_b.revision -= 1;
    let stale_delete = AddressChange {
        delete: vec![stale_b],
        ..AddressChange::default()
    };
    assert_eq!(apply(store, &stale_delete).await, AddressOutcome::Stale);
    assert!(get(store, "eipalloc-b").await.is_some());

    let clean = AddressChange {
        delete: vec![b, get(store, "eipalloc-a").await.expect("a")],
        ..AddressChange::default()
    };
    assert_eq!(apply(store, &clean).await, AddressOutcome::Applied);
}

async fn release_and_orphans(store: &dyn Store) {
    // An auto-assigned address recorded for an instance that never came to
    // exist is an orphan once old enough; one of a real instance is not.
    let mut ghost = address("eipalloc-ghost", ONE, "198.18.0.30");
    ghost.auto_assigned = true;
    ghost.instance_id = Some("i-ghost".into());
    ghost.association_id = Some("eipassoc-ghost".into());
    ghost.created_at = 50;
    let mut real = address("eipalloc-real", ONE, "198.18.0.31");
    real.auto_assigned = true;
    real.instance_id = Some("i-addr-2".into());
    real.association_id = Some("eipassoc-real".into());
    real.created_at = 50;
    let unassociated = address("eipalloc-free", ONE, "198.18.0.32");
    assert_eq!(
        apply(store, &insert(vec![ghost, real, unassociated])).await,
        AddressOutcome::Applied
    );
    let orphans: Vec<String> = store
        .orphan_addresses(60)
        .await
        .expect("orphans")
        .into_iter()
        .map(|a| a.allocation_id)
        .collect();
    assert_eq!(orphans, vec!["eipalloc-ghost"]);
    assert!(
        store
            .orphan_addresses(40)
            .await
            .expect("orphans")
            .is_empty(),
        "a recent launch's address is not an orphan yet"
    );
    // Deleting an instance does not delete its address record (the layer
    // above releases it); the record then is an orphan.
    store.delete_instance("i-addr-2").await.expect("delete");
    let mut orphans: Vec<String> = store
        .orphan_addresses(60)
        .await
        .expect("orphans")
        .into_iter()
        .map(|a| a.allocation_id)
        .collect();
    orphans.sort();
    assert_eq!(orphans, vec!["eipalloc-ghost", "eipalloc-real"]);

    // A foreign account cannot tag an address it does not own.
    let err = store
        .put_tags(
            TWO,
            &["eipalloc-free".to_owned()],
            &[TagPair {
                key: "k".into(),
                value: "v".into(),
            }],
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::NotFound(_))),
        "foreign tagging: {err:?}"
    );

    let mut clean = AddressChange::default();
    for id in ["eipalloc-ghost", "eipalloc-real", "eipalloc-free"] {
        clean.delete.push(get(store, id).await.expect("exists"));
    }
    assert_eq!(apply(store, &clean).await, AddressOutcome::Applied);
    store.delete_instance("i-addr-1").await.expect("delete");
}
