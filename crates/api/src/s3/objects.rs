//! Object operations: PutObject, GetObject, HeadObject, DeleteObject,
//! DeleteObjects, CopyObject, Get/PutObjectAcl. Data streams between the
//! client and blob files; conditional requests and ranges as S3 does them.

use base64::Engine;
use mallee_blobs::{BlobError, WriteLimits, WrittenBlob};
use mallee_store::{Bucket, ObjectMetadata, ObjectRecord};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::acl::{Acl, Permission as Perm};
use super::buckets::{acl_from_request, policy_of};
use super::{
    MAX_PUT_SIZE, ObjectStore, S3Caller, access_denied, caller, internal, requested_acl, timestamp,
    write_error,
};
use mallee_cloud::ids;

/// Errors of streaming a body into a blob.
pub(super) fn blob_error(err: BlobError) -> S3Error {
    match err {
        BlobError::TooLarge { .. } => {
            s3_error!(
                EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed object size."
            )
        }
        BlobError::Md5Mismatch { .. } => {
            s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received."
            )
        }
        BlobError::Body(cause) => body_stream_error(&cause.to_string()),
        BlobError::SizeMismatch { .. } => s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ),
        other => internal(other),
    }
}

/// The error for a body stream that failed while s3s verified it. Its error
/// types are private, so they are told apart by their messages.
fn body_stream_error(cause: &str) -> S3Error {
    if cause.contains(super::checksum::MISMATCH) {
        s3_error!(
            BadDigest,
            "The checksum you specified did not match the calculated checksum."
        )
    } else if cause.contains("Sha256Mismatch") {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        e
    } else if cause.contains("SignatureMismatch") {
        s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        )
    } else {
        s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        )
    }
}

/// Decodes a Content-MD5 header.
pub(super) fn content_md5(value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(value) = value else { return Ok(None) };
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .map(Some)
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))
}

fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

/// Metadata from the standard headers and `x-amz-meta-*` of a write.
pub(super) struct MetadataInput<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
    pub content_language: Option<&'a str>,
    pub cache_control: Option<&'a str>,
    pub expires: Option<&'a Timestamp>,
    pub user: Option<&'a Metadata>,
}

impl MetadataInput<'_> {
    pub(super) fn into_metadata(self) -> ObjectMetadata {
        let own = |v: Option<&str>| v.map(str::to_owned);
        // `aws-chunked` describes the transfer, not the object: S3 drops it.
        let content_encoding = self.content_encoding.and_then(|v| {
            let kept: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            (!kept.is_empty()).then(|| kept.join(","))
        });
        ObjectMetadata {
            // S3 stores this type when the writer sends none.
            content_type: Some(
                self.content_type
                    .unwrap_or("binary/octet-stream")
                    .to_owned(),
            ),
            content_encoding,
            content_disposition: own(self.content_disposition),
            content_language: own(self.content_language),
            cache_control: own(self.cache_control),
            expires: self.expires.and_then(http_date),
            user: self
                .user
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

fn user_metadata(meta: &ObjectMetadata) -> Option<Metadata> {
    (!meta.user.is_empty()).then(|| {
        meta.user
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// Streams `body` into a new blob, checking the MD5 and any
/// `x-amz-checksum-*` the request carries.
pub(super) async fn store_body(
    store: &ObjectStore,
    body: Option<StreamingBlob>,
    max_size: u64,
    expected_md5: Option<[u8; 16]>,
    checksums: super::checksum::Expected,
) -> S3Result<WrittenBlob> {
    use futures_util::StreamExt;
    let limits = WriteLimits {
        max_size,
        expected_size: None,
        expected_md5,
    };
    let stream = match body {
        Some(body) => checksums.check(body).boxed(),
        None => checksums
            .check(futures_util::stream::empty::<
                Result<bytes::Bytes, std::io::Error>,
            >())
            .boxed(),
    };
    store.blobs.write(stream, limits).await.map_err(blob_error)
}

/// Copies `range` (or all) of `source` into a new blob.
pub(super) async fn copy_data(
    store: &ObjectStore,
    source: &ObjectRecord,
    range: Option<std::ops::Range<u64>>,
) -> S3Result<WrittenBlob> {
    let length = range.as_ref().map_or(source.size, |r| r.end - r.start);
    let segments: Vec<(String, u64)> = source
        .segments
        .iter()
        .map(|s| (s.blob_id.clone(), s.size))
        .collect();
    let reader = store
        .blobs
        .open_object(&segments, range)
        .await
        .map_err(internal)?;
    let limits = WriteLimits {
        max_size: MAX_PUT_SIZE,
        expected_size: Some(length),
        expected_md5: None,
    };
    store
        .blobs
        .write(reader.into_stream(), limits)
        .await
        .map_err(blob_error)
}

/// Commits `object`, whose data is the freshly written blob(s); on failure
/// the new blobs are deleted, on success the replaced ones.
pub(super) async fn commit_object(store: &ObjectStore, object: &ObjectRecord) -> S3Result<()> {
    match store.cloud.store.put_object(object).await {
        Ok(replaced) => {
            store.release_blobs(replaced).await;
            Ok(())
        }
        Err(e) => {
            store
                .release_blobs(object.segments.iter().map(|s| s.blob_id.clone()).collect())
                .await;
            Err(write_error(e))
        }
    }
}

pub(super) async fn put_object(
    store: &ObjectStore,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let who = caller(&req);
    let checksums =
        super::checksum::Expected::from_request(&req.headers, req.trailing_headers.clone());
    let input = req.input;
    let bucket = store.bucket_for(&input.bucket, &who, Perm::Write).await?;
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
    let owner = who.account().unwrap_or(&bucket.account_id).to_owned();
    let acl = requested_acl(
        store,
        input.acl.as_ref().map(|a| a.as_str()),
        object_grants!(input),
        &owner,
        &bucket.account_id,
    )
    .await?;
    if input
        .if_none_match
        .as_ref()
        .is_some_and(ETagCondition::is_any)
        && store
            .cloud
            .store
            .object(&bucket.name, &input.key)
            .await
            .map_err(internal)?
            .is_some()
    {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    let metadata = MetadataInput {
        content_type: input.content_type.as_deref(),
        content_encoding: input.content_encoding.as_deref(),
        content_disposition: input.content_disposition.as_deref(),
        content_language: input.content_language.as_deref(),
        cache_control: input.cache_control.as_deref(),
        expires: input.expires.as_ref(),
        user: input.metadata.as_ref(),
    }
    .into_metadata();
    let written = store_body(store, input.body, MAX_PUT_SIZE, expected_md5, checksums).await?;
    let etag = hex::encode(written.md5);
    let object = ObjectRecord {
        bucket: bucket.name,
        key: input.key,
        segments: vec![mallee_store::Segment {
            blob_id: written.blob_id,
            size: written.size,
        }],
        size: written.size,
        etag: etag.clone(),
        last_modified: ids::now_millis(),
        metadata,
        acl_json: acl.to_json(),
        owner_account: owner,
    };
    commit_object(store, &object).await?;
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    }))
}

/// The object, after checking `caller` may read it. A missing key is
/// NoSuchKey only for callers allowed to list the bucket, AccessDenied
/// otherwise (so existence does not leak), as S3 does.
pub(super) async fn readable_object(
    store: &ObjectStore,
    bucket_name: &str,
    key: &str,
    who: &S3Caller,
    permission: Perm,
) -> S3Result<(Bucket, ObjectRecord)> {
    let bucket = store.bucket(bucket_name).await?;
    let object = store
        .cloud
        .store
        .object(bucket_name, key)
        .await
        .map_err(internal)?;
    let Some(object) = object else {
        let bucket_acl = Acl::from_json(&bucket.acl_json, &bucket.account_id);
        return Err(if bucket_acl.allows(who.account(), Perm::Read) {
            s3_error!(NoSuchKey, "The specified key does not exist.")
        } else {
            access_denied()
        });
    };
    if !Acl::from_json(&object.acl_json, &object.owner_account).allows(who.account(), permission) {
        return Err(access_denied());
    }
    Ok((bucket, object))
}

/// The conditional headers of a read, in S3's order of precedence.
pub(super) struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
    condition.is_any() || condition.as_etag().is_some_and(|e| e.value() == etag)
}

fn seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

impl Conditions<'_> {
    /// Checks the conditions against an object: `Err` with PreconditionFailed
    /// (412), or with NotModified (304) when `not_modified_is_failure` is
    /// false (reads); copy sources fail with 412 for every condition.
    pub(super) fn check(
        &self,
        object: &ObjectRecord,
        not_modified_is_failure: bool,
    ) -> S3Result<()> {
        let modified = object.last_modified.div_euclid(1000);
        let failed = || {
            s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )
        };
        let not_modified = || {
            if not_modified_is_failure {
                return failed();
            }
            // A 304 still tells the cache which version it has.
            let mut e = S3Error::new(S3ErrorCode::NotModified);
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", object.etag)) {
                headers.insert(http::header::ETAG, v);
            }
            if let Some(v) = http_date(&timestamp(object.last_modified))
                .and_then(|d| http::HeaderValue::from_str(&d).ok())
            {
                headers.insert(http::header::LAST_MODIFIED, v);
            }
            e.set_headers(headers);
            e
        };
        let if_match_ok = self.if_match.map(|c| etag_matches(c, &object.etag));
        if if_match_ok == Some(false) {
            return Err(failed());
        }
        if if_match_ok.is_none()
            && self
                .if_unmodified_since
                .is_some_and(|t| modified > seconds(t))
        {
            return Err(failed());
        }
        let none_match_hit = self.if_none_match.map(|c| etag_matches(c, &object.etag));
        if none_match_hit == Some(true) {
            return Err(not_modified());
        }
        if none_match_hit.is_none()
            && self
                .if_modified_since
                .is_some_and(|t| modified <= seconds(t))
        {
            return Err(not_modified());
        }
        Ok(())
    }
}

/// Byte range of part `n` (1-based) of an object.
fn part_range(object: &ObjectRecord, part_number: i32) -> S3Result<std::ops::Range<u64>> {
    let index = usize::try_from(part_number - 1).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        )
    })?;
    let segment = object.segments.get(index).ok_or_else(|| {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        e
    })?;
    let start: u64 = object.segments[..index].iter().map(|s| s.size).sum();
    Ok(start..start + segment.size)
}

/// The read conditions of a GET or HEAD.
fn read_conditions<'a>(
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
) -> Conditions<'a> {
    Conditions {
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    }
}

/// The bytes a GET or HEAD asks for: a Range header, or one part.
fn requested_range(
    range: Option<&Range>,
    part_number: Option<i32>,
    object: &ObjectRecord,
) -> S3Result<Option<std::ops::Range<u64>>> {
    match (range, part_number) {
        (Some(range), _) => Ok(Some(range.check(object.size)?)),
        (None, Some(n)) => Ok(Some(part_range(object, n)?)),
        (None, None) => Ok(None),
    }
}

/// A Content-Range header value.
fn content_range(r: &std::ops::Range<u64>, size: u64) -> String {
    if r.is_empty() {
        format!("bytes */{size}")
    } else {
        format!("bytes {}-{}/{size}", r.start, r.end - 1)
    }
}

fn expires_of(meta: &ObjectMetadata) -> Option<Timestamp> {
    meta.expires.as_deref().and_then(parse_http_date)
}

pub(super) async fn get_object(
    store: &ObjectStore,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let who = caller(&req);
    let input = &req.input;
    let (_, object) = readable_object(store, &input.bucket, &input.key, &who, Perm::Read).await?;
    read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )
    .check(&object, false)?;
    let range = requested_range(input.range.as_ref(), input.part_number, &object)?;
    let segments: Vec<(String, u64)> = object
        .segments
        .iter()
        .map(|s| (s.blob_id.clone(), s.size))
        .collect();
    let reader = store
        .blobs
        .open_object(&segments, range.clone())
        .await
        .map_err(internal)?;
    let length = reader.len();
    let content_range = range.map(|r| content_range(&r, object.size));
    let meta = &object.metadata;
    let output = GetObjectOutput {
        body: Some(StreamingBlob::wrap(reader.into_stream())),
        content_length: Some(length as i64),
        content_range,
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
        ..Default::default()
    };
    let status = if output.content_range.is_some() {
        http::StatusCode::PARTIAL_CONTENT
    } else {
        http::StatusCode::OK
    };
    Ok(S3Response::with_status(output, status))
}

pub(super) async fn head_object(
    store: &ObjectStore,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let who = caller(&req);
    let input = &req.input;
    let (_, object) = readable_object(store, &input.bucket, &input.key, &who, Perm::Read).await?;
    read_conditions(
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )
    .check(&object, false)?;
    let range = requested_range(input.range.as_ref(), input.part_number, &object)?;
    let length = range.as_ref().map_or(object.size, |r| r.end - r.start);
    let content_range = range.map(|r| content_range(&r, object.size));
    let meta = &object.metadata;
    Ok(S3Response::new(HeadObjectOutput {
        content_length: Some(length as i64),
        content_range,
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
        ..Default::default()
    }))
}

pub(super) async fn delete_object(
    store: &ObjectStore,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let bucket = store
        .bucket_for(&req.input.bucket, &caller(&req), Perm::Write)
        .await?;
    if let Some(blobs) = store
        .cloud
        .store
        .delete_object(&bucket.name, &req.input.key)
        .await
        .map_err(internal)?
    {
        store.release_blobs(blobs).await;
    }
    Ok(S3Response::with_status(
        DeleteObjectOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn delete_objects(
    store: &ObjectStore,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let bucket = store
        .bucket_for(&req.input.bucket, &caller(&req), Perm::Write)
        .await?;
    let quiet = req.input.delete.quiet.unwrap_or(false);
    if req.input.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for id in &req.input.delete.objects {
        match store.cloud.store.delete_object(&bucket.name, &id.key).await {
            Ok(blobs) => {
                store.release_blobs(blobs.unwrap_or_default()).await;
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(id.key.clone()),
                        ..Default::default()
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, key = id.key, "delete failed");
                errors.push(Error {
                    code: Some("InternalError".into()),
                    key: Some(id.key.clone()),
                    message: Some("We encountered an internal error. Please try again.".into()),
                    version_id: None,
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

/// The source bucket and key of a copy.
pub(super) fn copy_source(source: &CopySource) -> S3Result<(&str, &str)> {
    match source {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket, key)),
        _ => Err(s3_error!(
            NotImplemented,
            "Access point copy sources are not supported"
        )),
    }
}

pub(super) async fn copy_object(
    store: &ObjectStore,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let who = caller(&req);
    let input = req.input;
    let (source_bucket, source_key) = copy_source(&input.copy_source)?;
    let (_, source) = readable_object(store, source_bucket, source_key, &who, Perm::Read).await?;
    let bucket = store.bucket_for(&input.bucket, &who, Perm::Write).await?;
    copy_conditions!(input).check(&source, true)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if source_bucket == input.bucket && source_key == input.key && !replace {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    if source.size > MAX_PUT_SIZE {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
        ));
    }
    let metadata = if replace {
        MetadataInput {
            content_type: input.content_type.as_deref(),
            content_encoding: input.content_encoding.as_deref(),
            content_disposition: input.content_disposition.as_deref(),
            content_language: input.content_language.as_deref(),
            cache_control: input.cache_control.as_deref(),
            expires: input.expires.as_ref(),
            user: input.metadata.as_ref(),
        }
        .into_metadata()
    } else {
        source.metadata.clone()
    };
    let owner = who.account().unwrap_or(&bucket.account_id).to_owned();
    let acl = requested_acl(
        store,
        input.acl.as_ref().map(|a| a.as_str()),
        object_grants!(input),
        &owner,
        &bucket.account_id,
    )
    .await?;
    let written = copy_data(store, &source, None).await?;
    // A copy keeps the source's ETag only for single-part sources; S3
    // computes a fresh MD5 ETag for the new object otherwise.
    let etag = hex::encode(written.md5);
    let now = ids::now_millis();
    let object = ObjectRecord {
        bucket: bucket.name,
        key: input.key,
        segments: vec![mallee_store::Segment {
            blob_id: written.blob_id,
            size: written.size,
        }],
        size: written.size,
        etag: etag.clone(),
        last_modified: now,
        metadata,
        acl_json: acl.to_json(),
        owner_account: owner,
    };
    commit_object(store, &object).await?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(etag)),
            last_modified: Some(timestamp(now)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub(super) async fn get_object_acl(
    store: &ObjectStore,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let who = caller(&req);
    let (_, object) = readable_object(
        store,
        &req.input.bucket,
        &req.input.key,
        &who,
        Perm::ReadAcp,
    )
    .await?;
    let policy = policy_of(
        store,
        &Acl::from_json(&object.acl_json, &object.owner_account),
    )
    .await;
    Ok(S3Response::new(GetObjectAclOutput {
        grants: policy.grants,
        owner: policy.owner,
        ..Default::default()
    }))
}

pub(super) async fn put_object_acl(
    store: &ObjectStore,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let who = caller(&req);
    let input = req.input;
    let (bucket, object) =
        readable_object(store, &input.bucket, &input.key, &who, Perm::WriteAcp).await?;
    let acl = acl_from_request(
        store,
        &object.owner_account,
        &bucket.account_id,
        input.acl.as_ref().map(|a| a.as_str()),
        input.access_control_policy.as_ref(),
        all_grants!(input),
    )
    .await?;
    if !store
        .cloud
        .store
        .set_object_acl(&bucket.name, &object.key, &acl.to_json())
        .await
        .map_err(internal)?
    {
        return Err(s3_error!(NoSuchKey, "The specified key does not exist."));
    }
    Ok(S3Response::new(PutObjectAclOutput::default()))
}
