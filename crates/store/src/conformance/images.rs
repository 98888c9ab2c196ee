//! Conformance checks of [`crate::ImageIndex`]: unique names per owner,
//! whole-or-nothing creation with tags, visibility through launch
//! permissions and publishing, descriptions, and deregistration.

use super::{has_resource, tag};
use crate::{Image, LaunchPermissionChange, StateReason, Store, StoreError, UnbundledImage};

/// A plain machine image of `account_id`.
pub(super) fn image(id: &str, account_id: &str, name: &str) -> Image {
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
        state_reason: None,
        bundle_manifest: None,
    }
}

/// The ids of the images `account_id` sees.
async fn visible_to(store: &dyn Store, account_id: &str) -> Vec<String> {
    store
        .images_visible_to(account_id)
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.image_id)
        .collect()
}

/// Runs the image checks.
pub async fn run(store: &dyn Store) {
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
    assert!(!has_resource(store, "ami-2").await);
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
    assert_eq!(visible_to(store, alpha).await, ["ami-1"]);
    assert_eq!(visible_to(store, beta).await, ["ami-3"]);
    let gamma = "444444444444";
    assert!(visible_to(store, gamma).await.is_empty());
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
    assert_eq!(visible_to(store, gamma).await, ["ami-1"]);
    assert_eq!(visible_to(store, beta).await, ["ami-1", "ami-3"]);
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
    assert_eq!(visible_to(store, gamma).await, ["ami-1"]);
    store
        .reset_launch_permissions("ami-1")
        .await
        .expect("reset");
    let reset = store.image("ami-1").await.expect("get").expect("present");
    assert!(!reset.is_public && reset.launch_permissions.is_empty());
    assert!(visible_to(store, gamma).await.is_empty());
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
    assert_eq!(visible_to(store, alpha).await, ["ami-4"]);
    bundled(store, alpha).await;
}

/// A bundled image: registered `pending` with its manifest, then either
/// `available` with the unbundled object, or `failed` with a reason;
/// each only from `pending`.
async fn bundled(store: &dyn Store, alpha: &str) {
    let pending = |id: &str, name: &str| Image {
        state: "pending".into(),
        bucket: String::new(),
        key: String::new(),
        size: 0,
        etag: String::new(),
        disk_format: "none".into(),
        bundle_manifest: Some("b/disk.img.manifest.xml".into()),
        ..image(id, alpha, name)
    };
    store
        .create_image(&pending("ami-5", "bundled-ok"), &[])
        .await
        .expect("create");
    store
        .create_image(&pending("ami-6", "bundled-bad"), &[])
        .await
        .expect("create");
    let pending_ids: Vec<String> = store
        .images_in_state("pending")
        .await
        .expect("pending")
        .into_iter()
        .map(|i| i.image_id)
        .collect();
    assert_eq!(pending_ids, ["ami-5", "ami-6"]);
    let unbundled = UnbundledImage {
        bucket: "_sys".into(),
        key: "ami-5".into(),
        size: 42,
        etag: "abc".into(),
        disk_format: "raw".into(),
    };
    assert!(
        store
            .complete_pending_image("ami-5", &unbundled)
            .await
            .expect("complete")
    );
    assert!(
        !store
            .complete_pending_image("ami-5", &unbundled)
            .await
            .expect("only once")
    );
    let done = store.image("ami-5").await.expect("get").expect("there");
    assert_eq!(
        (
            done.state.as_str(),
            done.bucket.as_str(),
            done.key.as_str(),
            done.size,
            done.etag.as_str()
        ),
        ("available", "_sys", "ami-5", 42, "abc")
    );
    assert_eq!(
        done.bundle_manifest.as_deref(),
        Some("b/disk.img.manifest.xml")
    );
    let reason = StateReason {
        code: "Client.InvalidManifest".into(),
        message: "bad signature".into(),
    };
    assert!(
        !store
            .fail_pending_image("ami-5", &reason)
            .await
            .expect("not pending")
    );
    assert!(
        store
            .fail_pending_image("ami-6", &reason)
            .await
            .expect("fail")
    );
    let failed = store.image("ami-6").await.expect("get").expect("there");
    assert_eq!(failed.state, "failed");
    assert_eq!(failed.state_reason, Some(reason));
    assert!(
        !store
            .complete_pending_image("ami-6", &unbundled)
            .await
            .expect("failed stays")
    );
}
