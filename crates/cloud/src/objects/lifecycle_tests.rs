//! Lifecycle rules from the cloud's side: S3's checks, filters, the
//! midnight rounding of days, `x-amz-expiration`, and passes run at
//! chosen moments: expiry behind delete markers in a versioned bucket,
//! deletion in an unversioned one, noncurrent versions (keeping the
//! newest), lone delete markers, and aborted uploads.

use bytes::Bytes;
use mallee_store::{ObjectMetadata, VersionPosition};

use super::*;
use crate::ids::now_millis;
use crate::objects::acl::AclRequest;
use crate::objects::lifecycle_pass::{PassReport, pass};
use crate::objects::tagging::TagPairs;
use crate::objects::testing;
use crate::objects::versions::{VersioningRequest, set_versioning};
use crate::objects::writes::{self, Body, PutObject};

async fn put_object(cloud: &Cloud, requester: &Requester, key: &str, tags: &[(&str, &str)]) {
    let put = PutObject {
        bucket: "b".into(),
        key: key.into(),
        acl: AclRequest::default(),
        create_only: false,
        metadata: ObjectMetadata::default(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<TagPairs>(),
        body: Body {
            declared_size: None,
            expected_md5: None,
            stream: futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
                b"data",
            ))]),
        },
        encrypt: false,
        customer_key: None,
    };
    writes::put(cloud, requester, put).await.expect("put");
}

fn rule(id: &str, prefix: &str) -> RuleRequest {
    RuleRequest {
        id: Some(id.into()),
        status: "Enabled".into(),
        filter: Some(FilterRequest {
            prefix: Some(prefix.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// (key, is latest, delete marker) of every version in bucket `b`.
async fn versions(cloud: &Cloud) -> Vec<(String, bool, bool)> {
    cloud
        .store
        .list_versions("b", "", &VersionPosition::default(), 1000)
        .await
        .expect("list")
        .into_iter()
        .map(|v| (v.object.key, v.is_latest, v.object.delete_marker))
        .collect()
}

fn row(key: &str, latest: bool, marker: bool) -> (String, bool, bool) {
    (key.into(), latest, marker)
}

#[test]
fn days_end_at_the_next_midnight() {
    let day = DAY_MILLIS;
    assert_eq!(next_midnight(0), 0);
    assert_eq!(next_midnight(1), day);
    assert_eq!(next_midnight(day), day);
    // S3's example: written 10:30 with a 3-day rule, gone at midnight
    // after the third day.
    let written = 10 * day + 37_800_000;
    assert_eq!(after_days(written, 3), 14 * day);
    assert_eq!(after_days(11 * day, 1), 12 * day);
}

#[test]
fn filters_select_by_prefix_tags_and_size() {
    let tags: mallee_store::objects::Tags = [("t".to_owned(), "1".to_owned())].into();
    assert!(Filter::Prefix("a/".into()).selects("a/x", 5, &tags));
    assert!(!Filter::Prefix("a/".into()).selects("b/x", 5, &tags));
    assert!(Filter::Tag("t".into(), "1".into()).selects("x", 5, &tags));
    assert!(!Filter::Tag("t".into(), "2".into()).selects("x", 5, &tags));
    assert!(Filter::SizeGreaterThan(4).selects("x", 5, &tags));
    assert!(!Filter::SizeGreaterThan(5).selects("x", 5, &tags));
    assert!(Filter::SizeLessThan(6).selects("x", 5, &tags));
    let and = Filter::And {
        prefix: Some("a/".into()),
        tags: vec![("t".into(), "1".into())],
        size_greater_than: Some(1),
        size_less_than: Some(10),
    };
    assert!(and.selects("a/x", 5, &tags));
    assert!(!and.selects("a/x", 5, &Default::default()));
    assert!(!and.selects("a/x", 10, &tags));
    assert!(Filter::All.selects("anything", 0, &Default::default()));
}

/// What a refused rule's answer must look like.
type Expected = fn(&Result<()>) -> bool;

#[tokio::test]
async fn rules_are_checked_as_s3_checks_them_and_stored_whole() {
    let (cloud, alice, bob) = testing::with_bucket().await;
    let days = |rule: RuleRequest, days: i32| RuleRequest {
        expiration: Some((Some(days), None, None)),
        ..rule
    };
    let invalid_argument = |r: Result<()>| matches!(r, Err(ObjectError::InvalidArgument(_)));
    let refused: Vec<(RuleRequest, Expected)> = vec![
        (rule("none", "a/"), |r| {
            matches!(r, Err(ObjectError::InvalidArgument(_)))
        }),
        (days(rule("zero", "a/"), 0), |r| {
            matches!(r, Err(ObjectError::InvalidArgument(_)))
        }),
        (
            RuleRequest {
                expiration: Some((None, Some(DAY_MILLIS + 1), None)),
                ..rule("noon", "a/")
            },
            |r| matches!(r, Err(ObjectError::InvalidArgument(m)) if m.contains("midnight")),
        ),
        (
            RuleRequest {
                expiration: Some((Some(1), Some(DAY_MILLIS), None)),
                ..rule("both", "a/")
            },
            |r| matches!(r, Err(ObjectError::MalformedXml)),
        ),
        (
            RuleRequest {
                status: "On".into(),
                ..days(rule("status", "a/"), 1)
            },
            |r| matches!(r, Err(ObjectError::MalformedXml)),
        ),
        (
            RuleRequest {
                filter: Some(FilterRequest {
                    prefix: Some("a".into()),
                    tag: Some(("k".into(), "v".into())),
                    ..Default::default()
                }),
                ..days(rule("two", ""), 1)
            },
            |r| matches!(r, Err(ObjectError::MalformedXml)),
        ),
        (
            RuleRequest {
                filter: Some(FilterRequest {
                    tag: Some(("k".into(), "v".into())),
                    ..Default::default()
                }),
                abort_incomplete_upload: Some(Some(1)),
                ..rule("tagged-abort", "")
            },
            |r| matches!(r, Err(ObjectError::InvalidRequest(_))),
        ),
        (
            RuleRequest {
                transitions: true,
                ..days(rule("glacier", "a/"), 1)
            },
            |r| matches!(r, Err(ObjectError::NotImplemented(_))),
        ),
        (
            RuleRequest {
                noncurrent_expiration: Some((Some(1), Some(101))),
                ..rule("newer", "a/")
            },
            |r| matches!(r, Err(ObjectError::InvalidArgument(_))),
        ),
    ];
    for (request, expected) in refused {
        let id = request.id.clone();
        let result = put(
            &cloud,
            &alice,
            "b",
            vec![days(rule("fine", "x/"), 1), request],
        )
        .await;
        assert!(expected(&result), "{id:?}: {result:?}");
    }
    // Ids are unique.
    let result = put(
        &cloud,
        &alice,
        "b",
        vec![days(rule("same", "x/"), 1), days(rule("same", "y/"), 2)],
    )
    .await;
    assert!(invalid_argument(result));
    assert!(matches!(
        get(&cloud, &alice, "b").await,
        Err(ObjectError::NoSuchLifecycleConfiguration)
    ));
    // Only the owner.
    let fine = vec![days(rule("fine", "x/"), 1)];
    assert!(matches!(
        put(&cloud, &bob, "b", fine.clone()).await,
        Err(ObjectError::AccessDenied)
    ));
    let no_id = RuleRequest {
        id: None,
        noncurrent_expiration: Some((Some(3), Some(2))),
        abort_incomplete_upload: Some(Some(7)),
        ..rule("", "y/")
    };
    put(&cloud, &alice, "b", vec![fine[0].clone(), no_id])
        .await
        .expect("put");
    let stored = get(&cloud, &alice, "b").await.expect("get");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].expiration, Some(Expiration::Days(1)));
    assert_eq!(stored[0].filter, Filter::Prefix("x/".into()));
    assert!(!stored[1].id.is_empty(), "an id is made up");
    assert_eq!(
        stored[1].noncurrent_expiration,
        Some(NoncurrentExpiration {
            days: 3,
            newer_versions: Some(2)
        })
    );
    assert_eq!(stored[1].abort_incomplete_upload_days, Some(7));
    assert!(matches!(
        get(&cloud, &bob, "b").await,
        Err(ObjectError::AccessDenied)
    ));
    delete(&cloud, &alice, "b").await.expect("delete");
    assert!(matches!(
        get(&cloud, &alice, "b").await,
        Err(ObjectError::NoSuchLifecycleConfiguration)
    ));
}

#[tokio::test]
async fn a_versioned_bucket_expires_behind_markers_then_forgets() {
    let (cloud, alice, _) = testing::with_bucket().await;
    set_versioning(
        &cloud,
        &alice,
        "b",
        VersioningRequest {
            enabled: Some(true),
            mfa_delete: None,
        },
    )
    .await
    .expect("versioning");
    put_object(&cloud, &alice, "logs/a", &[]).await;
    put_object(&cloud, &alice, "logs/big", &[("keep", "yes")]).await;
    put_object(&cloud, &alice, "other/b", &[]).await;
    let upload = testing::start_upload(&cloud, &alice, "logs/upload", &[])
        .await
        .expect("upload");
    testing::upload_part(&cloud, &alice, &upload, 1, vec![7; 10])
        .await
        .expect("part");
    let rules = vec![
        RuleRequest {
            expiration: Some((Some(1), None, None)),
            abort_incomplete_upload: Some(Some(7)),
            ..rule("logs", "logs/")
        },
        RuleRequest {
            filter: Some(FilterRequest {
                tag: Some(("keep".into(), "yes".into())),
                ..Default::default()
            }),
            expiration: Some((Some(30), None, None)),
            ..rule("tagged", "")
        },
        RuleRequest {
            noncurrent_expiration: Some((Some(1), None)),
            ..rule("noncurrent", "")
        },
        RuleRequest {
            expiration: Some((None, None, Some(true))),
            ..rule("markers", "logs/")
        },
    ];
    put_rules(&cloud, &alice, rules).await;
    let current = cloud
        .store
        .object("b", "logs/a")
        .await
        .expect("read")
        .expect("object");
    let bucket = cloud.store.bucket("b").await.expect("b").expect("b");
    let (at, rule_id) = expiration_of(&bucket, &current).expect("x-amz-expiration");
    assert_eq!(at, after_days(current.last_modified, 1));
    assert_eq!(rule_id, "logs");
    let (_, tagged) = expiration_of(
        &bucket,
        &cloud
            .store
            .object("b", "logs/big")
            .await
            .expect("r")
            .expect("o"),
    )
    .expect("two rules");
    assert_eq!(tagged, "logs", "the earliest expiry wins");
    assert!(
        expiration_of(
            &bucket,
            &cloud
                .store
                .object("b", "other/b")
                .await
                .expect("r")
                .expect("o")
        )
        .is_none()
    );

    let blobs = testing::blob_files(&cloud);
    let now = now_millis();
    assert_eq!(
        pass(&cloud, now).await.expect("pass"),
        PassReport::default()
    );
    assert_eq!(
        pass(&cloud, at - 1).await.expect("pass"),
        PassReport::default(),
        "nothing before the midnight"
    );
    let report = pass(&cloud, at).await.expect("pass");
    assert_eq!(report.markers_written, 2);
    assert_eq!(report.uploads_aborted, 0, "the upload is a day old");
    assert_eq!(
        versions(&cloud).await,
        [
            row("logs/a", true, true),
            row("logs/a", false, false),
            row("logs/big", true, true),
            row("logs/big", false, false),
            row("other/b", true, false),
        ]
    );
    assert_eq!(testing::blob_files(&cloud), blobs, "nothing deleted yet");
    assert!(
        cloud
            .store
            .upload(&upload.upload_id)
            .await
            .expect("u")
            .is_some()
    );

    // A day after they became noncurrent, the old versions go, and with
    // them the markers left alone; a week on, the upload.
    let report = pass(&cloud, at + 2 * DAY_MILLIS).await.expect("pass");
    assert_eq!(report.versions_deleted, 2);
    let report = pass(&cloud, at + 2 * DAY_MILLIS).await.expect("pass");
    assert_eq!(report.versions_deleted, 2, "then the lone markers");
    assert_eq!(report.uploads_aborted, 0);
    assert_eq!(versions(&cloud).await, [row("other/b", true, false)]);
    assert_eq!(testing::blob_files(&cloud), blobs - 2);
    let report = pass(&cloud, at + 7 * DAY_MILLIS).await.expect("pass");
    assert_eq!(report.uploads_aborted, 1);
    assert!(
        cloud
            .store
            .upload(&upload.upload_id)
            .await
            .expect("u")
            .is_none()
    );
    assert_eq!(testing::blob_files(&cloud), blobs - 3, "the part's blob");
}

#[tokio::test]
async fn an_unversioned_bucket_deletes_and_keeps_the_newest_noncurrent() {
    let (cloud, alice, _) = testing::with_bucket().await;
    put_object(&cloud, &alice, "tmp/x", &[]).await;
    put_object(&cloud, &alice, "keep/y", &[]).await;
    let date = next_midnight(now_millis() + DAY_MILLIS);
    put_rules(
        &cloud,
        &alice,
        vec![RuleRequest {
            expiration: Some((None, Some(date), None)),
            ..rule("date", "tmp/")
        }],
    )
    .await;
    assert_eq!(
        pass(&cloud, date - 1).await.expect("pass"),
        PassReport::default()
    );
    let report = pass(&cloud, date).await.expect("pass");
    assert_eq!(report.versions_deleted, 1);
    assert_eq!(versions(&cloud).await, [row("keep/y", true, false)]);

    // Noncurrent versions beyond the newest two go.
    set_versioning(
        &cloud,
        &alice,
        "b",
        VersioningRequest {
            enabled: Some(true),
            mfa_delete: None,
        },
    )
    .await
    .expect("versioning");
    for _ in 0..4 {
        put_object(&cloud, &alice, "keep/y", &[]).await;
    }
    put_rules(
        &cloud,
        &alice,
        vec![RuleRequest {
            noncurrent_expiration: Some((Some(1), Some(2))),
            ..rule("two", "keep/")
        }],
    )
    .await;
    let report = pass(&cloud, now_millis() + 3 * DAY_MILLIS)
        .await
        .expect("pass");
    assert_eq!(report.versions_deleted, 2);
    assert_eq!(versions(&cloud).await.len(), 3, "the current and two more");
}

async fn put_rules(cloud: &Cloud, requester: &Requester, rules: Vec<RuleRequest>) {
    put(cloud, requester, "b", rules).await.expect("rules");
}
