//! Conformance checks of tag storage: a bucket's tags, an object's (set
//! with the object, replaced alone, replaced again when the object is
//! overwritten, gone when it is deleted), and an upload's, which its
//! completed object gets. Runs between the multipart and bucket-deletion
//! checks and leaves behind only a tag set on `bkt`, which deleting the
//! bucket must drop.

use super::{blob_set, object, part, stored_bucket, upload};
use crate::objects::Tags;
use crate::{Store, StoreError};

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Runs the tag checks.
pub(super) async fn run(store: &dyn Store, gamma: &str) {
    let blobs_before = store.referenced_blobs().await.expect("blobs");
    bucket_tags(store, gamma).await;
    object_tags(store, gamma).await;
    upload_tags(store, gamma).await;
    assert_eq!(
        store.referenced_blobs().await.expect("blobs"),
        blobs_before,
        "the tag checks left objects behind"
    );
}

async fn bucket_tags(store: &dyn Store, gamma: &str) {
    let tags_of = async |name: &str| stored_bucket(store, name).await.tags;
    assert!(tags_of("bkt").await.is_empty());
    // Keys and values are kept exactly, JSON's special characters and
    // non-ASCII text included.
    let set = tags(&[("ключ", "зна\"че\\ние"), ("a b", ""), ("x", "1")]);
    store.set_bucket_tags("bkt", &set).await.expect("tag");
    assert_eq!(tags_of("bkt").await, set);
    assert!(tags_of("abc").await.is_empty(), "another bucket changed");
    let listed = store.buckets(gamma).await.expect("buckets");
    assert_eq!(
        listed.iter().find(|b| b.name == "bkt").map(|b| &b.tags),
        Some(&set)
    );
    let replacement = tags(&[("env", "test")]);
    store
        .set_bucket_tags("bkt", &replacement)
        .await
        .expect("replace");
    assert_eq!(tags_of("bkt").await, replacement);
    assert!(matches!(
        store.set_bucket_tags("nope", &set).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .set_bucket_tags("abc", &set)
        .await
        .expect("tag another");
    store
        .set_bucket_tags("abc", &Tags::new())
        .await
        .expect("untag");
    assert!(tags_of("abc").await.is_empty());
    // The policy is another column: tagging leaves it alone.
    assert!(stored_bucket(store, "bkt").await.policy.is_some());
}

async fn object_tags(store: &dyn Store, gamma: &str) {
    let tags_of = async |key: &str| {
        store
            .object("bkt", key)
            .await
            .expect("object")
            .map(|o| o.tags)
    };
    let first = tags(&[("project", "mallee"), ("tier", "gold")]);
    let tagged = crate::ObjectRecord {
        tags: first.clone(),
        ..object("bkt", "tagged", &[("tag-1", 3)], gamma)
    };
    store.put_object(&tagged).await.expect("put");
    assert_eq!(
        store.object("bkt", "tagged").await.expect("object"),
        Some(tagged.clone())
    );
    let listed = store
        .list_objects("bkt", "tagged", "", 10)
        .await
        .expect("list");
    assert_eq!(listed.first().map(|o| &o.tags), Some(&first));

    // Replacing the tags changes nothing else.
    let second = tags(&[("project", "other")]);
    assert!(
        store
            .set_object_tags("bkt", "tagged", None, &second)
            .await
            .expect("tag")
    );
    assert_eq!(
        store.object("bkt", "tagged").await.expect("object"),
        Some(crate::ObjectRecord {
            tags: second.clone(),
            ..tagged.clone()
        })
    );
    // A missing object is not created by tagging it.
    assert!(
        !store
            .set_object_tags("bkt", "untagged", None, &second)
            .await
            .expect("tag missing")
    );
    assert_eq!(tags_of("untagged").await, None);
    assert!(
        !store
            .set_object_tags("nope", "tagged", None, &second)
            .await
            .expect("tag in missing bucket")
    );
    // Emptying the set removes the tags.
    assert!(
        store
            .set_object_tags("bkt", "tagged", None, &Tags::new())
            .await
            .expect("untag")
    );
    assert_eq!(tags_of("tagged").await, Some(Tags::new()));

    // An overwrite replaces the tags with the new object's (none here).
    store
        .set_object_tags("bkt", "tagged", None, &first)
        .await
        .expect("tag");
    let freed = store
        .put_object(&object("bkt", "tagged", &[("tag-2", 3)], gamma))
        .await
        .expect("overwrite");
    assert_eq!(freed, ["tag-1"]);
    assert_eq!(tags_of("tagged").await, Some(Tags::new()));

    // Deleting the object deletes its tags: the key written again has none.
    store
        .set_object_tags("bkt", "tagged", None, &first)
        .await
        .expect("tag");
    store
        .delete_object("bkt", "tagged")
        .await
        .expect("delete")
        .expect("existed");
    store
        .put_object(&object("bkt", "tagged", &[("tag-3", 3)], gamma))
        .await
        .expect("put again");
    assert_eq!(tags_of("tagged").await, Some(Tags::new()));
    store
        .delete_object("bkt", "tagged")
        .await
        .expect("delete")
        .expect("existed");
}

async fn upload_tags(store: &dyn Store, gamma: &str) {
    let set = tags(&[("from", "upload")]);
    let started = crate::MultipartUpload {
        tags: set.clone(),
        ..upload("u-tags", "bkt", "tagged-mp", 40)
    };
    store.create_upload(&started).await.expect("create upload");
    assert_eq!(
        store.upload("u-tags").await.expect("upload"),
        Some(started.clone())
    );
    assert_eq!(
        store
            .uploads("bkt")
            .await
            .expect("uploads")
            .iter()
            .find(|u| u.upload_id == "u-tags")
            .map(|u| &u.tags),
        Some(&set)
    );
    store
        .put_part(&part("u-tags", 1, "tag-mp1", 5))
        .await
        .expect("part");
    assert!(
        store
            .referenced_blobs()
            .await
            .expect("blobs")
            .is_superset(&blob_set(&["tag-mp1"]))
    );
    // The completing caller gives the object the upload's tags.
    let completed = crate::ObjectRecord {
        tags: started.tags.clone(),
        ..object("bkt", "tagged-mp", &[("tag-mp1", 5)], gamma)
    };
    assert!(
        store
            .complete_upload("u-tags", &completed)
            .await
            .expect("complete")
            .is_empty()
    );
    assert_eq!(
        store
            .object("bkt", "tagged-mp")
            .await
            .expect("object")
            .map(|o| o.tags),
        Some(set)
    );
    assert_eq!(store.upload("u-tags").await.expect("upload"), None);
    store
        .delete_object("bkt", "tagged-mp")
        .await
        .expect("delete")
        .expect("existed");
}
