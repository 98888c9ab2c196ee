//! Multipart uploads on the wire: CreateMultipartUpload, UploadPart,
//! UploadPartCopy, CompleteMultipartUpload, AbortMultipartUpload,
//! ListParts and ListMultipartUploads.

use mallee_cloud::objects::multipart::{
    self, CompletedPart, CopyPart, ListUploads, NewUpload, UploadPart, UploadRef,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::dto::{body, copy_range, copy_source, owner, timestamp, written_version};
use super::error::s3_error;
use super::{S3Api, caller};

/// The upload a request names.
fn upload_ref(bucket: &str, key: &str, upload_id: &str) -> UploadRef {
    UploadRef {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
    }
}

/// A page size as asked for (negative asks for none).
fn page_size(max: Option<i32>) -> Option<usize> {
    max.map(|n| usize::try_from(n).unwrap_or(0))
}

/// The Initiator element for an upload's owner.
fn initiator(owner: &Owner) -> Initiator {
    Initiator {
        display_name: owner.display_name.clone(),
        id: owner.id.clone(),
    }
}

pub(super) async fn create_multipart_upload(
    api: &S3Api,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let acl = requested_acl!(api, input, object_grants).await?;
    let new = NewUpload {
        acl,
        metadata: metadata_of!(input),
        tags: super::tagging::header_pairs(input.tagging.as_deref()),
        bucket: input.bucket,
        key: input.key,
        encrypt: super::encryption::asked(input.server_side_encryption.as_ref())?,
        customer_key: super::encryption::customer_key!(input)?,
    };
    let upload = multipart::create(&api.cloud, &requester, new)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        server_side_encryption: super::encryption::answered(upload.encryption.as_ref()),
        sse_customer_algorithm: super::encryption::customer_answer(upload.encryption.as_ref()).0,
        sse_customer_key_md5: super::encryption::customer_answer(upload.encryption.as_ref()).1,
        bucket: Some(upload.bucket),
        key: Some(upload.key),
        upload_id: Some(upload.upload_id),
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    api: &S3Api,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let part = UploadPart {
        upload: upload_ref(&input.bucket, &input.key, &input.upload_id),
        part_number: input.part_number,
        body: body(
            &req.headers,
            req.trailing_headers,
            input.content_length,
            input.content_md5.as_deref(),
            input.body,
        )?,
        customer_key: super::encryption::customer_key!(input)?,
    };
    let part = multipart::upload_part(&api.cloud, &requester, part)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        ..Default::default()
    }))
}

pub(super) async fn upload_part_copy(
    api: &S3Api,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let (source_bucket, source_key, source_version) = copy_source(&input.copy_source)?;
    let copy = CopyPart {
        upload: upload_ref(&input.bucket, &input.key, &input.upload_id),
        part_number: input.part_number,
        source_bucket,
        source_key,
        source_version: source_version.clone(),
        conditions: copy_conditions!(input),
        range: input
            .copy_source_range
            .as_deref()
            .map(copy_range)
            .transpose()?,
        customer_key: super::encryption::customer_key!(input)?,
        source_customer_key: super::encryption::source_customer_key!(input)?,
    };
    let part = multipart::copy_part(&api.cloud, &requester, copy)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp(part.last_modified)),
            ..Default::default()
        }),
        copy_source_version_id: source_version,
        ..Default::default()
    }))
}

pub(super) async fn complete_multipart_upload(
    api: &S3Api,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let parts: Vec<CompletedPart> = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| CompletedPart {
            number: p
                .part_number
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            etag: p.e_tag.map(|e| e.value().trim_matches('"').to_owned()),
        })
        .collect();
    let upload = upload_ref(&input.bucket, &input.key, &input.upload_id);
    let object = multipart::complete(&api.cloud, &requester, &upload, &parts)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", object.bucket, object.key)),
        bucket: Some(object.bucket),
        key: Some(object.key),
        server_side_encryption: super::encryption::answered(object.encryption.as_ref()),
        e_tag: Some(ETag::Strong(object.etag)),
        version_id: written_version(&object.version_id),
        ..Default::default()
    }))
}

pub(super) async fn abort_multipart_upload(
    api: &S3Api,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = &req.input;
    let upload = upload_ref(&input.bucket, &input.key, &input.upload_id);
    multipart::abort(&api.cloud, &caller(&req), &upload)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::with_status(
        AbortMultipartUploadOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn list_parts(
    api: &S3Api,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = &req.input;
    let upload = upload_ref(&input.bucket, &input.key, &input.upload_id);
    let after = input
        .part_number_marker
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(0);
    let page = multipart::parts(
        &api.cloud,
        &caller(&req),
        &upload,
        after,
        page_size(input.max_parts),
    )
    .await
    .map_err(s3_error)?;
    let owner = owner(&api.cloud, &page.upload.owner_account).await;
    Ok(S3Response::new(ListPartsOutput {
        max_parts: Some(page.max as i32),
        is_truncated: Some(page.truncated),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: page
            .parts
            .last()
            .filter(|_| page.truncated)
            .map(|p| p.part_number as i32),
        initiator: Some(initiator(&owner)),
        owner: Some(owner),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        parts: Some(
            page.parts
                .iter()
                .map(|p| s3s::dto::Part {
                    e_tag: Some(ETag::Strong(p.etag.clone())),
                    last_modified: Some(timestamp(p.last_modified)),
                    part_number: Some(p.part_number as i32),
                    size: Some(p.size as i64),
                    ..Default::default()
                })
                .collect(),
        ),
        bucket: Some(page.upload.bucket),
        key: Some(page.upload.key),
        upload_id: Some(page.upload.upload_id),
        ..Default::default()
    }))
}

pub(super) async fn list_multipart_uploads(
    api: &S3Api,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = &req.input;
    let list = ListUploads {
        bucket: input.bucket.clone(),
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().unwrap_or_default(),
        key_marker: input.key_marker.clone().unwrap_or_default(),
        upload_id_marker: input.upload_id_marker.clone().unwrap_or_default(),
        max: page_size(input.max_uploads),
    };
    let page = multipart::uploads(&api.cloud, &caller(&req), &list)
        .await
        .map_err(s3_error)?;
    let mut uploads = Vec::with_capacity(page.uploads.len());
    for upload in &page.uploads {
        let owner = owner(&api.cloud, &upload.owner_account).await;
        uploads.push(s3s::dto::MultipartUpload {
            initiated: Some(timestamp(upload.initiated)),
            initiator: Some(initiator(&owner)),
            key: Some(upload.key.clone()),
            owner: Some(owner),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            upload_id: Some(upload.upload_id.clone()),
            ..Default::default()
        });
    }
    let next = page.uploads.last().filter(|_| page.truncated);
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(list.bucket),
        prefix: Some(list.prefix),
        delimiter: (!list.delimiter.is_empty()).then_some(list.delimiter),
        key_marker: Some(list.key_marker),
        upload_id_marker: Some(list.upload_id_marker),
        max_uploads: Some(page.max as i32),
        is_truncated: Some(page.truncated),
        next_key_marker: next.map(|u| u.key.clone()),
        next_upload_id_marker: next.map(|u| u.upload_id.clone()),
        common_prefixes: Some(
            page.prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
        ),
        uploads: Some(uploads),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}
