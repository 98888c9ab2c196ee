//! Encryption at rest on the wire: Put/Get/DeleteBucketEncryption (SSE-S3,
//! `AES256`), the `x-amz-server-side-encryption` a write sends, and the
//! one its answer (and every read's) carries. Keys and what is encrypted
//! are `mallee_cloud::objects::sse`.

use http::StatusCode;
use mallee_cloud::objects::sse;
use mallee_store::ObjectEncryption;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::error::s3_error;
use super::{S3Api, caller};

/// Whether a write's `x-amz-server-side-encryption` asks for SSE-S3.
pub(super) fn asked(value: Option<&ServerSideEncryption>) -> S3Result<bool> {
    sse::requested(value.map(ServerSideEncryption::as_str)).map_err(s3_error)
}

/// The `x-amz-server-side-encryption` of data encrypted as `encryption`
/// (SSE-S3; SSE-C answers [`customer_answer`]'s headers instead).
pub(super) fn answered(encryption: Option<&ObjectEncryption>) -> Option<ServerSideEncryption> {
    encryption
        .filter(|e| e.wrapped_key.is_some() && e.customer_key_digest.is_none())
        .map(|_| ServerSideEncryption::from_static(ServerSideEncryption::AES256))
}

/// The customer's key (SSE-C) of a request's three headers.
pub(super) fn customer(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
) -> S3Result<Option<sse::CustomerKey>> {
    sse::customer_key(algorithm, key, key_md5).map_err(s3_error)
}

/// The customer's key (SSE-C) of an input's `sse_customer_*` fields.
macro_rules! customer_key {
    ($input:expr) => {
        super::encryption::customer(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
        )
    };
}
pub(super) use customer_key;

/// The customer's key of an SSE-C copy source.
macro_rules! source_customer_key {
    ($input:expr) => {
        super::encryption::customer(
            $input.copy_source_sse_customer_algorithm.as_deref(),
            $input.copy_source_sse_customer_key.as_deref(),
            $input.copy_source_sse_customer_key_md5.as_deref(),
        )
    };
}
pub(super) use source_customer_key;

/// `x-amz-server-side-encryption-customer-algorithm` and `-key-MD5` of
/// SSE-C data.
pub(super) fn customer_answer(
    encryption: Option<&ObjectEncryption>,
) -> (Option<String>, Option<String>) {
    match encryption.and_then(|e| e.customer_key_digest.clone()) {
        Some(md5) => (Some(sse::AES256.to_owned()), Some(md5)),
        None => (None, None),
    }
}

pub(super) async fn put_bucket_encryption(
    api: &S3Api,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let requester = caller(&req);
    let input = req.input;
    // S3 takes exactly one rule, with its default.
    let [rule] = input.server_side_encryption_configuration.rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    };
    let Some(default) = &rule.apply_server_side_encryption_by_default else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    };
    if default.kms_master_key_id.is_some() && default.sse_algorithm.as_str() == sse::AES256 {
        return Err(s3_error!(
            InvalidArgument,
            "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse"
        ));
    }
    sse::put_default(
        &api.cloud,
        &requester,
        &input.bucket,
        default.sse_algorithm.as_str(),
        rule.bucket_key_enabled.unwrap_or(false),
    )
    .await
    .map_err(s3_error)?;
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub(super) async fn get_bucket_encryption(
    api: &S3Api,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let config = sse::get_default(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
            rules: vec![ServerSideEncryptionRule {
                apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                    sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AES256),
                    kms_master_key_id: None,
                }),
                bucket_key_enabled: Some(config.bucket_key_enabled),
            }],
        }),
    }))
}

pub(super) async fn delete_bucket_encryption(
    api: &S3Api,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    sse::delete_default(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::with_status(
        DeleteBucketEncryptionOutput {},
        StatusCode::NO_CONTENT,
    ))
}
