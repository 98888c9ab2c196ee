//! Conformance checks of [`crate::ObjectIndex`]: global bucket names,
//! listing in byte order with prefixes and paging, replacing objects and
//! the blobs that frees, per-account usage and quotas, multipart uploads,
//! bucket policies, tags ([`tags`]), versions ([`versions`]), bucket
//! settings ([`settings`]), the lifecycle pass's expiries ([`lifecycle`]),
//! writes made at once ([`concurrent`]), and deleting buckets (with their
//! policies, tags and abandoned uploads).

mod concurrent;
mod lifecycle;
mod settings;
mod tags;
mod versions;

use std::collections::HashSet;

use super::sorted;
use crate::{
    Bucket, MultipartUpload, ObjectIndexError, ObjectMetadata, ObjectRecord, Part, Segment, Store,
    StoreError,
};

fn bucket(name: &str, account_id: &str) -> Bucket {
    Bucket {
        name: name.into(),
        account_id: account_id.into(),
        region: String::new(),
        acl_json: "{}".into(),
        created_at: 5,
        policy: None,
        tags: Default::default(),
        versioning: Default::default(),
        settings: Default::default(),
    }
}

/// An object of `bucket`/`key` stored in `blobs` (id, size).
fn object(bucket: &str, key: &str, blobs: &[(&str, u64)], writer: &str) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        segments: blobs
            .iter()
            .map(|(id, size)| Segment {
                blob_id: (*id).into(),
                size: *size,
            })
            .collect(),
        size: blobs.iter().map(|(_, size)| size).sum(),
        etag: format!("\"etag-{key}\""),
        last_modified: 6,
        metadata: ObjectMetadata {
            content_type: Some("text/plain".into()),
            user: [("colour".to_owned(), "blue".to_owned())].into(),
            ..ObjectMetadata::default()
        },
        acl_json: "{}".into(),
        owner_account: writer.into(),
        tags: Default::default(),
        version_id: crate::NULL_VERSION.into(),
        delete_marker: false,
        encryption: None,
    }
}

fn upload(id: &str, bucket: &str, key: &str, initiated: i64) -> MultipartUpload {
    MultipartUpload {
        upload_id: id.into(),
        bucket: bucket.into(),
        key: key.into(),
        owner_account: "444444444444".into(),
        initiated,
        metadata: ObjectMetadata {
            cache_control: Some("no-cache".into()),
            ..ObjectMetadata::default()
        },
        acl_json: "{\"grants\":[]}".into(),
        tags: Default::default(),
        encryption: None,
    }
}

fn part(upload_id: &str, number: u32, blob_id: &str, size: u64) -> Part {
    Part {
        upload_id: upload_id.into(),
        part_number: number,
        blob_id: blob_id.into(),
        size,
        etag: format!("\"{blob_id}\""),
        last_modified: 7,
    }
}

/// The bucket `name`, which must exist.
async fn stored_bucket(store: &dyn Store, name: &str) -> Bucket {
    store.bucket(name).await.expect("bucket").expect("exists")
}

fn keys(objects: &[ObjectRecord]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

fn blob_set(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

fn is_quota_exceeded<T: std::fmt::Debug>(result: Result<T, StoreError>, expected: u64) -> bool {
    matches!(
        result,
        Err(StoreError::Objects(ObjectIndexError::QuotaExceeded { quota })) if quota == expected
    )
}

/// Runs the object checks.
pub async fn run(store: &dyn Store) {
    let gamma = "444444444444";
    let delta = "555555555555";
    super::create_accounts(store, &[(gamma, "gamma"), (delta, "delta")]).await;
    buckets(store, gamma, delta).await;
    listing(store, gamma).await;
    replacing_and_acls(store, gamma).await;
    usage_and_quota(store, gamma, delta).await;
    multipart(store, gamma, delta).await;
    bucket_policies(store, gamma).await;
    tags::run(store, gamma).await;
    versions::run(store, gamma).await;
    settings::run(store, gamma).await;
    lifecycle::run(store, gamma, delta).await;
    encryption(store, gamma).await;
    concurrent::run(store).await;
    deleting_buckets(store).await;
}

async fn bucket_policies(store: &dyn Store, gamma: &str) {
    let policy_of = async |name: &str| stored_bucket(store, name).await.policy;
    assert_eq!(policy_of("bkt").await, None);
    // Kept byte for byte, white space included.
    let text = "{ \"Version\": \"2012-10-17\",\n  \"Statement\": [] }";
    store
        .set_bucket_policy("bkt", Some(text))
        .await
        .expect("set policy");
    assert_eq!(policy_of("bkt").await.as_deref(), Some(text));
    assert_eq!(policy_of("abc").await, None, "another bucket changed");
    let listed = store.buckets(gamma).await.expect("buckets");
    assert_eq!(
        listed
            .iter()
            .find(|b| b.name == "bkt")
            .and_then(|b| b.policy.as_deref()),
        Some(text)
    );
    store
        .set_bucket_policy("bkt", Some("{}"))
        .await
        .expect("replace policy");
    assert_eq!(policy_of("bkt").await.as_deref(), Some("{}"));
    store
        .set_bucket_policy("bkt", None)
        .await
        .expect("remove policy");
    assert_eq!(policy_of("bkt").await, None);
    assert!(matches!(
        store.set_bucket_policy("nope", Some("{}")).await,
        Err(StoreError::NotFound(_))
    ));
    // A bucket created with a policy keeps it; deleting_buckets checks a
    // recreated bucket does not inherit one.
    let with_policy = Bucket {
        policy: Some("{\"Statement\":[]}".into()),
        ..bucket("with-policy", gamma)
    };
    store.create_bucket(&with_policy).await.expect("create");
    assert_eq!(
        store.bucket("with-policy").await.expect("bucket"),
        Some(with_policy)
    );
    store.delete_bucket("with-policy").await.expect("delete");
    store
        .set_bucket_policy("bkt", Some(text))
        .await
        .expect("set policy again");
}

async fn buckets(store: &dyn Store, gamma: &str, delta: &str) {
    store
        .create_bucket(&bucket("bkt", gamma))
        .await
        .expect("create bucket");
    store
        .create_bucket(&bucket("abc", gamma))
        .await
        .expect("create bucket");
    // Bucket names are global: taken in any account is a conflict.
    assert!(matches!(
        store.create_bucket(&bucket("bkt", delta)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_bucket(&bucket("bkt", gamma)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.bucket("bkt").await.expect("bucket"),
        Some(bucket("bkt", gamma)),
        "conflicting create changed the bucket"
    );
    assert_eq!(store.bucket("nope").await.expect("bucket"), None);
    let names: Vec<_> = store
        .buckets(gamma)
        .await
        .expect("buckets")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["abc", "bkt"]);
    assert!(store.buckets(delta).await.expect("buckets").is_empty());
    store
        .set_bucket_acl("abc", "{\"public\":true}")
        .await
        .expect("set acl");
    assert_eq!(
        store
            .bucket("abc")
            .await
            .expect("bucket")
            .expect("abc")
            .acl_json,
        "{\"public\":true}"
    );
    assert!(matches!(
        store.set_bucket_acl("nope", "{}").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_bucket("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .put_object(&object("nope", "k", &[("x", 1)], gamma))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store.referenced_blobs().await.expect("blobs").is_empty(),
        "object in a missing bucket was stored"
    );
}

async fn listing(store: &dyn Store, gamma: &str) {
    // Byte order of UTF-8: upper case before lower case, '%' < '/' < '_',
    // DEL (0x7f) before any multi-byte character.
    let expected = [
        "A", "Z", "a", "a%", "a%b", "a/b", "a_", "ab", "a\u{7f}", "aé", "b", "😀",
    ];
    let mut shuffled = expected.to_vec();
    shuffled.reverse();
    shuffled.swap(0, 5);
    for (i, key) in shuffled.iter().enumerate() {
        let blob = format!("list-{i}");
        store
            .put_object(&object("bkt", key, &[(&blob, 1)], gamma))
            .await
            .expect("put");
    }
    // A neighbour bucket's objects never show up.
    store
        .put_object(&object("abc", "a", &[("abc-a", 1)], gamma))
        .await
        .expect("put");
    let all = store.list_objects("bkt", "", "", 100).await.expect("list");
    assert_eq!(keys(&all), expected);
    assert_eq!(
        all[2],
        store.object("bkt", "a").await.expect("get").expect("a"),
        "listed record differs from the stored one"
    );
    let list = |prefix: &'static str, start_after: &'static str, limit: usize| async move {
        let found = store
            .list_objects("bkt", prefix, start_after, limit)
            .await
            .expect("list");
        keys(&found)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // '%' and '_' are not wildcards; matching is case-sensitive.
    assert_eq!(list("a%", "", 100).await, ["a%", "a%b"]);
    assert_eq!(list("a_", "", 100).await, ["a_"]);
    assert_eq!(list("A", "", 100).await, ["A"]);
    assert_eq!(list("a\u{7f}", "", 100).await, ["a\u{7f}"]);
    assert_eq!(list("aé", "", 100).await, ["aé"]);
    assert_eq!(list("😀", "", 100).await, ["😀"]);
    assert!(list("zz", "", 100).await.is_empty());
    assert!(list("a/b/", "", 100).await.is_empty());
    // Paging inside a prefix.
    assert_eq!(list("a", "", 2).await, ["a", "a%"]);
    assert_eq!(list("a", "a%", 2).await, ["a%b", "a/b"]);
    assert_eq!(list("a", "a%b", 3).await, ["a/b", "a_", "ab"]);
    assert_eq!(list("a", "ab", 100).await, ["a\u{7f}", "aé"]);
    // start_after need not be a key, nor inside the prefix.
    assert_eq!(list("a", "a0", 100).await, ["a_", "ab", "a\u{7f}", "aé"]);
    assert_eq!(list("b", "a", 100).await, ["b"]);
    assert!(list("a", "b", 100).await.is_empty());
    assert_eq!(list("", "b", 100).await, ["😀"]);
    assert!(list("", "", 0).await.is_empty());
    for key in expected {
        assert!(
            store
                .delete_object("bkt", key)
                .await
                .expect("delete")
                .is_some()
        );
    }
    assert!(
        store
            .delete_object("abc", "a")
            .await
            .expect("delete")
            .is_some()
    );
    assert!(list("", "", 100).await.is_empty());
    assert!(store.referenced_blobs().await.expect("blobs").is_empty());
}

async fn replacing_and_acls(store: &dyn Store, gamma: &str) {
    let first = object("bkt", "k", &[("k1", 3)], gamma);
    assert!(store.put_object(&first).await.expect("put").is_empty());
    assert_eq!(
        store.object("bkt", "k").await.expect("get"),
        Some(first.clone())
    );
    assert_eq!(store.object("abc", "k").await.expect("get"), None);
    // Replacing returns the blobs the old version used.
    let second = object("bkt", "k", &[("k2", 4), ("k3", 5)], gamma);
    assert_eq!(store.put_object(&second).await.expect("replace"), ["k1"]);
    assert_eq!(
        store.object("bkt", "k").await.expect("get"),
        Some(second.clone())
    );
    assert_eq!(
        store.referenced_blobs().await.expect("blobs"),
        blob_set(&["k2", "k3"])
    );
    // Object ACLs.
    assert!(
        store
            .set_object_acl("bkt", "k", None, "{\"grants\":1}")
            .await
            .expect("acl")
    );
    assert_eq!(
        store
            .object("bkt", "k")
            .await
            .expect("get")
            .expect("k")
            .acl_json,
        "{\"grants\":1}"
    );
    assert!(
        !store
            .set_object_acl("bkt", "missing", None, "{}")
            .await
            .expect("acl")
    );
    assert_eq!(store.object("bkt", "missing").await.expect("get"), None);
    // Deleting returns its blobs, once.
    assert_eq!(
        store
            .delete_object("bkt", "k")
            .await
            .expect("delete")
            .map(sorted),
        Some(vec!["k2".to_owned(), "k3".to_owned()])
    );
    assert_eq!(store.delete_object("bkt", "k").await.expect("delete"), None);
    assert_eq!(store.object("bkt", "k").await.expect("get"), None);
    assert_eq!(store.account_usage(gamma).await.expect("usage"), 0);
}

async fn usage_and_quota(store: &dyn Store, gamma: &str, delta: &str) {
    assert_eq!(store.account_usage(delta).await.expect("usage"), 0);
    assert_eq!(store.account_quota(delta).await.expect("quota"), None);
    store
        .create_bucket(&bucket("delta-bkt", delta))
        .await
        .expect("create");
    store
        .set_account_quota(delta, Some(100))
        .await
        .expect("set quota");
    assert_eq!(store.account_quota(delta).await.expect("quota"), Some(100));
    // The bucket owner is charged, not the writer.
    let sixty = object("delta-bkt", "sixty", &[("q60", 60)], gamma);
    store.put_object(&sixty).await.expect("put 60");
    assert_eq!(store.account_usage(delta).await.expect("usage"), 60);
    assert_eq!(store.account_usage(gamma).await.expect("usage"), 0);
    // Going over the quota changes nothing.
    assert!(is_quota_exceeded(
        store
            .put_object(&object("delta-bkt", "fifty", &[("q50", 50)], delta))
            .await,
        100
    ));
    assert_eq!(store.object("delta-bkt", "fifty").await.expect("get"), None);
    assert_eq!(store.account_usage(delta).await.expect("usage"), 60);
    // Replacing counts only the difference: 60 -> 100 fits exactly.
    let hundred = object("delta-bkt", "sixty", &[("q100", 100)], delta);
    assert_eq!(store.put_object(&hundred).await.expect("replace"), ["q60"]);
    assert_eq!(store.account_usage(delta).await.expect("usage"), 100);
    assert!(is_quota_exceeded(
        store
            .put_object(&object("delta-bkt", "sixty", &[("q101", 101)], delta))
            .await,
        100
    ));
    assert_eq!(
        store.object("delta-bkt", "sixty").await.expect("get"),
        Some(hundred.clone()),
        "refused replace changed the object"
    );
    assert_eq!(store.account_usage(delta).await.expect("usage"), 100);
    assert!(
        !store
            .referenced_blobs()
            .await
            .expect("blobs")
            .contains("q101")
    );
    // Empty objects always fit.
    store
        .put_object(&object("delta-bkt", "empty", &[], delta))
        .await
        .expect("empty object");
    // Raising the quota lets more in; removing it lifts the limit.
    store
        .set_account_quota(delta, Some(150))
        .await
        .expect("raise quota");
    assert_eq!(store.account_usage(delta).await.expect("usage"), 100);
    store
        .put_object(&object("delta-bkt", "fifty", &[("q50", 50)], delta))
        .await
        .expect("put 50");
    assert_eq!(store.account_usage(delta).await.expect("usage"), 150);
    store
        .set_account_quota(delta, None)
        .await
        .expect("no quota");
    assert_eq!(store.account_quota(delta).await.expect("quota"), None);
    store
        .put_object(&object("delta-bkt", "big", &[("q1000", 1000)], delta))
        .await
        .expect("put without quota");
    assert_eq!(store.account_usage(delta).await.expect("usage"), 1150);
    // Over a lowered quota, growth is refused but shrinking is not.
    store
        .set_account_quota(delta, Some(500))
        .await
        .expect("lower quota");
    assert!(is_quota_exceeded(
        store
            .put_object(&object("delta-bkt", "more", &[("q1", 1)], delta))
            .await,
        500
    ));
    store
        .put_object(&object("delta-bkt", "big", &[("q900", 900)], delta))
        .await
        .expect("shrinking replace allowed over quota");
    assert_eq!(store.account_usage(delta).await.expect("usage"), 1050);
    store
        .set_account_quota(delta, None)
        .await
        .expect("no quota again");
    for key in ["sixty", "fifty", "big", "empty"] {
        store
            .delete_object("delta-bkt", key)
            .await
            .expect("delete")
            .expect("existed");
    }
    assert_eq!(store.account_usage(delta).await.expect("usage"), 0);
    assert_eq!(store.account_usage(gamma).await.expect("usage"), 0);
    assert!(store.referenced_blobs().await.expect("blobs").is_empty());
}

async fn multipart(store: &dyn Store, gamma: &str, delta: &str) {
    assert!(matches!(
        store.create_upload(&upload("u-x", "nope", "k", 1)).await,
        Err(StoreError::NotFound(_))
    ));
    // Listed by key, then initiation time.
    let u1 = upload("u1", "bkt", "mp", 20);
    let u2 = upload("u2", "bkt", "mp", 10);
    let u0 = upload("u0", "bkt", "a", 50);
    for u in [&u1, &u2, &u0] {
        store.create_upload(u).await.expect("create upload");
    }
    store
        .create_upload(&upload("u-other", "abc", "mp", 1))
        .await
        .expect("create upload");
    assert_eq!(store.upload("u1").await.expect("upload"), Some(u1.clone()));
    assert_eq!(store.upload("u-none").await.expect("upload"), None);
    let ids: Vec<_> = store
        .uploads("bkt")
        .await
        .expect("uploads")
        .into_iter()
        .map(|u| u.upload_id)
        .collect();
    assert_eq!(ids, ["u0", "u2", "u1"]);

    assert!(matches!(
        store.put_part(&part("u-none", 1, "px", 1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .put_part(&part("u1", 2, "p2", 20))
            .await
            .expect("part"),
        None
    );
    assert_eq!(
        store
            .put_part(&part("u1", 1, "p1a", 10))
            .await
            .expect("part"),
        None
    );
    // Replacing a part returns the old blob.
    assert_eq!(
        store
            .put_part(&part("u1", 1, "p1b", 11))
            .await
            .expect("part"),
        Some("p1a".to_owned())
    );
    assert_eq!(
        store
            .put_part(&part("u1", 3, "p3", 30))
            .await
            .expect("part"),
        None
    );
    store
        .put_part(&part("u2", 1, "u2p1", 5))
        .await
        .expect("part");
    let parts = store.parts("u1").await.expect("parts");
    assert_eq!(
        parts,
        [
            part("u1", 1, "p1b", 11),
            part("u1", 2, "p2", 20),
            part("u1", 3, "p3", 30)
        ]
    );
    assert!(store.parts("u-none").await.expect("parts").is_empty());
    // Parts do not count towards storage use.
    assert_eq!(store.account_usage(gamma).await.expect("usage"), 0);

    // An existing object at the key gets replaced by the completion.
    store
        .put_object(&object("bkt", "mp", &[("mp-old", 7)], gamma))
        .await
        .expect("put");
    assert_eq!(
        store.referenced_blobs().await.expect("blobs"),
        blob_set(&["p1b", "p2", "p3", "u2p1", "mp-old"])
    );

    // Over quota: nothing changes, the upload can still be completed later.
    store
        .set_account_quota(gamma, Some(20))
        .await
        .expect("quota");
    let done = object("bkt", "mp", &[("p1b", 11), ("p2", 20)], gamma);
    assert!(is_quota_exceeded(
        store.complete_upload("u1", &done).await,
        20
    ));
    assert_eq!(store.upload("u1").await.expect("upload"), Some(u1.clone()));
    assert_eq!(store.parts("u1").await.expect("parts").len(), 3);
    assert_eq!(
        store
            .object("bkt", "mp")
            .await
            .expect("get")
            .expect("mp")
            .segments[0]
            .blob_id,
        "mp-old"
    );
    assert_eq!(store.account_usage(gamma).await.expect("usage"), 7);
    store.set_account_quota(gamma, None).await.expect("quota");

    // Completing uses parts 1 and 2; part 3's blob and the replaced
    // object's blob are returned for deletion.
    assert_eq!(
        sorted(store.complete_upload("u1", &done).await.expect("complete")),
        ["mp-old", "p3"]
    );
    assert_eq!(
        store.object("bkt", "mp").await.expect("get"),
        Some(done.clone())
    );
    assert_eq!(store.upload("u1").await.expect("upload"), None);
    assert!(store.parts("u1").await.expect("parts").is_empty());
    assert_eq!(store.account_usage(gamma).await.expect("usage"), 31);
    assert!(matches!(
        store.complete_upload("u1", &done).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.put_part(&part("u1", 4, "p4", 1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.referenced_blobs().await.expect("blobs"),
        blob_set(&["p1b", "p2", "u2p1"])
    );

    // Aborting returns the parts' blobs.
    assert_eq!(store.abort_upload("u2").await.expect("abort"), ["u2p1"]);
    assert!(matches!(
        store.abort_upload("u2").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.parts("u2").await.expect("parts").is_empty());
    assert!(
        store
            .abort_upload("u0")
            .await
            .expect("abort empty")
            .is_empty()
    );
    assert!(store.uploads("bkt").await.expect("uploads").is_empty());
    assert_eq!(store.uploads("abc").await.expect("uploads").len(), 1);
    assert_eq!(
        store.referenced_blobs().await.expect("blobs"),
        blob_set(&["p1b", "p2"])
    );
    assert_eq!(store.account_usage(delta).await.expect("usage"), 0);
}

async fn deleting_buckets(store: &dyn Store) {
    // "bkt" holds the completed object (and now an upload too), "abc"
    // only the upload "u-other", to which a part is added.
    store
        .create_upload(&upload("u-bkt", "bkt", "later", 30))
        .await
        .expect("create upload");
    for (upload_id, number, blob) in [
        ("u-bkt", 1, "ubkt1"),
        ("u-other", 1, "uother1"),
        ("u-other", 2, "uother2"),
    ] {
        store
            .put_part(&part(upload_id, number, blob, 4))
            .await
            .expect("part");
    }
    assert!(matches!(
        store.delete_bucket("bkt").await,
        Err(StoreError::Objects(ObjectIndexError::BucketNotEmpty))
    ));
    assert!(store.bucket("bkt").await.expect("bucket").is_some());
    assert!(
        store.upload("u-bkt").await.expect("upload").is_some(),
        "a refused delete dropped an upload"
    );
    assert_eq!(
        store.referenced_blobs().await.expect("blobs"),
        blob_set(&["p1b", "p2", "ubkt1", "uother1", "uother2"])
    );
    store
        .delete_object("bkt", "mp")
        .await
        .expect("delete")
        .expect("existed");
    assert!(
        store
            .bucket("bkt")
            .await
            .expect("bucket")
            .expect("bkt")
            .policy
            .is_some(),
        "bucket_policies left a policy on bkt"
    );
    // Abandoned uploads go with their bucket, and their parts' blobs are
    // handed back to be deleted.
    assert_eq!(
        store.delete_bucket("bkt").await.expect("delete bucket"),
        ["ubkt1"]
    );
    assert_eq!(store.bucket("bkt").await.expect("bucket"), None);
    assert_eq!(store.upload("u-bkt").await.expect("upload"), None);
    assert!(matches!(
        store.delete_bucket("bkt").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        sorted(store.delete_bucket("abc").await.expect("delete bucket")),
        ["uother1", "uother2"]
    );
    assert_eq!(store.upload("u-other").await.expect("upload"), None);
    assert!(store.parts("u-other").await.expect("parts").is_empty());
    assert!(store.uploads("abc").await.expect("uploads").is_empty());
    assert!(
        store
            .delete_bucket("delta-bkt")
            .await
            .expect("delete bucket")
            .is_empty()
    );
    assert!(store.referenced_blobs().await.expect("blobs").is_empty());
    // The name is free again, for any account, and the old policy and tags
    // are gone with the old bucket.
    store
        .create_bucket(&bucket("bkt", "555555555555"))
        .await
        .expect("recreate");
    let recreated = store.bucket("bkt").await.expect("bucket").expect("bkt");
    assert_eq!(recreated.policy, None);
    assert!(recreated.tags.is_empty(), "a recreated bucket kept tags");
}

/// How data is encrypted is kept with the version and the upload, and
/// reads back as written (absent: in the clear).
async fn encryption(store: &dyn Store, gamma: &str) {
    store
        .create_bucket(&bucket("sealed", gamma))
        .await
        .expect("create");
    let sse = crate::ObjectEncryption {
        algorithm: "AES256".into(),
        wrapped_key: Some("00ff".into()),
        customer_key_digest: None,
    };
    let sealed = ObjectRecord {
        encryption: Some(sse.clone()),
        ..object("sealed", "s", &[("sealed-blob", 3)], gamma)
    };
    store.put_object(&sealed).await.expect("put");
    store
        .put_object(&object("sealed", "plain", &[("plain-blob", 3)], gamma))
        .await
        .expect("put");
    let read = store
        .object("sealed", "s")
        .await
        .expect("read")
        .expect("object");
    assert_eq!(read.encryption, Some(sse.clone()));
    let plain = store
        .object("sealed", "plain")
        .await
        .expect("read")
        .expect("object");
    assert_eq!(plain.encryption, None);
    let listed = store
        .list_objects("sealed", "", "", 10)
        .await
        .expect("list");
    assert_eq!(listed[1].encryption, Some(sse.clone()));
    let customer = crate::ObjectEncryption {
        algorithm: "AES256".into(),
        wrapped_key: None,
        customer_key_digest: Some("digest".into()),
    };
    let up = MultipartUpload {
        encryption: Some(customer.clone()),
        ..upload("sealed-up", "sealed", "u", 1)
    };
    store.create_upload(&up).await.expect("upload");
    let read = store
        .upload("sealed-up")
        .await
        .expect("read")
        .expect("upload");
    assert_eq!(read.encryption, Some(customer));
    store.abort_upload("sealed-up").await.expect("abort");
    for key in ["s", "plain"] {
        store.delete_object("sealed", key).await.expect("delete");
    }
    store.delete_bucket("sealed").await.expect("delete bucket");
}
