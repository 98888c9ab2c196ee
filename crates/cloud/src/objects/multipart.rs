//! Multipart uploads: starting one, uploading or copying parts, completing
//! (part order, part ETags and the minimum part size checked as S3 does),
//! aborting, and listing an upload's parts or a bucket's uploads. A
//! completed object keeps its parts' blobs as its segments, so completing
//! copies no data.

use std::error::Error as StdError;
use std::ops::RangeInclusive;

use bytes::Bytes;
use futures_util::Stream;
use mallee_blobs::WrittenBlob;
use mallee_store::{MultipartUpload, ObjectMetadata, ObjectRecord, Part, Segment, StoreError};
use md5::{Digest, Md5};

use super::acl::{AclRequest, Permission};
use super::error::{ObjectError, Result};
use super::list::common_prefix;
use super::reads::{Conditions, copy_range, readable_version};
use super::sse;
use super::tagging::{TagPairs, header_tags};
use super::versions::new_version_id;
use super::writes::{Body, copy_data, new_acl};
use super::{
    MAX_OBJECT_SIZE, MAX_PUT_SIZE, MIN_PART_SIZE, Requester, bucket_for, page_size, release_blobs,
};
use crate::{Cloud, ids};

/// Part numbers S3 allows.
const PART_NUMBERS: RangeInclusive<u32> = 1..=10_000;

/// A multipart upload to start.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The bucket.
    pub bucket: String,
    /// The key of the object it makes.
    pub key: String,
    /// The object's ACL.
    pub acl: AclRequest,
    /// The object's metadata.
    pub metadata: ObjectMetadata,
    /// The object's tags (`x-amz-tagging`), checked now and given to the
    /// object on completion.
    pub tags: TagPairs,
    /// Whether the upload asks for SSE-S3 (the bucket's default
    /// encryption may ask too).
    pub encrypt: bool,
    /// A customer's key to encrypt the parts with (SSE-C); every part
    /// must bring it again.
    pub customer_key: Option<sse::CustomerKey>,
}

/// Starts a multipart upload.
pub async fn create(
    cloud: &Cloud,
    requester: &Requester,
    new: NewUpload,
) -> Result<MultipartUpload> {
    let bucket = bucket_for(cloud, requester, &new.bucket, Permission::Write).await?;
    let tags = header_tags(new.tags)?;
    let (owner, acl) = new_acl(requester, &bucket, new.acl)?;
    // The parts share one data key, kept wrapped with the upload.
    let encryption = sse::for_new(cloud, &bucket, new.encrypt, new.customer_key.as_ref())?
        .map(|(encryption, _)| encryption);
    let upload = MultipartUpload {
        upload_id: uuid::Uuid::new_v4().simple().to_string(),
        bucket: bucket.name,
        key: new.key,
        owner_account: owner,
        initiated: ids::now_millis(),
        metadata: new.metadata,
        acl_json: acl.to_json(),
        tags,
        encryption,
    };
    cloud
        .store
        .create_upload(&upload)
        .await
        .map_err(ObjectError::from_write)?;
    Ok(upload)
}

/// The upload a request names: its bucket, key and id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadRef {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The upload id.
    pub upload_id: String,
}

/// An UploadPart.
#[derive(Debug)]
pub struct UploadPart<S> {
    /// The upload.
    pub upload: UploadRef,
    /// The part's number.
    pub part_number: i32,
    /// The upload's customer key (SSE-C).
    pub customer_key: Option<sse::CustomerKey>,
    /// The data.
    pub body: Body<S>,
}

/// Stores a part from a body stream, replacing one with its number.
pub async fn upload_part<S, E>(
    cloud: &Cloud,
    requester: &Requester,
    part: UploadPart<S>,
) -> Result<Part>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let part_number = check_part_number(part.part_number)?;
    let upload = writable_upload(cloud, requester, &part.upload).await?;
    part.body.check_declared_size()?;
    let key = sse::data_key(
        cloud,
        upload.encryption.as_ref(),
        part.customer_key.as_ref(),
    )?;
    let written = part.body.write(cloud, key.as_ref()).await?;
    store_part(cloud, part.upload.upload_id, part_number, written).await
}

/// An UploadPartCopy.
#[derive(Debug, Clone, Default)]
pub struct CopyPart {
    /// The upload.
    pub upload: UploadRef,
    /// The part's number.
    pub part_number: i32,
    /// The source's bucket.
    pub source_bucket: String,
    /// The source's key.
    pub source_key: String,
    /// The source's version (the latest when `None`).
    pub source_version: Option<String>,
    /// Conditions on the source.
    pub conditions: Conditions,
    /// The source's bytes to copy (`first..=last`; all when `None`).
    pub range: Option<RangeInclusive<u64>>,
    /// The upload's customer key (SSE-C).
    pub customer_key: Option<sse::CustomerKey>,
    /// The customer's key of an SSE-C source.
    pub source_customer_key: Option<sse::CustomerKey>,
}

/// Stores a part copied from (a range of) an object the requester may
/// read.
pub async fn copy_part(cloud: &Cloud, requester: &Requester, copy: CopyPart) -> Result<Part> {
    let part_number = check_part_number(copy.part_number)?;
    let (_, source) = readable_version(
        cloud,
        requester,
        &copy.source_bucket,
        &copy.source_key,
        copy.source_version.as_deref(),
        Permission::Read,
    )
    .await?;
    let upload = writable_upload(cloud, requester, &copy.upload).await?;
    copy.conditions.check_copy_source(&source)?;
    let range = match &copy.range {
        Some(range) => Some(copy_range(range, source.size)?),
        None => None,
    };
    let length = range.as_ref().map_or(source.size, |r| r.end - r.start);
    if length > MAX_PUT_SIZE {
        return Err(ObjectError::CopySourceTooLarge);
    }
    let key = sse::data_key(
        cloud,
        upload.encryption.as_ref(),
        copy.customer_key.as_ref(),
    )?;
    let written = copy_data(
        cloud,
        &source,
        range,
        key.as_ref(),
        copy.source_customer_key.as_ref(),
    )
    .await?;
    store_part(cloud, copy.upload.upload_id, part_number, written).await
}

/// A part a completion names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Its number (0 when the request gave none).
    pub number: u32,
    /// Its ETag (without quotes), when the request gave one.
    pub etag: Option<String>,
}

/// Turns an upload into its object from the parts named, in ascending
/// order; every part but the last must be at least [`MIN_PART_SIZE`].
/// Parts not named are deleted.
pub async fn complete(
    cloud: &Cloud,
    requester: &Requester,
    upload: &UploadRef,
    parts: &[CompletedPart],
) -> Result<ObjectRecord> {
    let bucket = bucket_for(cloud, requester, &upload.bucket, Permission::Write).await?;
    let upload = writable_upload(cloud, requester, upload).await?;
    if parts.is_empty() {
        return Err(ObjectError::NoParts);
    }
    let stored = cloud.store.parts(&upload.upload_id).await?;
    let mut chosen: Vec<&Part> = Vec::with_capacity(parts.len());
    let mut previous = 0u32;
    for completed in parts {
        if completed.number <= previous {
            return Err(ObjectError::InvalidPartOrder);
        }
        previous = completed.number;
        let part = stored
            .iter()
            .find(|p| {
                p.part_number == completed.number
                    && completed.etag.as_deref().is_none_or(|e| e == p.etag)
            })
            .ok_or(ObjectError::InvalidPart)?;
        chosen.push(part);
    }
    if let Some((_, all_but_last)) = chosen.split_last()
        && all_but_last.iter().any(|p| p.size < MIN_PART_SIZE)
    {
        return Err(ObjectError::PartTooSmall);
    }
    let size: u64 = chosen.iter().map(|p| p.size).sum();
    if size > MAX_OBJECT_SIZE {
        return Err(ObjectError::TooLarge);
    }
    // S3's multipart ETag: the MD5 of the parts' MD5s, and their count.
    let mut md5_of_md5s = Md5::new();
    for part in &chosen {
        md5_of_md5s.update(hex::decode(&part.etag).map_err(ObjectError::internal)?);
    }
    let object = ObjectRecord {
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        segments: chosen
            .iter()
            .map(|p| Segment {
                blob_id: p.blob_id.clone(),
                size: p.size,
            })
            .collect(),
        size,
        etag: format!("{}-{}", hex::encode(md5_of_md5s.finalize()), chosen.len()),
        last_modified: ids::now_millis(),
        metadata: upload.metadata,
        acl_json: upload.acl_json,
        owner_account: upload.owner_account,
        tags: upload.tags,
        // The version is decided when the upload completes, as in S3.
        version_id: new_version_id(&bucket),
        delete_marker: false,
        encryption: upload.encryption,
    };
    match cloud
        .store
        .complete_upload(&upload.upload_id, &object)
        .await
    {
        Ok(released) => release_blobs(cloud, released).await,
        Err(StoreError::NotFound(_)) => return Err(ObjectError::NoSuchUpload),
        Err(e) => return Err(ObjectError::from_write(e)),
    }
    Ok(object)
}

/// Aborts an upload, deleting its parts.
pub async fn abort(cloud: &Cloud, requester: &Requester, upload: &UploadRef) -> Result<()> {
    let upload = writable_upload(cloud, requester, upload).await?;
    match cloud.store.abort_upload(&upload.upload_id).await {
        Ok(released) => {
            release_blobs(cloud, released).await;
            Ok(())
        }
        Err(StoreError::NotFound(_)) => Err(ObjectError::NoSuchUpload),
        Err(e) => Err(ObjectError::internal(e)),
    }
}

/// One page of an upload's parts.
#[derive(Debug, Clone)]
pub struct PartsPage {
    /// The upload.
    pub upload: MultipartUpload,
    /// Its parts after the marker, by number.
    pub parts: Vec<Part>,
    /// The page size used.
    pub max: usize,
    /// Whether more parts follow.
    pub truncated: bool,
}

/// Lists an upload's parts numbered after `after`, at most `max` of them
/// (at most [`super::MAX_PAGE`]).
pub async fn parts(
    cloud: &Cloud,
    requester: &Requester,
    upload: &UploadRef,
    after: u32,
    max: Option<usize>,
) -> Result<PartsPage> {
    let upload = writable_upload(cloud, requester, upload).await?;
    let max = page_size(max);
    let mut parts: Vec<Part> = cloud
        .store
        .parts(&upload.upload_id)
        .await?
        .into_iter()
        .filter(|p| p.part_number > after)
        .collect();
    let truncated = parts.len() > max;
    parts.truncate(max);
    Ok(PartsPage {
        upload,
        parts,
        max,
        truncated,
    })
}

/// What a ListMultipartUploads asks for.
#[derive(Debug, Clone, Default)]
pub struct ListUploads {
    /// The bucket.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// Keys with this after the prefix are rolled up into common prefixes
    /// (none when empty).
    pub delimiter: String,
    /// Start after this key (none when empty)…
    pub key_marker: String,
    /// …or, for this key, after this upload id.
    pub upload_id_marker: String,
    /// The page size asked for (at most [`super::MAX_PAGE`]).
    pub max: Option<usize>,
}

/// One page of a bucket's uploads.
#[derive(Debug, Clone)]
pub struct UploadsPage {
    /// Uploads, by key then initiation.
    pub uploads: Vec<MultipartUpload>,
    /// Common prefixes, in order.
    pub prefixes: Vec<String>,
    /// The page size used.
    pub max: usize,
    /// Whether more follow.
    pub truncated: bool,
}

/// Lists a bucket's uploads in progress.
pub async fn uploads(
    cloud: &Cloud,
    requester: &Requester,
    list: &ListUploads,
) -> Result<UploadsPage> {
    bucket_for(cloud, requester, &list.bucket, Permission::Write).await?;
    let max = page_size(list.max);
    let (prefix, delimiter) = (list.prefix.as_str(), list.delimiter.as_str());
    let (key_marker, id_marker) = (list.key_marker.as_str(), list.upload_id_marker.as_str());
    let mut page = UploadsPage {
        uploads: Vec::new(),
        prefixes: Vec::new(),
        max,
        truncated: false,
    };
    for upload in cloud.store.uploads(&list.bucket).await? {
        if !upload.key.starts_with(prefix) {
            continue;
        }
        let after_marker = upload.key.as_str() > key_marker
            || (!key_marker.is_empty()
                && upload.key == key_marker
                && !id_marker.is_empty()
                && upload.upload_id.as_str() > id_marker);
        if !key_marker.is_empty() && !after_marker {
            continue;
        }
        let common = common_prefix(&upload.key, prefix, delimiter);
        if let Some(common) = &common
            && page.prefixes.last() == Some(common)
        {
            continue;
        }
        if page.uploads.len() + page.prefixes.len() == max {
            page.truncated = true;
            break;
        }
        match common {
            Some(common) => page.prefixes.push(common),
            None => page.uploads.push(upload),
        }
    }
    Ok(page)
}

fn check_part_number(n: i32) -> Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| PART_NUMBERS.contains(n))
        .ok_or(ObjectError::PartNumberOutOfRange)
}

/// The upload, after checking the requester may write its bucket and that
/// it belongs to that bucket and key.
async fn writable_upload(
    cloud: &Cloud,
    requester: &Requester,
    upload: &UploadRef,
) -> Result<MultipartUpload> {
    bucket_for(cloud, requester, &upload.bucket, Permission::Write).await?;
    match cloud.store.upload(&upload.upload_id).await? {
        Some(found) if found.bucket == upload.bucket && found.key == upload.key => Ok(found),
        _ => Err(ObjectError::NoSuchUpload),
    }
}

/// Records a part whose data is a freshly written blob (its ETag is the
/// data's MD5), replacing one with its number; deletes the blob when the
/// upload vanished meanwhile.
async fn store_part(
    cloud: &Cloud,
    upload_id: String,
    part_number: u32,
    written: WrittenBlob,
) -> Result<Part> {
    let part = Part {
        upload_id,
        part_number,
        blob_id: written.blob_id,
        size: written.size,
        etag: hex::encode(written.md5),
        last_modified: ids::now_millis(),
    };
    match cloud.store.put_part(&part).await {
        Ok(replaced) => {
            release_blobs(cloud, replaced.into_iter().collect()).await;
            Ok(part)
        }
        Err(e) => {
            release_blobs(cloud, vec![part.blob_id.clone()]).await;
            Err(match e {
                StoreError::NotFound(_) => ObjectError::NoSuchUpload,
                other => ObjectError::internal(other),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::acl::{Acl, AclRequest};
    use crate::objects::buckets;
    use crate::objects::testing;

    async fn start(cloud: &Cloud, requester: &Requester, key: &str) -> UploadRef {
        testing::start_upload(cloud, requester, key, &[])
            .await
            .expect("create")
    }

    /// Parts are written by the anonymous caller (the tests open the
    /// bucket to it).
    async fn part(cloud: &Cloud, upload: &UploadRef, number: i32, data: Vec<u8>) -> Result<Part> {
        testing::upload_part(cloud, &Requester::anonymous(), upload, number, data).await
    }

    fn named(parts: &[(u32, Option<&str>)]) -> Vec<CompletedPart> {
        parts
            .iter()
            .map(|(number, etag)| CompletedPart {
                number: *number,
                etag: etag.map(str::to_owned),
            })
            .collect()
    }

    #[tokio::test]
    async fn completion_checks_parts_as_s3_does() {
        let (cloud, alice, _) = testing::with_bucket().await;
        // Parts are written by the anonymous helper: open the bucket.
        buckets::set_acl(
            &cloud,
            &alice,
            "b",
            AclRequest::Canned("public-read-write".into()),
        )
        .await
        .expect("acl");
        let upload = start(&cloud, &alice, "k").await;
        let big = usize::try_from(MIN_PART_SIZE).expect("size");
        let p1 = part(&cloud, &upload, 1, vec![1; big])
            .await
            .expect("part 1");
        let p2 = part(&cloud, &upload, 2, vec![2; 10]).await.expect("part 2");
        part(&cloud, &upload, 3, vec![3; 10]).await.expect("part 3");
        assert_eq!(
            part(&cloud, &upload, 0, vec![]).await.err(),
            Some(ObjectError::PartNumberOutOfRange)
        );
        assert_eq!(
            part(&cloud, &upload, 10_001, vec![]).await.err(),
            Some(ObjectError::PartNumberOutOfRange)
        );

        let complete_with = |parts: Vec<CompletedPart>| {
            let (cloud, alice, upload) = (&cloud, &alice, &upload);
            async move { complete(cloud, alice, upload, &parts).await }
        };
        assert_eq!(
            complete_with(vec![]).await.err(),
            Some(ObjectError::NoParts)
        );
        assert_eq!(
            complete_with(named(&[(2, None), (1, None)])).await.err(),
            Some(ObjectError::InvalidPartOrder)
        );
        assert_eq!(
            complete_with(named(&[(1, Some("wrong"))])).await.err(),
            Some(ObjectError::InvalidPart)
        );
        assert_eq!(
            complete_with(named(&[(4, None)])).await.err(),
            Some(ObjectError::InvalidPart)
        );
        assert_eq!(
            complete_with(named(&[(2, None), (3, None)])).await.err(),
            Some(ObjectError::PartTooSmall)
        );
        let object = complete_with(named(&[(1, Some(&p1.etag)), (2, None)]))
            .await
            .expect("complete");
        let mut md5s = Md5::new();
        md5s.update(hex::decode(&p1.etag).expect("hex"));
        md5s.update(hex::decode(&p2.etag).expect("hex"));
        assert_eq!(object.etag, format!("{}-2", hex::encode(md5s.finalize())));
        assert_eq!(object.size, MIN_PART_SIZE + 10);
        assert_eq!(object.segments.len(), 2);
        assert_eq!(object.owner_account, alice.account().expect("account"));
        // The unused part's blob went with the upload.
        assert_eq!(testing::blob_files(&cloud), 2);
        assert_eq!(
            complete_with(named(&[(1, None)])).await.err(),
            Some(ObjectError::NoSuchUpload)
        );
    }

    #[tokio::test]
    async fn parts_are_copied_listed_and_aborted() {
        let (cloud, alice, bob) = testing::with_bucket().await;
        let owner = alice.account().expect("account").to_owned();
        let data: Vec<u8> = (0..100u8).collect();
        testing::put(&cloud, &owner, "b", "src", &data, &Acl::private(&owner)).await;
        let upload = start(&cloud, &alice, "k").await;
        let copy_of = |number, range| CopyPart {
            upload: upload.clone(),
            part_number: number,
            source_bucket: "b".into(),
            source_key: "src".into(),
            range,
            ..Default::default()
        };
        let copied = copy_part(&cloud, &alice, copy_of(1, Some(10..=19)))
            .await
            .expect("copy");
        assert_eq!(copied.size, 10);
        copy_part(&cloud, &alice, copy_of(2, None))
            .await
            .expect("copy all");
        copy_part(&cloud, &alice, copy_of(3, None))
            .await
            .expect("copy all");
        assert_eq!(
            copy_part(&cloud, &alice, copy_of(4, Some(0..=100)))
                .await
                .err(),
            Some(ObjectError::InvalidRange)
        );
        assert_eq!(
            copy_part(&cloud, &bob, copy_of(4, None)).await.err(),
            Some(ObjectError::AccessDenied)
        );
        let mut elsewhere = copy_of(4, None);
        elsewhere.upload.key = "other".into();
        assert_eq!(
            copy_part(&cloud, &alice, elsewhere).await.err(),
            Some(ObjectError::NoSuchUpload)
        );

        let first = parts(&cloud, &alice, &upload, 0, Some(2))
            .await
            .expect("parts");
        let numbers =
            |page: &PartsPage| page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>();
        assert_eq!(
            (numbers(&first), first.truncated, first.max),
            (vec![1, 2], true, 2)
        );
        let rest = parts(&cloud, &alice, &upload, 2, None)
            .await
            .expect("parts");
        assert_eq!(
            (numbers(&rest), rest.truncated, rest.max),
            (vec![3], false, 1000)
        );

        abort(&cloud, &alice, &upload).await.expect("abort");
        assert_eq!(
            abort(&cloud, &alice, &upload).await,
            Err(ObjectError::NoSuchUpload)
        );
        assert_eq!(
            testing::blob_files(&cloud),
            1,
            "only the source object's blob is left"
        );
    }

    #[tokio::test]
    async fn uploads_list_with_prefixes_and_markers() {
        let (cloud, alice, bob) = testing::with_bucket().await;
        let mut ids = Vec::new();
        for key in ["a", "a", "d/1", "d/2", "z"] {
            ids.push(start(&cloud, &alice, key).await.upload_id);
        }
        let listing =
            |key_marker: &str, upload_id_marker: &str, delimiter: &str, max| ListUploads {
                bucket: "b".into(),
                prefix: String::new(),
                delimiter: delimiter.into(),
                key_marker: key_marker.into(),
                upload_id_marker: upload_id_marker.into(),
                max,
            };
        let keys = |page: &UploadsPage| {
            page.uploads
                .iter()
                .map(|u| u.key.clone())
                .collect::<Vec<_>>()
        };

        let all = uploads(&cloud, &alice, &listing("", "", "", None))
            .await
            .expect("list");
        assert_eq!(keys(&all), ["a", "a", "d/1", "d/2", "z"]);
        let rolled = uploads(&cloud, &alice, &listing("", "", "/", None))
            .await
            .expect("list");
        assert_eq!(
            (keys(&rolled), rolled.prefixes.clone()),
            (
                vec!["a".to_owned(), "a".into(), "z".into()],
                vec!["d/".to_owned()]
            )
        );
        let page = uploads(&cloud, &alice, &listing("", "", "/", Some(2)))
            .await
            .expect("list");
        assert!(page.truncated);
        assert_eq!(keys(&page), ["a", "a"]);
        let after_a = uploads(&cloud, &alice, &listing("a", "", "", None))
            .await
            .expect("list");
        assert_eq!(keys(&after_a), ["d/1", "d/2", "z"]);
        // Within one key, after the marker's upload id.
        let mut a_ids: Vec<&String> = ids[..2].iter().collect();
        a_ids.sort();
        let after_first_a = uploads(&cloud, &alice, &listing("a", a_ids[0], "", None))
            .await
            .expect("list");
        assert!(
            after_first_a
                .uploads
                .iter()
                .all(|u| u.key != "a" || &u.upload_id > a_ids[0])
        );
        assert_eq!(
            uploads(&cloud, &bob, &listing("", "", "", None))
                .await
                .err(),
            Some(ObjectError::AccessDenied)
        );
    }
}
