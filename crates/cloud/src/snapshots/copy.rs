//! CopySnapshot: a new snapshot of the caller's with the data of one it
//! may restore (its own, shared with it, or public), in this region. The
//! copy is `pending` until the controller has streamed the source's data
//! into blobs of its own (so deleting either snapshot never touches the
//! other's data); the snapshot reconciler starts that copy, again after a
//! restart, and the data is recorded with `completed` in one
//! compare-and-set, as for every snapshot.

use std::sync::Arc;

use mallee_node_api::DiskFormat;
use mallee_store::{SnapshotData, TagPair};
use serde::{Deserialize, Serialize};

use super::access::load_restorable;
use super::create::pending;
use super::{
    IMPORTED_VOLUME_ID, Snapshot, SnapshotDetails, SnapshotStatus, StoreDataError, call_key,
    fail_refused, store_data,
};
use crate::{Cloud, CloudError, Principal};

/// Where a copy's data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySource {
    /// The snapshot copied.
    pub snapshot_id: String,
}

/// A CopySnapshot request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// `SourceSnapshotId`.
    pub source_snapshot_id: String,
    /// `Description` (AWS's default names the source).
    pub description: Option<String>,
    /// Tags of the copy.
    pub tags: Vec<TagPair>,
}

/// Records a pending copy of `request.source_snapshot_id`, which must be
/// the caller's to restore and completed.
pub async fn copy(
    cloud: &Cloud,
    caller: &Principal,
    request: &Copy,
) -> Result<Snapshot, CloudError> {
    let source = load_restorable(cloud, caller, &request.source_snapshot_id).await?;
    if source.status != SnapshotStatus::Completed {
        return Err(CloudError::incorrect_state(
            crate::Kind::Snapshot,
            format!(
                "Snapshot {} is not in a valid state for copying: it is '{}'.",
                source.id(),
                source.status.name()
            ),
        ));
    }
    let description = request.description.clone().unwrap_or_else(|| {
        format!(
            "[Copied {} from {}]",
            source.id(),
            cloud.config.region.as_str()
        )
    });
    super::access::validate_description(&description)?;
    let details = SnapshotDetails {
        description,
        copy_of: Some(CopySource {
            snapshot_id: source.id().to_owned(),
        }),
        ..SnapshotDetails::default()
    };
    let snapshot = pending(
        caller.account_id(),
        IMPORTED_VOLUME_ID,
        source.record.volume_size_gib,
        None,
        details,
    );
    cloud
        .store
        .create_snapshot(&snapshot.encode(), &request.tags)
        .await?;
    cloud.compute.wake();
    tracing::info!(snapshot = %snapshot.id(), source = %source.id(), "snapshot copy requested");
    Ok(snapshot)
}

/// Starts copying the data of a pending copy (one task per snapshot).
pub(super) fn start_copy(cloud: &Arc<Cloud>, snapshot: &Snapshot) {
    let Some(source) = snapshot.details.copy_of.clone() else {
        return;
    };
    let snapshot_id = snapshot.id().to_owned();
    crate::node_calls::spawn_keyed(cloud, call_key(&snapshot_id), |cloud| async move {
        if let Err(e) = copy_data(&cloud, &snapshot_id, &source).await {
            match e {
                StoreDataError::Gone(_) => {}
                StoreDataError::Store(_) => {
                    tracing::warn!(snapshot = %snapshot_id, error = %e, "snapshot copy failed; will retry");
                }
                e => fail_refused(&cloud, &snapshot_id, e.to_string()).await,
            }
        }
    });
}

/// Streams the source's data into the copy's own blobs, checked against
/// the source's digest.
async fn copy_data(
    cloud: &Cloud,
    snapshot_id: &str,
    source: &CopySource,
) -> Result<SnapshotData, StoreDataError> {
    let data = cloud
        .store
        .snapshot(&source.snapshot_id)
        .await?
        .and_then(|r| r.data)
        .ok_or_else(|| {
            StoreDataError::BadData(format!(
                "the source snapshot {} was deleted before its data was copied",
                source.snapshot_id
            ))
        })?;
    let format = match data.format.as_str() {
        "qcow2" => DiskFormat::Qcow2,
        _ => DiskFormat::Raw,
    };
    let segments: Vec<(String, u64)> = data
        .segments
        .iter()
        .map(|s| (s.blob_id.clone(), s.size))
        .collect();
    let reader = cloud
        .blobs
        .open_object(&segments, None)
        .await
        .map_err(|e| {
            StoreDataError::BadData(format!(
                "the data of {} could not be read: {e}",
                source.snapshot_id
            ))
        })?;
    store_data(
        cloud,
        &cloud.blobs,
        snapshot_id,
        reader.into_stream(),
        Some(data.size),
        Some(&data.sha256),
        format,
    )
    .await
}
