//! [`VolumeIndex`] on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, conflict, delete_resource_tx, insert_resource_tx, tag_new_resource_tx};
use crate::volumes::{VolumeIndex, VolumeRecord};
use crate::{StoreResult, TagPair};

fn volume_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<VolumeRecord> {
    Ok(VolumeRecord {
        volume_id: row.try_get("volume_id")?,
        account_id: row.try_get("account_id")?,
        zone: row.try_get("zone")?,
        node_id: row.try_get("node_id")?,
        size_gib: row.try_get("size_gib")?,
        state: row.try_get("state")?,
        desired: row.try_get("desired")?,
        instance_id: row.try_get("instance_id")?,
        device: row.try_get("device")?,
        attach_state: row.try_get("attach_state")?,
        attach_time: row.try_get("attach_time")?,
        generation: row.try_get("generation")?,
        revision: row.try_get("revision")?,
        details: row.try_get("details")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn attachment_of(record: &VolumeRecord) -> String {
    format!(
        "device {} of {}",
        record.device.as_deref().unwrap_or(""),
        record.instance_id.as_deref().unwrap_or("")
    )
}

/// Inserts a volume and its `volume` resource in `tx`.
pub(super) async fn insert_volume_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
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
    sqlx::query(
        "INSERT INTO volumes (volume_id, account_id, zone, node_id, size_gib, state, desired,
           instance_id, device, attach_state, attach_time, generation, revision, details,
           created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&volume.volume_id)
    .bind(&volume.account_id)
    .bind(&volume.zone)
    .bind(&volume.node_id)
    .bind(volume.size_gib)
    .bind(&volume.state)
    .bind(&volume.desired)
    .bind(&volume.instance_id)
    .bind(&volume.device)
    .bind(&volume.attach_state)
    .bind(volume.attach_time)
    .bind(volume.generation)
    .bind(volume.revision)
    .bind(&volume.details)
    .bind(volume.created_at)
    .bind(volume.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(conflict(attachment_of(volume)))?;
    Ok(())
}

#[async_trait]
impl VolumeIndex for SqliteStore {
    async fn create_volume(&self, volume: &VolumeRecord, tags: &[TagPair]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_volume_tx(&mut tx, volume).await?;
        tag_new_resource_tx(&mut tx, &volume.account_id, &volume.volume_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn volume(&self, volume_id: &str) -> StoreResult<Option<VolumeRecord>> {
        sqlx::query("SELECT * FROM volumes WHERE volume_id = ?")
            .bind(volume_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(volume_from_row)
            .transpose()
    }

    async fn volumes(&self, account_id: Option<&str>) -> StoreResult<Vec<VolumeRecord>> {
        self.rows_of(
            account_id,
            "SELECT * FROM volumes WHERE account_id = ? ORDER BY volume_id",
            "SELECT * FROM volumes ORDER BY volume_id",
        )
        .await?
        .iter()
        .map(volume_from_row)
        .collect()
    }

    async fn volumes_of_instance(&self, instance_id: &str) -> StoreResult<Vec<VolumeRecord>> {
        sqlx::query("SELECT * FROM volumes WHERE instance_id = ? ORDER BY device, volume_id")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(volume_from_row)
            .collect()
    }

    async fn volumes_of_instances(
        &self,
        instance_ids: &[String],
    ) -> StoreResult<Vec<VolumeRecord>> {
        if instance_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(instance_ids)
            .map_err(|e| crate::StoreError::Corrupt(format!("instance ids: {e}")))?;
        sqlx::query(
            "SELECT * FROM volumes WHERE instance_id IN (SELECT value FROM json_each(?))
             ORDER BY instance_id, device, volume_id",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(volume_from_row)
        .collect()
    }

    async fn update_volume(&self, record: &VolumeRecord) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE volumes SET node_id = ?, size_gib = ?, state = ?, desired = ?,
               instance_id = ?, device = ?, attach_state = ?, attach_time = ?, generation = ?,
               revision = revision + 1, details = ?, updated_at = ?
             WHERE volume_id = ? AND revision = ?",
        )
        .bind(&record.node_id)
        .bind(record.size_gib)
        .bind(&record.state)
        .bind(&record.desired)
        .bind(&record.instance_id)
        .bind(&record.device)
        .bind(&record.attach_state)
        .bind(record.attach_time)
        .bind(record.generation)
        .bind(&record.details)
        .bind(record.updated_at)
        .bind(&record.volume_id)
        .bind(record.revision)
        .execute(&self.pool)
        .await
        .map_err(conflict(attachment_of(record)))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_volume(&self, record: &VolumeRecord) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM volumes WHERE volume_id = ? AND revision = ?")
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
