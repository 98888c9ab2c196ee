//! Images (`crate::images`): what both backends share.

use super::StoreRow;
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
