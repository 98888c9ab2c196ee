//! Conformance checks of [`crate::SnapshotIndex`]: creation with tags,
//! listing per account and by share, compare-and-set updates carrying the
//! stored data, permissions, the start-up sweep keeping snapshot data, and
//! deletion refused while an image's block device mapping names the
//! snapshot.

use crate::{
    Image, ImageBlockDevice, Segment, SnapshotData, SnapshotDeletion, SnapshotRecord, Store,
    StoreError, TagPair,
};

const OWNER: &str = "777777777721";
const OTHER: &str = "777777777722";
const THIRD: &str = "777777777723";

fn snapshot(id: &str, account: &str) -> SnapshotRecord {
    SnapshotRecord {
        snapshot_id: id.into(),
        account_id: account.into(),
        volume_id: "vol-0000000000000a001".into(),
        volume_size_gib: 1,
        node_id: Some("node-1".into()),
        state: "pending".into(),
        desired: "completed".into(),
        progress: 0,
        data: None,
        generation: 1,
        revision: 0,
        details: "{}".into(),
        created_at: 10,
        updated_at: 10,
    }
}

fn ids(snapshots: &[SnapshotRecord]) -> Vec<&str> {
    snapshots.iter().map(|s| s.snapshot_id.as_str()).collect()
}

async fn get(store: &dyn Store, id: &str) -> SnapshotRecord {
    store
        .snapshot(id)
        .await
        .expect("snapshot")
        .unwrap_or_else(|| panic!("{id} is gone"))
}

/// Runs the snapshot checks.
pub async fn run(store: &dyn Store) {
    super::create_accounts(
        store,
        &[
            (OWNER, "snapshots-one"),
            (OTHER, "snapshots-two"),
            (THIRD, "snapshots-three"),
        ],
    )
    .await;
    create_list_update(store).await;
    permissions(store).await;
    images_hold_snapshots(store).await;
}

async fn create_list_update(store: &dyn Store) {
    let first = snapshot("snap-0000000000000a001", OWNER);
    store
        .create_snapshot(
            &first,
            &[TagPair {
                key: "backup".into(),
                value: "daily".into(),
            }],
        )
        .await
        .expect("create snapshot");
    assert_eq!(get(store, &first.snapshot_id).await, first, "round trip");
    assert_eq!(
        store.tags(OWNER).await.expect("tags").len(),
        1,
        "the snapshot's tag is stored with it"
    );
    assert!(matches!(
        store.create_snapshot(&first, &[]).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .create_snapshot(&snapshot("snap-0000000000000a002", OTHER), &[])
        .await
        .expect("second snapshot");
    assert_eq!(
        ids(&store.snapshots(Some(OWNER)).await.expect("list")),
        ["snap-0000000000000a001"]
    );
    assert_eq!(
        ids(&store.snapshots(None).await.expect("list all")),
        ["snap-0000000000000a001", "snap-0000000000000a002"]
    );

    // Completing it stores the data; a stale revision changes nothing.
    let data = SnapshotData {
        segments: vec![Segment {
            blob_id: "blob-snapshot-1".into(),
            size: 4096,
        }],
        size: 4096,
        sha256: "ab".repeat(32),
        format: "qcow2".into(),
    };
    let completed = SnapshotRecord {
        state: "completed".into(),
        progress: 100,
        data: Some(data.clone()),
        ..first.clone()
    };
    assert!(store.update_snapshot(&completed).await.expect("update"));
    assert!(
        !store
            .update_snapshot(&completed)
            .await
            .expect("stale update"),
        "a stale revision must not overwrite"
    );
    let stored = get(store, &first.snapshot_id).await;
    assert_eq!(stored.revision, 1);
    assert_eq!(stored.data, Some(data));
    assert!(
        store
            .referenced_blobs()
            .await
            .expect("referenced blobs")
            .contains("blob-snapshot-1"),
        "the start-up sweep must keep snapshot data"
    );

    // Deletion hands the data back and removes the resource and its tags.
    assert_eq!(
        store.delete_snapshot(&first).await.expect("stale delete"),
        SnapshotDeletion::Changed
    );
    match store.delete_snapshot(&stored).await.expect("delete") {
        SnapshotDeletion::Deleted(Some(d)) => assert_eq!(d.segments[0].blob_id, "blob-snapshot-1"),
        other => panic!("expected the deleted data, got {other:?}"),
    }
    assert!(
        store
            .snapshot(&first.snapshot_id)
            .await
            .expect("get")
            .is_none()
    );
    assert!(store.tags(OWNER).await.expect("tags").is_empty());
    assert!(
        !store
            .referenced_blobs()
            .await
            .expect("referenced blobs")
            .contains("blob-snapshot-1")
    );
}

async fn permissions(store: &dyn Store) {
    let shared = snapshot("snap-0000000000000b001", OWNER);
    store.create_snapshot(&shared, &[]).await.expect("create");
    assert!(
        store
            .snapshots_shared_with(OTHER)
            .await
            .expect("shared")
            .iter()
            .all(|s| s.snapshot_id != shared.snapshot_id)
    );
    store
        .change_snapshot_permissions(&shared.snapshot_id, &[OTHER.into()], &[])
        .await
        .expect("share");
    assert_eq!(
        ids(&store.snapshots_shared_with(OTHER).await.expect("shared")),
        ["snap-0000000000000b001"]
    );
    assert!(
        store
            .snapshots_shared_with(THIRD)
            .await
            .expect("shared")
            .is_empty()
    );
    assert!(
        store
            .snapshots_shared_with(OWNER)
            .await
            .expect("own")
            .is_empty(),
        "an account's own snapshots are not 'shared with' it"
    );
    store
        .change_snapshot_permissions(&shared.snapshot_id, &["all".into()], &[OTHER.into()])
        .await
        .expect("public");
    assert_eq!(
        store
            .snapshot_permissions(&shared.snapshot_id)
            .await
            .expect("permissions"),
        ["all"]
    );
    assert_eq!(
        ids(&store.snapshots_shared_with(THIRD).await.expect("public")),
        ["snap-0000000000000b001"]
    );
    store
        .reset_snapshot_permissions(&shared.snapshot_id)
        .await
        .expect("reset");
    assert!(
        store
            .snapshot_permissions(&shared.snapshot_id)
            .await
            .expect("permissions")
            .is_empty()
    );
    assert!(matches!(
        store
            .change_snapshot_permissions("snap-0000000000000bfff", &[OTHER.into()], &[])
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn images_hold_snapshots(store: &dyn Store) {
    let root = snapshot("snap-0000000000000c001", OWNER);
    store.create_snapshot(&root, &[]).await.expect("create");
    let ebs = |id: &str, name: &str, snapshot_id: &str| Image {
        root_device_type: "ebs".into(),
        block_device_mappings: vec![ImageBlockDevice {
            device_name: "/dev/sda1".into(),
            snapshot_id: Some(snapshot_id.into()),
            delete_on_termination: true,
            ..ImageBlockDevice::default()
        }],
        ..super::images::image(id, OWNER, name)
    };
    assert!(
        matches!(
            store
                .create_image(&ebs("ami-snapc02", "missing", "snap-0000000000000cfff"), &[])
                .await,
            Err(StoreError::NotFound(id)) if id == "snap-0000000000000cfff"
        ),
        "an image cannot name a snapshot that does not exist"
    );
    assert!(store.image("ami-snapc02").await.expect("image").is_none());
    let image = Image {
        state: "pending".into(),
        ..ebs("ami-snapc01", "ebs-root", &root.snapshot_id)
    };
    store.create_image(&image, &[]).await.expect("ebs image");
    assert_eq!(
        store
            .images_in_state("pending")
            .await
            .expect("pending images")
            .iter()
            .map(|i| i.image_id.as_str())
            .collect::<Vec<_>>(),
        ["ami-snapc01"]
    );
    assert!(
        !store
            .set_image_state("ami-snapc01", "available", "failed")
            .await
            .expect("state"),
        "only from the given state"
    );
    assert!(
        store
            .set_image_state("ami-snapc01", "pending", "available")
            .await
            .expect("state")
    );
    assert!(
        store
            .images_in_state("pending")
            .await
            .expect("pending")
            .is_empty()
    );
    let image = Image {
        state: "available".into(),
        ..image
    };
    assert_eq!(
        store.image("ami-snapc01").await.expect("image"),
        Some(image.clone()),
        "block device mappings round-trip"
    );
    assert_eq!(
        store.delete_snapshot(&root).await.expect("delete in use"),
        SnapshotDeletion::InUseByImage("ami-snapc01".into())
    );
    assert!(
        store
            .snapshot(&root.snapshot_id)
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        store
            .delete_image(OWNER, "ami-snapc01")
            .await
            .expect("deregister")
    );
    assert_eq!(
        store.delete_snapshot(&root).await.expect("delete"),
        SnapshotDeletion::Deleted(None)
    );
}
