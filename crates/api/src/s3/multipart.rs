//! Multipart uploads: Create, UploadPart, UploadPartCopy, Complete (part
//! order, part ETags and the 5 MiB minimum checked as S3 does), Abort,
//! ListParts and ListMultipartUploads. A completed object keeps its parts'
//! blobs as its segments, so completing copies no data.

use mallee_store::{MultipartUpload, ObjectRecord, Part, Segment, StoreError};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::acl::Permission as Perm;
use super::objects::{
    MetadataInput, content_md5, copy_data, copy_source, readable_object, store_body,
};
use super::{
    MAX_OBJECT_SIZE, MAX_PUT_SIZE, MIN_PART_SIZE, ObjectStore, caller, internal, owner_of,
    requested_acl, timestamp, write_error,
};
use mallee_cloud::ids;

fn no_such_upload() -> s3s::S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )
}

fn check_part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            )
        })
}

/// The upload, checked to belong to `bucket`/`key`.
async fn upload_of(
    store: &ObjectStore,
    upload_id: &str,
    bucket: &str,
    key: &str,
) -> S3Result<MultipartUpload> {
    match store
        .cloud
        .store
        .upload(upload_id)
        .await
        .map_err(internal)?
    {
        Some(upload) if upload.bucket == bucket && upload.key == key => Ok(upload),
        _ => Err(no_such_upload()),
    }
}

pub(super) async fn create_multipart_upload(
    store: &ObjectStore,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let who = caller(&req);
    let input = req.input;
    let bucket = store.bucket_for(&input.bucket, &who, Perm::Write).await?;
    let owner = who.account().unwrap_or(&bucket.account_id).to_owned();
    let acl = requested_acl(
        store,
        input.acl.as_ref().map(|a| a.as_str()),
        object_grants!(input),
        &owner,
        &bucket.account_id,
    )
    .await?;
    let upload = MultipartUpload {
        upload_id: uuid::Uuid::new_v4().simple().to_string(),
        bucket: bucket.name.clone(),
        key: input.key.clone(),
        owner_account: owner,
        initiated: ids::now_millis(),
        metadata: MetadataInput {
            content_type: input.content_type.as_deref(),
            content_encoding: input.content_encoding.as_deref(),
            content_disposition: input.content_disposition.as_deref(),
            content_language: input.content_language.as_deref(),
            cache_control: input.cache_control.as_deref(),
            expires: input.expires.as_ref(),
            user: input.metadata.as_ref(),
        }
        .into_metadata(),
        acl_json: acl.to_json(),
    };
    store
        .cloud
        .store
        .create_upload(&upload)
        .await
        .map_err(write_error)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(upload.bucket),
        key: Some(upload.key),
        upload_id: Some(upload.upload_id),
        ..Default::default()
    }))
}

/// Records a written part; deletes its blob when the upload vanished.
async fn commit_part(store: &ObjectStore, part: &Part) -> S3Result<()> {
    match store.cloud.store.put_part(part).await {
        Ok(replaced) => {
            store.release_blobs(replaced.into_iter().collect()).await;
            Ok(())
        }
        Err(e) => {
            store.release_blobs(vec![part.blob_id.clone()]).await;
            Err(match e {
                StoreError::NotFound(_) => no_such_upload(),
                other => internal(other),
            })
        }
    }
}

pub(super) async fn upload_part(
    store: &ObjectStore,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let who = caller(&req);
    let checksums =
        super::checksum::Expected::from_request(&req.headers, req.trailing_headers.clone());
    let input = req.input;
    let part_number = check_part_number(input.part_number)?;
    store.bucket_for(&input.bucket, &who, Perm::Write).await?;
    upload_of(store, &input.upload_id, &input.bucket, &input.key).await?;
    if input
        .content_length
        .is_some_and(|n| n < 0 || n as u64 > MAX_PUT_SIZE)
    {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size."
        ));
    }
    let expected_md5 = content_md5(input.content_md5.as_deref())?;
    let written = store_body(store, input.body, MAX_PUT_SIZE, expected_md5, checksums).await?;
    let etag = hex::encode(written.md5);
    let part = Part {
        upload_id: input.upload_id,
        part_number,
        blob_id: written.blob_id,
        size: written.size,
        etag: etag.clone(),
        last_modified: ids::now_millis(),
    };
    commit_part(store, &part).await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    }))
}

/// Parses `bytes=first-last` of x-amz-copy-source-range against `size`.
fn copy_range(value: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = value
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if first > last {
        return Err(invalid());
    }
    if last >= size {
        return Err(s3_error!(
            InvalidRange,
            "The requested range is not satisfiable"
        ));
    }
    Ok(first..last + 1)
}

pub(super) async fn upload_part_copy(
    store: &ObjectStore,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let who = caller(&req);
    let input = req.input;
    let part_number = check_part_number(input.part_number)?;
    let (source_bucket, source_key) = copy_source(&input.copy_source)?;
    let (_, source) = readable_object(store, source_bucket, source_key, &who, Perm::Read).await?;
    store.bucket_for(&input.bucket, &who, Perm::Write).await?;
    upload_of(store, &input.upload_id, &input.bucket, &input.key).await?;
    copy_conditions!(input).check(&source, true)?;
    let range = match &input.copy_source_range {
        Some(value) => Some(copy_range(value, source.size)?),
        None => None,
    };
    let length = range.as_ref().map_or(source.size, |r| r.end - r.start);
    if length > MAX_PUT_SIZE {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
        ));
    }
    let written = copy_data(store, &source, range).await?;
    let etag = hex::encode(written.md5);
    let now = ids::now_millis();
    let part = Part {
        upload_id: input.upload_id,
        part_number,
        blob_id: written.blob_id,
        size: written.size,
        etag: etag.clone(),
        last_modified: now,
    };
    commit_part(store, &part).await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(etag)),
            last_modified: Some(timestamp(now)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub(super) async fn complete_multipart_upload(
    store: &ObjectStore,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let who = caller(&req);
    let input = req.input;
    store.bucket_for(&input.bucket, &who, Perm::Write).await?;
    let upload = upload_of(store, &input.upload_id, &input.bucket, &input.key).await?;
    let requested = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    if requested.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let stored = store
        .cloud
        .store
        .parts(&upload.upload_id)
        .await
        .map_err(internal)?;
    let mut chosen: Vec<&Part> = Vec::with_capacity(requested.len());
    let mut previous = 0u32;
    for completed in &requested {
        let number = completed
            .part_number
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        if number <= previous {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number."
            ));
        }
        previous = number;
        let etag = completed
            .e_tag
            .as_ref()
            .map(|e| e.value().trim_matches('"').to_owned());
        let part = stored
            .iter()
            .find(|p| p.part_number == number && etag.as_deref().is_none_or(|e| e == p.etag))
            .ok_or_else(|| s3_error!(InvalidPart, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."))?;
        chosen.push(part);
    }
    if let Some((_, all_but_last)) = chosen.split_last()
        && all_but_last.iter().any(|p| p.size < MIN_PART_SIZE)
    {
        return Err(s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size."
        ));
    }
    let size: u64 = chosen.iter().map(|p| p.size).sum();
    if size > MAX_OBJECT_SIZE {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size."
        ));
    }
    let mut md5_of_md5s = Md5::new();
    for part in &chosen {
        md5_of_md5s.update(hex::decode(&part.etag).map_err(internal)?);
    }
    let etag = format!("{}-{}", hex::encode(md5_of_md5s.finalize()), chosen.len());
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
        etag: etag.clone(),
        last_modified: ids::now_millis(),
        metadata: upload.metadata.clone(),
        acl_json: upload.acl_json.clone(),
        owner_account: upload.owner_account.clone(),
    };
    match store
        .cloud
        .store
        .complete_upload(&upload.upload_id, &object)
        .await
    {
        Ok(released) => store.release_blobs(released).await,
        Err(StoreError::NotFound(_)) => return Err(no_such_upload()),
        Err(e) => return Err(write_error(e)),
    }
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(upload.bucket.clone()),
        key: Some(upload.key.clone()),
        e_tag: Some(ETag::Strong(etag)),
        location: Some(format!("/{}/{}", upload.bucket, upload.key)),
        ..Default::default()
    }))
}

pub(super) async fn abort_multipart_upload(
    store: &ObjectStore,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let who = caller(&req);
    let input = &req.input;
    store.bucket_for(&input.bucket, &who, Perm::Write).await?;
    let upload = upload_of(store, &input.upload_id, &input.bucket, &input.key).await?;
    match store.cloud.store.abort_upload(&upload.upload_id).await {
        Ok(released) => store.release_blobs(released).await,
        Err(StoreError::NotFound(_)) => return Err(no_such_upload()),
        Err(e) => return Err(internal(e)),
    }
    Ok(S3Response::with_status(
        AbortMultipartUploadOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn list_parts(
    store: &ObjectStore,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let who = caller(&req);
    let input = &req.input;
    store.bucket_for(&input.bucket, &who, Perm::Write).await?;
    let upload = upload_of(store, &input.upload_id, &input.bucket, &input.key).await?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = input
        .part_number_marker
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(0);
    let parts = store
        .cloud
        .store
        .parts(&upload.upload_id)
        .await
        .map_err(internal)?;
    let after: Vec<&Part> = parts.iter().filter(|p| p.part_number > marker).collect();
    let truncated = after.len() > max;
    let page = &after[..after.len().min(max)];
    let owner = owner_of(
        &upload.owner_account,
        &store.account_name(&upload.owner_account).await,
    );
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(upload.bucket.clone()),
        key: Some(upload.key.clone()),
        upload_id: Some(upload.upload_id.clone()),
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: page
            .last()
            .filter(|_| truncated)
            .map(|p| p.part_number as i32),
        initiator: Some(Initiator {
            display_name: owner.display_name.clone(),
            id: owner.id.clone(),
        }),
        owner: Some(owner),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        parts: Some(
            page.iter()
                .map(|p| s3s::dto::Part {
                    e_tag: Some(ETag::Strong(p.etag.clone())),
                    last_modified: Some(timestamp(p.last_modified)),
                    part_number: Some(p.part_number as i32),
                    size: Some(p.size as i64),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(super) async fn list_multipart_uploads(
    store: &ObjectStore,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let who = caller(&req);
    let input = &req.input;
    store.bucket_for(&input.bucket, &who, Perm::Write).await?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let uploads = store
        .cloud
        .store
        .uploads(&input.bucket)
        .await
        .map_err(internal)?;
    let mut listed = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    for upload in uploads.iter().filter(|u| u.key.starts_with(&prefix)) {
        let after_marker = upload.key.as_str() > key_marker.as_str()
            || (!key_marker.is_empty()
                && upload.key == key_marker
                && !id_marker.is_empty()
                && upload.upload_id.as_str() > id_marker.as_str());
        if !key_marker.is_empty() && !after_marker {
            continue;
        }
        let common = (!delimiter.is_empty())
            .then(|| {
                upload.key[prefix.len()..]
                    .find(&delimiter)
                    .map(|i| upload.key[..prefix.len() + i + delimiter.len()].to_owned())
            })
            .flatten();
        if let Some(common) = &common
            && prefixes.last() == Some(common)
        {
            continue;
        }
        if listed.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        match common {
            Some(common) => prefixes.push(common),
            None => listed.push(upload),
        }
    }
    let mut out = Vec::with_capacity(listed.len());
    for upload in &listed {
        let owner = owner_of(
            &upload.owner_account,
            &store.account_name(&upload.owner_account).await,
        );
        out.push(s3s::dto::MultipartUpload {
            initiated: Some(timestamp(upload.initiated)),
            initiator: Some(Initiator {
                display_name: owner.display_name.clone(),
                id: owner.id.clone(),
            }),
            key: Some(upload.key.clone()),
            owner: Some(owner),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            upload_id: Some(upload.upload_id.clone()),
            ..Default::default()
        });
    }
    let last = listed.last();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket.clone()),
        prefix: Some(prefix),
        delimiter: (!delimiter.is_empty()).then_some(delimiter),
        key_marker: Some(key_marker),
        upload_id_marker: Some(id_marker),
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: last.filter(|_| truncated).map(|u| u.key.clone()),
        next_upload_id_marker: last.filter(|_| truncated).map(|u| u.upload_id.clone()),
        common_prefixes: Some(
            prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
        ),
        uploads: Some(out),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}
