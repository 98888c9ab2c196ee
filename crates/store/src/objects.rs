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

/// An object version (the current one; versioning is not kept).
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

    /// Creates or replaces an object, charging the bucket owner's usage and
    /// enforcing its quota (a change that does not grow usage is always
    /// allowed). Returns the blob ids the replaced object used.
    /// `NotFound` when the bucket is gone.
    async fn put_object(&self, object: &ObjectRecord) -> StoreResult<Vec<String>>;
    /// An object.
    async fn object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>>;
    /// Deletes an object, returning its blob ids (`None` when it did not
    /// exist).
    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<Option<Vec<String>>>;
    /// Replaces an object's ACL; returns whether it exists.
    async fn set_object_acl(&self, bucket: &str, key: &str, acl_json: &str) -> StoreResult<bool>;
    /// Replaces an object's tags (empty removes them); returns whether it
    /// exists.
    async fn set_object_tags(&self, bucket: &str, key: &str, tags: &Tags) -> StoreResult<bool>;
    /// Up to `limit` objects whose key starts with `prefix` and sorts after
    /// `start_after` (byte order of UTF-8), ascending.
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

    /// Every blob id any object or part refers to (for the start-up sweep).
    async fn referenced_blobs(&self) -> StoreResult<HashSet<String>>;
    /// Bytes stored in buckets the account owns.
    async fn account_usage(&self, account_id: &str) -> StoreResult<u64>;
    /// Sets (or with `None` removes) an account's storage quota in bytes.
    async fn set_account_quota(&self, account_id: &str, quota: Option<u64>) -> StoreResult<()>;
    /// An account's storage quota.
    async fn account_quota(&self, account_id: &str) -> StoreResult<Option<u64>>;
}
