//! Versioning from the cloud's side: ids and the `null` version, delete
//! markers as reads see them, reads, copies, ACLs and tags by version,
//! deleting versions, listings of versions, and what a bucket with
//! versions may not do.

use bytes::Bytes;
use futures_util::StreamExt;
use mallee_store::{NULL_VERSION, ObjectMetadata, Versioning};

use super::*;
use crate::objects::acl::AclRequest;
use crate::objects::buckets;
use crate::objects::multipart::{self, CompletedPart};
use crate::objects::reads::{self, ReadObject};
use crate::objects::tagging::{self, TagPairs};
use crate::objects::testing;
use crate::objects::writes::{self, Body, CopyObject, Deleted, PutObject};

async fn put(cloud: &Cloud, requester: &Requester, key: &str, data: &'static [u8]) -> String {
    let put = PutObject {
        bucket: "b".into(),
        key: key.into(),
        acl: AclRequest::default(),
        create_only: false,
        metadata: ObjectMetadata::default(),
        tags: TagPairs::new(),
        body: Body {
            declared_size: None,
            expected_md5: None,
            stream: futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(data))]),
        },
        encrypt: false,
        customer_key: None,
    };
    writes::put(cloud, requester, put)
        .await
        .expect("put")
        .version_id
}

/// The data of `key` (of `version`), or the error.
async fn read(
    cloud: &Cloud,
    requester: &Requester,
    key: &str,
    version: Option<&str>,
) -> Result<Vec<u8>> {
    let read = ReadObject {
        bucket: "b".into(),
        key: key.into(),
        version_id: version.map(str::to_owned),
        ..Default::default()
    };
    let (_, reader) = reads::get(cloud, requester, &read).await?;
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(reader.into_stream());
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    Ok(out)
}

async fn enable(cloud: &Cloud, requester: &Requester, enabled: bool) {
    let request = VersioningRequest {
        enabled: Some(enabled),
        mfa_delete: None,
    };
    set_versioning(cloud, requester, "b", request)
        .await
        .expect("versioning");
}

fn listing_of(query: &VersionListing) -> Vec<(String, String, bool, bool)> {
    query
        .versions
        .iter()
        .map(|v| {
            (
                v.object.key.clone(),
                v.object.version_id.clone(),
                v.is_latest,
                v.object.delete_marker,
            )
        })
        .collect()
}

#[tokio::test]
async fn versioning_is_its_owners_to_set_and_mfa_delete_is_refused() {
    let (cloud, alice, bob) = testing::with_bucket().await;
    assert_eq!(
        versioning(&cloud, &alice, "b").await,
        Ok(Versioning::Unversioned)
    );
    let enable_request = VersioningRequest {
        enabled: Some(true),
        mfa_delete: None,
    };
    assert_eq!(
        set_versioning(&cloud, &bob, "b", enable_request).await,
        Err(ObjectError::AccessDenied)
    );
    assert_eq!(
        versioning(&cloud, &bob, "b").await,
        Err(ObjectError::AccessDenied)
    );
    let mfa = VersioningRequest {
        enabled: Some(true),
        mfa_delete: Some(true),
    };
    assert_eq!(
        set_versioning(&cloud, &alice, "b", mfa).await,
        Err(ObjectError::MfaDeleteNotSupported)
    );
    assert_eq!(
        versioning(&cloud, &alice, "b").await,
        Ok(Versioning::Unversioned),
        "a refused request changed the state"
    );
    enable(&cloud, &alice, true).await;
    assert_eq!(
        versioning(&cloud, &alice, "b").await,
        Ok(Versioning::Enabled)
    );
    enable(&cloud, &alice, false).await;
    assert_eq!(
        versioning(&cloud, &alice, "b").await,
        Ok(Versioning::Suspended)
    );
}

#[tokio::test]
async fn versions_keep_every_write_and_delete_markers_hide_the_key() {
    let (cloud, alice, bob) = testing::with_bucket().await;
    let old = put(&cloud, &alice, "k", b"before versioning").await;
    assert_eq!(old, NULL_VERSION);
    enable(&cloud, &alice, true).await;
    let v1 = put(&cloud, &alice, "k", b"one").await;
    let v2 = put(&cloud, &alice, "k", b"two").await;
    assert_ne!(v1, v2);
    assert!(checked_id(&v1).is_ok());
    assert_eq!(
        read(&cloud, &alice, "k", None).await.as_deref(),
        Ok(&b"two"[..])
    );
    assert_eq!(
        read(&cloud, &alice, "k", Some(&v1)).await.as_deref(),
        Ok(&b"one"[..])
    );
    assert_eq!(
        read(&cloud, &alice, "k", Some("null")).await.as_deref(),
        Ok(&b"before versioning"[..])
    );
    assert_eq!(
        read(&cloud, &alice, "k", Some("not a version")).await,
        Err(ObjectError::InvalidVersionId)
    );
    assert_eq!(
        read(&cloud, &alice, "k", Some(&"A".repeat(32))).await,
        Err(ObjectError::NoSuchVersion)
    );
    assert_eq!(
        read(&cloud, &bob, "k", Some(&v1)).await,
        Err(ObjectError::AccessDenied)
    );

    // A delete leaves a marker: the key reads as missing, the marker by
    // its id is not allowed, and every version is still there.
    let deleted = writes::delete(&cloud, &alice, "b", "k", None)
        .await
        .expect("delete");
    assert!(deleted.delete_marker);
    let marker = deleted.version_id.expect("marker id");
    assert_eq!(
        read(&cloud, &alice, "k", None).await,
        Err(ObjectError::DeleteMarker {
            version_id: marker.clone()
        })
    );
    assert_eq!(
        read(&cloud, &bob, "k", None).await,
        Err(ObjectError::AccessDenied),
        "another account learns nothing"
    );
    assert!(matches!(
        read(&cloud, &alice, "k", Some(&marker)).await,
        Err(ObjectError::MethodNotAllowed { version_id, .. }) if version_id == marker
    ));
    assert_eq!(
        read(&cloud, &alice, "k", Some(&v2)).await.as_deref(),
        Ok(&b"two"[..])
    );

    // Copying an older version onto its key restores it.
    let restore = CopyObject {
        source_bucket: "b".into(),
        source_key: "k".into(),
        source_version: Some(v1.clone()),
        bucket: "b".into(),
        key: "k".into(),
        ..Default::default()
    };
    let restored = writes::copy(&cloud, &alice, restore)
        .await
        .expect("restore");
    assert_eq!(restored.source_version.as_deref(), Some(v1.as_str()));
    assert_eq!(
        read(&cloud, &alice, "k", None).await.as_deref(),
        Ok(&b"one"[..])
    );

    // Deleting the marker and the restored copy by id brings v2 back.
    for id in [restored.object.version_id.as_str(), marker.as_str()] {
        let deleted = writes::delete(&cloud, &alice, "b", "k", Some(id))
            .await
            .expect("delete version");
        assert_eq!(deleted.version_id.as_deref(), Some(id));
        assert_eq!(deleted.delete_marker, id == marker);
    }
    assert_eq!(
        read(&cloud, &alice, "k", None).await.as_deref(),
        Ok(&b"two"[..])
    );
    // A version that is gone deletes as nothing, as in S3.
    assert_eq!(
        writes::delete(&cloud, &alice, "b", "k", Some(&marker)).await,
        Ok(Deleted {
            version_id: Some(marker.clone()),
            delete_marker: false
        })
    );

    // ACLs and tags by version touch that version only.
    let tags: TagPairs = vec![("v".into(), "1".into())];
    let header = tagging::put_object_tags(&cloud, &alice, "b", "k", Some(&v1), tags)
        .await
        .expect("tag v1");
    assert_eq!(header.as_deref(), Some(v1.as_str()));
    let (latest_tags, _) = tagging::object_tags(&cloud, &alice, "b", "k", None)
        .await
        .expect("tags");
    assert!(latest_tags.is_empty());
    writes::set_acl(
        &cloud,
        &alice,
        "b",
        "k",
        Some(&v1),
        AclRequest::Canned("public-read".into()),
    )
    .await
    .expect("acl");
    let anonymous = Requester::anonymous();
    assert_eq!(
        read(&cloud, &anonymous, "k", Some(&v1)).await.as_deref(),
        Ok(&b"one"[..])
    );
    assert_eq!(
        read(&cloud, &anonymous, "k", None).await,
        Err(ObjectError::AccessDenied)
    );

    // Suspended: writes replace the null version and keep the others.
    enable(&cloud, &alice, false).await;
    assert_eq!(put(&cloud, &alice, "k", b"suspended").await, NULL_VERSION);
    let versions = list(
        &cloud,
        &alice,
        &ListVersions {
            bucket: "b".into(),
            ..Default::default()
        },
    )
    .await
    .expect("list");
    let ids: Vec<String> = listing_of(&versions).into_iter().map(|v| v.1).collect();
    assert_eq!(ids, [NULL_VERSION.to_owned(), v2.clone(), v1.clone()]);
    let deleted = writes::delete(&cloud, &alice, "b", "k", None)
        .await
        .expect("delete");
    assert_eq!(
        deleted,
        Deleted {
            version_id: Some(NULL_VERSION.into()),
            delete_marker: true
        }
    );

    // Versions and markers keep the bucket; its data goes with them.
    assert_eq!(
        buckets::delete(&cloud, &alice, "b").await,
        Err(ObjectError::BucketNotEmpty)
    );
    for id in [NULL_VERSION, v2.as_str(), v1.as_str()] {
        writes::delete(&cloud, &alice, "b", "k", Some(id))
            .await
            .expect("delete version");
    }
    assert_eq!(testing::blob_files(&cloud), 0);
    buckets::delete(&cloud, &alice, "b")
        .await
        .expect("delete bucket");
}

#[tokio::test]
async fn listings_of_versions_page_by_key_and_version() {
    let (cloud, alice, bob) = testing::with_bucket().await;
    enable(&cloud, &alice, true).await;
    let mut expected = Vec::new();
    for key in ["a", "d/1", "d/2", "z"] {
        let first = put(&cloud, &alice, key, b"1").await;
        let second = put(&cloud, &alice, key, b"2").await;
        expected.push((key.to_owned(), second, true, false));
        expected.push((key.to_owned(), first, false, false));
    }
    let marker = writes::delete(&cloud, &alice, "b", "z", None)
        .await
        .expect("delete")
        .version_id
        .expect("marker");
    expected[6].2 = false;
    expected.insert(6, ("z".into(), marker, true, true));
    let query = |key_marker: &str, version: Option<&str>, max: usize| ListVersions {
        bucket: "b".into(),
        key_marker: key_marker.into(),
        version_id_marker: version.map(str::to_owned),
        max_keys: Some(max),
        ..Default::default()
    };
    let all = list(&cloud, &alice, &query("", None, 1000))
        .await
        .expect("list");
    assert_eq!(listing_of(&all), expected);
    assert!(!all.truncated && all.next.is_none());

    // Pages of three, resumed where each ended.
    let mut seen = Vec::new();
    let (mut key, mut version) = (String::new(), None::<String>);
    loop {
        let page = list(&cloud, &alice, &query(&key, version.as_deref(), 3))
            .await
            .expect("page");
        seen.extend(listing_of(&page));
        match page.next {
            Some((k, v)) => (key, version) = (k, v),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    let rolled = list(
        &cloud,
        &alice,
        &ListVersions {
            bucket: "b".into(),
            delimiter: "/".into(),
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(rolled.prefixes, ["d/"]);
    assert_eq!(rolled.versions.len(), 5);
    let after_prefix = list(
        &cloud,
        &alice,
        &ListVersions {
            bucket: "b".into(),
            delimiter: "/".into(),
            key_marker: "d/".into(),
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(listing_of(&after_prefix), expected[6..]);

    assert_eq!(
        list(&cloud, &alice, &query("", Some("null"), 10))
            .await
            .err(),
        Some(ObjectError::VersionMarkerWithoutKey)
    );
    assert_eq!(
        list(&cloud, &bob, &query("", None, 10)).await.err(),
        Some(ObjectError::AccessDenied)
    );
}

#[tokio::test]
async fn completing_an_upload_makes_a_version() {
    let (cloud, alice, _) = testing::with_bucket().await;
    enable(&cloud, &alice, true).await;
    let first = put(&cloud, &alice, "mp", b"simple").await;
    let upload = testing::start_upload(&cloud, &alice, "mp", &[])
        .await
        .expect("create");
    let part = testing::upload_part(&cloud, &alice, &upload, 1, b"parts".to_vec())
        .await
        .expect("part");
    let completed = CompletedPart {
        number: 1,
        etag: Some(part.etag),
    };
    let object = multipart::complete(&cloud, &alice, &upload, &[completed])
        .await
        .expect("complete");
    assert!(object.version_id != first && object.version_id != NULL_VERSION);
    assert_eq!(
        read(&cloud, &alice, "mp", None).await.as_deref(),
        Ok(&b"parts"[..])
    );
    assert_eq!(
        read(&cloud, &alice, "mp", Some(&first)).await.as_deref(),
        Ok(&b"simple"[..])
    );
}
