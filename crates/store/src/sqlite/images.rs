//! [`ImageIndex`] for the SQLite backend (tables from `0003_images.sql`, rebuilt by `0029_bundled_images.sql`).

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::snapshots::SNAPSHOT_EXISTS;
use super::{SqliteStore, insert_resource_tx, require_tx, tag_new_resource_tx};
use crate::images::{Image, ImageIndex, LaunchPermissionChange, StateReason, UnbundledImage};
use crate::shared::images::{self as sql, image_from_row};
use crate::{StoreError, StoreResult, TagPair};

/// A query for every image column plus its launch permissions as one JSON
/// array (so a listing is one query however many images are shared),
/// followed by `$rest`.
macro_rules! select_images {
    ($rest:literal) => {
        concat!(
            "SELECT i.*,
                (SELECT json_group_array(account_id) FROM
                    (SELECT account_id FROM image_launch_permissions p
                     WHERE p.image_id = i.image_id ORDER BY account_id)) AS launch_permissions
             FROM images i ",
            $rest
        )
    };
}

const IMAGE_EXISTS: &str = "SELECT 1 FROM images WHERE image_id = ?";

async fn add_permissions_tx(
    tx: &mut Transaction<'static, Sqlite>,
    image_id: &str,
    accounts: &[String],
) -> StoreResult<()> {
    for account in accounts {
        sqlx::query(sql::ADD_PERMISSIONS_TX)
            .bind(image_id)
            .bind(account)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl ImageIndex for SqliteStore {
    async fn create_image(&self, image: &Image, tags: &[TagPair]) -> StoreResult<()> {
        let size = i64::try_from(image.size)
            .map_err(|_| StoreError::Corrupt(format!("image size {} out of range", image.size)))?;
        let mut tx = self.write_tx().await?;
        let name_taken: Option<String> = sqlx::query_scalar(sql::CREATE_IMAGE_SELECT_IMAGES)
            .bind(&image.account_id)
            .bind(&image.name)
            .fetch_optional(&mut *tx)
            .await?;
        if name_taken.is_some() {
            return Err(StoreError::Conflict(image.name.clone()));
        }
        // In the same transaction as the insert, so a snapshot cannot be
        // deleted between this check and the image naming it.
        for snapshot_id in image
            .block_device_mappings
            .iter()
            .filter_map(|m| m.snapshot_id.as_deref())
        {
            require_tx(&mut tx, SNAPSHOT_EXISTS, snapshot_id).await?;
        }
        let mappings = serde_json::to_string(&image.block_device_mappings)
            .map_err(|e| StoreError::Corrupt(format!("block device mappings: {e}")))?;
        insert_resource_tx(
            &mut tx,
            &image.image_id,
            &image.account_id,
            "image",
            image.created_at,
        )
        .await?;
        sql::bind_insert_image(
            sqlx::query(sql::CREATE_IMAGE_INSERT_IMAGES),
            image,
            size,
            &mappings,
        )
        .execute(&mut *tx)
        .await?;
        add_permissions_tx(&mut tx, &image.image_id, &image.launch_permissions).await?;
        tag_new_resource_tx(&mut tx, &image.account_id, &image.image_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn image(&self, image_id: &str) -> StoreResult<Option<Image>> {
        sqlx::query(select_images!("WHERE i.image_id = ?"))
            .bind(image_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(image_from_row)
            .transpose()
    }

    async fn images_visible_to(&self, account_id: &str) -> StoreResult<Vec<Image>> {
        sqlx::query(select_images!(
            "WHERE i.account_id = ?1 OR i.is_public = 1
               OR EXISTS (SELECT 1 FROM image_launch_permissions p
                          WHERE p.image_id = i.image_id AND p.account_id = ?1)
             ORDER BY i.image_id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(image_from_row)
        .collect()
    }

    async fn delete_image(&self, account_id: &str, image_id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query(sql::DELETE_IMAGE_DELETE_IMAGES)
            .bind(account_id)
            .bind(image_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted > 0 {
            sqlx::query(sql::DELETE_IMAGE_DELETE_RESOURCES)
                .bind(account_id)
                .bind(image_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn set_image_state(&self, image_id: &str, from: &str, to: &str) -> StoreResult<bool> {
        let done = sqlx::query(sql::SET_IMAGE_STATE)
            .bind(to)
            .bind(image_id)
            .bind(from)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn images_in_state(&self, state: &str) -> StoreResult<Vec<Image>> {
        sqlx::query(select_images!("WHERE i.state = ? ORDER BY i.image_id"))
            .bind(state)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(image_from_row)
            .collect()
    }

    async fn complete_pending_image(
        &self,
        image_id: &str,
        unbundled: &UnbundledImage,
    ) -> StoreResult<bool> {
        let size = i64::try_from(unbundled.size)
            .map_err(|_| StoreError::Corrupt(format!("image size {}", unbundled.size)))?;
        let done = sqlx::query(sql::COMPLETE_PENDING_IMAGE)
            .bind(&unbundled.bucket)
            .bind(&unbundled.key)
            .bind(size)
            .bind(&unbundled.etag)
            .bind(&unbundled.disk_format)
            .bind(image_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn fail_pending_image(&self, image_id: &str, reason: &StateReason) -> StoreResult<bool> {
        let done = sqlx::query(sql::FAIL_PENDING_IMAGE)
            .bind(&reason.code)
            .bind(&reason.message)
            .bind(image_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_image_description(
        &self,
        image_id: &str,
        description: Option<&str>,
    ) -> StoreResult<()> {
        let updated = sqlx::query(sql::SET_IMAGE_DESCRIPTION)
            .bind(description)
            .bind(image_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(image_id.to_owned()));
        }
        Ok(())
    }

    async fn change_launch_permissions(
        &self,
        image_id: &str,
        change: &LaunchPermissionChange,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        require_tx(&mut tx, IMAGE_EXISTS, image_id).await?;
        add_permissions_tx(&mut tx, image_id, &change.add).await?;
        for account in &change.remove {
            sqlx::query(sql::CHANGE_LAUNCH_PERMISSIONS_DELETE_IMAGE_LAUNCH_PERMISSIONS)
                .bind(image_id)
                .bind(account)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(public) = change.public {
            sqlx::query(sql::CHANGE_LAUNCH_PERMISSIONS_UPDATE_IMAGES)
                .bind(i64::from(public))
                .bind(image_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reset_launch_permissions(&self, image_id: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        require_tx(&mut tx, IMAGE_EXISTS, image_id).await?;
        sqlx::query(sql::RESET_LAUNCH_PERMISSIONS_DELETE_IMAGE_LAUNCH_PERMISSIONS)
            .bind(image_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::RESET_LAUNCH_PERMISSIONS_UPDATE_IMAGES)
            .bind(image_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
