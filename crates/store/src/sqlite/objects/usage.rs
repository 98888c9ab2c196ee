//! Referenced blobs (for the start-up sweep), storage use and quotas.

use std::collections::HashSet;

use super::rows::*;
use crate::shared::objects as sql;
use crate::sqlite::{SqliteStore, is_foreign_key_violation};
use crate::{StoreError, StoreResult};

pub(super) async fn referenced_blobs(store: &SqliteStore) -> StoreResult<HashSet<String>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT json_extract(s.value, '$.blob_id') FROM objects o, json_each(o.segments) s
         UNION SELECT blob_id FROM multipart_parts
         UNION SELECT json_extract(s.value, '$.blob_id')
           FROM snapshots n, json_each(n.segments) s WHERE n.segments IS NOT NULL",
    )
    .fetch_all(&store.pool)
    .await?;
    Ok(rows.into_iter().collect())
}

pub(super) async fn account_usage(store: &SqliteStore, account_id: &str) -> StoreResult<u64> {
    let used: Option<i64> = sqlx::query_scalar(sql::ACCOUNT_USAGE)
        .bind(account_id)
        .fetch_optional(&store.pool)
        .await?;
    used.map_or(Ok(0), |used| to_u64(used, "used bytes"))
}

pub(super) async fn set_account_quota(
    store: &SqliteStore,
    account_id: &str,
    quota: Option<u64>,
) -> StoreResult<()> {
    let quota = quota.map(|q| to_i64(q, "quota")).transpose()?;
    let result = sqlx::query(sql::SET_ACCOUNT_QUOTA)
        .bind(account_id)
        .bind(quota)
        .execute(&store.pool)
        .await;
    match result {
        Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound(account_id.to_owned())),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

pub(super) async fn account_quota(
    store: &SqliteStore,
    account_id: &str,
) -> StoreResult<Option<u64>> {
    let quota: Option<Option<i64>> = sqlx::query_scalar(sql::ACCOUNT_QUOTA)
        .bind(account_id)
        .fetch_optional(&store.pool)
        .await?;
    quota.flatten().map(|q| to_u64(q, "quota")).transpose()
}
