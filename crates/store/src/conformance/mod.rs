//! The conformance suite every [`Store`] backend must pass. Backends call
//! [`run`] from their own tests with a fresh, empty store; it takes any
//! `&dyn Store`, so one suite serves every backend. Compiled only with the
//! crate's `conformance` feature, which those tests enable.

use std::collections::HashSet;

mod addresses;
mod metal;
mod network;
mod snapshots;
mod volumes;

use crate::{
    AccessKey, Account, Bucket, Image, InstanceRecord, KeyPair, LaunchPermissionChange,
    MultipartUpload, ObjectIndexError, ObjectMetadata, ObjectRecord, Part, Reservation, Segment,
    Store, StoreError, TagPair, TagSelector, User,
};

fn account(id: &str, name: &str) -> (Account, User) {
    (
        Account {
            account_id: id.into(),
            name: name.into(),
            is_admin: false,
            created_at: 1,
        },
        User {
            account_id: id.into(),
            user_name: "admin".into(),
            user_id: format!("AIDA{id}"),
            created_at: 1,
        },
    )
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

/// Runs every check against `store`, panicking with a message on the first
/// difference from the contract.
pub async fn run(store: &dyn Store) {
    accounts_and_keys(store).await;
    key_pairs_and_tags(store).await;
    settings(store).await;
    nodes(store).await;
    objects(store).await;
    images(store).await;
    instances(store).await;
    addresses::run(store).await;
    network::run(store).await;
    volumes::run(store).await;
    snapshots::run(store).await;
    metal::run(store).await;
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
    };
    store.upsert_node(&node).await.expect("insert node");
    node.cores_free = 2;
    store.upsert_node(&node).await.expect("update node");
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

fn bucket(name: &str, account_id: &str) -> Bucket {
    Bucket {
        name: name.into(),
        account_id: account_id.into(),
        region: String::new(),
        acl_json: "{}".into(),
        created_at: 5,
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

fn keys(objects: &[ObjectRecord]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
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

async fn objects(store: &dyn Store) {
    let gamma = "444444444444";
    let delta = "555555555555";
    for (id, name) in [(gamma, "gamma"), (delta, "delta")] {
        let (a, u) = account(id, name);
        store.create_account(&a, &u).await.expect("create account");
    }
    buckets(store, gamma, delta).await;
    listing(store, gamma).await;
    replacing_and_acls(store, gamma).await;
    usage_and_quota(store, gamma, delta).await;
    multipart(store, gamma, delta).await;
    deleting_buckets(store).await;
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
            .set_object_acl("bkt", "k", "{\"grants\":1}")
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
            .set_object_acl("bkt", "missing", "{}")
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
    // "bkt" holds the completed object, "abc" an upload.
    for name in ["bkt", "abc"] {
        assert!(matches!(
            store.delete_bucket(name).await,
            Err(StoreError::Objects(ObjectIndexError::BucketNotEmpty))
        ));
        assert!(store.bucket(name).await.expect("bucket").is_some());
    }
    store
        .delete_object("bkt", "mp")
        .await
        .expect("delete")
        .expect("existed");
    store.delete_bucket("bkt").await.expect("delete bucket");
    assert_eq!(store.bucket("bkt").await.expect("bucket"), None);
    assert!(matches!(
        store.delete_bucket("bkt").await,
        Err(StoreError::NotFound(_))
    ));
    store.abort_upload("u-other").await.expect("abort");
    store.delete_bucket("abc").await.expect("delete bucket");
    store
        .delete_bucket("delta-bkt")
        .await
        .expect("delete bucket");
    assert!(store.referenced_blobs().await.expect("blobs").is_empty());
    // The name is free again, for any account.
    store
        .create_bucket(&bucket("bkt", "555555555555"))
        .await
        .expect("recreate");
}

fn image(id: &str, account_id: &str, name: &str) -> Image {
    Image {
        image_id: id.into(),
        account_id: account_id.into(),
        name: name.into(),
        description: Some("a test image".into()),
        image_type: "machine".into(),
        architecture: "x86_64".into(),
        virtualization_type: "paravirtual".into(),
        root_device_name: "/dev/sda1".into(),
        root_device_type: "instance-store".into(),
        kernel_id: Some("aki-1".into()),
        ramdisk_id: None,
        location: "images/root.img".into(),
        bucket: "images".into(),
        key: "root.img".into(),
        size: 1 << 33,
        etag: "0123abcd".into(),
        disk_format: "raw".into(),
        state: "available".into(),
        is_public: false,
        created_at: 9,
        launch_permissions: Vec::new(),
        block_device_mappings: Vec::new(),
    }
}

fn image_ids(images: &[Image]) -> Vec<&str> {
    images.iter().map(|i| i.image_id.as_str()).collect()
}

async fn images(store: &dyn Store) {
    let alpha = "111111111111";
    let beta = "333333333333";
    let first = image("ami-1", alpha, "first");
    store
        .create_image(&first, &[tag("role", "web")])
        .await
        .expect("create image");
    assert_eq!(
        store.image("ami-1").await.expect("get"),
        Some(first.clone()),
        "image does not round-trip"
    );
    // Names are unique per owner; a failed create leaves nothing behind.
    assert!(matches!(
        store
            .create_image(&image("ami-2", alpha, "first"), &[tag("x", "y")])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.image("ami-2").await.expect("get"), None);
    assert!(
        store
            .resources(&["ami-2".into()])
            .await
            .expect("resources")
            .is_empty()
    );
    assert!(matches!(
        store
            .create_image(&image("ami-1", beta, "other"), &[])
            .await,
        Err(StoreError::Conflict(_))
    ));
    let shared = Image {
        launch_permissions: vec!["999999999999".into(), "333333333333".into()],
        ..image("ami-3", beta, "first")
    };
    store
        .create_image(&shared, &[])
        .await
        .expect("same name, other account");
    let stored = store.image("ami-3").await.expect("get").expect("present");
    assert_eq!(stored.launch_permissions, ["333333333333", "999999999999"]);

    // Images are taggable resources of type `image`, by their owner only.
    let tags = store.tags(alpha).await.expect("tags");
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].resource_type, "image");
    assert!(matches!(
        store
            .put_tags(beta, &["ami-1".into()], &[tag("a", "b")])
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Visibility: own, shared with the account, or public.
    assert_eq!(
        image_ids(&store.images_visible_to(alpha).await.expect("list")),
        ["ami-1"]
    );
    assert_eq!(
        image_ids(&store.images_visible_to(beta).await.expect("list")),
        ["ami-3"]
    );
    let gamma = "444444444444";
    assert!(
        store
            .images_visible_to(gamma)
            .await
            .expect("list")
            .is_empty()
    );
    store
        .change_launch_permissions(
            "ami-1",
            &LaunchPermissionChange {
                add: vec![gamma.into(), gamma.into(), beta.into()],
                remove: vec!["555555555555".into()],
                public: None,
            },
        )
        .await
        .expect("share");
    assert_eq!(
        image_ids(&store.images_visible_to(gamma).await.expect("list")),
        ["ami-1"]
    );
    assert_eq!(
        image_ids(&store.images_visible_to(beta).await.expect("list")),
        ["ami-1", "ami-3"]
    );
    store
        .change_launch_permissions(
            "ami-1",
            &LaunchPermissionChange {
                add: Vec::new(),
                remove: vec![gamma.into()],
                public: Some(true),
            },
        )
        .await
        .expect("publish");
    let published = store.image("ami-1").await.expect("get").expect("present");
    assert!(published.is_public);
    assert_eq!(published.launch_permissions, [beta]);
    assert_eq!(
        image_ids(&store.images_visible_to(gamma).await.expect("list")),
        ["ami-1"]
    );
    store
        .reset_launch_permissions("ami-1")
        .await
        .expect("reset");
    let reset = store.image("ami-1").await.expect("get").expect("present");
    assert!(!reset.is_public && reset.launch_permissions.is_empty());
    assert!(
        store
            .images_visible_to(gamma)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(matches!(
        store
            .change_launch_permissions("ami-404", &LaunchPermissionChange::default())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.reset_launch_permissions("ami-404").await,
        Err(StoreError::NotFound(_))
    ));

    store
        .set_image_description("ami-1", None)
        .await
        .expect("clear description");
    assert_eq!(
        store
            .image("ami-1")
            .await
            .expect("get")
            .expect("present")
            .description,
        None
    );
    store
        .set_image_description("ami-1", Some("new"))
        .await
        .expect("describe");
    assert_eq!(
        store
            .image("ami-1")
            .await
            .expect("get")
            .expect("present")
            .description
            .as_deref(),
        Some("new")
    );
    assert!(matches!(
        store.set_image_description("ami-404", Some("x")).await,
        Err(StoreError::NotFound(_))
    ));

    // Only the owner deletes; deleting removes tags, permissions and the
    // name, which can then be registered again.
    assert!(
        !store
            .delete_image(alpha, "ami-3")
            .await
            .expect("not alpha's")
    );
    assert!(store.delete_image(beta, "ami-3").await.expect("delete"));
    assert!(!store.delete_image(beta, "ami-3").await.expect("again"));
    assert!(store.delete_image(alpha, "ami-1").await.expect("delete"));
    assert!(store.tags(alpha).await.expect("tags").is_empty());
    assert_eq!(store.image("ami-1").await.expect("get"), None);
    store
        .create_image(&image("ami-4", alpha, "first"), &[])
        .await
        .expect("name free again");
    assert_eq!(
        image_ids(&store.images_visible_to(alpha).await.expect("list")),
        ["ami-4"]
    );
}

fn reservation(id: &str, account_id: &str, token: Option<&str>, created_at: i64) -> Reservation {
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
fn instance(id: &str, reservation: &Reservation, index: i64, ip: &str, mac: u8) -> InstanceRecord {
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

/// Asserts that a refused reservation left nothing behind.
async fn left_nothing(store: &dyn Store, account_id: &str, token: &str, ids: &[&str]) {
    assert_eq!(
        store
            .reservation_by_client_token(account_id, token)
            .await
            .expect("by token"),
        None,
        "refused reservation was stored"
    );
    for id in ids {
        assert_eq!(
            store.instance(id).await.expect("instance"),
            None,
            "refused reservation stored instance {id}"
        );
    }
    let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    assert!(
        store.resources(&ids).await.expect("resources").is_empty(),
        "refused reservation left resource rows"
    );
}

async fn instances(store: &dyn Store) {
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

    // A live instance's address on the same network: the whole reservation
    // is refused, including the instance that did not collide and the tags.
    let r2 = reservation("r-2", alpha, Some("tok-2"), 200);
    let clash_ip = [
        instance("i-3", &r2, 0, "172.31.0.6", 3),
        instance("i-4", &r2, 1, "172.31.0.4", 4),
    ];
    assert!(matches!(
        store
            .create_reservation(&r2, &clash_ip, &[tag("x", "y")])
            .await,
        Err(StoreError::Conflict(_))
    ));
    left_nothing(store, alpha, "tok-2", &["i-3", "i-4"]).await;
    // A live instance's MAC: the same.
    let clash_mac = [
        instance("i-3", &r2, 0, "172.31.0.6", 3),
        instance("i-4", &r2, 1, "172.31.0.7", 2),
    ];
    assert!(matches!(
        store
            .create_reservation(&r2, &clash_mac, &[tag("x", "y")])
            .await,
        Err(StoreError::Conflict(_))
    ));
    left_nothing(store, alpha, "tok-2", &["i-3", "i-4"]).await;
    // Tags that cannot be applied (over AWS's 50 per resource) refuse the
    // instances and the reservation too.
    let fine = [
        instance("i-3", &r2, 0, "172.31.0.6", 3),
        instance("i-4", &r2, 1, "172.31.0.7", 4),
    ];
    let too_many: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
    assert!(matches!(
        store.create_reservation(&r2, &fine, &too_many).await,
        Err(StoreError::TagLimitExceeded(_))
    ));
    left_nothing(store, alpha, "tok-2", &["i-3", "i-4"]).await;
    // Two instances of one reservation sharing an address: the same.
    let clash_inside = [
        instance("i-3", &r2, 0, "172.31.0.6", 3),
        instance("i-4", &r2, 1, "172.31.0.6", 4),
    ];
    assert!(matches!(
        store.create_reservation(&r2, &clash_inside, &[]).await,
        Err(StoreError::Conflict(_))
    ));
    left_nothing(store, alpha, "tok-2", &["i-3", "i-4"]).await;
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
    let i3 = instance("i-3", &r2, 0, "172.31.0.6", 3);
    let i4 = instance("i-4", &r2, 1, "172.31.0.7", 4);
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
    assert!(
        store
            .resources(&["i-5".into()])
            .await
            .expect("resources")
            .is_empty()
    );
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
        store
            .resources(&["i-1".into()])
            .await
            .expect("resources")
            .is_empty(),
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
