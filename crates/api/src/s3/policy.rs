//! Bucket policy operations on the wire: Put/Get/DeleteBucketPolicy and
//! GetBucketPolicyStatus. The document travels as the request or response
//! body, unchanged; what a policy may say and who may manage it is
//! `mallee_cloud::objects::policy`.

use mallee_cloud::objects::policy;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::error::s3_error;
use super::{S3Api, caller};

pub(super) async fn put_bucket_policy(
    api: &S3Api,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    policy::put(
        &api.cloud,
        &caller(&req),
        &req.input.bucket,
        &req.input.policy,
    )
    .await
    .map_err(s3_error)?;
    Ok(S3Response::new(PutBucketPolicyOutput {}))
}

pub(super) async fn get_bucket_policy(
    api: &S3Api,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let text = policy::get(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(text),
    }))
}

pub(super) async fn delete_bucket_policy(
    api: &S3Api,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    policy::delete(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(DeleteBucketPolicyOutput {}))
}

pub(super) async fn get_bucket_policy_status(
    api: &S3Api,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let public = policy::is_public(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(public),
        }),
    }))
}
