//! Conformance checks of object versions: a bucket's versioning state;
//! versions kept in the order written whatever their ids; the `null`
//! version replaced wherever it is in a key's history; delete markers
//! hiding a key from reads and listings of objects but not from listings
//! of versions; deleting one version (the next newest becomes the
//! latest); ACLs and tags by version; usage counting every kept version;
//! listings of versions paged by key and version; multipart completion
//! making a version; and a bucket that holds only versions or delete
//! markers refusing deletion. Works in a bucket of its own, which it
//! deletes at the end.

use super::{blob_set, object, part, stored_bucket, upload};
use crate::objects::{ObjectRecord, Tags, VersionPosition, Versioning};
use crate::{ObjectIndexError, Store, StoreError};

const BUCKET: &str = "ver";

/// A version of `key` in the versioned bucket.
fn version(key: &str, id: &str, blobs: &[(&str, u64)], gamma: &str) -> ObjectRecord {
    ObjectRecord {
        version_id: id.into(),
        ..object(BUCKET, key, blobs, gamma)
    }
}

/// A delete marker of `key`.
fn marker(key: &str, id: &str, gamma: &str) -> ObjectRecord {
    ObjectRecord {
        delete_marker: true,
        ..version(key, id, &[], gamma)
    }
}

/// (key, version id, is latest, delete marker) of a listing of versions.
async fn listed(
    store: &dyn Store,
    prefix: &str,
    after: VersionPosition,
    limit: usize,
) -> Vec<(String, String, bool, bool)> {
    store
        .list_versions(BUCKET, prefix, &after, limit)
        .await
        .expect("list versions")
        .into_iter()
        .map(|v| {
            (
                v.object.key,
                v.object.version_id,
                v.is_latest,
                v.object.delete_marker,
            )
        })
        .collect()
}

fn row(key: &str, id: &str, latest: bool, marker: bool) -> (String, String, bool, bool) {
    (key.into(), id.into(), latest, marker)
}

fn after(key: &str, version_id: Option<&str>) -> VersionPosition {
    VersionPosition {
        key: key.into(),
        version_id: version_id.map(str::to_owned),
    }
}

/// Runs the version checks.
pub(super) async fn run(store: &dyn Store, gamma: &str) {
    store
        .create_bucket(&super::bucket(BUCKET, gamma))
        .await
        .expect("create bucket");
    let used_before = store.account_usage(gamma).await.expect("usage");
    versioning_state(store).await;
    writes_and_reads(store, gamma).await;
    listing(store, gamma).await;
    deleting_versions(store, gamma).await;
    let used = store.account_usage(gamma).await.expect("usage");
    assert_eq!(used - used_before, 2 + 3, "v1 and v2 are what remains");
    by_version(store).await;
    multipart(store, gamma).await;
    emptying(store, gamma).await;
    assert_eq!(
        store.account_usage(gamma).await.expect("usage"),
        used_before
    );
}

async fn versioning_state(store: &dyn Store) {
    assert_eq!(
        stored_bucket(store, BUCKET).await.versioning,
        Versioning::Unversioned
    );
    for state in [
        Versioning::Enabled,
        Versioning::Suspended,
        Versioning::Enabled,
    ] {
        store
            .set_bucket_versioning(BUCKET, state)
            .await
            .expect("set versioning");
        assert_eq!(stored_bucket(store, BUCKET).await.versioning, state);
    }
    assert_eq!(
        stored_bucket(store, "bkt").await.versioning,
        Versioning::Unversioned,
        "another bucket changed"
    );
    assert!(matches!(
        store
            .set_bucket_versioning("nope", Versioning::Enabled)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn writes_and_reads(store: &dyn Store, gamma: &str) {
    // A null version from before versioning, then two with ids that sort
    // before it: the order written decides, not the ids.
    for (id, blob, size) in [("null", "vn1", 1), ("b-v1", "vv1", 2), ("a-v2", "vv2", 3)] {
        let freed = store
            .put_object(&version("k", id, &[(blob, size)], gamma))
            .await
            .expect("put version");
        assert!(freed.is_empty(), "a new version replaced {freed:?}");
    }
    let latest = store.object(BUCKET, "k").await.expect("object");
    assert_eq!(latest.map(|o| o.version_id).as_deref(), Some("a-v2"));
    for id in ["null", "b-v1", "a-v2"] {
        let found = store
            .object_version(BUCKET, "k", Some(id))
            .await
            .expect("version");
        assert_eq!(found.map(|o| o.version_id).as_deref(), Some(id));
    }
    assert_eq!(
        store
            .object_version(BUCKET, "k", Some("nope"))
            .await
            .expect("version"),
        None
    );
    assert!(
        store
            .referenced_blobs()
            .await
            .expect("blobs")
            .is_superset(&blob_set(&["vn1", "vv1", "vv2"])),
        "older versions keep their data"
    );

    // A delete marker hides the key from reads and listings of objects.
    store
        .put_object(&marker("k", "m1", gamma))
        .await
        .expect("marker");
    assert_eq!(store.object(BUCKET, "k").await.expect("object"), None);
    let latest = store
        .object_version(BUCKET, "k", None)
        .await
        .expect("latest")
        .expect("a marker is a version");
    assert!(latest.delete_marker && latest.version_id == "m1");
    let objects = store
        .list_objects(BUCKET, "", "", 10)
        .await
        .expect("list objects");
    assert!(objects.is_empty(), "listed {objects:?}");
    assert!(
        !store
            .set_object_tags(BUCKET, "k", None, &Tags::new())
            .await
            .expect("tags"),
        "a delete marker has no tags"
    );
    assert!(
        !store
            .set_object_acl(BUCKET, "k", Some("m1"), "{}")
            .await
            .expect("acl")
    );

    // The null version written again replaces the old one, wherever it is.
    let freed = store
        .put_object(&version("k", "null", &[("vn2", 4)], gamma))
        .await
        .expect("put null");
    assert_eq!(freed, ["vn1"]);
    let latest = store.object(BUCKET, "k").await.expect("object");
    assert_eq!(latest.map(|o| o.size), Some(4));
    let blobs = store.referenced_blobs().await.expect("blobs");
    assert!(!blobs.contains("vn1") && blobs.contains("vn2"));
}

async fn listing(store: &dyn Store, gamma: &str) {
    for key in ["a", "k/x", "z"] {
        store
            .put_object(&version(key, &format!("{key}-1"), &[], gamma))
            .await
            .expect("put");
    }
    let all = listed(store, "", VersionPosition::default(), 100).await;
    assert_eq!(
        all,
        [
            row("a", "a-1", true, false),
            row("k", "null", true, false),
            row("k", "m1", false, true),
            row("k", "a-v2", false, false),
            row("k", "b-v1", false, false),
            row("k/x", "k/x-1", true, false),
            row("z", "z-1", true, false),
        ]
    );
    // Paged by key and version: within a key's versions, then past it.
    assert_eq!(listed(store, "", after("a", None), 2).await, all[1..3]);
    assert_eq!(
        listed(store, "", after("k", Some("m1")), 2).await,
        all[3..5]
    );
    assert_eq!(
        listed(store, "", after("k", Some("b-v1")), 10).await,
        all[5..]
    );
    assert_eq!(listed(store, "", after("k", None), 10).await, all[5..]);
    // A version marker that no longer exists skips the whole key.
    assert_eq!(
        listed(store, "", after("k", Some("gone")), 10).await,
        all[5..]
    );
    assert_eq!(
        listed(store, "k", VersionPosition::default(), 10).await,
        all[1..6]
    );
    assert_eq!(
        listed(store, "k/", after("k", Some("m1")), 10).await,
        all[5..6]
    );
    assert_eq!(listed(store, "", after("", None), 0).await, []);
    for key in ["a", "k/x", "z"] {
        store
            .delete_version(BUCKET, key, &format!("{key}-1"))
            .await
            .expect("delete")
            .expect("existed");
    }
}

async fn deleting_versions(store: &dyn Store, gamma: &str) {
    assert_eq!(
        store
            .delete_version(BUCKET, "k", "nope")
            .await
            .expect("delete"),
        None
    );
    // The latest goes: the next newest (a delete marker) becomes the
    // latest, so the key still reads as missing.
    let (deleted, blobs) = store
        .delete_version(BUCKET, "k", "null")
        .await
        .expect("delete")
        .expect("existed");
    assert_eq!((deleted.size, blobs), (4, vec!["vn2".to_owned()]));
    assert_eq!(store.object(BUCKET, "k").await.expect("object"), None);
    let (deleted, blobs) = store
        .delete_version(BUCKET, "k", "m1")
        .await
        .expect("delete")
        .expect("existed");
    assert!(deleted.delete_marker && blobs.is_empty());
    let latest = store.object(BUCKET, "k").await.expect("object");
    assert_eq!(latest.map(|o| o.version_id).as_deref(), Some("a-v2"));
    assert_eq!(
        listed(store, "", VersionPosition::default(), 10).await,
        [
            row("k", "a-v2", true, false),
            row("k", "b-v1", false, false)
        ]
    );
    // An older version can go without the latest changing.
    store
        .put_object(&version("k", "c-v3", &[("vv3", 5)], gamma))
        .await
        .expect("put");
    store
        .delete_version(BUCKET, "k", "c-v3")
        .await
        .expect("delete")
        .expect("existed");
}

async fn by_version(store: &dyn Store) {
    let tags: Tags = [("v".to_owned(), "1".to_owned())].into();
    assert!(
        store
            .set_object_tags(BUCKET, "k", Some("b-v1"), &tags)
            .await
            .expect("tags")
    );
    assert!(
        store
            .set_object_acl(BUCKET, "k", Some("b-v1"), "{\"v\":1}")
            .await
            .expect("acl")
    );
    let older = store
        .object_version(BUCKET, "k", Some("b-v1"))
        .await
        .expect("version")
        .expect("exists");
    assert_eq!((older.tags, older.acl_json.as_str()), (tags, "{\"v\":1}"));
    let latest = store
        .object(BUCKET, "k")
        .await
        .expect("object")
        .expect("exists");
    assert!(latest.tags.is_empty() && latest.acl_json == "{}");
    assert!(
        !store
            .set_object_tags(BUCKET, "k", Some("nope"), &Tags::new())
            .await
            .expect("tags")
    );
}

async fn multipart(store: &dyn Store, gamma: &str) {
    store
        .create_upload(&upload("u-ver", BUCKET, "k", 50))
        .await
        .expect("upload");
    store
        .put_part(&part("u-ver", 1, "vmp1", 6))
        .await
        .expect("part");
    let completed = ObjectRecord {
        version_id: "d-v4".into(),
        ..object(BUCKET, "k", &[("vmp1", 6)], gamma)
    };
    let freed = store
        .complete_upload("u-ver", &completed)
        .await
        .expect("complete");
    assert!(freed.is_empty(), "completing replaced {freed:?}");
    assert_eq!(
        listed(store, "", VersionPosition::default(), 10)
            .await
            .iter()
            .map(|r| r.1.as_str())
            .collect::<Vec<_>>(),
        ["d-v4", "a-v2", "b-v1"]
    );
}

async fn emptying(store: &dyn Store, gamma: &str) {
    // Only older versions and a delete marker: still not empty.
    store
        .delete_version(BUCKET, "k", "d-v4")
        .await
        .expect("delete")
        .expect("existed");
    store
        .put_object(&marker("k", "m2", gamma))
        .await
        .expect("marker");
    for id in ["m2", "a-v2", "b-v1"] {
        assert!(matches!(
            store.delete_bucket(BUCKET).await,
            Err(StoreError::Objects(ObjectIndexError::BucketNotEmpty))
        ));
        store
            .delete_version(BUCKET, "k", id)
            .await
            .expect("delete")
            .expect("existed");
    }
    store.delete_bucket(BUCKET).await.expect("delete bucket");
    assert_eq!(store.bucket(BUCKET).await.expect("bucket"), None);
}
