//! Conformance checks of bucket settings: each stored byte for byte under
//! its own name, replaced, removed, listed with the bucket, refused for a
//! missing bucket, and gone with the bucket (not inherited by a bucket of
//! the same name). Works in buckets of its own, which it deletes.

use super::{bucket, stored_bucket};
use crate::objects::BucketSetting;
use crate::{Store, StoreError};

/// Runs the setting checks.
pub(super) async fn run(store: &dyn Store, gamma: &str) {
    store
        .create_bucket(&bucket("settings", gamma))
        .await
        .expect("create");
    let of = async |setting| {
        stored_bucket(store, "settings")
            .await
            .setting(setting)
            .map(str::to_owned)
    };
    assert_eq!(of(BucketSetting::Cors).await, None);
    assert!(stored_bucket(store, "settings").await.settings.is_empty());
    let cors = "[{\"origins\":[\"https://ä.example\"],\"q\":\"\\\"\"}]";
    store
        .set_bucket_setting("settings", BucketSetting::Cors, Some(cors))
        .await
        .expect("set");
    store
        .set_bucket_setting("settings", BucketSetting::Lifecycle, Some("[]"))
        .await
        .expect("set");
    assert_eq!(of(BucketSetting::Cors).await.as_deref(), Some(cors));
    assert_eq!(of(BucketSetting::Lifecycle).await.as_deref(), Some("[]"));
    assert_eq!(of(BucketSetting::PublicAccessBlock).await, None);
    let listed = store.buckets(gamma).await.expect("buckets");
    let listed = listed
        .iter()
        .find(|b| b.name == "settings")
        .expect("listed");
    assert_eq!(listed.setting(BucketSetting::Cors), Some(cors));
    assert!(
        stored_bucket(store, "bkt").await.settings.is_empty(),
        "another bucket changed"
    );
    store
        .set_bucket_setting("settings", BucketSetting::Cors, Some("{}"))
        .await
        .expect("replace");
    assert_eq!(of(BucketSetting::Cors).await.as_deref(), Some("{}"));
    store
        .set_bucket_setting("settings", BucketSetting::Cors, None)
        .await
        .expect("remove");
    assert_eq!(of(BucketSetting::Cors).await, None);
    assert_eq!(of(BucketSetting::Lifecycle).await.as_deref(), Some("[]"));
    // Removing what is not set is no error.
    store
        .set_bucket_setting("settings", BucketSetting::OwnershipControls, None)
        .await
        .expect("remove nothing");
    assert!(matches!(
        store
            .set_bucket_setting("nope", BucketSetting::Cors, Some("[]"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    store.delete_bucket("settings").await.expect("delete");
    store
        .create_bucket(&bucket("settings", gamma))
        .await
        .expect("create again");
    assert!(
        stored_bucket(store, "settings").await.settings.is_empty(),
        "a new bucket inherited settings"
    );
    store.delete_bucket("settings").await.expect("delete");
}
