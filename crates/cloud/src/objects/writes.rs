//! Writing objects: PutObject (the body streamed into a blob file, never
//! held whole, its MD5 checked on the way, its tags checked before any
//! byte is read), CopyObject (tags copied or replaced), DeleteObject(s)
//! and replacing an object's ACL. A new object's record is committed in
//! one transaction once its data is durable, as a new version of its key
//! in a bucket that keeps versions, else replacing the `null` version (the
//! bucket owner's quota is enforced there); the blobs no record uses any
//! more are deleted after the commit. Deleting without a version id leaves
//! a delete marker in a bucket that keeps versions; with one, it removes
//! that version for good.

use std::error::Error as StdError;
use std::ops::Range;

use bytes::Bytes;
use futures_util::Stream;
use mallee_blobs::{WriteLimits, WrittenBlob};
use mallee_store::objects::Tags;
use mallee_store::{Bucket, ObjectMetadata, ObjectRecord, Segment, Versioning};

use super::acl::{Acl, AclRequest, Permission};
use super::controls;
use super::error::{ObjectError, Result};
use super::reads::{Conditions, readable_version};
use super::tagging::{TagPairs, header_tags};
use super::versions::{checked_id, delete_marker, new_version_id};
use super::{MAX_PUT_SIZE, Requester, bucket_for, open, release_blobs, sse};
use crate::{Cloud, ids};

/// Data a client sends, and what it declared about it.
#[derive(Debug)]
pub struct Body<S> {
    /// The length the client declared.
    pub declared_size: Option<u64>,
    /// The MD5 the client declared.
    pub expected_md5: Option<[u8; 16]>,
    /// The bytes.
    pub stream: S,
}

impl<S, E> Body<S>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    /// Refuses a declared length larger than one PUT may store, before
    /// reading anything.
    pub(crate) fn check_declared_size(&self) -> Result<()> {
        if self.declared_size.is_some_and(|n| n > MAX_PUT_SIZE) {
            Err(ObjectError::TooLarge)
        } else {
            Ok(())
        }
    }

    /// Streams the bytes into a new blob of at most one PUT's size,
    /// checking their MD5 when the client declared one, and encrypting
    /// them under `key` when given.
    pub(crate) async fn write(self, cloud: &Cloud, key: Option<&[u8; 32]>) -> Result<WrittenBlob> {
        let limits = WriteLimits {
            max_size: MAX_PUT_SIZE,
            expected_size: None,
            expected_md5: self.expected_md5,
        };
        cloud
            .blobs
            .write_encrypted(self.stream, limits, key)
            .await
            .map_err(ObjectError::from_blob)
    }
}

/// A PutObject.
#[derive(Debug)]
pub struct PutObject<S> {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The object's ACL.
    pub acl: AclRequest,
    /// Store only if no object has the key (`If-None-Match: *`).
    pub create_only: bool,
    /// Standard and user metadata.
    pub metadata: ObjectMetadata,
    /// The tags (`x-amz-tagging`).
    pub tags: TagPairs,
    /// Whether `x-amz-server-side-encryption: AES256` asks for SSE-S3
    /// (the bucket's default encryption may ask too).
    pub encrypt: bool,
    /// A customer's key to encrypt with (SSE-C).
    pub customer_key: Option<sse::CustomerKey>,
    /// The data.
    pub body: Body<S>,
}

/// Stores an object from a body stream; returns the committed record.
pub async fn put<S, E>(
    cloud: &Cloud,
    requester: &Requester,
    put: PutObject<S>,
) -> Result<ObjectRecord>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let bucket = bucket_for(cloud, requester, &put.bucket, Permission::Write).await?;
    put.body.check_declared_size()?;
    let tags = header_tags(put.tags)?;
    let (owner, acl) = new_acl(requester, &bucket, put.acl)?;
    if put.create_only && cloud.store.object(&bucket.name, &put.key).await?.is_some() {
        return Err(ObjectError::PreconditionFailed);
    }
    let sealed = sse::for_new(cloud, &bucket, put.encrypt, put.customer_key.as_ref())?;
    let written = put
        .body
        .write(cloud, sealed.as_ref().map(|(_, key)| key))
        .await?;
    let mut object = new_object(&bucket, put.key, written, put.metadata, tags, &acl, owner);
    object.encryption = sealed.map(|(encryption, _)| encryption);
    commit(cloud, &object).await?;
    Ok(object)
}

/// A CopyObject.
#[derive(Debug, Clone, Default)]
pub struct CopyObject {
    /// The source's bucket.
    pub source_bucket: String,
    /// The source's key.
    pub source_key: String,
    /// The source's version (the latest when `None`).
    pub source_version: Option<String>,
    /// The target's bucket.
    pub bucket: String,
    /// The target's key.
    pub key: String,
    /// Conditions on the source.
    pub conditions: Conditions,
    /// New metadata (the REPLACE directive); `None` keeps the source's.
    pub metadata: Option<ObjectMetadata>,
    /// New tags (the REPLACE tagging directive); `None` keeps the
    /// source's.
    pub tags: Option<TagPairs>,
    /// The target's ACL.
    pub acl: AclRequest,
    /// Whether the copy asks for SSE-S3 (the target bucket's default
    /// encryption may ask too).
    pub encrypt: bool,
    /// A customer's key to encrypt the copy with (SSE-C).
    pub customer_key: Option<sse::CustomerKey>,
    /// The customer's key of an SSE-C source.
    pub source_customer_key: Option<sse::CustomerKey>,
}

/// A committed copy, and the `x-amz-copy-source-version-id` of its
/// source (none from a bucket that never kept versions).
#[derive(Debug, Clone)]
pub struct Copied {
    /// The copy.
    pub object: ObjectRecord,
    /// The source's version id, in a bucket that keeps versions.
    pub source_version: Option<String>,
}

/// Copies an object (or a version of one) the requester may read into a
/// bucket it may write; returns the committed copy.
pub async fn copy(cloud: &Cloud, requester: &Requester, copy: CopyObject) -> Result<Copied> {
    let (source_bucket, source) = readable_version(
        cloud,
        requester,
        &copy.source_bucket,
        &copy.source_key,
        copy.source_version.as_deref(),
        Permission::Read,
    )
    .await?;
    let bucket = bucket_for(cloud, requester, &copy.bucket, Permission::Write).await?;
    copy.conditions.check_copy_source(&source)?;
    // Copying an older version onto its key restores it, as S3 allows.
    if copy.source_bucket == copy.bucket
        && copy.source_key == copy.key
        && copy.metadata.is_none()
        && copy.source_version.is_none()
    {
        return Err(ObjectError::CopyToItself);
    }
    if source.size > MAX_PUT_SIZE {
        return Err(ObjectError::CopySourceTooLarge);
    }
    let tags = match copy.tags {
        Some(pairs) => header_tags(pairs)?,
        None => source.tags.clone(),
    };
    let metadata = copy.metadata.unwrap_or_else(|| source.metadata.clone());
    let (owner, acl) = new_acl(requester, &bucket, copy.acl)?;
    let sealed = sse::for_new(cloud, &bucket, copy.encrypt, copy.customer_key.as_ref())?;
    let written = copy_data(
        cloud,
        &source,
        None,
        sealed.as_ref().map(|(_, key)| key),
        copy.source_customer_key.as_ref(),
    )
    .await?;
    // The copy's ETag is the MD5 of its data, which S3 computes afresh
    // (a multipart source's ETag is not an MD5).
    let mut object = new_object(&bucket, copy.key, written, metadata, tags, &acl, owner);
    object.encryption = sealed.map(|(encryption, _)| encryption);
    commit(cloud, &object).await?;
    Ok(Copied {
        source_version: super::reads::version_header(&source_bucket, &source),
        object,
    })
}

/// What a delete did, as S3 answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The version removed, or the delete marker written.
    pub version_id: Option<String>,
    /// Whether that version is a delete marker.
    pub delete_marker: bool,
}

/// Deletes an object, or one version of it (a missing key or version is
/// no error, as in S3). Without a version id, a bucket that keeps
/// versions gets a delete marker (`null` while suspended, replacing the
/// `null` version); one that never kept them loses the object.
pub async fn delete(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Deleted> {
    let bucket = bucket_for(cloud, requester, bucket, Permission::Write).await?;
    delete_in(cloud, requester, &bucket, key, version_id).await
}

async fn delete_in(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &Bucket,
    key: &str,
    version_id: Option<&str>,
) -> Result<Deleted> {
    if let Some(version_id) = version_id {
        let version_id = checked_id(version_id)?;
        let removed = cloud
            .store
            .delete_version(&bucket.name, key, version_id)
            .await?;
        let delete_marker = removed.as_ref().is_some_and(|(v, _)| v.delete_marker);
        if let Some((_, blobs)) = removed {
            release_blobs(cloud, blobs).await;
        }
        return Ok(Deleted {
            version_id: Some(version_id.to_owned()),
            delete_marker,
        });
    }
    if bucket.versioning == Versioning::Unversioned {
        if let Some(blobs) = cloud.store.delete_object(&bucket.name, key).await? {
            release_blobs(cloud, blobs).await;
        }
        return Ok(Deleted::default());
    }
    let marker = delete_marker(requester, bucket, key, new_version_id(bucket));
    let replaced = cloud
        .store
        .put_object(&marker)
        .await
        .map_err(ObjectError::from_write)?;
    release_blobs(cloud, replaced).await;
    Ok(Deleted {
        version_id: Some(marker.version_id),
        delete_marker: true,
    })
}

/// Deletes several objects (or versions) of one bucket; each key's
/// outcome, in order.
pub async fn delete_many(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    keys: Vec<(String, Option<String>)>,
) -> Result<Vec<((String, Option<String>), Result<Deleted>)>> {
    let bucket = bucket_for(cloud, requester, bucket, Permission::Write).await?;
    let mut outcomes = Vec::with_capacity(keys.len());
    for (key, version_id) in keys {
        let outcome = delete_in(cloud, requester, &bucket, &key, version_id.as_deref()).await;
        outcomes.push(((key, version_id), outcome));
    }
    Ok(outcomes)
}

/// Replaces the ACL of an object (or of one version), for requesters who
/// may write it; the object's owner stays its owner. Returns the
/// version's `x-amz-version-id`.
pub async fn set_acl(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    acl: AclRequest,
) -> Result<Option<String>> {
    let (bucket, object) = readable_version(
        cloud,
        requester,
        bucket,
        key,
        version_id,
        Permission::WriteAcp,
    )
    .await?;
    let acl = controls::acl_to_set(&bucket, &object.owner_account, acl)?;
    if cloud
        .store
        .set_object_acl(
            &bucket.name,
            &object.key,
            Some(&object.version_id),
            &acl.to_json(),
        )
        .await?
    {
        Ok(super::reads::version_header(&bucket, &object))
    } else {
        Err(ObjectError::NoSuchKey)
    }
}

/// The owner and ACL of a new object or upload in `bucket`: the writer
/// owns it (an anonymous writer's object is the bucket owner's), unless
/// the bucket's ownership controls say otherwise.
pub(crate) fn new_acl(
    requester: &Requester,
    bucket: &Bucket,
    acl: AclRequest,
) -> Result<(String, Acl)> {
    controls::new_object_acl(requester, bucket, acl)
}

/// Copies `range` (or all) of `source` into a new blob, encrypted under
/// `key` when given.
pub(crate) async fn copy_data(
    cloud: &Cloud,
    source: &ObjectRecord,
    range: Option<Range<u64>>,
    key: Option<&[u8; 32]>,
    source_customer: Option<&sse::CustomerKey>,
) -> Result<WrittenBlob> {
    let length = range.as_ref().map_or(source.size, |r| r.end - r.start);
    let reader = open(cloud, source, range, source_customer).await?;
    let limits = WriteLimits {
        max_size: MAX_PUT_SIZE,
        expected_size: Some(length),
        expected_md5: None,
    };
    cloud
        .blobs
        .write_encrypted(reader.into_stream(), limits, key)
        .await
        .map_err(ObjectError::from_blob)
}

/// The record of a new version of an object in `bucket` whose data is
/// one freshly written blob; its ETag is the data's MD5.
pub(super) fn new_object(
    bucket: &Bucket,
    key: String,
    written: WrittenBlob,
    metadata: ObjectMetadata,
    tags: Tags,
    acl: &Acl,
    owner: String,
) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.name.clone(),
        version_id: new_version_id(bucket),
        delete_marker: false,
        key,
        segments: vec![Segment {
            blob_id: written.blob_id,
            size: written.size,
        }],
        size: written.size,
        etag: hex::encode(written.md5),
        last_modified: ids::now_millis(),
        metadata,
        acl_json: acl.to_json(),
        owner_account: owner,
        tags,
        encryption: None,
    }
}

/// Commits `object`, whose data is the freshly written blob(s); on failure
/// the new blobs are deleted, on success the replaced ones.
pub(super) async fn commit(cloud: &Cloud, object: &ObjectRecord) -> Result<()> {
    match cloud.store.put_object(object).await {
        Ok(replaced) => {
            release_blobs(cloud, replaced).await;
            Ok(())
        }
        Err(e) => {
            let written = object.segments.iter().map(|s| s.blob_id.clone()).collect();
            release_blobs(cloud, written).await;
            Err(ObjectError::from_write(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::reads::{self, EtagCondition, ReadObject};
    use crate::objects::testing;
    use futures_util::StreamExt;

    fn body(chunks: &[&'static [u8]]) -> impl Stream<Item = std::io::Result<Bytes>> + Send + use<> {
        let chunks: Vec<std::io::Result<Bytes>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        futures_util::stream::iter(chunks)
    }

    fn put_of<S>(key: &str, stream: S) -> PutObject<S> {
        PutObject {
            bucket: "b".into(),
            key: key.into(),
            acl: AclRequest::default(),
            create_only: false,
            metadata: ObjectMetadata::default(),
            tags: TagPairs::new(),
            body: Body {
                declared_size: None,
                expected_md5: None,
                stream,
            },
            encrypt: false,
            customer_key: None,
        }
    }

    async fn read_all(cloud: &Cloud, requester: &Requester, key: &str) -> Vec<u8> {
        let read = ReadObject {
            bucket: "b".into(),
            key: key.into(),
            ..Default::default()
        };
        let (_, reader) = reads::get(cloud, requester, &read).await.expect("get");
        let mut out = Vec::new();
        let mut stream = std::pin::pin!(reader.into_stream());
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.expect("chunk"));
        }
        out
    }

    #[tokio::test]
    async fn puts_stream_checks_and_replace() {
        let (cloud, alice, bob) = testing::with_bucket().await;
        let first = put(&cloud, &alice, put_of("k", body(&[b"hello ", b"world"])))
            .await
            .expect("put");
        assert_eq!(first.size, 11);
        assert_eq!(first.etag, hex::encode(md5_of(b"hello world")));
        assert_eq!(read_all(&cloud, &alice, "k").await, b"hello world");

        assert_eq!(
            put(&cloud, &bob, put_of("k", body(&[b"x"]))).await.err(),
            Some(ObjectError::AccessDenied)
        );
        let mut too_large = put_of("big", body(&[]));
        too_large.body.declared_size = Some(MAX_PUT_SIZE + 1);
        assert_eq!(
            put(&cloud, &alice, too_large).await.err(),
            Some(ObjectError::TooLarge)
        );
        let mut wrong_md5 = put_of("k", body(&[b"other"]));
        wrong_md5.body.expected_md5 = Some([0; 16]);
        assert_eq!(
            put(&cloud, &alice, wrong_md5).await.err(),
            Some(ObjectError::Md5Mismatch)
        );
        let mut create_only = put_of("k", body(&[b"other"]));
        create_only.create_only = true;
        assert_eq!(
            put(&cloud, &alice, create_only).await.err(),
            Some(ObjectError::PreconditionFailed)
        );
        let failing = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"part")),
            Err(std::io::Error::other("client went away")),
        ]);
        assert!(matches!(
            put(&cloud, &alice, put_of("k", failing)).await,
            Err(ObjectError::Body(cause)) if cause.contains("client went away")
        ));
        // Nothing above replaced the first version.
        assert_eq!(read_all(&cloud, &alice, "k").await, b"hello world");

        put(&cloud, &alice, put_of("k", body(&[b"second"])))
            .await
            .expect("replace");
        assert_eq!(read_all(&cloud, &alice, "k").await, b"second");
        assert_eq!(
            testing::blob_files(&cloud),
            1,
            "the replaced version's blob is released"
        );
    }

    #[tokio::test]
    async fn quota_refuses_a_write_and_keeps_no_data() {
        let (cloud, alice, _) = testing::with_bucket().await;
        cloud
            .store
            .set_account_quota(alice.account().expect("account"), Some(4))
            .await
            .expect("quota");
        assert_eq!(
            put(&cloud, &alice, put_of("k", body(&[b"too much"])))
                .await
                .err(),
            Some(ObjectError::QuotaExceeded { quota: 4 })
        );
        assert_eq!(testing::blob_files(&cloud), 0);
    }

    #[tokio::test]
    async fn copies_check_their_source_and_target() {
        let (cloud, alice, bob) = testing::with_bucket().await;
        put(&cloud, &alice, put_of("src", body(&[b"data"])))
            .await
            .expect("put");
        let copy_of = |key: &str| CopyObject {
            source_bucket: "b".into(),
            source_key: "src".into(),
            bucket: "b".into(),
            key: key.into(),
            ..Default::default()
        };
        let copied = copy(&cloud, &alice, copy_of("dst")).await.expect("copy");
        assert_eq!(copied.object.etag, hex::encode(md5_of(b"data")));
        assert_eq!(read_all(&cloud, &alice, "dst").await, b"data");
        assert_eq!(
            copy(&cloud, &alice, copy_of("src")).await.err(),
            Some(ObjectError::CopyToItself)
        );
        let mut replace = copy_of("src");
        replace.metadata = Some(ObjectMetadata {
            content_type: Some("text/plain".into()),
            ..Default::default()
        });
        let replaced = copy(&cloud, &alice, replace).await.expect("in place");
        assert_eq!(
            replaced.object.metadata.content_type.as_deref(),
            Some("text/plain")
        );
        let mut conditional = copy_of("dst");
        conditional.conditions.if_none_match = Some(EtagCondition::Any);
        assert_eq!(
            copy(&cloud, &alice, conditional).await.err(),
            Some(ObjectError::PreconditionFailed)
        );
        assert_eq!(
            copy(&cloud, &bob, copy_of("dst")).await.err(),
            Some(ObjectError::AccessDenied)
        );
    }

    #[tokio::test]
    async fn deletes_and_acls() {
        let (cloud, alice, bob) = testing::with_bucket().await;
        for key in ["a", "b"] {
            put(&cloud, &alice, put_of(key, body(&[b"x"])))
                .await
                .expect("put");
        }
        assert_eq!(
            set_acl(&cloud, &bob, "b", "a", None, AclRequest::default()).await,
            Err(ObjectError::AccessDenied)
        );
        set_acl(
            &cloud,
            &alice,
            "b",
            "a",
            None,
            AclRequest::Canned("public-read".into()),
        )
        .await
        .expect("acl");
        assert_eq!(read_all(&cloud, &Requester::anonymous(), "a").await, b"x");
        assert_eq!(
            delete(&cloud, &bob, "b", "a", None).await,
            Err(ObjectError::AccessDenied)
        );
        delete(&cloud, &alice, "b", "a", None)
            .await
            .expect("delete");
        delete(&cloud, &alice, "b", "a", None)
            .await
            .expect("deleting nothing");
        let keys = vec![("b".to_owned(), None), ("none".to_owned(), None)];
        let outcomes = delete_many(&cloud, &alice, "b", keys.clone())
            .await
            .expect("delete many");
        let done = Ok(Deleted::default());
        assert_eq!(
            outcomes,
            vec![(keys[0].clone(), done.clone()), (keys[1].clone(), done)]
        );
        assert_eq!(testing::blob_files(&cloud), 0);
    }

    fn md5_of(data: &[u8]) -> [u8; 16] {
        use md5::Digest;
        md5::Md5::digest(data).into()
    }
}
