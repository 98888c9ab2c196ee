//! [`SnapshotIndex`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;

use super::{
    PostgresStore, delete_resource_tx, insert_resource_tx, require_tx, tag_new_resource_tx,
};
use crate::postgres::ExecuteLocked;
use crate::snapshots::{SnapshotData, SnapshotDeletion, SnapshotIndex, SnapshotRecord};
use crate::{Segment, StoreError, StoreResult, TagPair};

pub(super) const SNAPSHOT_EXISTS: &str = "SELECT 1::BIGINT FROM snapshots WHERE snapshot_id = $1";

fn snapshot_from_row(row: &sqlx::postgres::PgRow) -> StoreResult<SnapshotRecord> {
    let segments: Option<String> = row.try_get("segments")?;
    let data = match segments {
        None => None,
        Some(json) => {
            let segments: Vec<Segment> = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("snapshot segments: {e}")))?;
            let size: i64 = row.try_get("data_size")?;
            let sha256: Option<String> = row.try_get("sha256")?;
            let format: Option<String> = row.try_get("disk_format")?;
            Some(SnapshotData {
                segments,
                size: u64::try_from(size)
                    .map_err(|_| StoreError::Corrupt(format!("snapshot size {size}")))?,
                sha256: sha256
                    .ok_or_else(|| StoreError::Corrupt("snapshot without sha256".into()))?,
                format: format
                    .ok_or_else(|| StoreError::Corrupt("snapshot without format".into()))?,
            })
        }
    };
    Ok(SnapshotRecord {
        snapshot_id: row.try_get("snapshot_id")?,
        account_id: row.try_get("account_id")?,
        volume_id: row.try_get("volume_id")?,
        volume_size_gib: row.try_get("volume_size_gib")?,
        node_id: row.try_get("node_id")?,
        state: row.try_get("state")?,
        desired: row.try_get("desired")?,
        progress: row.try_get("progress")?,
        data,
        generation: row.try_get("generation")?,
        revision: row.try_get("revision")?,
        details: row.try_get("details")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The data columns of a record: segments JSON, size, sha256, format.
type DataColumns = (Option<String>, Option<i64>, Option<String>, Option<String>);

fn data_columns(record: &SnapshotRecord) -> StoreResult<DataColumns> {
    let Some(data) = &record.data else {
        return Ok((None, None, None, None));
    };
    let segments = serde_json::to_string(&data.segments)
        .map_err(|e| StoreError::Corrupt(format!("snapshot segments: {e}")))?;
    let size = i64::try_from(data.size)
        .map_err(|_| StoreError::Corrupt(format!("snapshot size {}", data.size)))?;
    Ok((
        Some(segments),
        Some(size),
        Some(data.sha256.clone()),
        Some(data.format.clone()),
    ))
}

#[async_trait]
impl SnapshotIndex for PostgresStore {
    async fn create_snapshot(
        &self,
        snapshot: &SnapshotRecord,
        tags: &[TagPair],
    ) -> StoreResult<()> {
        let (segments, size, sha256, format) = data_columns(snapshot)?;
        let mut tx = self.write_tx().await?;
        insert_resource_tx(
            &mut tx,
            &snapshot.snapshot_id,
            &snapshot.account_id,
            "snapshot",
            snapshot.created_at,
        )
        .await?;
        sqlx::query(
            "INSERT INTO snapshots (snapshot_id, account_id, volume_id, volume_size_gib, node_id,
               state, desired, progress, segments, data_size, sha256, disk_format, generation,
               revision, details, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&snapshot.snapshot_id)
        .bind(&snapshot.account_id)
        .bind(&snapshot.volume_id)
        .bind(snapshot.volume_size_gib)
        .bind(&snapshot.node_id)
        .bind(&snapshot.state)
        .bind(&snapshot.desired)
        .bind(snapshot.progress)
        .bind(segments)
        .bind(size)
        .bind(sha256)
        .bind(format)
        .bind(snapshot.generation)
        .bind(snapshot.revision)
        .bind(&snapshot.details)
        .bind(snapshot.created_at)
        .bind(snapshot.updated_at)
        .execute(&mut *tx)
        .await?;
        tag_new_resource_tx(&mut tx, &snapshot.account_id, &snapshot.snapshot_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn snapshot(&self, snapshot_id: &str) -> StoreResult<Option<SnapshotRecord>> {
        sqlx::query("SELECT * FROM snapshots WHERE snapshot_id = $1")
            .bind(snapshot_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(snapshot_from_row)
            .transpose()
    }

    async fn snapshots(&self, account_id: Option<&str>) -> StoreResult<Vec<SnapshotRecord>> {
        self.rows_of(
            account_id,
            "SELECT * FROM snapshots WHERE account_id = $1 ORDER BY snapshot_id",
            "SELECT * FROM snapshots ORDER BY snapshot_id",
        )
        .await?
        .iter()
        .map(snapshot_from_row)
        .collect()
    }

    async fn snapshots_shared_with(&self, account_id: &str) -> StoreResult<Vec<SnapshotRecord>> {
        sqlx::query(
            "SELECT * FROM snapshots s WHERE s.account_id <> $1 AND EXISTS (
               SELECT 1::BIGINT FROM snapshot_permissions p
               WHERE p.snapshot_id = s.snapshot_id AND p.grantee IN ($2, 'all'))
             ORDER BY s.snapshot_id",
        )
        .bind(account_id)
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(snapshot_from_row)
        .collect()
    }

    async fn update_snapshot(&self, record: &SnapshotRecord) -> StoreResult<bool> {
        let (segments, size, sha256, format) = data_columns(record)?;
        let done = sqlx::query(
            "UPDATE snapshots SET node_id = $1, state = $2, desired = $3, progress = $4,
               segments = $5, data_size = $6, sha256 = $7, disk_format = $8, generation = $9,
               revision = revision + 1, details = $10, updated_at = $11
             WHERE snapshot_id = $12 AND revision = $13",
        )
        .bind(&record.node_id)
        .bind(&record.state)
        .bind(&record.desired)
        .bind(record.progress)
        .bind(segments)
        .bind(size)
        .bind(sha256)
        .bind(format)
        .bind(record.generation)
        .bind(&record.details)
        .bind(record.updated_at)
        .bind(&record.snapshot_id)
        .bind(record.revision)
        .execute_locked(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_snapshot(&self, record: &SnapshotRecord) -> StoreResult<SnapshotDeletion> {
        let mut tx = self.write_tx().await?;
        let user: Option<String> = sqlx::query_scalar(
            "SELECT i.image_id FROM images i, json_array_elements(i.block_device_mappings::JSON) m
             WHERE m->>'snapshot_id' = $1 ORDER BY i.image_id LIMIT 1",
        )
        .bind(&record.snapshot_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(image_id) = user {
            return Ok(SnapshotDeletion::InUseByImage(image_id));
        }
        let stored =
            sqlx::query("SELECT * FROM snapshots WHERE snapshot_id = $1 AND revision = $2")
                .bind(&record.snapshot_id)
                .bind(record.revision)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(stored) = stored else {
            return Ok(SnapshotDeletion::Changed);
        };
        let stored = snapshot_from_row(&stored)?;
        sqlx::query("DELETE FROM snapshots WHERE snapshot_id = $1")
            .bind(&record.snapshot_id)
            .execute(&mut *tx)
            .await?;
        delete_resource_tx(&mut tx, &record.snapshot_id, "snapshot").await?;
        tx.commit().await?;
        Ok(SnapshotDeletion::Deleted(stored.data))
    }

    async fn snapshot_permissions(&self, snapshot_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT grantee FROM snapshot_permissions WHERE snapshot_id = $1 ORDER BY grantee",
        )
        .bind(snapshot_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn change_snapshot_permissions(
        &self,
        snapshot_id: &str,
        add: &[String],
        remove: &[String],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        require_tx(&mut tx, SNAPSHOT_EXISTS, snapshot_id).await?;
        for grantee in add {
            sqlx::query(
                "INSERT INTO snapshot_permissions (snapshot_id, grantee) VALUES ($1, $2)
                 ON CONFLICT (snapshot_id, grantee) DO NOTHING",
            )
            .bind(snapshot_id)
            .bind(grantee)
            .execute(&mut *tx)
            .await?;
        }
        for grantee in remove {
            sqlx::query("DELETE FROM snapshot_permissions WHERE snapshot_id = $1 AND grantee = $2")
                .bind(snapshot_id)
                .bind(grantee)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reset_snapshot_permissions(&self, snapshot_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM snapshot_permissions WHERE snapshot_id = $1")
            .bind(snapshot_id)
            .execute_locked(&self.pool)
            .await?;
        Ok(())
    }
}
