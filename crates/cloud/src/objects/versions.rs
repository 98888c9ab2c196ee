//! Versioning, as S3 keeps it: a bucket's state (its owner turns it on or
//! suspends it; it never goes back to off, and MFA delete is not
//! supported); the version id every write gets (a fresh id while
//! versioning is enabled, `null` otherwise, which replaces the `null`
//! version); version ids checked before they reach the store; delete
//! markers; and listing a bucket's versions by key and version, with
//! prefixes, delimiters and pages as ListObjectVersions does. Reading,
//! writing and deleting by version id are in `reads` and `writes`.

use mallee_store::{
    Bucket, NULL_VERSION, ObjectMetadata, ObjectRecord, ObjectVersion, VersionPosition, Versioning,
};
use rand::Rng;

use super::acl::{Acl, Permission};
use super::error::{ObjectError, Result};
use super::list::common_prefix;
use super::{Requester, bucket_for, owned_bucket, page_size};
use crate::{Cloud, ids};

/// Versions fetched from the index per round trip.
const BATCH: usize = 1000;
/// A string greater than every key that starts with a given prefix.
const AFTER_EVERYTHING: char = '\u{10FFFF}';
/// Length of a version id (S3's are opaque; ours are letters and digits).
const VERSION_ID_LEN: usize = 32;

/// A fresh version id.
fn fresh_id() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..VERSION_ID_LEN)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

/// The version id a write to `bucket` gets now.
pub(crate) fn new_version_id(bucket: &Bucket) -> String {
    match bucket.versioning {
        Versioning::Enabled => fresh_id(),
        Versioning::Unversioned | Versioning::Suspended => NULL_VERSION.to_owned(),
    }
}

/// Checks a version id a request names: `null` or one of ours; anything
/// else is S3's InvalidArgument.
pub(crate) fn checked_id(version_id: &str) -> Result<&str> {
    let ours =
        version_id.len() == VERSION_ID_LEN && version_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if ours || version_id == NULL_VERSION {
        Ok(version_id)
    } else {
        Err(ObjectError::InvalidVersionId)
    }
}

/// A delete marker for `key` in `bucket`, written by `requester`.
pub(crate) fn delete_marker(
    requester: &Requester,
    bucket: &Bucket,
    key: &str,
    version_id: String,
) -> ObjectRecord {
    let owner = requester.account().unwrap_or(&bucket.account_id).to_owned();
    ObjectRecord {
        bucket: bucket.name.clone(),
        key: key.to_owned(),
        segments: Vec::new(),
        size: 0,
        etag: String::new(),
        last_modified: ids::now_millis(),
        metadata: ObjectMetadata::default(),
        acl_json: Acl::private(&owner).to_json(),
        owner_account: owner,
        tags: Default::default(),
        version_id,
        delete_marker: true,
        encryption: None,
    }
}

/// What a PutBucketVersioning asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VersioningRequest {
    /// `Some(true)` to enable, `Some(false)` to suspend, `None` to leave
    /// the state as it is.
    pub enabled: Option<bool>,
    /// MFA delete asked on (`Some(true)`), which mallee does not support.
    pub mfa_delete: Option<bool>,
}

/// Turns versioning on or suspends it, for the bucket's owner.
pub async fn set_versioning(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    request: VersioningRequest,
) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    if request.mfa_delete == Some(true) {
        return Err(ObjectError::MfaDeleteNotSupported);
    }
    let state = match request.enabled {
        Some(true) => Versioning::Enabled,
        Some(false) => Versioning::Suspended,
        None => return Ok(()),
    };
    cloud
        .store
        .set_bucket_versioning(&bucket.name, state)
        .await
        .map_err(ObjectError::from_write)
}

/// A bucket's versioning state, for its owner.
pub async fn versioning(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<Versioning> {
    Ok(owned_bucket(cloud, requester, bucket).await?.versioning)
}

/// What a ListObjectVersions asks for.
#[derive(Debug, Clone, Default)]
pub struct ListVersions {
    /// The bucket.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// Keys with this after the prefix are rolled up into common prefixes
    /// (none when empty).
    pub delimiter: String,
    /// Start after this key (the start when empty).
    pub key_marker: String,
    /// With `key_marker`, start after this version of it.
    pub version_id_marker: Option<String>,
    /// The page size asked for (at most [`super::MAX_PAGE`]).
    pub max_keys: Option<usize>,
}

/// One page of a listing of versions.
#[derive(Debug, Default)]
pub struct VersionListing {
    /// Versions and delete markers, by key and then newest first.
    pub versions: Vec<ObjectVersion>,
    /// Common prefixes, in order.
    pub prefixes: Vec<String>,
    /// The page size used.
    pub max_keys: usize,
    /// Whether more entries follow.
    pub truncated: bool,
    /// Where the next page starts, when truncated: a key (or common
    /// prefix) and, after a version, its id.
    pub next: Option<(String, Option<String>)>,
}

/// Lists the versions in a bucket the requester may read.
pub async fn list(
    cloud: &Cloud,
    requester: &Requester,
    query: &ListVersions,
) -> Result<VersionListing> {
    bucket_for(cloud, requester, &query.bucket, Permission::Read).await?;
    if query.version_id_marker.is_some() && query.key_marker.is_empty() {
        return Err(ObjectError::VersionMarkerWithoutKey);
    }
    if let Some(id) = &query.version_id_marker {
        checked_id(id)?;
    }
    let (prefix, delimiter) = (query.prefix.as_str(), query.delimiter.as_str());
    let mut listing = VersionListing {
        max_keys: page_size(query.max_keys),
        ..Default::default()
    };
    let mut after = VersionPosition {
        key: query.key_marker.clone(),
        version_id: query.version_id_marker.clone(),
    };
    // A key marker that is a common prefix skips its whole subtree.
    if after.version_id.is_none()
        && common_prefix(&after.key, prefix, delimiter).is_some_and(|common| common == after.key)
    {
        after.key.push(AFTER_EVERYTHING);
    }
    'pages: loop {
        let batch = cloud
            .store
            .list_versions(&query.bucket, prefix, &after, BATCH)
            .await?;
        let full_batch = batch.len() == BATCH;
        for version in batch {
            let key = version.object.key.clone();
            let common = common_prefix(&key, prefix, delimiter);
            if listing.versions.len() + listing.prefixes.len() == listing.max_keys {
                listing.truncated = true;
                break 'pages;
            }
            match common {
                Some(common) => {
                    after = VersionPosition {
                        key: format!("{common}{AFTER_EVERYTHING}"),
                        version_id: None,
                    };
                    listing.next = Some((common.clone(), None));
                    listing.prefixes.push(common);
                    continue 'pages;
                }
                None => {
                    let id = version.object.version_id.clone();
                    after = VersionPosition {
                        key: key.clone(),
                        version_id: Some(id.clone()),
                    };
                    listing.next = Some((key, Some(id)));
                    listing.versions.push(version);
                }
            }
        }
        if !full_batch {
            break;
        }
    }
    if !listing.truncated {
        listing.next = None;
    }
    Ok(listing)
}

#[cfg(test)]
#[path = "versions_tests.rs"]
mod tests;
