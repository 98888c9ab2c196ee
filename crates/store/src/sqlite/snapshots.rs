//! [`SnapshotIndex`] on SQLite.

use async_trait::async_trait;

use super::{SqliteStore, delete_resource_tx, insert_resource_tx, require_tx, tag_new_resource_tx};
use crate::shared::snapshots::{self as sql, snapshot_from_row};
use crate::snapshots::{SnapshotDeletion, SnapshotIndex, SnapshotRecord};
use crate::{StoreResult, TagPair};

pub(super) const SNAPSHOT_EXISTS: &str = "SELECT 1 FROM snapshots WHERE snapshot_id = ?";

#[async_trait]
impl SnapshotIndex for SqliteStore {
    async fn create_snapshot(
        &self,
        snapshot: &SnapshotRecord,
        tags: &[TagPair],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_resource_tx(
            &mut tx,
            &snapshot.snapshot_id,
            &snapshot.account_id,
            "snapshot",
            snapshot.created_at,
        )
        .await?;
        sql::bind_insert(sqlx::query(sql::INSERT), snapshot)?
            .execute(&mut *tx)
            .await?;
        tag_new_resource_tx(&mut tx, &snapshot.account_id, &snapshot.snapshot_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn snapshot(&self, snapshot_id: &str) -> StoreResult<Option<SnapshotRecord>> {
        sqlx::query(sql::BY_ID)
            .bind(snapshot_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(snapshot_from_row)
            .transpose()
    }

    async fn snapshots(&self, account_id: Option<&str>) -> StoreResult<Vec<SnapshotRecord>> {
        self.rows_of(account_id, sql::OF_ACCOUNT, sql::ALL)
            .await?
            .iter()
            .map(snapshot_from_row)
            .collect()
    }

    async fn snapshots_shared_with(&self, account_id: &str) -> StoreResult<Vec<SnapshotRecord>> {
        sqlx::query(sql::SHARED_WITH)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(snapshot_from_row)
            .collect()
    }

    async fn update_snapshot(&self, record: &SnapshotRecord) -> StoreResult<bool> {
        let done = sql::bind_update(sqlx::query(sql::UPDATE), record)?
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_snapshot(&self, record: &SnapshotRecord) -> StoreResult<SnapshotDeletion> {
        let mut tx = self.write_tx().await?;
        let user: Option<String> = sqlx::query_scalar(
            "SELECT i.image_id FROM images i, json_each(i.block_device_mappings) m
             WHERE json_extract(m.value, '$.snapshot_id') = ? ORDER BY i.image_id LIMIT 1",
        )
        .bind(&record.snapshot_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(image_id) = user {
            return Ok(SnapshotDeletion::InUseByImage(image_id));
        }
        let stored = sqlx::query(sql::BY_REVISION)
            .bind(&record.snapshot_id)
            .bind(record.revision)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(stored) = stored else {
            return Ok(SnapshotDeletion::Changed);
        };
        let stored = snapshot_from_row(&stored)?;
        sqlx::query(sql::DELETE)
            .bind(&record.snapshot_id)
            .execute(&mut *tx)
            .await?;
        delete_resource_tx(&mut tx, &record.snapshot_id, "snapshot").await?;
        tx.commit().await?;
        Ok(SnapshotDeletion::Deleted(stored.data))
    }

    async fn snapshot_permissions(&self, snapshot_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(sql::PERMISSIONS)
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
            sqlx::query(sql::GRANT)
                .bind(snapshot_id)
                .bind(grantee)
                .execute(&mut *tx)
                .await?;
        }
        for grantee in remove {
            sqlx::query(sql::REVOKE)
                .bind(snapshot_id)
                .bind(grantee)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reset_snapshot_permissions(&self, snapshot_id: &str) -> StoreResult<()> {
        sqlx::query(sql::RESET_PERMISSIONS)
            .bind(snapshot_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
