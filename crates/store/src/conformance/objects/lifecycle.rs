//! Conformance checks of the lifecycle pass's store operations: the
//! buckets that have lifecycle rules (of every account), and each
//! [`Expiry`] carried out only on a version that is unchanged and where
//! the expiry expects it: a current version deleted or hidden behind a
//! delete marker, a noncurrent version deleted, a lone delete marker
//! removed, with usage credited and the freed blobs returned. Works in a
//! bucket of its own, which it deletes.

use super::{object, stored_bucket};
use crate::Store;
use crate::objects::{BucketSetting, Expiry, ObjectRecord};

const BUCKET: &str = "lifecycle";

fn version(key: &str, id: &str, blob: &str, size: u64, gamma: &str) -> ObjectRecord {
    ObjectRecord {
        version_id: id.into(),
        ..object(BUCKET, key, &[(blob, size)], gamma)
    }
}

fn marker(key: &str, id: &str, gamma: &str) -> ObjectRecord {
    ObjectRecord {
        version_id: id.into(),
        delete_marker: true,
        ..object(BUCKET, key, &[], gamma)
    }
}

/// (version id, delete marker) of `key`'s versions, newest first.
async fn history(store: &dyn Store, key: &str) -> Vec<(String, bool)> {
    store
        .list_versions(BUCKET, key, &Default::default(), 100)
        .await
        .expect("versions")
        .into_iter()
        .filter(|v| v.object.key == key)
        .map(|v| (v.object.version_id, v.object.delete_marker))
        .collect()
}

fn ids(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(id, m)| ((*id).to_owned(), *m)).collect()
}

/// Runs the lifecycle checks.
pub(super) async fn run(store: &dyn Store, gamma: &str, delta: &str) {
    store
        .create_bucket(&super::bucket(BUCKET, gamma))
        .await
        .expect("create");
    store
        .create_bucket(&super::bucket("lifecycle-delta", delta))
        .await
        .expect("create");
    listing_buckets(store).await;
    let used_before = store.account_usage(gamma).await.expect("usage");
    current(store, gamma).await;
    markers_and_noncurrent(store, gamma).await;
    assert_eq!(
        store.account_usage(gamma).await.expect("usage"),
        used_before,
        "every expired version was credited"
    );
    for name in [BUCKET, "lifecycle-delta"] {
        store.delete_bucket(name).await.expect("delete bucket");
    }
}

async fn listing_buckets(store: &dyn Store) {
    let with = async || -> Vec<String> {
        store
            .buckets_with_setting(BucketSetting::Lifecycle)
            .await
            .expect("buckets")
            .into_iter()
            .map(|b| b.name)
            .filter(|n| n.starts_with("lifecycle"))
            .collect()
    };
    assert!(with().await.is_empty());
    for name in ["lifecycle-delta", BUCKET] {
        store
            .set_bucket_setting(name, BucketSetting::Lifecycle, Some("[1]"))
            .await
            .expect("set");
    }
    store
        .set_bucket_setting(BUCKET, BucketSetting::Cors, Some("[]"))
        .await
        .expect("set");
    assert_eq!(
        with().await,
        [BUCKET, "lifecycle-delta"],
        "by name, every account"
    );
    let listed = store
        .buckets_with_setting(BucketSetting::Lifecycle)
        .await
        .expect("buckets");
    let ours = listed.iter().find(|b| b.name == BUCKET).expect("listed");
    assert_eq!(ours.setting(BucketSetting::Lifecycle), Some("[1]"));
    assert_eq!(
        ours.setting(BucketSetting::Cors),
        Some("[]"),
        "with all its settings"
    );
    store
        .set_bucket_setting("lifecycle-delta", BucketSetting::Lifecycle, None)
        .await
        .expect("remove");
    assert_eq!(with().await, [BUCKET]);
    assert_eq!(
        stored_bucket(store, BUCKET)
            .await
            .setting(BucketSetting::Lifecycle),
        Some("[1]")
    );
}

async fn current(store: &dyn Store, gamma: &str) {
    // Unversioned: the current version goes, unless it was replaced since.
    let seen = version("plain", "null", "lc1", 4, gamma);
    store.put_object(&seen).await.expect("put");
    let replaced = ObjectRecord {
        last_modified: seen.last_modified + 1,
        segments: vec![crate::Segment {
            blob_id: "lc2".into(),
            size: 4,
        }],
        ..seen.clone()
    };
    store.put_object(&replaced).await.expect("replace");
    assert_eq!(
        store
            .expire(&seen, &Expiry::DeleteCurrent)
            .await
            .expect("expire"),
        None,
        "a version written after the pass looked is kept"
    );
    assert_eq!(
        store
            .expire(&replaced, &Expiry::DeleteNoncurrent)
            .await
            .expect("expire"),
        None,
        "the latest is not noncurrent"
    );
    assert_eq!(
        store
            .expire(&replaced, &Expiry::DeleteCurrent)
            .await
            .expect("expire"),
        Some(vec!["lc2".to_owned()])
    );
    assert!(store.object(BUCKET, "plain").await.expect("read").is_none());
    assert_eq!(
        store
            .expire(&replaced, &Expiry::DeleteCurrent)
            .await
            .expect("expire"),
        None,
        "gone already"
    );

    // Versioned: a delete marker goes over the current version, which
    // stays as a noncurrent one.
    let v1 = version("kept", "v1", "lc3", 5, gamma);
    store.put_object(&v1).await.expect("put");
    let dm = marker("kept", "dm1", gamma);
    let freed = store
        .expire(&v1, &Expiry::Marker(Box::new(dm.clone())))
        .await
        .expect("expire");
    assert_eq!(freed, Some(vec![]));
    assert_eq!(
        history(store, "kept").await,
        ids(&[("dm1", true), ("v1", false)])
    );
    assert!(store.object(BUCKET, "kept").await.expect("read").is_none());
    assert_eq!(
        store
            .expire(&v1, &Expiry::Marker(Box::new(marker("kept", "dm2", gamma))))
            .await
            .expect("expire"),
        None,
        "no marker over a version that is no longer the latest"
    );
    assert_eq!(history(store, "kept").await.len(), 2);
}

async fn markers_and_noncurrent(store: &dyn Store, gamma: &str) {
    let v1 = version("kept", "v1", "lc3", 5, gamma);
    let dm = marker("kept", "dm1", gamma);
    assert_eq!(
        store
            .expire(&dm, &Expiry::DeleteLoneMarker)
            .await
            .expect("expire"),
        None,
        "a marker with versions behind it stays"
    );
    assert_eq!(
        store
            .expire(&dm, &Expiry::DeleteNoncurrent)
            .await
            .expect("expire"),
        None,
        "the latest is not noncurrent"
    );
    assert_eq!(
        store
            .expire(&v1, &Expiry::DeleteNoncurrent)
            .await
            .expect("expire"),
        Some(vec!["lc3".to_owned()])
    );
    assert_eq!(history(store, "kept").await, ids(&[("dm1", true)]));
    let changed = ObjectRecord {
        last_modified: dm.last_modified + 5,
        ..dm.clone()
    };
    assert_eq!(
        store
            .expire(&changed, &Expiry::DeleteLoneMarker)
            .await
            .expect("expire"),
        None,
        "not the marker the pass saw"
    );
    assert_eq!(
        store
            .expire(&dm, &Expiry::DeleteLoneMarker)
            .await
            .expect("expire"),
        Some(vec![])
    );
    assert!(history(store, "kept").await.is_empty());
}
