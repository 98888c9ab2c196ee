//! EBS snapshots: the record of every snapshot (the volume it captures,
//! its state and progress, and once stored the blob segments holding its
//! data), the accounts it is shared with, and the check that keeps a
//! snapshot an image uses from being deleted, kept by [`SnapshotIndex`].
//!
//! States and details are opaque strings owned by the compute layer; the
//! store guarantees compare-and-set updates through `revision`, that a
//! snapshot and its resource (for tags) come and go together, and that a
//! snapshot named by an image's block device mapping is never deleted.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Segment, StoreResult, TagPair, UnixMillis};

/// Where and how a snapshot's data is stored, once it is whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotData {
    /// Blob segments holding the data, in order.
    pub segments: Vec<Segment>,
    /// Total size in bytes.
    pub size: u64,
    /// SHA-256 of the data (lowercase hex).
    pub sha256: String,
    /// Disk image format of the data (`raw` or `qcow2`).
    pub format: String,
}

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// `snap-…`.
    pub snapshot_id: String,
    /// Owning account.
    pub account_id: String,
    /// The volume it captures (`vol-ffffffff` for imported snapshots, as
    /// AWS shows them).
    pub volume_id: String,
    /// Size of that volume in GiB.
    pub volume_size_gib: i64,
    /// Node capturing the data while pending; `None` for imports.
    pub node_id: Option<String>,
    /// EC2 state (`pending`, `completed`, `error`).
    pub state: String,
    /// What the controller drives it toward (`completed`, `deleted`).
    pub desired: String,
    /// Percent done, 0–100.
    pub progress: i64,
    /// The stored data; `None` until it is whole.
    pub data: Option<SnapshotData>,
    /// Generation of what the node was last asked to do.
    pub generation: i64,
    /// Compare-and-set counter, bumped by every update.
    pub revision: i64,
    /// Details (JSON owned by the compute layer).
    pub details: String,
    /// Creation (start) time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// What [`SnapshotIndex::delete_snapshot`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotDeletion {
    /// Removed; its data's segments (if any) are the caller's to release.
    Deleted(Option<SnapshotData>),
    /// Kept: this image's block device mapping uses it.
    InUseByImage(String),
    /// Kept: someone changed or removed it first (stale revision).
    Changed,
}

/// Snapshot persistence.
#[async_trait]
pub trait SnapshotIndex: Send + Sync {
    /// Records a new snapshot, registered as a `snapshot` resource carrying
    /// `tags`, in one transaction. `Conflict` when the id is taken.
    async fn create_snapshot(&self, snapshot: &SnapshotRecord, tags: &[TagPair])
    -> StoreResult<()>;
    /// One snapshot.
    async fn snapshot(&self, snapshot_id: &str) -> StoreResult<Option<SnapshotRecord>>;
    /// Snapshots of one account, or of every account when `None`, ordered
    /// by snapshot id.
    async fn snapshots(&self, account_id: Option<&str>) -> StoreResult<Vec<SnapshotRecord>>;
    /// Snapshots of other accounts that `account_id` may create volumes
    /// from (shared with it, or public), ordered by snapshot id.
    async fn snapshots_shared_with(&self, account_id: &str) -> StoreResult<Vec<SnapshotRecord>>;
    /// Replaces a snapshot's row if its `revision` is still the stored one
    /// (the stored revision becomes `revision + 1`); `false` when someone
    /// else changed it first or it is gone.
    async fn update_snapshot(&self, record: &SnapshotRecord) -> StoreResult<bool>;
    /// Removes a snapshot with its resource, tags and permissions if its
    /// `revision` is still the stored one and no image uses it.
    async fn delete_snapshot(&self, record: &SnapshotRecord) -> StoreResult<SnapshotDeletion>;
    /// Accounts the snapshot is shared with (`all` when public), sorted.
    async fn snapshot_permissions(&self, snapshot_id: &str) -> StoreResult<Vec<String>>;
    /// Adds and removes grantees (account ids or `all`) in one
    /// transaction. `NotFound` when the snapshot is gone.
    async fn change_snapshot_permissions(
        &self,
        snapshot_id: &str,
        add: &[String],
        remove: &[String],
    ) -> StoreResult<()>;
    /// Removes every grantee.
    async fn reset_snapshot_permissions(&self, snapshot_id: &str) -> StoreResult<()>;
}
