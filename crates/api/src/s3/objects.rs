//! Object operations on the wire: PutObject, GetObject, HeadObject,
//! DeleteObject, DeleteObjects, CopyObject, Get/PutObjectAcl. Bodies pass
//! through as streams, wrapped in the `x-amz-checksum-*` check; tags come
//! in `x-amz-tagging` and their count goes out in `x-amz-tagging-count`.
//! Every one may name a version (`versionId`, or `?versionId=` in a copy
//! source) and answers `x-amz-version-id` (and `x-amz-delete-marker`)
//! as S3 does.

use mallee_cloud::objects::ObjectError;
use mallee_cloud::objects::reads::{self, ObjectView, ReadObject};
use mallee_cloud::objects::writes::{self, CopyObject, Deleted, PutObject};
use mallee_store::ObjectRecord;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::acl::policy_of;
use super::authz::{KeyDecision, KeyDeletes};
use super::dto::{
    body, byte_range, copy_source, expires_of, timestamp, user_metadata, written_version,
};
use super::error::s3_error;
use super::tagging::{count_header, header_pairs};
use super::{S3Api, caller};

/// Most keys one DeleteObjects may name.
const MAX_DELETE_KEYS: usize = 1000;

pub(super) async fn put_object(
    api: &S3Api,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let body = body(
        &req.headers,
        req.trailing_headers,
        input.content_length,
        input.content_md5.as_deref(),
        input.body,
    )?;
    let acl = requested_acl!(api, input, object_grants).await?;
    let put = PutObject {
        acl,
        create_only: input
            .if_none_match
            .as_ref()
            .is_some_and(ETagCondition::is_any),
        metadata: metadata_of!(input),
        tags: header_pairs(input.tagging.as_deref()),
        body,
        bucket: input.bucket,
        key: input.key,
        encrypt: super::encryption::asked(input.server_side_encryption.as_ref())?,
        customer_key: super::encryption::customer_key!(input)?,
    };
    let object = writes::put(&api.cloud, &requester, put)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(PutObjectOutput {
        server_side_encryption: super::encryption::answered(object.encryption.as_ref()),
        sse_customer_algorithm: super::encryption::customer_answer(object.encryption.as_ref()).0,
        sse_customer_key_md5: super::encryption::customer_answer(object.encryption.as_ref()).1,
        e_tag: Some(ETag::Strong(object.etag)),
        version_id: written_version(&object.version_id),
        ..Default::default()
    }))
}

/// What a GetObject or HeadObject asks for.
macro_rules! read_request {
    ($input:expr) => {
        ReadObject {
            bucket: $input.bucket.clone(),
            key: $input.key.clone(),
            conditions: conditions!(
                $input,
                if_match,
                if_none_match,
                if_modified_since,
                if_unmodified_since
            ),
            range: $input.range.as_ref().map(byte_range),
            part_number: $input.part_number,
            version_id: $input.version_id.clone(),
            customer_key: super::encryption::customer_key!($input)?,
        }
    };
}

/// The headers GetObject and HeadObject share, in the fields both outputs
/// name alike.
macro_rules! object_headers {
    ($output:ident, $view:expr, $($rest:tt)*) => {{
        let view: &ObjectView = $view;
        let object: &ObjectRecord = &view.object;
        let meta = &object.metadata;
        $output {
            content_length: Some(view.len() as i64),
            content_range: view.range.as_ref().map(|r| content_range(r, object.size)),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(timestamp(object.last_modified)),
            e_tag: Some(ETag::Strong(object.etag.clone())),
            metadata: user_metadata(meta),
            content_type: meta.content_type.clone(),
            content_encoding: meta.content_encoding.clone(),
            content_disposition: meta.content_disposition.clone(),
            content_language: meta.content_language.clone(),
            cache_control: meta.cache_control.clone(),
            expires: expires_of(meta),
            parts_count: (object.segments.len() > 1).then_some(object.segments.len() as i32),
            version_id: view.version_header.clone(),
            server_side_encryption: super::encryption::answered(object.encryption.as_ref()),
            sse_customer_algorithm: super::encryption::customer_answer(object.encryption.as_ref()).0,
            sse_customer_key_md5: super::encryption::customer_answer(object.encryption.as_ref()).1,
            expiration: view
                .expiration
                .as_ref()
                .and_then(|(at, rule)| super::lifecycle::expiration_header(*at, rule)),
            $($rest)*
        }
    }};
}

/// A Content-Range header value.
fn content_range(r: &std::ops::Range<u64>, size: u64) -> String {
    if r.is_empty() {
        format!("bytes */{size}")
    } else {
        format!("bytes {}-{}/{size}", r.start, r.end - 1)
    }
}

pub(super) async fn get_object(
    api: &S3Api,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = &req.input;
    let read = read_request!(input);
    let (view, reader) = reads::get(&api.cloud, &caller(&req), &read)
        .await
        .map_err(s3_error)?;
    let status = if view.range.is_some() {
        http::StatusCode::PARTIAL_CONTENT
    } else {
        http::StatusCode::OK
    };
    let tag_count = view.object.tags.len();
    let output = object_headers!(
        GetObjectOutput,
        &view,
        body: Some(StreamingBlob::wrap(reader.into_stream())),
        tag_count: (tag_count > 0).then(|| i32::try_from(tag_count).unwrap_or(i32::MAX)),
        ..Default::default()
    );
    Ok(S3Response::with_status(output, status))
}

pub(super) async fn head_object(
    api: &S3Api,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = &req.input;
    let read = read_request!(input);
    let view = reads::head(&api.cloud, &caller(&req), &read)
        .await
        .map_err(s3_error)?;
    let mut response = S3Response::new(object_headers!(
        HeadObjectOutput,
        &view,
        ..Default::default()
    ));
    // s3s's HeadObjectOutput has no field for the count S3 sends.
    if let Some((name, value)) = count_header(&view.object.tags) {
        response.headers.insert(name, value);
    }
    Ok(response)
}

pub(super) async fn delete_object(
    api: &S3Api,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = &req.input;
    let deleted = writes::delete(
        &api.cloud,
        &caller(&req),
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )
    .await
    .map_err(s3_error)?;
    Ok(S3Response::with_status(
        DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: deleted.version_id,
            ..Default::default()
        },
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn delete_objects(
    api: &S3Api,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let quiet = input.delete.quiet.unwrap_or(false);
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let Some(deletes) = req.extensions.get::<KeyDeletes>() else {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    };
    // Each key decided on its own; the allowed ones deleted in two groups,
    // with and without a bucket policy's grant, so that one key's grant
    // never stands in for another's.
    let mut decided: Vec<((String, Option<String>), bool)> = Vec::new();
    let (mut granted, mut plain) = (requester.clone(), Vec::new());
    let mut by_grant = Vec::new();
    for object in input.delete.objects {
        let key = (object.key, object.version_id);
        let allowed = match deletes.decide(&key.0, key.1.is_some())? {
            KeyDecision::Refused => false,
            KeyDecision::Granted(grant) => {
                granted.grant(grant);
                by_grant.push(key.clone());
                true
            }
            KeyDecision::ToOperation => {
                plain.push(key.clone());
                true
            }
        };
        decided.push((key, allowed));
    }
    let mut results = std::collections::HashMap::new();
    for (who, keys) in [(&granted, by_grant), (&requester, plain)] {
        if keys.is_empty() {
            continue;
        }
        match writes::delete_many(&api.cloud, who, &input.bucket, keys.clone()).await {
            Ok(outcomes) => results.extend(outcomes),
            // The bucket's ACL refuses these keys: each fails alone.
            Err(ObjectError::AccessDenied) => {
                results.extend(
                    keys.into_iter()
                        .map(|k| (k, Err(ObjectError::AccessDenied))),
                );
            }
            Err(e) => return Err(s3_error(e)),
        }
    }
    let outcomes = decided.into_iter().map(|(key, allowed)| {
        let outcome = match allowed {
            false => Err(ObjectError::AccessDenied),
            // A key named twice was deleted the first time.
            true => results.remove(&key).unwrap_or(Ok(Deleted {
                version_id: key.1.clone(),
                delete_marker: false,
            })),
        };
        (key, outcome)
    });
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for ((key, version_id), outcome) in outcomes {
        match outcome {
            Ok(_) if quiet => {}
            Ok(done) => {
                // S3 names the version asked for, and the delete marker
                // removed or written.
                let marker_id = done.delete_marker.then(|| done.version_id.clone());
                deleted.push(DeletedObject {
                    key: Some(key),
                    delete_marker: done.delete_marker.then_some(true),
                    delete_marker_version_id: marker_id.flatten(),
                    version_id,
                })
            }
            Err(e) => {
                let e = s3_error(e);
                errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(key),
                    message: e.message().map(str::to_owned),
                    version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub(super) async fn copy_object(
    api: &S3Api,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let (source_bucket, source_key, source_version) = copy_source(&input.copy_source)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    // COPY (the default) keeps the source's tags, REPLACE takes the
    // request's `x-amz-tagging` (none if absent).
    let replace_tags = input
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
    let acl = requested_acl!(api, input, object_grants).await?;
    let copy = CopyObject {
        source_bucket,
        source_key,
        source_version,
        conditions: copy_conditions!(input),
        metadata: replace.then(|| metadata_of!(input)),
        tags: replace_tags.then(|| header_pairs(input.tagging.as_deref())),
        acl,
        bucket: input.bucket,
        key: input.key,
        encrypt: super::encryption::asked(input.server_side_encryption.as_ref())?,
        customer_key: super::encryption::customer_key!(input)?,
        source_customer_key: super::encryption::source_customer_key!(input)?,
    };
    let copied = writes::copy(&api.cloud, &requester, copy)
        .await
        .map_err(s3_error)?;
    let object = copied.object;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(object.etag)),
            last_modified: Some(timestamp(object.last_modified)),
            ..Default::default()
        }),
        copy_source_version_id: copied.source_version,
        server_side_encryption: super::encryption::answered(object.encryption.as_ref()),
        sse_customer_algorithm: super::encryption::customer_answer(object.encryption.as_ref()).0,
        sse_customer_key_md5: super::encryption::customer_answer(object.encryption.as_ref()).1,
        version_id: written_version(&object.version_id),
        ..Default::default()
    }))
}

pub(super) async fn get_object_acl(
    api: &S3Api,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = &req.input;
    let (acl, _) = reads::acl(
        &api.cloud,
        &caller(&req),
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )
    .await
    .map_err(s3_error)?;
    let policy = policy_of(&api.cloud, &acl).await;
    Ok(S3Response::new(GetObjectAclOutput {
        grants: policy.grants,
        owner: policy.owner,
        ..Default::default()
    }))
}

pub(super) async fn put_object_acl(
    api: &S3Api,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let acl = acl_to_set!(api, input).await?;
    writes::set_acl(
        &api.cloud,
        &requester,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        acl,
    )
    .await
    .map_err(s3_error)?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}
