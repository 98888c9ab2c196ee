//! Registered images: machine images (`ami-`), kernels (`aki-`) and ramdisks
//! (`ari-`), each backed by one object of the object store, and the accounts
//! each image is shared with. Validation, visibility rules and id
//! generation live in the API layer; this is the durable record.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, TagPair, UnixMillis};

/// One registered image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `ami-…`, `aki-…` or `ari-…`.
    pub image_id: String,
    /// Owning account.
    pub account_id: String,
    /// Name, unique among the owner's images.
    pub name: String,
    /// Free-form description.
    pub description: Option<String>,
    /// `machine`, `kernel` or `ramdisk`.
    pub image_type: String,
    /// `x86_64` or `i386`.
    pub architecture: String,
    /// `hvm` or `paravirtual`.
    pub virtualization_type: String,
    /// Root device name (`/dev/sda1`).
    pub root_device_name: String,
    /// Always `instance-store` for now.
    pub root_device_type: String,
    /// Default kernel of a paravirtual machine image.
    pub kernel_id: Option<String>,
    /// Default ramdisk of a paravirtual machine image.
    pub ramdisk_id: Option<String>,
    /// `bucket/key` as given at registration.
    pub location: String,
    /// Bucket of the backing object.
    pub bucket: String,
    /// Key of the backing object.
    pub key: String,
    /// Object size at registration.
    pub size: u64,
    /// Object ETag (without quotes) at registration.
    pub etag: String,
    /// `raw` or `qcow2` for machine images, `none` for kernels and ramdisks.
    pub disk_format: String,
    /// `available` (deregistered images are deleted).
    pub state: String,
    /// Launchable by every account.
    pub is_public: bool,
    /// Registration time.
    pub created_at: UnixMillis,
    /// Accounts given launch permission, ordered by id.
    pub launch_permissions: Vec<String>,
    /// Block device mappings (EBS-backed images: the root's snapshot and
    /// any further volumes created at launch).
    pub block_device_mappings: Vec<ImageBlockDevice>,
    /// Why a `failed` image failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<StateReason>,
    /// `BUCKET/KEY` of the bundle manifest it was registered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_manifest: Option<String>,
}

/// EC2's StateReason of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReason {
    /// The code (`Client.InvalidManifest`, …).
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// What a bundled image holds once unbundled: the object its data was
/// stored in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnbundledImage {
    /// Bucket of the object.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// Its ETag (without quotes).
    pub etag: String,
    /// `raw`, `qcow2` or `none`.
    pub disk_format: String,
}

/// One block device mapping of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBlockDevice {
    /// Device name (`/dev/sda1`, `/dev/sdf`, `/dev/xvda`).
    pub device_name: String,
    /// Snapshot a volume is created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Size of the volume in GiB (default: the snapshot's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size_gib: Option<i64>,
    /// Whether the volume is deleted when its instance terminates.
    #[serde(default)]
    pub delete_on_termination: bool,
    /// Volume type (`gp2`, `gp3`, `standard`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// `ephemeralN` for instance-store mappings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_name: Option<String>,
    /// The mapping suppresses a device.
    #[serde(default)]
    pub no_device: bool,
}

/// A change to an image's launch permissions, applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPermissionChange {
    /// Accounts to add (already present ones are kept once).
    pub add: Vec<String>,
    /// Accounts to remove (absent ones are ignored).
    pub remove: Vec<String>,
    /// `Some(true)` makes the image public, `Some(false)` private.
    pub public: Option<bool>,
}

/// Image records. Each method is one transaction.
#[async_trait]
pub trait ImageIndex: Send + Sync {
    /// Stores an image (its `launch_permissions` included) and its tags,
    /// registering it as a taggable resource of type `image`. `Conflict`
    /// when the owner already has an image of that name (or the id exists).
    async fn create_image(&self, image: &Image, tags: &[TagPair]) -> StoreResult<()>;
    /// An image by id.
    async fn image(&self, image_id: &str) -> StoreResult<Option<Image>>;
    /// Every image `account_id` may launch: its own, public ones and those
    /// shared with it; ordered by id.
    async fn images_visible_to(&self, account_id: &str) -> StoreResult<Vec<Image>>;
    /// Deletes an image of `account_id` with its tags and launch
    /// permissions. Returns whether it existed (and was the account's).
    async fn delete_image(&self, account_id: &str, image_id: &str) -> StoreResult<bool>;
    /// Sets or clears the description; `NotFound` when the image is gone.
    async fn set_image_description(
        &self,
        image_id: &str,
        description: Option<&str>,
    ) -> StoreResult<()>;
    /// Applies `change` (removals after additions); `NotFound` when the
    /// image is gone.
    async fn change_launch_permissions(
        &self,
        image_id: &str,
        change: &LaunchPermissionChange,
    ) -> StoreResult<()>;
    /// Makes the image private and shared with nobody; `NotFound` when gone.
    async fn reset_launch_permissions(&self, image_id: &str) -> StoreResult<()>;
    /// Moves an image from state `from` to state `to`; `false` when it is
    /// gone or no longer in `from`.
    async fn set_image_state(&self, image_id: &str, from: &str, to: &str) -> StoreResult<bool>;
    /// Every image in `state`, of every account, ordered by id.
    async fn images_in_state(&self, state: &str) -> StoreResult<Vec<Image>>;
    /// A `pending` image becomes `available` backed by `unbundled`;
    /// `false` when it is gone or no longer pending.
    async fn complete_pending_image(
        &self,
        image_id: &str,
        unbundled: &UnbundledImage,
    ) -> StoreResult<bool>;
    /// A `pending` image becomes `failed` for `reason`; `false` when it is
    /// gone or no longer pending.
    async fn fail_pending_image(&self, image_id: &str, reason: &StateReason) -> StoreResult<bool>;
}
