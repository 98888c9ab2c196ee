//! Conformance checks of object writes made at once (a backend may apply
//! them together, as the SQLite one's group commit does): many puts of
//! distinct keys all land, with the owner's usage their sum; concurrent
//! overwrites of one key leave exactly one of them, its replaced blobs
//! returned to the others; a change refused among concurrent ones (its
//! bucket gone, its upload gone, its owner's quota exceeded) fails alone
//! and its neighbours land; and puts, deletes, parts and multipart
//! completions mixed at once each do what they would do alone. Works in
//! buckets and an account of its own; deletes the buckets at the end.

use std::collections::HashSet;

use futures_util::future::join_all;

use super::{object, part, upload};
use crate::{ObjectIndexError, ObjectRecord, Store, StoreError};

const OWNER: &str = "626262626262";
const BUCKET: &str = "concurrent";
const SMALL: &str = "concurrent-quota";
/// Writes made at once.
const N: usize = 48;

/// The blob id of write `n` of `what`.
fn blob(what: &str, n: usize) -> String {
    format!("{what}-{n:03}")
}

fn put_of(bucket: &str, key: &str, blob_id: &str, size: u64) -> ObjectRecord {
    object(bucket, key, &[(blob_id, size)], OWNER)
}

/// Runs the checks.
pub(super) async fn run(store: &dyn Store) {
    crate::conformance::create_accounts(store, &[(OWNER, "concurrent")]).await;
    for name in [BUCKET, SMALL] {
        store
            .create_bucket(&super::bucket(name, OWNER))
            .await
            .expect("create bucket");
    }
    distinct_keys(store).await;
    one_key(store).await;
    refusals_fail_alone(store).await;
    mixed(store).await;
    for name in [BUCKET, SMALL] {
        for object in store.list_objects(name, "", "", 1000).await.expect("list") {
            store
                .delete_object(name, &object.key)
                .await
                .expect("delete");
        }
        store.delete_bucket(name).await.expect("delete bucket");
    }
    assert_eq!(store.account_usage(OWNER).await.expect("usage"), 0);
}

/// `N` puts of distinct keys at once all land, each exactly as written.
async fn distinct_keys(store: &dyn Store) {
    let objects: Vec<ObjectRecord> = (0..N)
        .map(|n| put_of(BUCKET, &format!("k{n:03}"), &blob("k", n), n as u64 + 1))
        .collect();
    let results = join_all(objects.iter().map(|o| store.put_object(o))).await;
    for result in results {
        assert_eq!(result.expect("put"), Vec::<String>::new());
    }
    for object in &objects {
        assert_eq!(
            store
                .object(BUCKET, &object.key)
                .await
                .expect("get")
                .as_ref(),
            Some(object)
        );
    }
    let listed = store
        .list_objects(BUCKET, "k", "", 1000)
        .await
        .expect("list");
    assert_eq!(listed, objects);
    let total: u64 = (1..=N as u64).sum();
    assert_eq!(store.account_usage(OWNER).await.expect("usage"), total);
}

/// `N` overwrites of one key at once: one of them is kept, and the blobs
/// of all the others are handed back exactly once between them.
async fn one_key(store: &dyn Store) {
    let before = store.account_usage(OWNER).await.expect("usage");
    let objects: Vec<ObjectRecord> = (0..N)
        .map(|n| put_of(BUCKET, "same", &blob("same", n), 10))
        .collect();
    let results = join_all(objects.iter().map(|o| store.put_object(o))).await;
    let mut freed = Vec::new();
    for result in results {
        freed.extend(result.expect("put"));
    }
    let kept = store
        .object(BUCKET, "same")
        .await
        .expect("get")
        .expect("kept");
    assert!(objects.contains(&kept), "{kept:?} was never written");
    let mut expected: Vec<String> = objects
        .iter()
        .map(|o| o.segments[0].blob_id.clone())
        .filter(|id| *id != kept.segments[0].blob_id)
        .collect();
    expected.sort();
    freed.sort();
    assert_eq!(freed, expected, "each replaced blob is freed once");
    assert_eq!(
        store.account_usage(OWNER).await.expect("usage"),
        before + 10
    );
}

/// Refused changes among concurrent ones fail alone, with their own error.
async fn refusals_fail_alone(store: &dyn Store) {
    let before = store.account_usage(OWNER).await.expect("usage");
    // A quota that leaves room for this step's good writes only.
    store
        .set_account_quota(OWNER, Some(before + N as u64))
        .await
        .expect("quota");
    // Every third write is refused: its bucket does not exist, its upload
    // does not exist, or it alone would exceed the quota.
    let results = join_all((0..N).map(|n| async move {
        let key = format!("r{n:03}");
        match n % 6 {
            1 => store
                .put_object(&put_of("no-such-bucket", &key, &blob("r", n), 1))
                .await
                .map(|_| ()),
            3 => store
                .put_part(&part("no-such-upload", 1, &blob("r", n), 1))
                .await
                .map(|_| ()),
            5 => store
                .put_object(&put_of(SMALL, &key, &blob("r", n), 1_000_000))
                .await
                .map(|_| ()),
            _ => store
                .put_object(&put_of(BUCKET, &key, &blob("r", n), 1))
                .await
                .map(|_| ()),
        }
    }))
    .await;
    for (n, result) in results.into_iter().enumerate() {
        let key = format!("r{n:03}");
        match n % 6 {
            1 => assert!(
                matches!(&result, Err(StoreError::NotFound(b)) if b == "no-such-bucket"),
                "{result:?}"
            ),
            3 => assert!(
                matches!(&result, Err(StoreError::NotFound(u)) if u == "no-such-upload"),
                "{result:?}"
            ),
            5 => {
                assert!(
                    matches!(
                        &result,
                        Err(StoreError::Objects(ObjectIndexError::QuotaExceeded { .. }))
                    ),
                    "{result:?}"
                );
                assert_eq!(store.object(SMALL, &key).await.expect("get"), None);
            }
            _ => {
                result.expect("a neighbour of refused writes lands");
                assert!(store.object(BUCKET, &key).await.expect("get").is_some());
            }
        }
    }
    let landed = (0..N).filter(|n| n % 2 == 0).count() as u64;
    assert_eq!(
        store.account_usage(OWNER).await.expect("usage"),
        before + landed
    );
    store
        .set_account_quota(OWNER, None)
        .await
        .expect("no quota");
}

/// Puts, deletes, parts and completions at once, each as it would alone.
async fn mixed(store: &dyn Store) {
    let uploads: Vec<String> = (0..4).map(|n| format!("concurrent-up-{n}")).collect();
    for (n, id) in uploads.iter().enumerate() {
        let mut up = upload(id, BUCKET, &format!("mp{n}"), 1);
        up.owner_account = OWNER.into();
        store.create_upload(&up).await.expect("create upload");
        store
            .put_part(&part(id, 1, &blob("p1", n), 5))
            .await
            .expect("part 1");
    }
    // Keys k000..k015 deleted, parts 2 stored, uploads 0 and 1 completed,
    // upload 2 aborted, and new keys written, all at once.
    let deletes = (0..16).map(|n| async move {
        let deleted = store
            .delete_object(BUCKET, &format!("k{n:03}"))
            .await
            .expect("delete");
        assert_eq!(deleted, Some(vec![blob("k", n)]));
    });
    let parts = uploads.iter().enumerate().map(|(n, id)| async move {
        let replaced = store
            .put_part(&part(id, 2, &blob("p2", n), 3))
            .await
            .expect("part 2");
        assert_eq!(replaced, None);
    });
    let puts = (0..16).map(|n| async move {
        let freed = store
            .put_object(&put_of(BUCKET, &format!("m{n:03}"), &blob("m", n), 2))
            .await
            .expect("put");
        assert!(freed.is_empty());
    });
    futures_util::join!(join_all(deletes), join_all(parts), join_all(puts));
    let completions = uploads[..2].iter().enumerate().map(|(n, id)| async move {
        let mut object = object(
            BUCKET,
            &format!("mp{n}"),
            &[(&blob("p1", n), 5), (&blob("p2", n), 3)],
            OWNER,
        );
        object.etag = format!("mp-{n}-2");
        let freed = store.complete_upload(id, &object).await.expect("complete");
        assert!(freed.is_empty(), "{freed:?}");
    });
    let abort = async {
        let blobs = store.abort_upload(&uploads[2]).await.expect("abort");
        assert_eq!(blobs, vec![blob("p1", 2), blob("p2", 2)]);
    };
    let gone = async {
        assert!(matches!(
            store.abort_upload("concurrent-up-none").await,
            Err(StoreError::NotFound(_))
        ));
    };
    futures_util::join!(join_all(completions), abort, gone);
    let listed: HashSet<String> = store
        .list_objects(BUCKET, "", "", 1000)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    for n in 0..N {
        assert_eq!(listed.contains(&format!("k{n:03}")), n >= 16, "k{n:03}");
    }
    for n in 0..16 {
        assert!(listed.contains(&format!("m{n:03}")));
    }
    assert!(listed.contains("mp0") && listed.contains("mp1") && !listed.contains("mp2"));
    assert_eq!(store.upload(&uploads[1]).await.expect("upload"), None);
    assert_eq!(store.upload(&uploads[2]).await.expect("upload"), None);
    assert_eq!(
        store.parts(&uploads[3]).await.expect("parts").len(),
        2,
        "the upload left alone keeps both parts"
    );
    store.abort_upload(&uploads[3]).await.expect("abort");
}
