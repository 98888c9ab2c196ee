//! [`ObjectIndex`] for the SQLite backend (tables from `0002_objects.sql`;
//! bucket policies from `0017_bucket_policy.sql`; tags, a JSON object in
//! the row of the bucket, object or upload they tag, from
//! `0020_tagging.sql`; versions from `0025_object_versions.sql`: `objects`
//! holds every version of every key, delete markers included, each key's
//! newest flagged `is_latest`, ordered by `seq`).
//!
//! Storage use is kept per account in `account_storage` and changed in the
//! same transaction as the objects it counts, so it is always exact. Only
//! completed objects count towards use and quota; parts of uploads in
//! progress do not (they are charged when the upload completes).
//!
//! Blob ids are assumed not to be shared between records: a blob id an
//! object or part stops referencing is returned to the caller to delete,
//! except when the record replacing it refers to the same blob.
//!
//! Writes of versions, parts and uploads go through one [`commit`]ter,
//! which applies concurrent callers' changes in one transaction (group
//! commit) and answers each caller once that transaction committed.
//!
//! One file per concern: [`buckets`], object [`versions`], multipart
//! [`uploads`], storage [`usage`]; [`tx`] holds the write steps the
//! committer applies and [`rows`] the row decoding.

use async_trait::async_trait;
use std::collections::HashSet;

use super::SqliteStore;
use crate::objects::{
    Bucket, BucketSetting, Expiry, MultipartUpload, ObjectIndex, ObjectRecord, ObjectVersion, Part,
    Tags, VersionPosition, Versioning,
};
use crate::{StoreError, StoreResult};

pub(crate) use commit::Committer;

/// A query of buckets with their settings (a JSON object, NULL for none)
/// as `settings`, ending with `$tail` (a WHERE clause of `b`).
macro_rules! buckets_query {
    ($tail:literal) => {
        concat!(
            "SELECT b.*, (SELECT json_group_object(s.name, s.value) FROM bucket_settings s
             WHERE s.bucket = b.name HAVING count(*) > 0) AS settings FROM buckets b ",
            $tail
        )
    };
}
mod buckets;
mod commit;
#[cfg(test)]
mod commit_tests;
mod lifecycle;
mod rows;
mod tx;
mod uploads;
mod usage;
mod versions;

impl SqliteStore {
    /// Runs `sql`, an UPDATE of one column of the bucket `name` binding
    /// `value` then the name; `NotFound` when no bucket has the name.
    async fn update_bucket(
        &self,
        sql: &'static str,
        value: Option<&str>,
        name: &str,
    ) -> StoreResult<()> {
        let updated = sqlx::query(sql)
            .bind(value)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Runs `sql`, an UPDATE of one column of a version of the object
    /// `bucket/key` binding `value`, the bucket, the key and (unless
    /// `None`, for the latest) the version id; returns whether a version
    /// that is not a delete marker was changed.
    async fn update_object(
        &self,
        sql: &'static str,
        value: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> StoreResult<bool> {
        let mut query = sqlx::query(sql).bind(value).bind(bucket).bind(key);
        if let Some(version_id) = version_id {
            query = query.bind(version_id);
        }
        Ok(query.execute(&self.pool).await?.rows_affected() > 0)
    }
}

#[async_trait]
impl ObjectIndex for SqliteStore {
    async fn create_bucket(&self, bucket: &Bucket) -> StoreResult<()> {
        buckets::create_bucket(self, bucket).await
    }

    async fn bucket(&self, name: &str) -> StoreResult<Option<Bucket>> {
        buckets::bucket(self, name).await
    }

    async fn buckets(&self, account_id: &str) -> StoreResult<Vec<Bucket>> {
        buckets::buckets(self, account_id).await
    }

    async fn delete_bucket(&self, name: &str) -> StoreResult<Vec<String>> {
        buckets::delete_bucket(self, name).await
    }

    async fn set_bucket_acl(&self, name: &str, acl_json: &str) -> StoreResult<()> {
        buckets::set_bucket_acl(self, name, acl_json).await
    }

    async fn set_bucket_policy(&self, name: &str, policy: Option<&str>) -> StoreResult<()> {
        buckets::set_bucket_policy(self, name, policy).await
    }

    async fn set_bucket_tags(&self, name: &str, tags: &Tags) -> StoreResult<()> {
        buckets::set_bucket_tags(self, name, tags).await
    }

    async fn set_bucket_setting(
        &self,
        name: &str,
        setting: BucketSetting,
        value: Option<&str>,
    ) -> StoreResult<()> {
        buckets::set_bucket_setting(self, name, setting, value).await
    }

    async fn set_bucket_versioning(&self, name: &str, state: Versioning) -> StoreResult<()> {
        buckets::set_bucket_versioning(self, name, state).await
    }

    async fn buckets_with_setting(&self, setting: BucketSetting) -> StoreResult<Vec<Bucket>> {
        lifecycle::buckets_with_setting(self, setting).await
    }

    async fn expire(
        &self,
        found: &ObjectRecord,
        expiry: &Expiry,
    ) -> StoreResult<Option<Vec<String>>> {
        lifecycle::expire(self, found, expiry).await
    }

    async fn put_object(&self, object: &ObjectRecord) -> StoreResult<Vec<String>> {
        versions::put_object(self, object).await
    }

    async fn object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>> {
        versions::object(self, bucket, key).await
    }

    async fn object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> StoreResult<Option<ObjectRecord>> {
        versions::object_version(self, bucket, key, version_id).await
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<Option<Vec<String>>> {
        versions::delete_object(self, bucket, key).await
    }

    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> StoreResult<Option<(ObjectRecord, Vec<String>)>> {
        versions::delete_version(self, bucket, key, version_id).await
    }

    async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl_json: &str,
    ) -> StoreResult<bool> {
        versions::set_object_acl(self, bucket, key, version_id, acl_json).await
    }

    async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> StoreResult<bool> {
        versions::set_object_tags(self, bucket, key, version_id, tags).await
    }

    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: &VersionPosition,
        limit: usize,
    ) -> StoreResult<Vec<ObjectVersion>> {
        versions::list_versions(self, bucket, prefix, after, limit).await
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> StoreResult<Vec<ObjectRecord>> {
        versions::list_objects(self, bucket, prefix, start_after, limit).await
    }

    async fn create_upload(&self, upload: &MultipartUpload) -> StoreResult<()> {
        uploads::create_upload(self, upload).await
    }

    async fn upload(&self, upload_id: &str) -> StoreResult<Option<MultipartUpload>> {
        uploads::upload(self, upload_id).await
    }

    async fn uploads(&self, bucket: &str) -> StoreResult<Vec<MultipartUpload>> {
        uploads::uploads(self, bucket).await
    }

    async fn put_part(&self, part: &Part) -> StoreResult<Option<String>> {
        uploads::put_part(self, part).await
    }

    async fn parts(&self, upload_id: &str) -> StoreResult<Vec<Part>> {
        uploads::parts(self, upload_id).await
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        object: &ObjectRecord,
    ) -> StoreResult<Vec<String>> {
        uploads::complete_upload(self, upload_id, object).await
    }

    async fn abort_upload(&self, upload_id: &str) -> StoreResult<Vec<String>> {
        uploads::abort_upload(self, upload_id).await
    }

    async fn referenced_blobs(&self) -> StoreResult<HashSet<String>> {
        usage::referenced_blobs(self).await
    }

    async fn account_usage(&self, account_id: &str) -> StoreResult<u64> {
        usage::account_usage(self, account_id).await
    }

    async fn set_account_quota(&self, account_id: &str, quota: Option<u64>) -> StoreResult<()> {
        usage::set_account_quota(self, account_id, quota).await
    }

    async fn account_quota(&self, account_id: &str) -> StoreResult<Option<u64>> {
        usage::account_quota(self, account_id).await
    }
}
