//! The bucket controls that decide how far ACLs and bucket policies reach,
//! and the configurations tools read on every run:
//!
//! * the public access block (BlockPublicAcls refuses public ACLs,
//!   IgnorePublicAcls makes public grants count for nothing,
//!   BlockPublicPolicy refuses public bucket policies,
//!   RestrictPublicBuckets keeps a public policy's grants to the bucket's
//!   own account);
//! * object ownership (BucketOwnerEnforced disables ACLs: the bucket's
//!   account owns every object and only it gets in by ownership;
//!   BucketOwnerPreferred gives it objects written with
//!   `bucket-owner-full-control`; ObjectWriter is S3's old default);
//! * request payment (always the bucket owner), and the configurations
//!   mallee has no feature for (website, replication, object lock),
//!   which read as not configured, S3's answer for a
//!   bucket that has none.
//!
//! Each is the bucket's account's to read and change.

use mallee_store::{Bucket, BucketSetting};
use serde::{Deserialize, Serialize};

use super::acl::{Acl, AclRequest, Grantee, Permission};
use super::error::{ObjectError, Result};
use super::{Requester, owned_bucket};
use crate::Cloud;

/// A bucket's public access block (every flag off when it has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse ACLs that grant the public anything.
    pub block_public_acls: bool,
    /// Let public grants of ACLs count for nothing.
    pub ignore_public_acls: bool,
    /// Refuse bucket policies that make the bucket public.
    pub block_public_policy: bool,
    /// Keep a public policy's grants to the bucket's own account.
    pub restrict_public_buckets: bool,
}

/// Who owns the objects written into a bucket, and whether ACLs count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    /// ACLs are disabled; the bucket's account owns every object.
    BucketOwnerEnforced,
    /// Objects written with `bucket-owner-full-control` are the bucket
    /// owner's.
    BucketOwnerPreferred,
    /// The writer owns what it writes (without controls, as S3 had it).
    #[default]
    ObjectWriter,
}

impl ObjectOwnership {
    /// S3's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BucketOwnerEnforced => "BucketOwnerEnforced",
            Self::BucketOwnerPreferred => "BucketOwnerPreferred",
            Self::ObjectWriter => "ObjectWriter",
        }
    }

    /// From S3's name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "BucketOwnerEnforced" => Some(Self::BucketOwnerEnforced),
            "BucketOwnerPreferred" => Some(Self::BucketOwnerPreferred),
            "ObjectWriter" => Some(Self::ObjectWriter),
            _ => None,
        }
    }
}

fn decoded<T: serde::de::DeserializeOwned>(bucket: &Bucket, setting: BucketSetting) -> Option<T> {
    let json = bucket.setting(setting)?;
    match serde_json::from_str(json) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(bucket = %bucket.name, error = %e, "unreadable bucket setting");
            None
        }
    }
}

/// The public access block in force on `bucket`.
pub fn access_block(bucket: &Bucket) -> PublicAccessBlock {
    decoded(bucket, BucketSetting::PublicAccessBlock).unwrap_or_default()
}

/// The object ownership in force on `bucket`.
pub fn ownership(bucket: &Bucket) -> ObjectOwnership {
    decoded(bucket, BucketSetting::OwnershipControls).unwrap_or_default()
}

/// Whether an ACL grants anything to everyone or to every authenticated
/// caller.
pub fn is_public(acl: &Acl) -> bool {
    acl.grants
        .iter()
        .any(|g| matches!(g.grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers))
}

/// Whether the ACL `acl_json` (of a bucket or object in `bucket`, owned
/// by `owner` if unreadable) gives `requester` `permission`, under the
/// bucket's controls: with ACLs disabled only the bucket's account gets
/// in; ignored public grants count for nothing.
pub(crate) fn acl_allows(
    bucket: &Bucket,
    acl_json: &str,
    owner: &str,
    requester: &Requester,
    permission: Permission,
) -> bool {
    if ownership(bucket) == ObjectOwnership::BucketOwnerEnforced {
        return requester.account() == Some(bucket.account_id.as_str());
    }
    let mut acl = Acl::from_json(acl_json, owner);
    if access_block(bucket).ignore_public_acls {
        acl.grants
            .retain(|g| !matches!(g.grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers));
    }
    acl.allows(requester.account(), permission)
}

/// Whether a requested ACL is what a bucket with ACLs disabled accepts:
/// none (private), or `bucket-owner-full-control`.
fn owner_full_control(request: &AclRequest) -> bool {
    matches!(request, AclRequest::Canned(name) if name == "private" || name == "bucket-owner-full-control")
}

/// The owner and ACL of a new object `requester` writes into `bucket`
/// with `request`, after the bucket's controls: ACLs disabled refuse any
/// ACL but the owner's full control and give the object to the bucket's
/// account; a preferred bucket owner takes objects granted full control;
/// blocked public ACLs are refused.
pub(crate) fn new_object_acl(
    requester: &Requester,
    bucket: &Bucket,
    request: AclRequest,
) -> Result<(String, Acl)> {
    let ownership = ownership(bucket);
    if ownership == ObjectOwnership::BucketOwnerEnforced {
        if !owner_full_control(&request) {
            return Err(ObjectError::AccessControlListNotSupported);
        }
        return Ok((bucket.account_id.clone(), Acl::private(&bucket.account_id)));
    }
    let writer = requester.account().unwrap_or(&bucket.account_id);
    let preferred = ownership == ObjectOwnership::BucketOwnerPreferred
        && matches!(&request, AclRequest::Canned(name) if name == "bucket-owner-full-control");
    let owner = if preferred {
        bucket.account_id.clone()
    } else {
        writer.to_owned()
    };
    let acl = resolve(request, &owner, &bucket.account_id)?;
    check_public(bucket, &acl)?;
    Ok((owner, acl))
}

/// The ACL a Put*Acl sets on a bucket or object owned by `owner` in
/// `bucket`, after the bucket's controls.
pub(crate) fn acl_to_set(bucket: &Bucket, owner: &str, request: AclRequest) -> Result<Acl> {
    if ownership(bucket) == ObjectOwnership::BucketOwnerEnforced {
        if !owner_full_control(&request) {
            return Err(ObjectError::AccessControlListNotSupported);
        }
        return Ok(Acl::private(&bucket.account_id));
    }
    let acl = resolve(request, owner, &bucket.account_id)?;
    check_public(bucket, &acl)?;
    Ok(acl)
}

fn resolve(request: AclRequest, owner: &str, bucket_owner: &str) -> Result<Acl> {
    request
        .resolve(owner, bucket_owner)
        .map_err(|e| ObjectError::InvalidAcl(e.to_string()))
}

/// Refuses a public ACL where the bucket blocks them (S3: 403).
fn check_public(bucket: &Bucket, acl: &Acl) -> Result<()> {
    if access_block(bucket).block_public_acls && is_public(acl) {
        Err(ObjectError::AccessDenied)
    } else {
        Ok(())
    }
}

async fn put_setting<T: Serialize>(
    cloud: &Cloud,
    bucket: &Bucket,
    setting: BucketSetting,
    value: Option<&T>,
) -> Result<()> {
    let json = value
        .map(serde_json::to_string)
        .transpose()
        .map_err(ObjectError::internal)?;
    cloud
        .store
        .set_bucket_setting(&bucket.name, setting, json.as_deref())
        .await
        .map_err(ObjectError::from_write)
}

/// Sets a bucket's public access block, for its owner.
pub async fn put_access_block(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    block: PublicAccessBlock,
) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    put_setting(
        cloud,
        &bucket,
        BucketSetting::PublicAccessBlock,
        Some(&block),
    )
    .await
}

/// A bucket's public access block, for its owner;
/// NoSuchPublicAccessBlockConfiguration when it has none.
pub async fn get_access_block(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
) -> Result<PublicAccessBlock> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    decoded(&bucket, BucketSetting::PublicAccessBlock)
        .ok_or(ObjectError::NoSuchPublicAccessBlockConfiguration)
}

/// Removes a bucket's public access block.
pub async fn delete_access_block(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    put_setting::<PublicAccessBlock>(cloud, &bucket, BucketSetting::PublicAccessBlock, None).await
}

/// Sets a bucket's object ownership, for its owner. ACLs cannot be
/// disabled while the bucket's own ACL grants anyone but its owner, as in
/// S3.
pub async fn put_ownership(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    ownership: ObjectOwnership,
) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    if ownership == ObjectOwnership::BucketOwnerEnforced {
        let acl = Acl::from_json(&bucket.acl_json, &bucket.account_id);
        let others = acl.grants.iter().any(|g| match &g.grantee {
            Grantee::Account(id) => *id != bucket.account_id,
            Grantee::AllUsers | Grantee::AuthenticatedUsers => true,
        });
        if others {
            return Err(ObjectError::InvalidBucketAclWithObjectOwnership);
        }
    }
    put_setting(
        cloud,
        &bucket,
        BucketSetting::OwnershipControls,
        Some(&ownership),
    )
    .await
}

/// A bucket's object ownership, for its owner;
/// OwnershipControlsNotFound when it has none.
pub async fn get_ownership(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
) -> Result<ObjectOwnership> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    decoded(&bucket, BucketSetting::OwnershipControls).ok_or(ObjectError::OwnershipControlsNotFound)
}

/// Removes a bucket's object ownership controls (back to ObjectWriter).
pub async fn delete_ownership(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    put_setting::<ObjectOwnership>(cloud, &bucket, BucketSetting::OwnershipControls, None).await
}

/// A configuration mallee has no feature for: every bucket reads as
/// having none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unconfigured {
    /// Static website hosting.
    Website,
    /// Replication.
    Replication,
    /// Object lock.
    ObjectLock,
}

/// The answer to reading an [`Unconfigured`] configuration of a bucket
/// the requester owns: S3's error for a bucket that has none.
pub async fn unconfigured(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    what: Unconfigured,
) -> ObjectError {
    if let Err(e) = owned_bucket(cloud, requester, bucket).await {
        return e;
    }
    match what {
        Unconfigured::Website => ObjectError::NoSuchWebsiteConfiguration,
        Unconfigured::Replication => ObjectError::ReplicationConfigurationNotFound,
        Unconfigured::ObjectLock => ObjectError::ObjectLockConfigurationNotFound,
    }
}

/// Checks the requester owns the bucket, for the configurations that read
/// as their defaults (request payment: the owner; acceleration and
/// logging: off).
pub async fn owner_reads(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<()> {
    owned_bucket(cloud, requester, bucket).await.map(|_| ())
}

#[cfg(test)]
#[path = "controls_tests.rs"]
mod tests;
