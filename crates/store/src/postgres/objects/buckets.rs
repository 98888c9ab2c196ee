//! Buckets: creation, lookup, deletion (with their unfinished uploads),
//! and their ACL, policy, tags, settings and versioning state.

use super::rows::*;
use crate::objects::{Bucket, BucketSetting, ObjectIndexError, Tags, Versioning};
use crate::postgres::ExecuteLocked;
use crate::postgres::{PostgresStore, is_foreign_key_violation, is_unique_violation, require_tx};
use crate::shared::objects as sql;
use crate::{StoreError, StoreResult};

pub(super) async fn create_bucket(store: &PostgresStore, bucket: &Bucket) -> StoreResult<()> {
    let result = sqlx::query(sql::CREATE_BUCKET)
        .bind(&bucket.name)
        .bind(&bucket.account_id)
        .bind(&bucket.region)
        .bind(&bucket.acl_json)
        .bind(bucket.created_at)
        .bind(&bucket.policy)
        .bind(to_json(&bucket.tags)?)
        .bind(bucket.versioning.as_str())
        .execute_locked(&store.pool)
        .await;
    match result {
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(bucket.name.clone())),
        Err(e) if is_foreign_key_violation(&e) => {
            Err(StoreError::NotFound(bucket.account_id.clone()))
        }
        other => other.map(|_| ()).map_err(Into::into),
    }
}

pub(super) async fn bucket(store: &PostgresStore, name: &str) -> StoreResult<Option<Bucket>> {
    sqlx::query(buckets_query!("WHERE b.name = $1"))
        .bind(name)
        .fetch_optional(&store.pool)
        .await?
        .as_ref()
        .map(bucket_from_row)
        .transpose()
}

pub(super) async fn buckets(store: &PostgresStore, account_id: &str) -> StoreResult<Vec<Bucket>> {
    sqlx::query(buckets_query!("WHERE b.account_id = $1 ORDER BY b.name"))
        .bind(account_id)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(bucket_from_row)
        .collect()
}

pub(super) async fn delete_bucket(store: &PostgresStore, name: &str) -> StoreResult<Vec<String>> {
    let mut tx = store.write_tx().await?;
    require_tx(
        &mut tx,
        "SELECT 1::BIGINT FROM buckets WHERE name = $1",
        name,
    )
    .await?;
    let in_use: bool = sqlx::query_scalar(sql::DELETE_BUCKET_SELECT_OBJECTS)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    if in_use {
        return Err(ObjectIndexError::BucketNotEmpty.into());
    }
    // Uploads never completed go with the bucket, as in S3; their parts
    // cascade with them, and the caller deletes the parts' blobs.
    let blobs: Vec<String> = sqlx::query_scalar(sql::DELETE_BUCKET_SELECT_MULTIPART_PARTS)
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
    sqlx::query(sql::DELETE_BUCKET_DELETE_MULTIPART_UPLOADS)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(sql::DELETE_BUCKET_DELETE_BUCKETS)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(blobs)
}

pub(super) async fn set_bucket_acl(
    store: &PostgresStore,
    name: &str,
    acl_json: &str,
) -> StoreResult<()> {
    store
        .update_bucket(sql::SET_BUCKET_ACL, Some(acl_json), name)
        .await
}

pub(super) async fn set_bucket_policy(
    store: &PostgresStore,
    name: &str,
    policy: Option<&str>,
) -> StoreResult<()> {
    store
        .update_bucket(sql::SET_BUCKET_POLICY, policy, name)
        .await
}

pub(super) async fn set_bucket_tags(
    store: &PostgresStore,
    name: &str,
    tags: &Tags,
) -> StoreResult<()> {
    store
        .update_bucket(sql::SET_BUCKET_TAGS, Some(&to_json(tags)?), name)
        .await
}

pub(super) async fn set_bucket_setting(
    store: &PostgresStore,
    name: &str,
    setting: BucketSetting,
    value: Option<&str>,
) -> StoreResult<()> {
    let mut tx = store.write_tx().await?;
    require_tx(
        &mut tx,
        "SELECT 1::BIGINT FROM buckets WHERE name = $1",
        name,
    )
    .await?;
    match value {
        Some(value) => {
            sqlx::query(sql::SET_BUCKET_SETTING_INSERT_BUCKET_SETTINGS)
                .bind(name)
                .bind(setting.name())
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        None => {
            sqlx::query(sql::SET_BUCKET_SETTING_DELETE_BUCKET_SETTINGS)
                .bind(name)
                .bind(setting.name())
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_bucket_versioning(
    store: &PostgresStore,
    name: &str,
    state: Versioning,
) -> StoreResult<()> {
    store
        .update_bucket(sql::SET_BUCKET_VERSIONING, Some(state.as_str()), name)
        .await
}
