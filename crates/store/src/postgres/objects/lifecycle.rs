//! The lifecycle pass's writes: the buckets it has work in, and expiries
//! carried out only on versions still as the pass saw them.

use sqlx::Row;

use super::rows::bucket_from_row;
use super::tx::{delete_version_tx, put_object_tx};
use crate::StoreResult;
use crate::objects::{Bucket, BucketSetting, Expiry, ObjectRecord};
use crate::postgres::PostgresStore;

pub(super) async fn buckets_with_setting(
    store: &PostgresStore,
    setting: BucketSetting,
) -> StoreResult<Vec<Bucket>> {
    sqlx::query(buckets_query!(
        "WHERE EXISTS (SELECT 1 FROM bucket_settings x WHERE x.bucket = b.name AND x.name = $1)
         ORDER BY b.name"
    ))
    .bind(setting.name())
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(bucket_from_row)
    .collect()
}

pub(super) async fn expire(
    store: &PostgresStore,
    found: &ObjectRecord,
    expiry: &Expiry,
) -> StoreResult<Option<Vec<String>>> {
    let mut tx = store.write_tx().await?;
    let row = sqlx::query(
        "SELECT is_latest, delete_marker, last_modified, etag,
            (SELECT count(*) FROM objects WHERE bucket = $1 AND key = $2) AS versions
         FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3",
    )
    .bind(&found.bucket)
    .bind(&found.key)
    .bind(&found.version_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let latest = row.try_get::<i64, _>("is_latest")? != 0;
    let marker = row.try_get::<i64, _>("delete_marker")? != 0;
    let unchanged = row.try_get::<i64, _>("last_modified")? == found.last_modified
        && row.try_get::<String, _>("etag")? == found.etag
        && marker == found.delete_marker;
    let in_place = match expiry {
        Expiry::DeleteCurrent | Expiry::Marker(_) => latest,
        Expiry::DeleteNoncurrent => !latest,
        Expiry::DeleteLoneMarker => marker && row.try_get::<i64, _>("versions")? == 1,
    };
    if !unchanged || !in_place {
        return Ok(None);
    }
    let blobs = match expiry {
        Expiry::Marker(marker) => put_object_tx(&mut tx, marker).await?,
        _ => delete_version_tx(&mut tx, &found.bucket, &found.key, &found.version_id)
            .await?
            .map(|(_, blobs)| blobs)
            .unwrap_or_default(),
    };
    tx.commit().await?;
    Ok(Some(blobs))
}
