//! Object versions: writing, reading, deleting, ACLs and tags, and the
//! listings of objects and of versions.

use super::rows::*;
use super::tx::*;
use crate::StoreResult;
use crate::objects::{ObjectRecord, ObjectVersion, Tags, VersionPosition};
use crate::postgres::PostgresStore;
use crate::shared::objects as sql;
use sqlx::Row;
use sqlx::postgres::PgRow;

pub(super) async fn put_object(
    store: &PostgresStore,
    object: &ObjectRecord,
) -> StoreResult<Vec<String>> {
    let mut tx = store.write_tx().await?;
    let freed = put_object_tx(&mut tx, object).await?;
    tx.commit().await?;
    Ok(freed)
}

pub(super) async fn object(
    store: &PostgresStore,
    bucket: &str,
    key: &str,
) -> StoreResult<Option<ObjectRecord>> {
    sqlx::query(sql::OBJECT)
        .bind(bucket)
        .bind(key)
        .fetch_optional(&store.pool)
        .await?
        .as_ref()
        .map(object_from_row)
        .transpose()
}

pub(super) async fn object_version(
    store: &PostgresStore,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> StoreResult<Option<ObjectRecord>> {
    let query = match version_id {
        Some(version_id) => sqlx::query(sql::OBJECT_VERSION_BY_ID)
            .bind(bucket)
            .bind(key)
            .bind(version_id),
        None => sqlx::query(sql::OBJECT_VERSION_LATEST)
            .bind(bucket)
            .bind(key),
    };
    query
        .fetch_optional(&store.pool)
        .await?
        .as_ref()
        .map(object_from_row)
        .transpose()
}

pub(super) async fn delete_object(
    store: &PostgresStore,
    bucket: &str,
    key: &str,
) -> StoreResult<Option<Vec<String>>> {
    let mut tx = store.write_tx().await?;
    let latest: Option<String> = sqlx::query_scalar(
        "SELECT version_id FROM objects WHERE bucket = $1 AND key = $2 AND is_latest = 1",
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

pub(super) async fn delete_version(
    store: &PostgresStore,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> StoreResult<Option<(ObjectRecord, Vec<String>)>> {
    let mut tx = store.write_tx().await?;
    let deleted = delete_version_tx(&mut tx, bucket, key, version_id).await?;
    tx.commit().await?;
    Ok(deleted)
}

pub(super) async fn set_object_acl(
    store: &PostgresStore,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    acl_json: &str,
) -> StoreResult<bool> {
    let sql = match version_id {
        Some(_) => sql::SET_OBJECT_ACL_OF_VERSION,
        None => sql::SET_OBJECT_ACL_OF_LATEST,
    };
    store
        .update_object(sql, acl_json, bucket, key, version_id)
        .await
}

pub(super) async fn set_object_tags(
    store: &PostgresStore,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    tags: &Tags,
) -> StoreResult<bool> {
    let sql = match version_id {
        Some(_) => sql::SET_OBJECT_TAGS_OF_VERSION,
        None => sql::SET_OBJECT_TAGS_OF_LATEST,
    };
    store
        .update_object(sql, &to_json(tags)?, bucket, key, version_id)
        .await
}

pub(super) async fn list_versions(
    store: &PostgresStore,
    bucket: &str,
    prefix: &str,
    after: &VersionPosition,
    limit: usize,
) -> StoreResult<Vec<ObjectVersion>> {
    let version_from_row = |row: &PgRow| -> StoreResult<ObjectVersion> {
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
        let seq: Option<i64> = sqlx::query_scalar(sql::LIST_VERSIONS_SEQ_OF_MARKER)
            .bind(bucket)
            .bind(&after.key)
            .bind(version_id)
            .fetch_optional(&store.pool)
            .await?;
        if let Some(seq) = seq {
            for row in sqlx::query(sql::LIST_VERSIONS_OF_KEY_BEFORE_SEQ)
                .bind(bucket)
                .bind(&after.key)
                .bind(seq)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&store.pool)
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
        (true, true) => sql::LIST_VERSIONS_AFTER_KEY_IN_PREFIX,
        (true, false) => sql::LIST_VERSIONS_AFTER_KEY,
        (false, true) => sql::LIST_VERSIONS_FROM_KEY_IN_PREFIX,
        (false, false) => sql::LIST_VERSIONS_FROM_KEY,
    };
    let mut query = sqlx::query(sql).bind(bucket).bind(lower);
    if let Some(upper) = &upper {
        query = query.bind(upper);
    }
    for row in query
        .bind(i64::try_from(rest).unwrap_or(i64::MAX))
        .fetch_all(&store.pool)
        .await?
        .iter()
    {
        out.push(version_from_row(row)?);
    }
    Ok(out)
}

pub(super) async fn list_objects(
    store: &PostgresStore,
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
        (true, true) => sql::LIST_OBJECTS_AFTER_KEY_IN_PREFIX,
        (true, false) => sql::LIST_OBJECTS_AFTER_KEY,
        (false, true) => sql::LIST_OBJECTS_FROM_KEY_IN_PREFIX,
        (false, false) => sql::LIST_OBJECTS_FROM_KEY,
    };
    let mut query = sqlx::query(sql).bind(bucket).bind(lower);
    if let Some(upper) = &upper {
        query = query.bind(upper);
    }
    query
        .bind(limit)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(object_from_row)
        .collect()
}
