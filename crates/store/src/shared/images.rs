//! Images (`crate::images`): what both backends share.

use super::{Binder, StoreRow};
use crate::images::{Image, StateReason};
use crate::{StoreError, StoreResult};

pub(crate) fn image_from_row(row: &impl StoreRow) -> StoreResult<Image> {
    let size: i64 = row.try_get("size")?;
    let permissions: Option<String> = row.try_get("launch_permissions")?;
    let block_device_mappings: String = row.try_get("block_device_mappings")?;
    let launch_permissions = match permissions {
        None => Vec::new(),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("launch permissions: {e}")))?,
    };
    Ok(Image {
        image_id: row.try_get("image_id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        image_type: row.try_get("image_type")?,
        architecture: row.try_get("architecture")?,
        virtualization_type: row.try_get("virtualization_type")?,
        root_device_name: row.try_get("root_device_name")?,
        root_device_type: row.try_get("root_device_type")?,
        kernel_id: row.try_get("kernel_id")?,
        ramdisk_id: row.try_get("ramdisk_id")?,
        location: row.try_get("location")?,
        bucket: row.try_get("bucket")?,
        key: row.try_get("object_key")?,
        size: u64::try_from(size)
            .map_err(|_| StoreError::Corrupt(format!("negative image size {size}")))?,
        etag: row.try_get("etag")?,
        disk_format: row.try_get("disk_format")?,
        state: row.try_get("state")?,
        is_public: row.try_get::<i64>("is_public")? != 0,
        created_at: row.try_get("created_at")?,
        launch_permissions,
        block_device_mappings: serde_json::from_str(&block_device_mappings)
            .map_err(|e| StoreError::Corrupt(format!("block device mappings: {e}")))?,
        state_reason: match (
            row.try_get::<Option<String>>("state_reason_code")?,
            row.try_get::<Option<String>>("state_reason_message")?,
        ) {
            (Some(code), Some(message)) => Some(StateReason { code, message }),
            _ => None,
        },
        bundle_manifest: row.try_get("bundle_manifest")?,
    })
}

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const ADD_PERMISSIONS_TX: &str =
    "INSERT INTO image_launch_permissions (image_id, account_id) VALUES ($1, $2)
    ON CONFLICT (image_id, account_id) DO NOTHING";

pub(crate) const CREATE_IMAGE_SELECT_IMAGES: &str =
    "SELECT image_id FROM images WHERE account_id = $1 AND name = $2";

pub(crate) const CREATE_IMAGE_INSERT_IMAGES: &str =
    "INSERT INTO images (image_id, account_id, name, description, image_type, architecture,
       virtualization_type, root_device_name, root_device_type, kernel_id, ramdisk_id,
       location, bucket, object_key, size, etag, disk_format, state, is_public, created_at,
       block_device_mappings, state_reason_code, state_reason_message, bundle_manifest)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)";

pub(crate) const DELETE_IMAGE_DELETE_IMAGES: &str =
    "DELETE FROM images WHERE account_id = $1 AND image_id = $2";

pub(crate) const DELETE_IMAGE_DELETE_RESOURCES: &str =
    "DELETE FROM resources WHERE account_id = $1 AND resource_id = $2";

pub(crate) const SET_IMAGE_STATE: &str =
    "UPDATE images SET state = $1 WHERE image_id = $2 AND state = $3";

pub(crate) const COMPLETE_PENDING_IMAGE: &str =
    "UPDATE images SET state = 'available', bucket = $1, object_key = $2, size = $3, etag = $4,
    disk_format = $5 WHERE image_id = $6 AND state = 'pending'";

pub(crate) const FAIL_PENDING_IMAGE: &str =
    "UPDATE images SET state = 'failed', state_reason_code = $1, state_reason_message = $2
    WHERE image_id = $3 AND state = 'pending'";

pub(crate) const SET_IMAGE_DESCRIPTION: &str =
    "UPDATE images SET description = $1 WHERE image_id = $2";

pub(crate) const CHANGE_LAUNCH_PERMISSIONS_DELETE_IMAGE_LAUNCH_PERMISSIONS: &str =
    "DELETE FROM image_launch_permissions WHERE image_id = $1 AND account_id = $2";

pub(crate) const CHANGE_LAUNCH_PERMISSIONS_UPDATE_IMAGES: &str =
    "UPDATE images SET is_public = $1 WHERE image_id = $2";

pub(crate) const RESET_LAUNCH_PERMISSIONS_DELETE_IMAGE_LAUNCH_PERMISSIONS: &str =
    "DELETE FROM image_launch_permissions WHERE image_id = $1";

pub(crate) const RESET_LAUNCH_PERMISSIONS_UPDATE_IMAGES: &str =
    "UPDATE images SET is_public = 0 WHERE image_id = $1";

/// Binds [`CREATE_IMAGE_INSERT_IMAGES`]'s parameters.
pub(crate) fn bind_insert_image<Q: Binder>(
    query: Q,
    image: &Image,
    size: i64,
    mappings: &str,
) -> Q {
    query
        .arg(&image.image_id)
        .arg(&image.account_id)
        .arg(&image.name)
        .arg(&image.description)
        .arg(&image.image_type)
        .arg(&image.architecture)
        .arg(&image.virtualization_type)
        .arg(&image.root_device_name)
        .arg(&image.root_device_type)
        .arg(&image.kernel_id)
        .arg(&image.ramdisk_id)
        .arg(&image.location)
        .arg(&image.bucket)
        .arg(&image.key)
        .arg(size)
        .arg(&image.etag)
        .arg(&image.disk_format)
        .arg(&image.state)
        .arg(i64::from(image.is_public))
        .arg(image.created_at)
        .arg(mappings)
        .arg(image.state_reason.as_ref().map(|r| r.code.clone()))
        .arg(image.state_reason.as_ref().map(|r| r.message.clone()))
        .arg(&image.bundle_manifest)
}
