//! CreateSnapshot and DeleteSnapshot. Each checks everything first, then
//! records the change and wakes the reconciler, which has the volume's
//! node capture the snapshot (or let go of it).

use mallee_store::{SnapshotDeletion, SnapshotRecord, TagPair};

use super::access::{contended, load_owned};
use super::{Snapshot, SnapshotDesired, SnapshotDetails, SnapshotStatus};
use crate::volumes::{Volume, VolumeStatus};
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// Compare-and-set attempts before giving up on a contended snapshot.
const ATTEMPTS: usize = 8;

/// A new pending snapshot of `volume`, captured by its node.
pub fn new_snapshot(account: &str, volume: &Volume, details: SnapshotDetails) -> Snapshot {
    let now = ids::now_millis();
    Snapshot {
        record: SnapshotRecord {
            snapshot_id: ids::resource_id("snap"),
            account_id: account.to_owned(),
            volume_id: volume.id().to_owned(),
            volume_size_gib: volume.record.size_gib,
            node_id: Some(volume.record.node_id.clone()),
            state: String::new(),
            desired: String::new(),
            progress: 0,
            data: None,
            generation: 1,
            revision: 0,
            details: String::new(),
            created_at: now,
            updated_at: now,
        },
        status: SnapshotStatus::Pending,
        desired: SnapshotDesired::Completed,
        details,
    }
}

/// Records a pending snapshot of the caller's volume `volume_id`; its node
/// captures the volume's content as of now.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    volume_id: &str,
    description: &str,
    tags: &[TagPair],
) -> Result<Snapshot, CloudError> {
    let account = caller.account_id();
    let volume = match cloud.store.volume(volume_id).await? {
        Some(record) if record.account_id == account => {
            Volume::decode(record).map_err(CloudError::internal)?
        }
        _ => {
            return Err(CloudError::not_found(
                Kind::Volume,
                format!("The volume '{volume_id}' does not exist."),
            ));
        }
    };
    if !matches!(volume.status, VolumeStatus::Available | VolumeStatus::InUse) {
        return Err(CloudError::incorrect_state(
            Kind::Volume,
            format!(
                "The volume '{volume_id}' is '{}' and cannot be snapshotted.",
                volume.status.name()
            ),
        ));
    }
    let snapshot = new_snapshot(
        account,
        &volume,
        SnapshotDetails {
            description: description.to_owned(),
            ..SnapshotDetails::default()
        },
    );
    cloud
        .store
        .create_snapshot(&snapshot.encode(), tags)
        .await?;
    cloud.compute.wake();
    tracing::info!(snapshot = %snapshot.id(), volume = %volume_id, account = %account, "snapshot requested");
    Ok(snapshot)
}

/// `InvalidSnapshot.InUse`: an image's block device mappings name it.
fn in_use(snapshot: &str, image: &str) -> CloudError {
    CloudError::in_use(
        Kind::Snapshot,
        format!("The snapshot {snapshot} is currently in use by {image}"),
    )
}

/// An image of the caller whose block device mappings name the snapshot,
/// if any.
async fn image_using(
    cloud: &Cloud,
    caller: &Principal,
    snapshot_id: &str,
) -> Result<Option<String>, CloudError> {
    Ok(cloud
        .store
        .images_visible_to(caller.account_id())
        .await?
        .into_iter()
        .find(|i| {
            i.block_device_mappings
                .iter()
                .any(|m| m.snapshot_id.as_deref() == Some(snapshot_id))
        })
        .map(|i| i.image_id))
}

/// Deletes the caller's snapshot unless an image uses it: a stored one at
/// once (with its data), a pending one once its node has let go.
pub async fn delete(cloud: &Cloud, caller: &Principal, id: &str) -> Result<(), CloudError> {
    for _ in 0..ATTEMPTS {
        let mut snapshot = load_owned(cloud, caller, id).await?;
        if snapshot.record.node_id.is_none() || snapshot.status != SnapshotStatus::Pending {
            // Nothing runs on a node for it (or the node's leftovers are
            // swept as orphans): remove it now.
            match cloud.store.delete_snapshot(&snapshot.record).await? {
                SnapshotDeletion::Deleted(data) => {
                    super::release(cloud, data).await;
                    cloud.compute.wake();
                    tracing::info!(snapshot = %id, "snapshot deleted");
                    return Ok(());
                }
                SnapshotDeletion::InUseByImage(image) => return Err(in_use(id, &image)),
                SnapshotDeletion::Changed => continue,
            }
        }
        if let Some(image) = image_using(cloud, caller, id).await? {
            return Err(in_use(id, &image));
        }
        snapshot.desired = SnapshotDesired::Deleted;
        snapshot.record.updated_at = ids::now_millis();
        if cloud.store.update_snapshot(&snapshot.encode()).await? {
            cloud.compute.wake();
            tracing::info!(snapshot = %id, "deletion of a pending snapshot requested");
            return Ok(());
        }
    }
    Err(contended(id))
}
