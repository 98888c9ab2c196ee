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

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::{SqliteStore, is_foreign_key_violation, is_unique_violation, require_tx};
use crate::objects::{
    Bucket, BucketSetting, MultipartUpload, ObjectIndex, ObjectIndexError, ObjectMetadata,
    ObjectRecord, ObjectVersion, Part, Segment, Tags, VersionPosition, Versioning,
};
use crate::{StoreError, StoreResult};

const UPLOAD_EXISTS: &str = "SELECT 1 FROM multipart_uploads WHERE upload_id = ?";

fn to_i64(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

fn to_u64(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what} {value}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The smallest string greater than every string that starts with `prefix`,
/// or `None` when no such bound exists (empty prefix, or only `char::MAX`).
/// UTF-8 byte order is code point order, so incrementing the last code point
/// (dropping trailing `char::MAX`) gives the exclusive upper bound.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) {
            0xD7FF => Some('\u{E000}'),
            code => char::from_u32(code + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn bucket_from_row(row: &SqliteRow) -> StoreResult<Bucket> {
    Ok(Bucket {
        name: row.try_get("name")?,
        account_id: row.try_get("account_id")?,
        region: row.try_get("region")?,
        acl_json: row.try_get("acl_json")?,
        created_at: row.try_get("created_at")?,
        policy: row.try_get("policy")?,
        tags: tags_from_row(row, "bucket tags")?,
        versioning: {
            let state: String = row.try_get("versioning")?;
            Versioning::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("bucket versioning {state:?}")))?
        },
        settings: {
            let settings: Option<String> = row.try_get("settings")?;
            match settings {
                Some(json) => from_json(&json, "bucket settings")?,
                None => Default::default(),
            }
        },
    })
}

fn object_from_row(row: &SqliteRow) -> StoreResult<ObjectRecord> {
    let segments: String = row.try_get("segments")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(ObjectRecord {
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        segments: from_json(&segments, "object segments")?,
        size: to_u64(row.try_get("size")?, "object size")?,
        etag: row.try_get("etag")?,
        last_modified: row.try_get("last_modified")?,
        metadata: from_json::<ObjectMetadata>(&metadata, "object metadata")?,
        acl_json: row.try_get("acl_json")?,
        owner_account: row.try_get("owner_account")?,
        tags: tags_from_row(row, "object tags")?,
        version_id: row.try_get("version_id")?,
        delete_marker: row.try_get::<i64, _>("delete_marker")? != 0,
    })
}

fn tags_from_row(row: &SqliteRow, what: &str) -> StoreResult<Tags> {
    let tags: String = row.try_get("tags")?;
    from_json(&tags, what)
}

fn upload_from_row(row: &SqliteRow) -> StoreResult<MultipartUpload> {
    let metadata: String = row.try_get("metadata")?;
    Ok(MultipartUpload {
        upload_id: row.try_get("upload_id")?,
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        owner_account: row.try_get("owner_account")?,
        initiated: row.try_get("initiated")?,
        metadata: from_json(&metadata, "upload metadata")?,
        acl_json: row.try_get("acl_json")?,
        tags: tags_from_row(row, "upload tags")?,
    })
}

fn part_from_row(row: &SqliteRow) -> StoreResult<Part> {
    let part_number: i64 = row.try_get("part_number")?;
    Ok(Part {
        upload_id: row.try_get("upload_id")?,
        part_number: u32::try_from(part_number)
            .map_err(|_| StoreError::Corrupt(format!("part number {part_number}")))?,
        blob_id: row.try_get("blob_id")?,
        size: to_u64(row.try_get("size")?, "part size")?,
        etag: row.try_get("etag")?,
        last_modified: row.try_get("last_modified")?,
    })
}

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

/// The account's (used, quota) inside a transaction; an account without a
/// row uses nothing and has no quota.
async fn storage_tx(
    tx: &mut Transaction<'static, Sqlite>,
    account_id: &str,
) -> StoreResult<(u64, Option<u64>)> {
    let row: Option<(i64, Option<i64>)> =
        sqlx::query_as("SELECT used_bytes, quota_bytes FROM account_storage WHERE account_id = ?")
            .bind(account_id)
            .fetch_optional(&mut **tx)
            .await?;
    match row {
        None => Ok((0, None)),
        Some((used, quota)) => Ok((
            to_u64(used, "used bytes")?,
            quota.map(|q| to_u64(q, "quota")).transpose()?,
        )),
    }
}

async fn set_used_tx(
    tx: &mut Transaction<'static, Sqlite>,
    account_id: &str,
    used: u64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO account_storage (account_id, used_bytes) VALUES (?, ?)
         ON CONFLICT (account_id) DO UPDATE SET used_bytes = excluded.used_bytes",
    )
    .bind(account_id)
    .bind(to_i64(used, "used bytes")?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes `object` as its key's latest version inside a transaction:
/// replaces the version with its id if one is kept, charges the bucket
/// owner (every kept version counts), enforces its quota (before writing
/// anything) and returns the blob ids of the replaced version that
/// `object` does not use.
async fn put_object_tx(
    tx: &mut Transaction<'static, Sqlite>,
    object: &ObjectRecord,
) -> StoreResult<Vec<String>> {
    let owner: Option<String> = sqlx::query_scalar("SELECT account_id FROM buckets WHERE name = ?")
        .bind(&object.bucket)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(owner) = owner else {
        return Err(StoreError::NotFound(object.bucket.clone()));
    };
    let old: Option<(i64, String, i64)> = sqlx::query_as(
        "SELECT seq, segments, size FROM objects WHERE bucket = ? AND key = ? AND version_id = ?",
    )
    .bind(&object.bucket)
    .bind(&object.key)
    .bind(&object.version_id)
    .fetch_optional(&mut **tx)
    .await?;
    let (old_seq, old_segments, old_size) = match old {
        Some((seq, segments, size)) => (
            Some(seq),
            from_json::<Vec<Segment>>(&segments, "object segments")?,
            to_u64(size, "object size")?,
        ),
        None => (None, Vec::new(), 0),
    };
    let (used, quota) = storage_tx(tx, &owner).await?;
    let new_used = used
        .saturating_sub(old_size)
        .checked_add(object.size)
        .ok_or_else(|| StoreError::Corrupt(format!("object size {} out of range", object.size)))?;
    // Only growth is refused: a change that frees space (or keeps usage
    // level) goes through even when a lowered quota is already exceeded.
    if let Some(quota) = quota
        && new_used > quota
        && new_used > used
    {
        return Err(ObjectIndexError::QuotaExceeded { quota }.into());
    }
    if let Some(seq) = old_seq {
        sqlx::query("DELETE FROM objects WHERE bucket = ? AND key = ? AND seq = ?")
            .bind(&object.bucket)
            .bind(&object.key)
            .bind(seq)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("UPDATE objects SET is_latest = 0 WHERE bucket = ? AND key = ? AND is_latest = 1")
        .bind(&object.bucket)
        .bind(&object.key)
        .execute(&mut **tx)
        .await?;
    let seq: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM objects WHERE bucket = ? AND key = ?",
    )
    .bind(&object.bucket)
    .bind(&object.key)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO objects (bucket, key, seq, version_id, is_latest, delete_marker, segments, size,
            etag, last_modified, metadata, acl_json, owner_account, tags)
         VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&object.bucket)
    .bind(&object.key)
    .bind(seq)
    .bind(&object.version_id)
    .bind(i64::from(object.delete_marker))
    .bind(to_json(&object.segments)?)
    .bind(to_i64(object.size, "object size")?)
    .bind(&object.etag)
    .bind(object.last_modified)
    .bind(to_json(&object.metadata)?)
    .bind(&object.acl_json)
    .bind(&object.owner_account)
    .bind(to_json(&object.tags)?)
    .execute(&mut **tx)
    .await?;
    set_used_tx(tx, &owner, new_used).await?;
    let kept: HashSet<&str> = object.segments.iter().map(|s| s.blob_id.as_str()).collect();
    let mut freed = Vec::new();
    for segment in old_segments {
        if !kept.contains(segment.blob_id.as_str()) && !freed.contains(&segment.blob_id) {
            freed.push(segment.blob_id);
        }
    }
    Ok(freed)
}

/// Deletes the version `version_id` of `bucket/key` inside a transaction
/// (`None` when absent), making the next newest the latest when it was,
/// and crediting the bucket owner; returns it and its blob ids.
async fn delete_version_tx(
    tx: &mut Transaction<'static, Sqlite>,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> StoreResult<Option<(ObjectRecord, Vec<String>)>> {
    let row = sqlx::query(
        "SELECT o.*, b.account_id AS bucket_owner FROM objects o JOIN buckets b ON b.name = o.bucket
         WHERE o.bucket = ? AND o.key = ? AND o.version_id = ?",
    )
    .bind(bucket)
    .bind(key)
    .bind(version_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let object = object_from_row(&row)?;
    let owner: String = row.try_get("bucket_owner")?;
    let seq: i64 = row.try_get("seq")?;
    let was_latest: i64 = row.try_get("is_latest")?;
    sqlx::query("DELETE FROM objects WHERE bucket = ? AND key = ? AND seq = ?")
        .bind(bucket)
        .bind(key)
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    if was_latest != 0 {
        sqlx::query(
            "UPDATE objects SET is_latest = 1 WHERE bucket = ?1 AND key = ?2
             AND seq = (SELECT MAX(seq) FROM objects WHERE bucket = ?1 AND key = ?2)",
        )
        .bind(bucket)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    }
    let (used, _) = storage_tx(tx, &owner).await?;
    set_used_tx(tx, &owner, used.saturating_sub(object.size)).await?;
    let mut blobs: Vec<String> = Vec::with_capacity(object.segments.len());
    for segment in &object.segments {
        if !blobs.contains(&segment.blob_id) {
            blobs.push(segment.blob_id.clone());
        }
    }
    Ok(Some((object, blobs)))
}

/// Removes an upload and its parts inside a transaction, returning the
/// parts' blob ids ordered by part number; `NotFound` when absent.
async fn remove_upload_tx(
    tx: &mut Transaction<'static, Sqlite>,
    upload_id: &str,
) -> StoreResult<Vec<String>> {
    let blobs: Vec<String> = sqlx::query_scalar(
        "SELECT blob_id FROM multipart_parts WHERE upload_id = ? ORDER BY part_number",
    )
    .bind(upload_id)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM multipart_parts WHERE upload_id = ?")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM multipart_uploads WHERE upload_id = ?")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(StoreError::NotFound(upload_id.to_owned()));
    }
    Ok(blobs)
}

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
        let result = sqlx::query(
            "INSERT INTO buckets (name, account_id, region, acl_json, created_at, policy, tags, versioning)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&bucket.name)
        .bind(&bucket.account_id)
        .bind(&bucket.region)
        .bind(&bucket.acl_json)
        .bind(bucket.created_at)
        .bind(&bucket.policy)
        .bind(to_json(&bucket.tags)?)
        .bind(bucket.versioning.as_str())
        .execute(&self.pool)
        .await;
        match result {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(bucket.name.clone())),
            Err(e) if is_foreign_key_violation(&e) => {
                Err(StoreError::NotFound(bucket.account_id.clone()))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    async fn bucket(&self, name: &str) -> StoreResult<Option<Bucket>> {
        sqlx::query(buckets_query!("WHERE b.name = ?"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(bucket_from_row)
            .transpose()
    }

    async fn buckets(&self, account_id: &str) -> StoreResult<Vec<Bucket>> {
        sqlx::query(buckets_query!("WHERE b.account_id = ? ORDER BY b.name"))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(bucket_from_row)
            .collect()
    }

    async fn delete_bucket(&self, name: &str) -> StoreResult<Vec<String>> {
        let mut tx = self.write_tx().await?;
        require_tx(&mut tx, "SELECT 1 FROM buckets WHERE name = ?", name).await?;
        let in_use: i64 =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = ?)")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if in_use != 0 {
            return Err(ObjectIndexError::BucketNotEmpty.into());
        }
        // Uploads never completed go with the bucket, as in S3; their parts
        // cascade with them, and the caller deletes the parts' blobs.
        let blobs: Vec<String> = sqlx::query_scalar(
            "SELECT p.blob_id FROM multipart_parts p
             JOIN multipart_uploads u ON u.upload_id = p.upload_id WHERE u.bucket = ?
             ORDER BY u.upload_id, p.part_number",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM multipart_uploads WHERE bucket = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM buckets WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(blobs)
    }

    async fn set_bucket_acl(&self, name: &str, acl_json: &str) -> StoreResult<()> {
        self.update_bucket(
            "UPDATE buckets SET acl_json = ? WHERE name = ?",
            Some(acl_json),
            name,
        )
        .await
    }

    async fn set_bucket_policy(&self, name: &str, policy: Option<&str>) -> StoreResult<()> {
        self.update_bucket("UPDATE buckets SET policy = ? WHERE name = ?", policy, name)
            .await
    }

    async fn set_bucket_tags(&self, name: &str, tags: &Tags) -> StoreResult<()> {
        self.update_bucket(
            "UPDATE buckets SET tags = ? WHERE name = ?",
            Some(&to_json(tags)?),
            name,
        )
        .await
    }

    async fn set_bucket_setting(
        &self,
        name: &str,
        setting: BucketSetting,
        value: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        require_tx(&mut tx, "SELECT 1 FROM buckets WHERE name = ?", name).await?;
        match value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO bucket_settings (bucket, name, value) VALUES (?, ?, ?)
                     ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value",
                )
                .bind(name)
                .bind(setting.name())
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM bucket_settings WHERE bucket = ? AND name = ?")
                    .bind(name)
                    .bind(setting.name())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_bucket_versioning(&self, name: &str, state: Versioning) -> StoreResult<()> {
        self.update_bucket(
            "UPDATE buckets SET versioning = ? WHERE name = ?",
            Some(state.as_str()),
            name,
        )
        .await
    }

    async fn put_object(&self, object: &ObjectRecord) -> StoreResult<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let freed = put_object_tx(&mut tx, object).await?;
        tx.commit().await?;
        Ok(freed)
    }

    async fn object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>> {
        sqlx::query(
            "SELECT * FROM objects WHERE bucket = ? AND key = ? AND is_latest = 1 AND delete_marker = 0",
        )
        .bind(bucket)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(object_from_row)
        .transpose()
    }

    async fn object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> StoreResult<Option<ObjectRecord>> {
        let query = match version_id {
            Some(version_id) => {
                sqlx::query("SELECT * FROM objects WHERE bucket = ? AND key = ? AND version_id = ?")
                    .bind(bucket)
                    .bind(key)
                    .bind(version_id)
            }
            None => {
                sqlx::query("SELECT * FROM objects WHERE bucket = ? AND key = ? AND is_latest = 1")
                    .bind(bucket)
                    .bind(key)
            }
        };
        query
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(object_from_row)
            .transpose()
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<Option<Vec<String>>> {
        let mut tx = self.write_tx().await?;
        let latest: Option<String> = sqlx::query_scalar(
            "SELECT version_id FROM objects WHERE bucket = ? AND key = ? AND is_latest = 1",
        )
        .bind(bucket)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(version_id) = latest else {
            return Ok(None);
        };
        let deleted = delete_version_tx(&mut tx, bucket, key, &version_id).await?;
        tx.commit().await?;
        Ok(deleted.map(|(_, blobs)| blobs))
    }

    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> StoreResult<Option<(ObjectRecord, Vec<String>)>> {
        let mut tx = self.write_tx().await?;
        let deleted = delete_version_tx(&mut tx, bucket, key, version_id).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl_json: &str,
    ) -> StoreResult<bool> {
        let sql = match version_id {
            Some(_) => {
                "UPDATE objects SET acl_json = ? WHERE bucket = ? AND key = ? AND delete_marker = 0 AND version_id = ?"
            }
            None => {
                "UPDATE objects SET acl_json = ? WHERE bucket = ? AND key = ? AND delete_marker = 0 AND is_latest = 1"
            }
        };
        self.update_object(sql, acl_json, bucket, key, version_id)
            .await
    }

    async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> StoreResult<bool> {
        let sql = match version_id {
            Some(_) => {
                "UPDATE objects SET tags = ? WHERE bucket = ? AND key = ? AND delete_marker = 0 AND version_id = ?"
            }
            None => {
                "UPDATE objects SET tags = ? WHERE bucket = ? AND key = ? AND delete_marker = 0 AND is_latest = 1"
            }
        };
        self.update_object(sql, &to_json(tags)?, bucket, key, version_id)
            .await
    }

    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: &VersionPosition,
        limit: usize,
    ) -> StoreResult<Vec<ObjectVersion>> {
        let version_from_row = |row: &SqliteRow| -> StoreResult<ObjectVersion> {
            Ok(ObjectVersion {
                object: object_from_row(row)?,
                is_latest: row.try_get::<i64, _>("is_latest")? != 0,
            })
        };
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // First the older versions of the key the position is within.
        if let Some(version_id) = &after.version_id
            && after.key.starts_with(prefix)
        {
            let seq: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM objects WHERE bucket = ? AND key = ? AND version_id = ?",
            )
            .bind(bucket)
            .bind(&after.key)
            .bind(version_id)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(seq) = seq {
                for row in sqlx::query(
                    "SELECT * FROM objects WHERE bucket = ? AND key = ? AND seq < ?
                     ORDER BY seq DESC LIMIT ?",
                )
                .bind(bucket)
                .bind(&after.key)
                .bind(seq)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?
                .iter()
                {
                    out.push(version_from_row(row)?);
                }
            }
        }
        let rest = limit - out.len();
        if rest == 0 {
            return Ok(out);
        }
        let exclusive = after.key.as_str() >= prefix;
        let lower = if exclusive {
            after.key.as_str()
        } else {
            prefix
        };
        let upper = prefix_upper_bound(prefix);
        let sql = match (exclusive, upper.is_some()) {
            (true, true) => {
                "SELECT * FROM objects WHERE bucket = ? AND key > ? AND key < ? ORDER BY key, seq DESC LIMIT ?"
            }
            (true, false) => {
                "SELECT * FROM objects WHERE bucket = ? AND key > ? ORDER BY key, seq DESC LIMIT ?"
            }
            (false, true) => {
                "SELECT * FROM objects WHERE bucket = ? AND key >= ? AND key < ? ORDER BY key, seq DESC LIMIT ?"
            }
            (false, false) => {
                "SELECT * FROM objects WHERE bucket = ? AND key >= ? ORDER BY key, seq DESC LIMIT ?"
            }
        };
        let mut query = sqlx::query(sql).bind(bucket).bind(lower);
        if let Some(upper) = &upper {
            query = query.bind(upper);
        }
        for row in query
            .bind(i64::try_from(rest).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?
            .iter()
        {
            out.push(version_from_row(row)?);
        }
        Ok(out)
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> StoreResult<Vec<ObjectRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // One lower bound (the tighter of `> start_after` and `>= prefix`)
        // and an optional upper bound, so the primary key index serves the
        // whole range. BINARY collation compares bytes: case-sensitive, and
        // '%' and '_' are ordinary characters.
        let exclusive = start_after >= prefix;
        let lower = if exclusive { start_after } else { prefix };
        let upper = prefix_upper_bound(prefix);
        let sql = match (exclusive, upper.is_some()) {
            (true, true) => {
                "SELECT * FROM objects WHERE bucket = ? AND key > ? AND key < ? AND is_latest = 1 AND delete_marker = 0 ORDER BY key LIMIT ?"
            }
            (true, false) => {
                "SELECT * FROM objects WHERE bucket = ? AND key > ? AND is_latest = 1 AND delete_marker = 0 ORDER BY key LIMIT ?"
            }
            (false, true) => {
                "SELECT * FROM objects WHERE bucket = ? AND key >= ? AND key < ? AND is_latest = 1 AND delete_marker = 0 ORDER BY key LIMIT ?"
            }
            (false, false) => {
                "SELECT * FROM objects WHERE bucket = ? AND key >= ? AND is_latest = 1 AND delete_marker = 0 ORDER BY key LIMIT ?"
            }
        };
        let mut query = sqlx::query(sql).bind(bucket).bind(lower);
        if let Some(upper) = &upper {
            query = query.bind(upper);
        }
        query
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(object_from_row)
            .collect()
    }

    async fn create_upload(&self, upload: &MultipartUpload) -> StoreResult<()> {
        let result = sqlx::query(
            "INSERT INTO multipart_uploads (upload_id, bucket, key, owner_account, initiated, metadata, acl_json, tags)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&upload.upload_id)
        .bind(&upload.bucket)
        .bind(&upload.key)
        .bind(&upload.owner_account)
        .bind(upload.initiated)
        .bind(to_json(&upload.metadata)?)
        .bind(&upload.acl_json)
        .bind(to_json(&upload.tags)?)
        .execute(&self.pool)
        .await;
        match result {
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(upload.upload_id.clone()))
            }
            Err(e) if is_foreign_key_violation(&e) => {
                Err(StoreError::NotFound(upload.bucket.clone()))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    async fn upload(&self, upload_id: &str) -> StoreResult<Option<MultipartUpload>> {
        sqlx::query("SELECT * FROM multipart_uploads WHERE upload_id = ?")
            .bind(upload_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(upload_from_row)
            .transpose()
    }

    async fn uploads(&self, bucket: &str) -> StoreResult<Vec<MultipartUpload>> {
        sqlx::query(
            "SELECT * FROM multipart_uploads WHERE bucket = ? ORDER BY key, initiated, upload_id",
        )
        .bind(bucket)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(upload_from_row)
        .collect()
    }

    async fn put_part(&self, part: &Part) -> StoreResult<Option<String>> {
        let mut tx = self.write_tx().await?;
        require_tx(&mut tx, UPLOAD_EXISTS, &part.upload_id).await?;
        let old: Option<String> = sqlx::query_scalar(
            "SELECT blob_id FROM multipart_parts WHERE upload_id = ? AND part_number = ?",
        )
        .bind(&part.upload_id)
        .bind(i64::from(part.part_number))
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO multipart_parts (upload_id, part_number, blob_id, size, etag, last_modified)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (upload_id, part_number) DO UPDATE SET blob_id = excluded.blob_id,
                size = excluded.size, etag = excluded.etag, last_modified = excluded.last_modified",
        )
        .bind(&part.upload_id)
        .bind(i64::from(part.part_number))
        .bind(&part.blob_id)
        .bind(to_i64(part.size, "part size")?)
        .bind(&part.etag)
        .bind(part.last_modified)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(old.filter(|old| *old != part.blob_id))
    }

    async fn parts(&self, upload_id: &str) -> StoreResult<Vec<Part>> {
        sqlx::query("SELECT * FROM multipart_parts WHERE upload_id = ? ORDER BY part_number")
            .bind(upload_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(part_from_row)
            .collect()
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        object: &ObjectRecord,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.write_tx().await?;
        require_tx(&mut tx, UPLOAD_EXISTS, upload_id).await?;
        let mut freed = put_object_tx(&mut tx, object).await?;
        let used: HashSet<&str> = object.segments.iter().map(|s| s.blob_id.as_str()).collect();
        for blob in remove_upload_tx(&mut tx, upload_id).await? {
            if !used.contains(blob.as_str()) && !freed.contains(&blob) {
                freed.push(blob);
            }
        }
        tx.commit().await?;
        Ok(freed)
    }

    async fn abort_upload(&self, upload_id: &str) -> StoreResult<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let blobs = remove_upload_tx(&mut tx, upload_id).await?;
        tx.commit().await?;
        Ok(blobs)
    }

    async fn referenced_blobs(&self) -> StoreResult<HashSet<String>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT json_extract(s.value, '$.blob_id') FROM objects o, json_each(o.segments) s
             UNION SELECT blob_id FROM multipart_parts
             UNION SELECT json_extract(s.value, '$.blob_id')
               FROM snapshots n, json_each(n.segments) s WHERE n.segments IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn account_usage(&self, account_id: &str) -> StoreResult<u64> {
        let used: Option<i64> =
            sqlx::query_scalar("SELECT used_bytes FROM account_storage WHERE account_id = ?")
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?;
        used.map_or(Ok(0), |used| to_u64(used, "used bytes"))
    }

    async fn set_account_quota(&self, account_id: &str, quota: Option<u64>) -> StoreResult<()> {
        let quota = quota.map(|q| to_i64(q, "quota")).transpose()?;
        let result = sqlx::query(
            "INSERT INTO account_storage (account_id, used_bytes, quota_bytes) VALUES (?, 0, ?)
             ON CONFLICT (account_id) DO UPDATE SET quota_bytes = excluded.quota_bytes",
        )
        .bind(account_id)
        .bind(quota)
        .execute(&self.pool)
        .await;
        match result {
            Err(e) if is_foreign_key_violation(&e) => {
                Err(StoreError::NotFound(account_id.to_owned()))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    async fn account_quota(&self, account_id: &str) -> StoreResult<Option<u64>> {
        let quota: Option<Option<i64>> =
            sqlx::query_scalar("SELECT quota_bytes FROM account_storage WHERE account_id = ?")
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?;
        quota.flatten().map(|q| to_u64(q, "quota")).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn prefix_upper_bounds() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("a").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_upper_bound("a\u{7f}").as_deref(), Some("a\u{80}"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }
}
