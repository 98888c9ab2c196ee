//! Describe/Modify/ResetSnapshotAttribute: who may create volumes from a
//! snapshot (`all`, or account ids), which only its owner sees and
//! changes.

use mallee_store::StoreError;

use super::access::{load_owned, not_found};
use crate::{Cloud, CloudError, Principal};

/// The accounts the caller's snapshot is shared with, `all` when it is
/// public.
pub async fn create_volume_permissions(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
) -> Result<Vec<String>, CloudError> {
    load_owned(cloud, caller, id).await?;
    Ok(cloud.store.snapshot_permissions(id).await?)
}

/// Shares the caller's snapshot with `add` and stops sharing it with
/// `remove` (`all`, or account ids).
pub async fn change_create_volume_permissions(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    add: &[String],
    remove: &[String],
) -> Result<(), CloudError> {
    load_owned(cloud, caller, id).await?;
    cloud
        .store
        .change_snapshot_permissions(id, add, remove)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => not_found(id),
            e => e.into(),
        })
}

/// Makes the caller's snapshot private again.
pub async fn reset_create_volume_permissions(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
) -> Result<(), CloudError> {
    load_owned(cloud, caller, id).await?;
    Ok(cloud.store.reset_snapshot_permissions(id).await?)
}
