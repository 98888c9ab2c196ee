//! Metadata of the object store (S3): buckets, objects, multipart uploads
//! and parts, and per-account storage use. Object data lives in blob files
//! outside the database; records here point at them by blob id. A record is
//! committed only after its blobs are durable, so a crash never exposes a
//! partial object; blobs that a committed change stopped referencing are
//! returned to the caller to delete (and found again by a start-up sweep if
//! the process dies first). Tags live with what they tag: a bucket's,
//! an object's, and an upload's (which its object gets on completion).

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, UnixMillis};

/// An S3 tag set: values by key (keys are unique, and S3 returns them in
/// key order). Empty when nothing is tagged.
pub type Tags = BTreeMap<String, String>;

/// A bucket. Names are one namespace across all accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Bucket name.
    pub name: String,
    /// Owning account.
    pub account_id: String,
    /// LocationConstraint given at creation (empty for the default region).
    pub region: String,
    /// The bucket ACL, JSON encoded by the API layer.
    pub acl_json: String,
    /// Creation time.
    pub created_at: UnixMillis,
    /// The bucket policy as it was put, if the bucket has one.
    #[serde(default)]
    pub policy: Option<String>,
    /// The bucket's tags (empty: no tag set).
    #[serde(default)]
    pub tags: Tags,
    /// Whether the bucket keeps versions.
    #[serde(default)]
    pub versioning: Versioning,
    /// The bucket's one-document settings, as the object store encoded
    /// them, by [`BucketSetting::name`] (absent: not set).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl Bucket {
    /// A setting's document, if the bucket has it.
    pub fn setting(&self, setting: BucketSetting) -> Option<&str> {
        self.settings.get(setting.name()).map(String::as_str)
    }
}

/// A bucket sub-resource kept as one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketSetting {
    /// CORS rules.
    Cors,
    /// The public access block.
    PublicAccessBlock,
    /// Object ownership controls.
    OwnershipControls,
    /// Lifecycle rules.
    Lifecycle,
    /// Default encryption.
    Encryption,
}

impl BucketSetting {
    /// The name it is stored under.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cors => "cors",
            Self::PublicAccessBlock => "public-access-block",
            Self::OwnershipControls => "ownership-controls",
            Self::Lifecycle => "lifecycle",
            Self::Encryption => "encryption",
        }
    }
}

/// A bucket's versioning state. A bucket never returns to `Unversioned`
/// once versioning was enabled: it can only be suspended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Versioning was never enabled: writes replace the `null` version.
    #[default]
    Unversioned,
    /// Every write makes a new version with an id of its own.
    Enabled,
    /// Writes make (and replace) the `null` version; older versions stay.
    Suspended,
}

impl Versioning {
    /// The state as stored ("" for unversioned).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unversioned => "",
            Self::Enabled => "Enabled",
            Self::Suspended => "Suspended",
        }
    }

    /// The state stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "" => Some(Self::Unversioned),
            "Enabled" => Some(Self::Enabled),
            "Suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// The version id of objects written while versioning was not enabled.
pub const NULL_VERSION: &str = "null";

fn null_version() -> String {
    NULL_VERSION.to_owned()
}

/// A stretch of an object's data stored in one blob file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Blob file id.
    pub blob_id: String,
    /// Bytes in the blob.
    pub size: u64,
}

/// Standard and user metadata stored with an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMetadata {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// Expires, as the client sent it.
    pub expires: Option<String>,
    /// `x-amz-meta-*` values by lowercase name (without the prefix).
    pub user: BTreeMap<String, String>,
}

/// How an object's (or an upload's) data is encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEncryption {
    /// The algorithm (S3's `AES256`).
    pub algorithm: String,
    /// SSE-S3: the data key, wrapped under the cloud's master key (hex).
    #[serde(default)]
    pub wrapped_key: Option<String>,
    /// SSE-C: a keyed digest of the customer's key, which every request
    /// must bring again (the key itself is never stored).
    #[serde(default)]
    pub customer_key_digest: Option<String>,
}

/// One version of an object: its data, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Bucket name.
    pub bucket: String,
    /// Object key (UTF-8, at most 1024 bytes).
    pub key: String,
    /// Data, in order; one segment for a simple PUT, one per part for a
    /// completed multipart upload.
    pub segments: Vec<Segment>,
    /// Total size in bytes.
    pub size: u64,
    /// ETag without quotes: the MD5 hex, or `md5-of-md5s-N` for multipart.
    pub etag: String,
    /// Last-Modified.
    pub last_modified: UnixMillis,
    /// Standard and user metadata.
    pub metadata: ObjectMetadata,
    /// Object ACL, JSON encoded by the API layer.
    pub acl_json: String,
    /// Account that wrote the object.
    pub owner_account: String,
    /// The object's tags.
    #[serde(default)]
    pub tags: Tags,
    /// The version id ([`NULL_VERSION`] for writes while versioning was
    /// not enabled). Unique per key; the store orders versions by when
    /// they were written, not by id.
    #[serde(default = "null_version")]
    pub version_id: String,
    /// A delete marker: no data, and a GET of the key finds nothing while
    /// it is the latest version.
    #[serde(default)]
    pub delete_marker: bool,
    /// How the data is encrypted at rest (`None`: in the clear).
    #[serde(default)]
    pub encryption: Option<ObjectEncryption>,
}

/// A version as a listing of versions returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// The version.
    pub object: ObjectRecord,
    /// Whether it is its key's latest version.
    pub is_latest: bool,
}

/// Where a listing of versions resumes (exclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPosition {
    /// After this key's versions, or (with `version_id`) within them.
    pub key: String,
    /// After this version of `key` (its older versions follow); `None`
    /// (or a version that no longer exists) skips all of `key`'s.
    pub version_id: Option<String>,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUpload {
    /// Upload id.
    pub upload_id: String,
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Account that started it.
    pub owner_account: String,
    /// Start time.
    pub initiated: UnixMillis,
    /// Metadata the completed object gets.
    pub metadata: ObjectMetadata,
    /// ACL the completed object gets.
    pub acl_json: String,
    /// Tags the completed object gets.
    #[serde(default)]
    pub tags: Tags,
    /// How the parts are encrypted (the completed object's encryption).
    #[serde(default)]
    pub encryption: Option<ObjectEncryption>,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Upload it belongs to.
    pub upload_id: String,
    /// 1..=10000.
    pub part_number: u32,
    /// Blob holding its data.
    pub blob_id: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes (MD5 hex).
    pub etag: String,
    /// Upload time.
    pub last_modified: UnixMillis,
}

/// What a lifecycle rule does to a version a listing showed it. Each is
/// carried out only while the version is as it was seen (same
/// Last-Modified and ETag) and still in the position the rule judged it
/// in, so a write racing the lifecycle pass is never undone by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// Deletes the current version of a bucket that never kept versions
    /// (it must still be its key's latest).
    DeleteCurrent,
    /// Deletes a noncurrent version (it must still not be the latest).
    DeleteNoncurrent,
    /// Deletes a delete marker that is its key's only version (an
    /// expired object delete marker).
    DeleteLoneMarker,
    /// Writes this delete marker over the version, which must still be
    /// its key's latest (expiry in a bucket that keeps versions).
    Marker(Box<ObjectRecord>),
}

/// Why an object-store change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectIndexError {
    /// The bucket still holds objects.
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// The change would take the bucket owner's account over its quota.
    #[error("storage quota of {quota} bytes exceeded")]
    QuotaExceeded {
        /// The account's quota.
        quota: u64,
    },
}

/// Bucket and object metadata. Each method is one transaction.
#[async_trait]
pub trait ObjectIndex: Send + Sync {
    /// Creates a bucket; `Conflict` when the name exists in any account.
    async fn create_bucket(&self, bucket: &Bucket) -> StoreResult<()>;
    /// A bucket by name.
    async fn bucket(&self, name: &str) -> StoreResult<Option<Bucket>>;
    /// An account's buckets, ordered by name.
    async fn buckets(&self, account_id: &str) -> StoreResult<Vec<Bucket>>;
    /// Deletes a bucket that holds no objects, with its uncompleted
    /// multipart uploads and their parts (as S3 does), returning the parts'
    /// blob ids to delete: `Objects(BucketNotEmpty)` while it holds
    /// objects, `NotFound` when absent.
    async fn delete_bucket(&self, name: &str) -> StoreResult<Vec<String>>;
    /// Replaces a bucket's ACL; `NotFound` when absent.
    async fn set_bucket_acl(&self, name: &str, acl_json: &str) -> StoreResult<()>;
    /// Sets (or with `None` removes) a bucket's policy; `NotFound` when the
    /// bucket is absent. [`ObjectIndex::create_bucket`] stores the policy a
    /// new bucket carries.
    async fn set_bucket_policy(&self, name: &str, policy: Option<&str>) -> StoreResult<()>;
    /// Replaces a bucket's tags (empty removes them); `NotFound` when the
    /// bucket is absent.
    async fn set_bucket_tags(&self, name: &str, tags: &Tags) -> StoreResult<()>;
    /// Sets (or with `None` removes) one of a bucket's settings; `NotFound`
    /// when the bucket is absent.
    async fn set_bucket_setting(
        &self,
        name: &str,
        setting: BucketSetting,
        value: Option<&str>,
    ) -> StoreResult<()>;
    /// Sets a bucket's versioning state; `NotFound` when the bucket is
    /// absent.
    async fn set_bucket_versioning(&self, name: &str, state: Versioning) -> StoreResult<()>;
    /// Every bucket (of any account) that has `setting`, by name: the
    /// lifecycle pass finds its work with it.
    async fn buckets_with_setting(&self, setting: BucketSetting) -> StoreResult<Vec<Bucket>>;

    /// Writes a new version of an object (data or a delete marker) as its
    /// key's latest: a version with `object.version_id` already kept is
    /// replaced (the `null` version, written again while versioning is
    /// off or suspended); every other version stays, no longer the
    /// latest. Charges the bucket owner's usage, which counts every kept
    /// version, and enforces its quota (a change that does not grow usage
    /// is always allowed). Returns the blob ids the replaced version used.
    /// `NotFound` when the bucket is gone.
    async fn put_object(&self, object: &ObjectRecord) -> StoreResult<Vec<String>>;
    /// An object: its latest version, unless that is a delete marker.
    async fn object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>>;
    /// A version of an object (the latest with `None`), delete markers
    /// included.
    async fn object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> StoreResult<Option<ObjectRecord>>;
    /// Deletes an object's latest version, returning its blob ids (`None`
    /// when there was none); the next newest version, if any, becomes
    /// the latest. For buckets that never kept versions.
    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<Option<Vec<String>>>;
    /// Deletes one version of an object for good, returning it and the
    /// blob ids to delete (`None` when there is no such version). When it
    /// was the latest, the next newest becomes the latest.
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> StoreResult<Option<(ObjectRecord, Vec<String>)>>;
    /// Carries out a lifecycle [`Expiry`] on `found`, a version as a
    /// listing returned it, if it is unchanged and where the expiry
    /// expects it (see [`Expiry`]); usage is credited as for a delete.
    /// Returns the blob ids to delete, or `None` when the version changed
    /// or moved (nothing is done; the next pass decides again).
    async fn expire(
        &self,
        found: &ObjectRecord,
        expiry: &Expiry,
    ) -> StoreResult<Option<Vec<String>>>;
    /// Replaces the ACL of a version of an object (the latest with
    /// `None`); returns whether it exists (and is not a delete marker).
    async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl_json: &str,
    ) -> StoreResult<bool>;
    /// Replaces the tags (empty removes them) of a version of an object
    /// (the latest with `None`); returns whether it exists (and is not a
    /// delete marker).
    async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> StoreResult<bool>;
    /// Up to `limit` versions (delete markers included) whose key starts
    /// with `prefix`, after `after`: by key ascending (byte order of
    /// UTF-8), each key's newest first.
    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: &VersionPosition,
        limit: usize,
    ) -> StoreResult<Vec<ObjectVersion>>;
    /// Up to `limit` objects (latest versions that are not delete markers)
    /// whose key starts with `prefix` and sorts after `start_after` (byte
    /// order of UTF-8), ascending.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> StoreResult<Vec<ObjectRecord>>;

    /// Records a new multipart upload; `NotFound` when the bucket is gone.
    async fn create_upload(&self, upload: &MultipartUpload) -> StoreResult<()>;
    /// An upload by id.
    async fn upload(&self, upload_id: &str) -> StoreResult<Option<MultipartUpload>>;
    /// A bucket's uploads ordered by key then initiation time.
    async fn uploads(&self, bucket: &str) -> StoreResult<Vec<MultipartUpload>>;
    /// Stores a part, replacing one with the same number; returns the blob id
    /// of the replaced part. `NotFound` when the upload is gone (the caller
    /// then deletes the part's blob).
    async fn put_part(&self, part: &Part) -> StoreResult<Option<String>>;
    /// An upload's parts ordered by number.
    async fn parts(&self, upload_id: &str) -> StoreResult<Vec<Part>>;
    /// Atomically turns an upload into `object` (whose segments are the used
    /// parts' blobs), removing the upload and its parts. Returns the blob ids
    /// to delete: the replaced object's and those of parts not used.
    /// `NotFound` when the upload is gone; quota as `put_object`.
    async fn complete_upload(
        &self,
        upload_id: &str,
        object: &ObjectRecord,
    ) -> StoreResult<Vec<String>>;
    /// Removes an upload and its parts, returning their blob ids;
    /// `NotFound` when the upload is gone.
    async fn abort_upload(&self, upload_id: &str) -> StoreResult<Vec<String>>;

    /// Every blob id any object version or part refers to (for the start-up sweep).
    async fn referenced_blobs(&self) -> StoreResult<HashSet<String>>;
    /// Bytes stored in buckets the account owns.
    async fn account_usage(&self, account_id: &str) -> StoreResult<u64>;
    /// Sets (or with `None` removes) an account's storage quota in bytes.
    async fn set_account_quota(&self, account_id: &str, quota: Option<u64>) -> StoreResult<()>;
    /// An account's storage quota.
    async fn account_quota(&self, account_id: &str) -> StoreResult<Option<u64>>;
}
