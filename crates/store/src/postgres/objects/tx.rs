//! Steps of object-index transactions that several operations share:
//! storage use, writing and deleting a version, removing an upload.

use std::collections::HashSet;

use sqlx::{Postgres, Row, Transaction};

use super::rows::*;
use crate::objects::{ObjectIndexError, ObjectRecord, Segment};
use crate::{StoreError, StoreResult};

/// The account's (used, quota) inside a transaction; an account without a
/// row uses nothing and has no quota.
pub(super) async fn storage_tx(
    tx: &mut Transaction<'static, Postgres>,
    account_id: &str,
) -> StoreResult<(u64, Option<u64>)> {
    let row: Option<(i64, Option<i64>)> =
        sqlx::query_as("SELECT used_bytes, quota_bytes FROM account_storage WHERE account_id = $1")
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

pub(super) async fn set_used_tx(
    tx: &mut Transaction<'static, Postgres>,
    account_id: &str,
    used: u64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO account_storage (account_id, used_bytes) VALUES ($1, $2)
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
pub(super) async fn put_object_tx(
    tx: &mut Transaction<'static, Postgres>,
    object: &ObjectRecord,
) -> StoreResult<Vec<String>> {
    let owner: Option<String> =
        sqlx::query_scalar("SELECT account_id FROM buckets WHERE name = $1")
            .bind(&object.bucket)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(owner) = owner else {
        return Err(StoreError::NotFound(object.bucket.clone()));
    };
    let old: Option<(i64, String, i64)> = sqlx::query_as(
        "SELECT seq, segments, size FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3",
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
        sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2 AND seq = $3")
            .bind(&object.bucket)
            .bind(&object.key)
            .bind(seq)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "UPDATE objects SET is_latest = 0 WHERE bucket = $1 AND key = $2 AND is_latest = 1",
    )
    .bind(&object.bucket)
    .bind(&object.key)
    .execute(&mut **tx)
    .await?;
    let seq: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM objects WHERE bucket = $1 AND key = $2",
    )
    .bind(&object.bucket)
    .bind(&object.key)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO objects (bucket, key, seq, version_id, is_latest, delete_marker, segments, size,
            etag, last_modified, metadata, acl_json, owner_account, tags, encryption)
         VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
    .bind(object.encryption.as_ref().map(to_json).transpose()?)
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
pub(super) async fn delete_version_tx(
    tx: &mut Transaction<'static, Postgres>,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> StoreResult<Option<(ObjectRecord, Vec<String>)>> {
    let row = sqlx::query(
        "SELECT o.*, b.account_id AS bucket_owner FROM objects o JOIN buckets b ON b.name = o.bucket
         WHERE o.bucket = $1 AND o.key = $2 AND o.version_id = $3",
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
    sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2 AND seq = $3")
        .bind(bucket)
        .bind(key)
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    if was_latest != 0 {
        sqlx::query(
            "UPDATE objects SET is_latest = 1 WHERE bucket = $1 AND key = $2
             AND seq = (SELECT MAX(seq) FROM objects WHERE bucket = $1 AND key = $2)",
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
pub(super) async fn remove_upload_tx(
    tx: &mut Transaction<'static, Postgres>,
    upload_id: &str,
) -> StoreResult<Vec<String>> {
    let blobs: Vec<String> = sqlx::query_scalar(
        "SELECT blob_id FROM multipart_parts WHERE upload_id = $1 ORDER BY part_number",
    )
    .bind(upload_id)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM multipart_parts WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM multipart_uploads WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(StoreError::NotFound(upload_id.to_owned()));
    }
    Ok(blobs)
}
