//! Conformance checks of [`crate::VolumeIndex`]: creation with tags,
//! listing per account, compare-and-set updates, one volume per device of
//! an instance however attachments race, and deletion with tags.

use futures_util::future::join_all;

use super::has_resource;
use crate::{Launch, Store, StoreError, TagPair, VolumeRecord};

const ONE: &str = "777777777711";
const TWO: &str = "777777777712";
const INSTANCE: &str = "i-0000000000000a001";

fn volume(id: &str, account: &str) -> VolumeRecord {
    VolumeRecord {
        volume_id: id.into(),
        account_id: account.into(),
        zone: "z".into(),
        node_id: "node-1".into(),
        size_gib: 1,
        state: "creating".into(),
        desired: "available".into(),
        instance_id: None,
        device: None,
        attach_state: None,
        attach_time: None,
        generation: 1,
        revision: 0,
        details: "{}".into(),
        created_at: 10,
        updated_at: 10,
    }
}

fn attached(mut v: VolumeRecord, instance: &str, device: &str) -> VolumeRecord {
    v.state = "in-use".into();
    v.desired = "attached".into();
    v.instance_id = Some(instance.into());
    v.device = Some(device.into());
    v.attach_state = Some("attaching".into());
    v.attach_time = Some(20);
    v.generation += 1;
    v
}

async fn get(store: &dyn Store, id: &str) -> Option<VolumeRecord> {
    store.volume(id).await.expect("volume")
}

fn ids(volumes: &[VolumeRecord]) -> Vec<&str> {
    volumes.iter().map(|v| v.volume_id.as_str()).collect()
}

/// Runs the volume checks.
pub async fn run(store: &dyn Store) {
    super::create_accounts(store, &[(ONE, "volumes-one"), (TWO, "volumes-two")]).await;
    create_and_list(store).await;
    compare_and_set(store).await;
    devices_are_exclusive(store).await;
    racing_attachments(store).await;
    deleting(store).await;
    launched_with_instances(store).await;
}

/// Volumes an instance gets at launch are created with its reservation,
/// all or nothing.
async fn launched_with_instances(store: &dyn Store) {
    let r = super::instances::reservation("r-vol-1", ONE, None, 300);
    let i = super::instances::instance("i-vol-1", &r, 0, "172.31.9.4", 0x91);
    let root = attached(volume("vol-00000000000000c01", ONE), "i-vol-1", "/dev/sda1");
    store
        .create_launch(&Launch {
            reservation: &r,
            instances: std::slice::from_ref(&i),
            volumes: std::slice::from_ref(&root),
            groups: &[],
            tags: &[],
            volume_tags: &[TagPair {
                key: "disk".into(),
                value: "root".into(),
            }],
            interfaces: &[("i-vol-1".into(), "eni-00000000000000c01".into())],
            interface_tags: &[TagPair {
                key: "nic".into(),
                value: "primary".into(),
            }],
        })
        .await
        .expect("reservation with a root volume");
    let tagged: Vec<(String, String)> = store
        .tags(ONE)
        .await
        .expect("tags")
        .into_iter()
        .filter(|t| t.resource_id.ends_with("c01"))
        .map(|t| (t.resource_id, t.key))
        .collect();
    assert_eq!(
        tagged,
        [
            ("eni-00000000000000c01".to_owned(), "nic".to_owned()),
            ("vol-00000000000000c01".to_owned(), "disk".to_owned()),
        ]
    );
    let interface = store
        .resources(&["eni-00000000000000c01".to_owned()])
        .await
        .expect("resources");
    assert_eq!(interface[0].resource_type, "network-interface");
    assert!(store.instance("i-vol-1").await.expect("instance").is_some());
    assert_eq!(
        get(store, "vol-00000000000000c01").await,
        Some(root.clone())
    );
    assert_eq!(
        ids(&store
            .volumes_of_instance("i-vol-1")
            .await
            .expect("of instance")),
        ["vol-00000000000000c01"]
    );
    // A volume id already taken fails the whole reservation.
    let r2 = super::instances::reservation("r-vol-2", ONE, None, 301);
    let i2 = super::instances::instance("i-vol-2", &r2, 0, "172.31.9.5", 0x92);
    let again = attached(volume("vol-00000000000000c01", ONE), "i-vol-2", "/dev/sda1");
    assert!(
        store
            .create_launch(&Launch {
                reservation: &r2,
                instances: std::slice::from_ref(&i2),
                volumes: &[again],
                groups: &[],
                tags: &[],
                volume_tags: &[],
                interfaces: &[],
                interface_tags: &[],
            })
            .await
            .is_err()
    );
    assert!(store.instance("i-vol-2").await.expect("instance").is_none());
    // The interface goes with its instance, tags and all; its volume stays.
    store.delete_instance("i-vol-1").await.expect("delete");
    assert!(
        store
            .resources(&["eni-00000000000000c01".to_owned()])
            .await
            .expect("resources")
            .is_empty()
    );
    assert!(
        store
            .tags(ONE)
            .await
            .expect("tags")
            .iter()
            .all(|t| t.resource_id != "eni-00000000000000c01")
    );
    assert!(
        store
            .volumes_of_instance("i-vol-2")
            .await
            .expect("of instance")
            .is_empty()
    );
}

async fn create_and_list(store: &dyn Store) {
    let a = volume("vol-00000000000000a01", ONE);
    let b = volume("vol-00000000000000a02", TWO);
    let tags = [TagPair {
        key: "Name".into(),
        value: "data".into(),
    }];
    store.create_volume(&b, &[]).await.expect("create b");
    store.create_volume(&a, &tags).await.expect("create a");
    assert!(matches!(
        store.create_volume(&a, &[]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(get(store, &a.volume_id).await, Some(a.clone()));
    assert_eq!(get(store, "vol-00000000000000fff").await, None);
    assert_eq!(
        ids(&store.volumes(Some(ONE)).await.expect("list")),
        [a.volume_id.as_str()]
    );
    let all = store.volumes(None).await.expect("list all");
    assert_eq!(ids(&all), [a.volume_id.as_str(), b.volume_id.as_str()]);

    let resources = store
        .resources(std::slice::from_ref(&a.volume_id))
        .await
        .expect("resources");
    assert_eq!(resources.len(), 1);
    assert_eq!(
        (
            resources[0].account_id.as_str(),
            resources[0].resource_type.as_str()
        ),
        (ONE, "volume")
    );
    let tagged: Vec<_> = store
        .tags(ONE)
        .await
        .expect("tags")
        .into_iter()
        .filter(|t| t.resource_id == a.volume_id)
        .map(|t| (t.resource_type, t.key, t.value))
        .collect();
    assert_eq!(
        tagged,
        [("volume".to_owned(), "Name".to_owned(), "data".to_owned())]
    );

    // Too many tags fail the whole creation.
    let mut too_many = volume("vol-00000000000000a03", ONE);
    too_many.created_at = 11;
    let many: Vec<TagPair> = (0..51)
        .map(|n| TagPair {
            key: format!("k{n}"),
            value: String::new(),
        })
        .collect();
    assert!(matches!(
        store.create_volume(&too_many, &many).await,
        Err(StoreError::TagLimitExceeded(_))
    ));
    assert_eq!(get(store, &too_many.volume_id).await, None);
    assert!(
        !has_resource(store, &too_many.volume_id).await,
        "a refused creation left its resource"
    );
}

async fn compare_and_set(store: &dyn Store) {
    let stored = get(store, "vol-00000000000000a01").await.expect("a");
    let mut next = stored.clone();
    next.state = "available".into();
    next.updated_at = 30;
    assert!(store.update_volume(&next).await.expect("update"));
    let now = get(store, "vol-00000000000000a01").await.expect("a");
    assert_eq!(now.revision, stored.revision + 1);
    assert_eq!(now.state, "available");
    assert_eq!(now.updated_at, 30);
    // A change computed from the old row is refused and changes nothing.
    let mut stale = stored.clone();
    stale.state = "deleting".into();
    assert!(!store.update_volume(&stale).await.expect("stale update"));
    assert_eq!(get(store, "vol-00000000000000a01").await, Some(now.clone()));
    let mut gone = volume("vol-00000000000000fff", ONE);
    gone.state = "available".into();
    assert!(!store.update_volume(&gone).await.expect("missing update"));
}

async fn devices_are_exclusive(store: &dyn Store) {
    let a = get(store, "vol-00000000000000a01").await.expect("a");
    let b = get(store, "vol-00000000000000a02").await.expect("b");
    let a_on = attached(a.clone(), INSTANCE, "/dev/sdf");
    assert!(store.update_volume(&a_on).await.expect("attach a"));
    assert!(matches!(
        store
            .update_volume(&attached(b.clone(), INSTANCE, "/dev/sdf"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(get(store, &b.volume_id).await, Some(b.clone()));
    // Another device of the instance, or the same device of another
    // instance, is free.
    let b_on = attached(b.clone(), INSTANCE, "/dev/sdg");
    assert!(store.update_volume(&b_on).await.expect("attach b"));
    assert_eq!(
        ids(&store.volumes_of_instance(INSTANCE).await.expect("of")),
        ["vol-00000000000000a01", "vol-00000000000000a02"]
    );
    assert!(
        store
            .volumes_of_instance("i-0000000000000afff")
            .await
            .expect("of")
            .is_empty()
    );
    // Several instances in one call: each volume once, by instance then
    // device.
    let many = [
        "i-0000000000000afff".to_owned(),
        INSTANCE.to_owned(),
        INSTANCE.to_owned(),
    ];
    let of_many = store.volumes_of_instances(&many).await.expect("of many");
    assert_eq!(
        ids(&of_many),
        ["vol-00000000000000a01", "vol-00000000000000a02"]
    );
    assert_eq!(
        of_many[0],
        get(store, "vol-00000000000000a01").await.expect("a")
    );
    assert!(
        store
            .volumes_of_instances(&[])
            .await
            .expect("of none")
            .is_empty()
    );

    // Detaching frees the device.
    for (id, revision_base) in [
        ("vol-00000000000000a01", &a_on),
        ("vol-00000000000000a02", &b_on),
    ] {
        let mut v = get(store, id).await.expect("volume");
        assert_eq!(v.revision, revision_base.revision + 1);
        v.state = "available".into();
        v.desired = "available".into();
        v.instance_id = None;
        v.device = None;
        v.attach_state = None;
        v.attach_time = None;
        assert!(store.update_volume(&v).await.expect("detach"));
    }
    assert!(
        store
            .volumes_of_instance(INSTANCE)
            .await
            .expect("of")
            .is_empty()
    );
    let b = get(store, "vol-00000000000000a02").await.expect("b");
    let b_on = attached(b, INSTANCE, "/dev/sdf");
    assert!(store.update_volume(&b_on).await.expect("reuse device"));
    let mut b = get(store, "vol-00000000000000a02").await.expect("b");
    b.instance_id = None;
    b.device = None;
    b.attach_state = None;
    b.state = "available".into();
    assert!(store.update_volume(&b).await.expect("detach"));
}

async fn racing_attachments(store: &dyn Store) {
    let mut volumes = Vec::new();
    for n in 0..8 {
        let mut v = volume(&format!("vol-00000000000000b{n:02}"), ONE);
        v.state = "available".into();
        store.create_volume(&v, &[]).await.expect("create");
        volumes.push(v);
    }
    let attempt = |n: usize| {
        let v = attached(volumes[n].clone(), "i-0000000000000b001", "/dev/sdh");
        async move { store.update_volume(&v).await }
    };
    let results = join_all((0..volumes.len()).map(attempt)).await;
    let won = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
        .count();
    assert_eq!((won, lost), (1, 7), "{results:?}");
    assert_eq!(
        store
            .volumes_of_instance("i-0000000000000b001")
            .await
            .expect("of")
            .len(),
        1
    );
    for v in volumes {
        let stored = get(store, &v.volume_id).await.expect("volume");
        assert!(store.delete_volume(&stored).await.expect("delete"));
    }
}

async fn deleting(store: &dyn Store) {
    let a = get(store, "vol-00000000000000a01").await.expect("a");
    let mut stale = a.clone();
    stale.revision -= 1;
    assert!(!store.delete_volume(&stale).await.expect("stale delete"));
    assert!(get(store, &a.volume_id).await.is_some());
    assert!(store.delete_volume(&a).await.expect("delete"));
    assert!(!store.delete_volume(&a).await.expect("again"));
    assert_eq!(get(store, &a.volume_id).await, None);
    assert!(!has_resource(store, &a.volume_id).await);
    assert!(
        !store
            .tags(ONE)
            .await
            .expect("tags")
            .iter()
            .any(|t| t.resource_id == a.volume_id),
        "tags outlived their volume"
    );
    // The id can be used again (the store keeps nothing of it).
    store.create_volume(&a, &[]).await.expect("recreate");
    let again = get(store, &a.volume_id).await.expect("recreated");
    assert!(store.delete_volume(&again).await.expect("delete"));
    assert_eq!(
        ids(&store.volumes(None).await.expect("list")),
        ["vol-00000000000000a02"]
    );
}
