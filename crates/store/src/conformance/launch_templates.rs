//! Conformance checks of [`crate::LaunchTemplateIndex`]: names unique per
//! account, versions numbered from 1 and never reused, the default version
//! protected, other accounts kept out, and deletion taking versions and
//! tags along.

use super::has_resource;
use crate::{LaunchTemplateRecord, LaunchTemplateVersion, Store, StoreError, TagPair};

const ONE: &str = "666666666631";
const TWO: &str = "666666666632";

fn template(id: &str, account: &str, name: &str) -> LaunchTemplateRecord {
    LaunchTemplateRecord {
        template_id: id.into(),
        account_id: account.into(),
        name: name.into(),
        default_version: 1,
        latest_version: 1,
        created_at: 10,
        created_by: format!("arn:aws:iam::{account}:root"),
    }
}

fn first(id: &str) -> LaunchTemplateVersion {
    LaunchTemplateVersion {
        template_id: id.into(),
        version: 1,
        description: Some("first".into()),
        data: r#"{"image_id":"ami-1"}"#.into(),
        created_at: 10,
        created_by: "arn:aws:iam::666666666631:root".into(),
    }
}

/// Runs the launch template checks.
pub async fn run(store: &dyn Store) {
    super::create_accounts(store, &[(ONE, "lt-one"), (TWO, "lt-two")]).await;
    let id = "lt-0000000000000a001";
    let tags = [TagPair {
        key: "team".into(),
        value: "a".into(),
    }];
    store
        .create_launch_template(&template(id, ONE, "web"), &first(id), &tags)
        .await
        .expect("create");
    assert!(has_resource(store, id).await);
    assert_eq!(
        store.resource_tags(&[id.into()]).await.expect("tags").len(),
        1
    );
    assert!(matches!(
        store
            .create_launch_template(
                &template("lt-0000000000000a002", ONE, "web"),
                &first("lt-0000000000000a002"),
                &[]
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Another account may use the same name, and sees only its own.
    store
        .create_launch_template(
            &template("lt-0000000000000b001", TWO, "web"),
            &first("lt-0000000000000b001"),
            &[],
        )
        .await
        .expect("same name, other account");
    let mine = store.launch_templates(ONE).await.expect("list");
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].default_version, mine[0].latest_version), (1, 1));
    assert!(matches!(
        store.launch_template_versions(TWO, id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .add_launch_template_version(TWO, id, None, "{}", 11, "x")
            .await,
        Err(StoreError::NotFound(_))
    ));

    let v2 = store
        .add_launch_template_version(ONE, id, None, r#"{"image_id":"ami-2"}"#, 11, "x")
        .await
        .expect("v2");
    assert_eq!(v2.version, 2);
    let v3 = store
        .add_launch_template_version(ONE, id, Some("three"), "{}", 12, "x")
        .await
        .expect("v3");
    assert_eq!(v3.version, 3);
    let versions = store
        .launch_template_versions(ONE, id)
        .await
        .expect("versions");
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(versions[0].description.as_deref(), Some("first"));
    assert_eq!(versions[1].data, r#"{"image_id":"ami-2"}"#);

    // The default cannot be deleted; others can, and their numbers are
    // never given again.
    assert!(matches!(
        store
            .delete_launch_template_versions(ONE, id, &[1, 3])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .launch_template_versions(ONE, id)
            .await
            .expect("kept")
            .len(),
        3
    );
    assert_eq!(
        store
            .delete_launch_template_versions(ONE, id, &[3, 9])
            .await
            .expect("delete"),
        [3]
    );
    let v4 = store
        .add_launch_template_version(ONE, id, None, "{}", 13, "x")
        .await
        .expect("v4");
    assert_eq!(v4.version, 4);

    let changed = store
        .set_default_launch_template_version(ONE, id, 2)
        .await
        .expect("default");
    assert_eq!((changed.default_version, changed.latest_version), (2, 4));
    assert!(matches!(
        store.set_default_launch_template_version(ONE, id, 3).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_default_launch_template_version(TWO, id, 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .delete_launch_template_versions(ONE, id, &[1])
            .await
            .expect("old default"),
        [1]
    );

    assert!(
        store
            .delete_launch_template(TWO, id)
            .await
            .expect("other")
            .is_none()
    );
    let gone = store.delete_launch_template(ONE, id).await.expect("delete");
    assert_eq!(gone.map(|t| t.name), Some("web".to_owned()));
    assert!(!has_resource(store, id).await);
    assert!(
        store
            .resource_tags(&[id.into()])
            .await
            .expect("tags")
            .is_empty()
    );
    assert!(store.launch_templates(ONE).await.expect("list").is_empty());
    assert!(
        store
            .delete_launch_template(ONE, id)
            .await
            .expect("again")
            .is_none()
    );
    store
        .delete_launch_template(TWO, "lt-0000000000000b001")
        .await
        .expect("clean up");
}
