//! Multipart uploads and their parts.

use std::collections::HashSet;

use super::rows::*;
use super::tx::*;
use crate::objects::{MultipartUpload, ObjectRecord, Part};
use crate::postgres::ExecuteLocked;
use crate::postgres::{PostgresStore, is_foreign_key_violation, is_unique_violation, require_tx};
use crate::shared::objects as sql;
use crate::{StoreError, StoreResult};

pub(super) async fn create_upload(
    store: &PostgresStore,
    upload: &MultipartUpload,
) -> StoreResult<()> {
    let result = sqlx::query(sql::CREATE_UPLOAD)
        .bind(&upload.upload_id)
        .bind(&upload.bucket)
        .bind(&upload.key)
        .bind(&upload.owner_account)
        .bind(upload.initiated)
        .bind(to_json(&upload.metadata)?)
        .bind(&upload.acl_json)
        .bind(to_json(&upload.tags)?)
        .bind(upload.encryption.as_ref().map(to_json).transpose()?)
        .execute_locked(&store.pool)
        .await;
    match result {
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(upload.upload_id.clone())),
        Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound(upload.bucket.clone())),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

pub(super) async fn upload(
    store: &PostgresStore,
    upload_id: &str,
) -> StoreResult<Option<MultipartUpload>> {
    sqlx::query(sql::UPLOAD)
        .bind(upload_id)
        .fetch_optional(&store.pool)
        .await?
        .as_ref()
        .map(upload_from_row)
        .transpose()
}

pub(super) async fn uploads(
    store: &PostgresStore,
    bucket: &str,
) -> StoreResult<Vec<MultipartUpload>> {
    sqlx::query(sql::UPLOADS)
        .bind(bucket)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(upload_from_row)
        .collect()
}

pub(super) async fn put_part(store: &PostgresStore, part: &Part) -> StoreResult<Option<String>> {
    let mut tx = store.write_tx().await?;
    require_tx(&mut tx, UPLOAD_EXISTS, &part.upload_id).await?;
    let old: Option<String> = sqlx::query_scalar(
        "SELECT blob_id FROM multipart_parts WHERE upload_id = $1 AND part_number = $2",
    )
    .bind(&part.upload_id)
    .bind(i64::from(part.part_number))
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO multipart_parts (upload_id, part_number, blob_id, size, etag, last_modified)
         VALUES ($1, $2, $3, $4, $5, $6)
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

pub(super) async fn parts(store: &PostgresStore, upload_id: &str) -> StoreResult<Vec<Part>> {
    sqlx::query(sql::PARTS)
        .bind(upload_id)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(part_from_row)
        .collect()
}

pub(super) async fn complete_upload(
    store: &PostgresStore,
    upload_id: &str,
    object: &ObjectRecord,
) -> StoreResult<Vec<String>> {
    let mut tx = store.write_tx().await?;
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

pub(super) async fn abort_upload(
    store: &PostgresStore,
    upload_id: &str,
) -> StoreResult<Vec<String>> {
    let mut tx = store.write_tx().await?;
    let blobs = remove_upload_tx(&mut tx, upload_id).await?;
    tx.commit().await?;
    Ok(blobs)
}
