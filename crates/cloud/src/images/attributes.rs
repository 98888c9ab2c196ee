//! Describe/Modify/ResetImageAttribute: an image's attributes, of which
//! only its owner sees the launch permissions and changes anything.

use mallee_store::{Image, LaunchPermissionChange, StoreError};

use super::{not_found, owned_image, visible_image};
use crate::{Cloud, CloudError, Principal};

/// The attributes Describe/Modify/ResetImageAttribute name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// The description.
    Description,
    /// The kernel of a paravirtual image.
    Kernel,
    /// Its ramdisk.
    Ramdisk,
    /// Who may launch it (public, and the accounts it is shared with).
    LaunchPermission,
    /// Product codes (none here).
    ProductCodes,
    /// Its block device mappings.
    BlockDeviceMapping,
}

/// What ModifyImageAttribute changes: one attribute per call, as in EC2.
#[derive(Debug, Clone, PartialEq)]
pub enum Modification {
    /// A new description (`None` clears it).
    Description(Option<String>),
    /// Accounts added to and removed from the launch permissions, and
    /// whether the image becomes public or private.
    LaunchPermission(LaunchPermissionChange),
}

/// A store error of a change to an image that vanished meanwhile.
fn gone(image_id: &str) -> impl FnOnce(StoreError) -> CloudError + '_ {
    move |err| match err {
        StoreError::NotFound(_) => not_found(&[image_id]),
        other => other.into(),
    }
}

/// The image whose `attribute` the caller asks for: the launch permissions
/// only of its own images, the rest of every image it sees.
pub async fn describe(
    cloud: &Cloud,
    caller: &Principal,
    image_id: &str,
    attribute: Attribute,
) -> Result<Image, CloudError> {
    let account = caller.account_id();
    match attribute {
        Attribute::LaunchPermission => owned_image(cloud, account, image_id).await,
        _ => visible_image(cloud, account, image_id).await,
    }
}

/// Applies `modification` to the caller's image.
pub async fn modify(
    cloud: &Cloud,
    caller: &Principal,
    image_id: &str,
    modification: &Modification,
) -> Result<(), CloudError> {
    owned_image(cloud, caller.account_id(), image_id).await?;
    let store = &cloud.store;
    match modification {
        Modification::Description(d) => store
            .set_image_description(image_id, d.as_deref())
            .await
            .map_err(gone(image_id)),
        Modification::LaunchPermission(change) => store
            .change_launch_permissions(image_id, change)
            .await
            .map_err(gone(image_id)),
    }
}

/// Makes the caller's image private and shared with nobody.
pub async fn reset_launch_permission(
    cloud: &Cloud,
    caller: &Principal,
    image_id: &str,
) -> Result<(), CloudError> {
    owned_image(cloud, caller.account_id(), image_id).await?;
    cloud
        .store
        .reset_launch_permissions(image_id)
        .await
        .map_err(gone(image_id))
}
