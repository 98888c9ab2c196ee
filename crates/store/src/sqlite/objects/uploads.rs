//! Multipart uploads and their parts.

use super::rows::*;
use super::tx::Change;
use crate::objects::{MultipartUpload, ObjectRecord, Part};
use crate::shared::objects as sql;
use crate::sqlite::{SqliteStore, is_foreign_key_violation, is_unique_violation};
use crate::{StoreError, StoreResult};

pub(super) async fn create_upload(
    store: &SqliteStore,
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
        .execute(&store.pool)
        .await;
    match result {
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(upload.upload_id.clone())),
        Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound(upload.bucket.clone())),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

pub(super) async fn upload(
    store: &SqliteStore,
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
    store: &SqliteStore,
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

pub(super) async fn put_part(store: &SqliteStore, part: &Part) -> StoreResult<Option<String>> {
    store
        .committer
        .submit(Change::PutPart(part.clone()))
        .await?
        .part()
}

pub(super) async fn parts(store: &SqliteStore, upload_id: &str) -> StoreResult<Vec<Part>> {
    sqlx::query(sql::PARTS)
        .bind(upload_id)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(part_from_row)
        .collect()
}

pub(super) async fn complete_upload(
    store: &SqliteStore,
    upload_id: &str,
    object: &ObjectRecord,
) -> StoreResult<Vec<String>> {
    let change = Change::Complete {
        upload_id: upload_id.to_owned(),
        object: object.clone(),
    };
    store.committer.submit(change).await?.blobs()
}

pub(super) async fn abort_upload(store: &SqliteStore, upload_id: &str) -> StoreResult<Vec<String>> {
    store
        .committer
        .submit(Change::Abort(upload_id.to_owned()))
        .await?
        .blobs()
}
