//! Bucket operations on the wire: ListBuckets, CreateBucket, HeadBucket,
//! DeleteBucket, GetBucketLocation, Get/PutBucketAcl.

use mallee_cloud::objects::buckets::{self, NewBucket};
use s3s::dto::{self as dto, *};
use s3s::{S3Request, S3Response, S3Result};

use super::acl::policy_of;
use super::dto::{owner_of, timestamp};
use super::error::s3_error;
use super::{S3Api, caller};

pub(super) async fn list_buckets(
    api: &S3Api,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let listed = buckets::list(&api.cloud, &caller(&req))
        .await
        .map_err(s3_error)?;
    let list = listed
        .buckets
        .into_iter()
        .map(|b| dto::Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created_at)),
            bucket_region: None,
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(list),
        owner: Some(owner_of(&listed.owner.account_id, &listed.owner.name)),
        ..Default::default()
    }))
}

pub(super) async fn create_bucket(
    api: &S3Api,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let location = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned())
        .unwrap_or_default();
    let acl = requested_acl!(api, input, all_grants).await?;
    let new = NewBucket {
        name: input.bucket,
        location,
        acl,
    };
    let bucket = buckets::create(&api.cloud, &requester, new)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", bucket.name)),
    }))
}

pub(super) async fn head_bucket(
    api: &S3Api,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let region = buckets::region(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(region),
        ..Default::default()
    }))
}

pub(super) async fn delete_bucket(
    api: &S3Api,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    buckets::delete(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

pub(super) async fn get_bucket_location(
    api: &S3Api,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let location = buckets::location(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    let location_constraint =
        (!location.is_empty()).then(|| BucketLocationConstraint::from(location));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}

pub(super) async fn get_bucket_acl(
    api: &S3Api,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let acl = buckets::acl(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    let policy = policy_of(&api.cloud, &acl).await;
    Ok(S3Response::new(GetBucketAclOutput {
        grants: policy.grants,
        owner: policy.owner,
    }))
}

pub(super) async fn put_bucket_acl(
    api: &S3Api,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let acl = acl_to_set!(api, input).await?;
    buckets::set_acl(&api.cloud, &requester, &input.bucket, acl)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}
