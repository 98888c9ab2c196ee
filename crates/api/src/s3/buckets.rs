//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, Get/PutBucketAcl; and the ACL document both bucket and
//! object ACL operations exchange.

use mallee_store::{Bucket, StoreError};
use s3s::dto::{self as dto, *};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::acl::{self, Acl, Grantee};
use super::{
    ObjectStore, S3Caller, access_denied, caller, internal, owner_of, requested_acl, timestamp,
    write_error,
};
use mallee_cloud::ids;

type Perm = super::acl::Permission;

/// LocationConstraint values accepted besides the cloud's own region (s3cmd
/// and old tools send the legacy `US`).
const LEGACY_LOCATIONS: &[&str] = &["", "US", "us-east-1"];

pub(super) async fn list_buckets(
    store: &ObjectStore,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let S3Caller::Principal(principal) = caller(&req) else {
        return Err(access_denied());
    };
    let account = &principal.account;
    let buckets = store
        .cloud
        .store
        .buckets(&account.account_id)
        .await
        .map_err(internal)?;
    let list = buckets
        .into_iter()
        .map(|b| dto::Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created_at)),
            bucket_region: None,
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(list),
        owner: Some(owner_of(&account.account_id, &account.name)),
        ..Default::default()
    }))
}

pub(super) async fn create_bucket(
    store: &ObjectStore,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let S3Caller::Principal(principal) = caller(&req) else {
        return Err(access_denied());
    };
    let input = req.input;
    let account_id = &principal.account.account_id;
    let location = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned())
        .unwrap_or_default();
    if location != store.cloud.config.region && !LEGACY_LOCATIONS.contains(&location.as_str()) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidLocationConstraint,
            "The specified location-constraint is not valid",
        ));
    }
    let acl = requested_acl(
        store,
        input.acl.as_ref().map(|a| a.as_str()),
        all_grants!(input),
        account_id,
        account_id,
    )
    .await?;
    let bucket = Bucket {
        name: input.bucket.clone(),
        account_id: account_id.clone(),
        region: location,
        acl_json: acl.to_json(),
        created_at: ids::now_millis(),
    };
    match store.cloud.store.create_bucket(&bucket).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            let existing = store.bucket(&input.bucket).await?;
            return Err(if &existing.account_id == account_id {
                s3_error!(
                    BucketAlreadyOwnedByYou,
                    "Your previous request to create the named bucket succeeded and you already own it."
                )
            } else {
                s3_error!(
                    BucketAlreadyExists,
                    "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
                )
            });
        }
        Err(e) => return Err(internal(e)),
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", input.bucket)),
    }))
}

pub(super) async fn head_bucket(
    store: &ObjectStore,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let bucket = store
        .bucket_for(&req.input.bucket, &caller(&req), Perm::Read)
        .await?;
    let region = if bucket.region.is_empty() {
        store.cloud.config.region.clone()
    } else {
        bucket.region
    };
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(region),
        ..Default::default()
    }))
}

pub(super) async fn delete_bucket(
    store: &ObjectStore,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = store.bucket(&req.input.bucket).await?;
    if caller(&req).account() != Some(bucket.account_id.as_str()) {
        return Err(access_denied());
    }
    store
        .cloud
        .store
        .delete_bucket(&bucket.name)
        .await
        .map_err(write_error)?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

pub(super) async fn get_bucket_location(
    store: &ObjectStore,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let bucket = store.bucket(&req.input.bucket).await?;
    if caller(&req).account() != Some(bucket.account_id.as_str()) {
        return Err(access_denied());
    }
    let location_constraint =
        (!bucket.region.is_empty()).then(|| BucketLocationConstraint::from(bucket.region));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}

pub(super) async fn get_bucket_acl(
    store: &ObjectStore,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let bucket = store
        .bucket_for(&req.input.bucket, &caller(&req), Perm::ReadAcp)
        .await?;
    let policy = policy_of(store, &Acl::from_json(&bucket.acl_json, &bucket.account_id)).await;
    Ok(S3Response::new(GetBucketAclOutput {
        grants: policy.grants,
        owner: policy.owner,
    }))
}

pub(super) async fn put_bucket_acl(
    store: &ObjectStore,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let bucket = store
        .bucket_for(&req.input.bucket, &caller(&req), Perm::WriteAcp)
        .await?;
    let input = req.input;
    let acl = acl_from_request(
        store,
        &bucket.account_id,
        &bucket.account_id,
        input.acl.as_ref().map(|a| a.as_str()),
        input.access_control_policy.as_ref(),
        all_grants!(input),
    )
    .await?;
    store
        .cloud
        .store
        .set_bucket_acl(&bucket.name, &acl.to_json())
        .await
        .map_err(write_error)?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

/// The ACL a Put*Acl request sets: a canned ACL, grant headers, or an
/// AccessControlPolicy document (exactly one of them).
pub(super) async fn acl_from_request(
    store: &ObjectStore,
    owner: &str,
    bucket_owner: &str,
    canned: Option<&str>,
    policy: Option<&AccessControlPolicy>,
    grants: [(Perm, Option<&str>); 5],
) -> S3Result<Acl> {
    let Some(policy) = policy else {
        if canned.is_none() && grants.iter().all(|(_, g)| g.is_none()) {
            return Err(s3_error!(
                MissingSecurityHeader,
                "Your request was missing a required header"
            ));
        }
        return requested_acl(store, canned, grants, owner, bucket_owner).await;
    };
    if canned.is_some() || grants.iter().any(|(_, g)| g.is_some()) {
        return Err(s3_error!(
            UnexpectedContent,
            "This request does not support content"
        ));
    }
    let resolve = store.resolve_canonical().await?;
    let mut acl = Acl {
        owner: owner.to_owned(),
        grants: Vec::new(),
    };
    for grant in policy.grants.iter().flatten() {
        let permission = grant
            .permission
            .as_ref()
            .and_then(|p| acl::parse_permission(p.as_str()))
            .ok_or_else(|| s3_error!(MalformedACLError, "The XML you provided was not well-formed or did not validate against our published schema"))?;
        let grantee = grant
            .grantee
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedACLError))?;
        let grantee = match (grantee.type_.as_str(), &grantee.id, &grantee.uri) {
            ("CanonicalUser", Some(id), _) => Grantee::Account(
                resolve(id).ok_or_else(|| s3_error!(InvalidArgument, "Invalid id"))?,
            ),
            ("Group", _, Some(uri)) => acl::group(uri)
                .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string()))?,
            _ => {
                return Err(s3_error!(
                    MalformedACLError,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ));
            }
        };
        acl.grants.push(acl::Grant {
            grantee,
            permission,
        });
    }
    Ok(acl)
}

/// The AccessControlPolicy document for an ACL.
pub(super) async fn policy_of(store: &ObjectStore, acl: &Acl) -> AccessControlPolicy {
    let owner_name = store.account_name(&acl.owner).await;
    let mut grants = Vec::with_capacity(acl.grants.len());
    for grant in &acl.grants {
        let grantee = match &grant.grantee {
            Grantee::Account(id) => dto::Grantee {
                display_name: Some(store.account_name(id).await),
                email_address: None,
                id: Some(acl::canonical_id(id)),
                type_: Type::from_static(Type::CANONICAL_USER),
                uri: None,
            },
            Grantee::AllUsers | Grantee::AuthenticatedUsers => dto::Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                uri: Some(
                    if grant.grantee == Grantee::AllUsers {
                        acl::ALL_USERS_URI
                    } else {
                        acl::AUTHENTICATED_USERS_URI
                    }
                    .to_owned(),
                ),
            },
        };
        grants.push(dto::Grant {
            grantee: Some(grantee),
            permission: Some(dto::Permission::from(
                acl::permission_name(grant.permission).to_owned(),
            )),
        });
    }
    AccessControlPolicy {
        grants: Some(grants),
        owner: Some(owner_of(&acl.owner, &owner_name)),
    }
}
