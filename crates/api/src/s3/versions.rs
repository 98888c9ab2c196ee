//! Versioning on the wire: Put/GetBucketVersioning (a `Status` of
//! `Enabled` or `Suspended`; `MfaDelete` enabled is refused as not
//! implemented) and ListObjectVersions (key and version-id markers,
//! prefix, delimiter, max-keys, `encoding-type=url`; versions and delete
//! markers in their own lists, as S3's XML has them). What a bucket keeps
//! is `mallee_cloud::objects::versions`.

use std::collections::HashMap;

use mallee_cloud::objects::versions::{self, ListVersions, VersioningRequest};
use mallee_store::Versioning;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::dto::{owner, timestamp};
use super::error::s3_error;
use super::list::{common_prefixes, encoder, max_keys};
use super::{S3Api, caller};
use mallee_cloud::objects::ObjectError;

pub(super) async fn put_bucket_versioning(
    api: &S3Api,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let config = input.versioning_configuration;
    let enabled = match config.status.as_ref().map(|s| s.as_str()) {
        Some(BucketVersioningStatus::ENABLED) => Some(true),
        Some(BucketVersioningStatus::SUSPENDED) => Some(false),
        Some(_) => {
            return Err(s3_error(ObjectError::IllegalVersioningConfiguration));
        }
        None => None,
    };
    let mfa_delete = match config.mfa_delete.as_ref().map(|m| m.as_str()) {
        Some(MFADelete::ENABLED) => Some(true),
        Some(MFADelete::DISABLED) => Some(false),
        Some(_) => {
            return Err(s3_error(ObjectError::IllegalVersioningConfiguration));
        }
        None => None,
    };
    let request = VersioningRequest {
        enabled,
        mfa_delete,
    };
    versions::set_versioning(&api.cloud, &requester, &input.bucket, request)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}

pub(super) async fn get_bucket_versioning(
    api: &S3Api,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let state = versions::versioning(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    // A bucket that never kept versions answers an empty configuration.
    let status = match state {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::ENABLED),
        Versioning::Suspended => Some(BucketVersioningStatus::SUSPENDED),
    };
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: status.map(BucketVersioningStatus::from_static),
        mfa_delete: None,
    }))
}

pub(super) async fn list_object_versions(
    api: &S3Api,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = &req.input;
    let enc = encoder(input.encoding_type.as_ref())?;
    let query = ListVersions {
        bucket: input.bucket.clone(),
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().unwrap_or_default(),
        key_marker: input.key_marker.clone().unwrap_or_default(),
        version_id_marker: input.version_id_marker.clone().filter(|v| !v.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let listing = versions::list(&api.cloud, &caller(&req), &query)
        .await
        .map_err(s3_error)?;
    // One owner lookup per account, not per version.
    let mut owners: HashMap<String, Owner> = HashMap::new();
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for version in listing.versions {
        let object = version.object;
        let owner = match owners.get(&object.owner_account) {
            Some(owner) => owner.clone(),
            None => {
                let found = owner(&api.cloud, &object.owner_account).await;
                owners.insert(object.owner_account.clone(), found.clone());
                found
            }
        };
        if object.delete_marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(version.is_latest),
                key: Some(enc(object.key)),
                last_modified: Some(timestamp(object.last_modified)),
                owner: Some(owner),
                version_id: Some(object.version_id),
            });
        } else {
            versions.push(ObjectVersion {
                e_tag: Some(ETag::Strong(object.etag)),
                is_latest: Some(version.is_latest),
                key: Some(enc(object.key)),
                last_modified: Some(timestamp(object.last_modified)),
                owner: Some(owner),
                size: Some(object.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id: Some(object.version_id),
                ..Default::default()
            });
        }
    }
    let (next_key_marker, next_version_id_marker) = match listing.next {
        Some((key, version)) => (Some(enc(key)), version),
        None => (None, None),
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(query.bucket),
        prefix: Some(enc(query.prefix)),
        key_marker: Some(enc(query.key_marker)),
        version_id_marker: Some(query.version_id_marker.unwrap_or_default()),
        max_keys: Some(listing.max_keys as i32),
        is_truncated: Some(listing.truncated),
        next_key_marker,
        next_version_id_marker,
        versions: (!versions.is_empty()).then_some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        common_prefixes: (!listing.prefixes.is_empty())
            .then(|| common_prefixes(listing.prefixes, &enc)),
        delimiter: (!query.delimiter.is_empty()).then(|| enc(query.delimiter)),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}
