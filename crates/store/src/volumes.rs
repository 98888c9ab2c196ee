//! EBS volumes: the controller's desired state of every volume and the
//! state it last observed, kept by [`VolumeIndex`].
//!
//! The store treats states and details as opaque strings (the compute
//! layer in `mallee-cloud` owns their meaning); it guarantees that a device
//! name of an instance holds at most one volume however attachments race,
//! that a volume and its resource (for tags) come and go together, and
//! compare-and-set updates through `revision`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, TagPair, UnixMillis};

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// `vol-…`.
    pub volume_id: String,
    /// Owning account.
    pub account_id: String,
    /// Availability zone.
    pub zone: String,
    /// Node whose disk holds the volume's data.
    pub node_id: String,
    /// Size in GiB.
    pub size_gib: i64,
    /// EC2 state name (`creating`, `available`, `in-use`, …).
    pub state: String,
    /// What the controller drives it toward (`available`, `attached`,
    /// `deleted`).
    pub desired: String,
    /// The instance it is attached to, being attached to, or being
    /// detached from.
    pub instance_id: Option<String>,
    /// The device name of that attachment (`/dev/sdf`).
    pub device: Option<String>,
    /// The attachment's state (`attaching`, `attached`, `detaching`).
    pub attach_state: Option<String>,
    /// When the attachment was requested.
    pub attach_time: Option<UnixMillis>,
    /// Generation of what the node was last asked to do; bumped by every
    /// change the node must act on.
    pub generation: i64,
    /// Compare-and-set counter, bumped by every update.
    pub revision: i64,
    /// Details (JSON owned by the compute layer).
    pub details: String,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// Volume persistence.
#[async_trait]
pub trait VolumeIndex: Send + Sync {
    /// Records a new volume, registered as a `volume` resource carrying
    /// `tags`, in one transaction. `Conflict` when the id is taken or its
    /// attachment's device is.
    async fn create_volume(&self, volume: &VolumeRecord, tags: &[TagPair]) -> StoreResult<()>;
    /// One volume.
    async fn volume(&self, volume_id: &str) -> StoreResult<Option<VolumeRecord>>;
    /// Volumes of one account, or of every account when `None`, ordered by
    /// volume id.
    async fn volumes(&self, account_id: Option<&str>) -> StoreResult<Vec<VolumeRecord>>;
    /// Volumes attached to (or being attached to or detached from) an
    /// instance, ordered by device.
    async fn volumes_of_instance(&self, instance_id: &str) -> StoreResult<Vec<VolumeRecord>>;
    /// [`VolumeIndex::volumes_of_instance`] of each of `instance_ids`, in
    /// one call: ordered by instance id, then device.
    ///
    /// Added for DescribeInstances (issue 18), which shows the volumes of a
    /// page of instances without reading every volume of the account. The
    /// default asks once per instance; SQLite answers in one query.
    async fn volumes_of_instances(
        &self,
        instance_ids: &[String],
    ) -> StoreResult<Vec<VolumeRecord>> {
        let mut ids: Vec<&String> = instance_ids.iter().collect();
        ids.sort();
        ids.dedup();
        let mut all = Vec::new();
        for id in ids {
            all.extend(self.volumes_of_instance(id).await?);
        }
        Ok(all)
    }
    /// Replaces a volume's row if its `revision` is still the stored one
    /// (the stored revision becomes `revision + 1`); `false` when someone
    /// else changed it first or it is gone. `Conflict` when its attachment's
    /// device of that instance is held by another volume.
    async fn update_volume(&self, record: &VolumeRecord) -> StoreResult<bool>;
    /// Removes a volume with its resource and tags if its `revision` is
    /// still the stored one; `false` otherwise (or when it is gone).
    async fn delete_volume(&self, record: &VolumeRecord) -> StoreResult<bool>;
}
