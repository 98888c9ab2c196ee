//! [`VolumeIndex`] on PostgreSQL.

use async_trait::async_trait;

use super::{PostgresStore, conflict, delete_resource_tx, insert_resource_tx, tag_new_resource_tx};
use crate::postgres::ExecuteLocked;
use crate::shared::volumes::{self as sql, attachment_of, volume_from_row};
use crate::volumes::{VolumeIndex, VolumeRecord};
use crate::{StoreResult, TagPair};

/// Inserts a volume and its `volume` resource in `tx`.
pub(super) async fn insert_volume_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    volume: &VolumeRecord,
) -> StoreResult<()> {
    insert_resource_tx(
        tx,
        &volume.volume_id,
        &volume.account_id,
        "volume",
        volume.created_at,
    )
    .await?;
    sql::bind_insert(sqlx::query(sql::INSERT), volume)
        .execute(&mut **tx)
        .await
        .map_err(conflict(attachment_of(volume)))?;
    Ok(())
}

#[async_trait]
impl VolumeIndex for PostgresStore {
    async fn create_volume(&self, volume: &VolumeRecord, tags: &[TagPair]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_volume_tx(&mut tx, volume).await?;
        tag_new_resource_tx(&mut tx, &volume.account_id, &volume.volume_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn volume(&self, volume_id: &str) -> StoreResult<Option<VolumeRecord>> {
        sqlx::query(sql::BY_ID)
            .bind(volume_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(volume_from_row)
            .transpose()
    }

    async fn volumes(&self, account_id: Option<&str>) -> StoreResult<Vec<VolumeRecord>> {
        self.rows_of(account_id, sql::OF_ACCOUNT, sql::ALL)
            .await?
            .iter()
            .map(volume_from_row)
            .collect()
    }

    async fn volumes_of_instance(&self, instance_id: &str) -> StoreResult<Vec<VolumeRecord>> {
        sqlx::query(sql::OF_INSTANCE)
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(volume_from_row)
            .collect()
    }

    async fn update_volume(&self, record: &VolumeRecord) -> StoreResult<bool> {
        let done = sql::bind_update(sqlx::query(sql::UPDATE), record)
            .execute_locked(&self.pool)
            .await
            .map_err(conflict(attachment_of(record)))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_volume(&self, record: &VolumeRecord) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(sql::DELETE)
            .bind(&record.volume_id)
            .bind(record.revision)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        delete_resource_tx(&mut tx, &record.volume_id, "volume").await?;
        tx.commit().await?;
        Ok(true)
    }
}
