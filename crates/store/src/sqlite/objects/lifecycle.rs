//! The lifecycle pass's writes: the buckets it has work in, and expiries
//! carried out only on versions still as the pass saw them.

use super::rows::bucket_from_row;
use super::tx::Change;
use crate::StoreResult;
use crate::objects::{Bucket, BucketSetting, Expiry, ObjectRecord};
use crate::sqlite::SqliteStore;

pub(super) async fn buckets_with_setting(
    store: &SqliteStore,
    setting: BucketSetting,
) -> StoreResult<Vec<Bucket>> {
    sqlx::query(buckets_query!(
        "WHERE EXISTS (SELECT 1 FROM bucket_settings x WHERE x.bucket = b.name AND x.name = ?)
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
    store: &SqliteStore,
    found: &ObjectRecord,
    expiry: &Expiry,
) -> StoreResult<Option<Vec<String>>> {
    let change = Change::Expire {
        found: found.clone(),
        expiry: expiry.clone(),
    };
    store.committer.submit(change).await?.expired()
}
