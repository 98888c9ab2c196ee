//! The bucket controls and configurations tools read, on the wire:
//! Put/Get/DeletePublicAccessBlock, Put/Get/DeleteBucketOwnershipControls,
//! GetBucketRequestPayment (always `BucketOwner`), GetBucketAccelerate-
//! Configuration and GetBucketLogging (off: empty documents, as S3 answers
//! for a bucket that never had them), and the configurations mallee has
//! no feature for (website, replication, object lock),
//! which answer S3's "not configured" error. Setting those
//! stays NotImplemented, in S3's error shape (s3s's default answer, given
//! its RequestId at the front door).

use mallee_cloud::objects::controls::{self, ObjectOwnership, PublicAccessBlock, Unconfigured};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::error::s3_error;
use super::{S3Api, caller};

pub(super) async fn put_public_access_block(
    api: &S3Api,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let config = input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: config.block_public_acls.unwrap_or(false),
        ignore_public_acls: config.ignore_public_acls.unwrap_or(false),
        block_public_policy: config.block_public_policy.unwrap_or(false),
        restrict_public_buckets: config.restrict_public_buckets.unwrap_or(false),
    };
    controls::put_access_block(&api.cloud, &requester, &input.bucket, block)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(PutPublicAccessBlockOutput {}))
}

pub(super) async fn get_public_access_block(
    api: &S3Api,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let block = controls::get_access_block(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(block.block_public_acls),
            ignore_public_acls: Some(block.ignore_public_acls),
            block_public_policy: Some(block.block_public_policy),
            restrict_public_buckets: Some(block.restrict_public_buckets),
        }),
    }))
}

pub(super) async fn delete_public_access_block(
    api: &S3Api,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    controls::delete_access_block(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::with_status(
        DeletePublicAccessBlockOutput {},
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn put_bucket_ownership_controls(
    api: &S3Api,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let requester = caller(&req);
    let input = req.input;
    // S3 takes exactly one rule.
    let [rule] = input.ownership_controls.rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    };
    let Some(ownership) = ObjectOwnership::parse(rule.object_ownership.as_str()) else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    };
    controls::put_ownership(&api.cloud, &requester, &input.bucket, ownership)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
}

pub(super) async fn get_bucket_ownership_controls(
    api: &S3Api,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let ownership = controls::get_ownership(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls {
            rules: vec![OwnershipControlsRule {
                object_ownership: s3s::dto::ObjectOwnership::from_static(ownership.as_str()),
            }],
        }),
    }))
}

pub(super) async fn delete_bucket_ownership_controls(
    api: &S3Api,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    controls::delete_ownership(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::with_status(
        DeleteBucketOwnershipControlsOutput {},
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn get_bucket_request_payment(
    api: &S3Api,
    req: S3Request<GetBucketRequestPaymentInput>,
) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
    controls::owner_reads(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(GetBucketRequestPaymentOutput {
        payer: Some(Payer::from_static(Payer::BUCKET_OWNER)),
    }))
}

pub(super) async fn get_bucket_accelerate_configuration(
    api: &S3Api,
    req: S3Request<GetBucketAccelerateConfigurationInput>,
) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
    controls::owner_reads(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    // Never enabled: S3 answers a configuration without a Status.
    Ok(S3Response::new(
        GetBucketAccelerateConfigurationOutput::default(),
    ))
}

pub(super) async fn get_bucket_logging(
    api: &S3Api,
    req: S3Request<GetBucketLoggingInput>,
) -> S3Result<S3Response<GetBucketLoggingOutput>> {
    controls::owner_reads(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    // Logging off: an empty BucketLoggingStatus.
    Ok(S3Response::new(GetBucketLoggingOutput::default()))
}

/// The answer to reading a configuration mallee has none of.
async fn unconfigured<T>(
    api: &S3Api,
    req: &S3Request<T>,
    bucket: &str,
    what: Unconfigured,
) -> s3s::S3Error {
    s3_error(controls::unconfigured(&api.cloud, &caller(req), bucket, what).await)
}

pub(super) async fn get_bucket_website(
    api: &S3Api,
    req: S3Request<GetBucketWebsiteInput>,
) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
    Err(unconfigured(api, &req, &req.input.bucket, Unconfigured::Website).await)
}

pub(super) async fn get_bucket_replication(
    api: &S3Api,
    req: S3Request<GetBucketReplicationInput>,
) -> S3Result<S3Response<GetBucketReplicationOutput>> {
    Err(unconfigured(api, &req, &req.input.bucket, Unconfigured::Replication).await)
}

pub(super) async fn get_object_lock_configuration(
    api: &S3Api,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    Err(unconfigured(api, &req, &req.input.bucket, Unconfigured::ObjectLock).await)
}
