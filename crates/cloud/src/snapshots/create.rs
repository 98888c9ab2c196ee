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
    pending(
        account,
        volume.id(),
        volume.record.size_gib,
        Some(volume.record.node_id.clone()),
        details,
    )
}

/// A new pending snapshot of `account` of the volume `volume_id`, driven
/// on `node_id` (none: the controller fills it itself).
pub(super) fn pending(
    account: &str,
    volume_id: &str,
    volume_size_gib: i64,
    node_id: Option<String>,
    details: SnapshotDetails,
) -> Snapshot {
    let now = ids::now_millis();
    Snapshot {
        record: SnapshotRecord {
            snapshot_id: ids::resource_id("snap"),
            account_id: account.to_owned(),
            volume_id: volume_id.to_owned(),
            volume_size_gib,
            node_id,
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

/// Volumes and snapshots for tests of the code that uses them.
#[cfg(test)]
pub(crate) mod testing {
    use mallee_store::{SnapshotData, VolumeRecord};

    use super::super::{Snapshot, SnapshotDetails, SnapshotStatus};
    use crate::Cloud;
    use crate::volumes::{AttachState, Volume, VolumeDesired, VolumeDetails, VolumeStatus};

    /// Stores volume `id` of `account` on `node-1`, of `size_gib`, in
    /// `status`, attached to `attached` (instance, device) when given.
    pub async fn volume(
        cloud: &Cloud,
        account: &str,
        id: &str,
        size_gib: i64,
        status: VolumeStatus,
        attached: Option<(&str, &str)>,
        boot: bool,
    ) -> Volume {
        let volume = Volume {
            record: VolumeRecord {
                volume_id: id.into(),
                account_id: account.into(),
                zone: crate::testkit::ZONE.into(),
                node_id: "node-1".into(),
                size_gib,
                state: String::new(),
                desired: String::new(),
                instance_id: attached.map(|(i, _)| i.to_owned()),
                device: attached.map(|(_, d)| d.to_owned()),
                attach_state: None,
                attach_time: attached.map(|_| 1),
                generation: 1,
                revision: 0,
                details: String::new(),
                created_at: 1,
                updated_at: 1,
            },
            status,
            desired: VolumeDesired::Available,
            attach: attached.map(|_| AttachState::Attached),
            details: VolumeDetails {
                volume_type: "gp2".into(),
                iops: None,
                throughput: None,
                client_token: None,
                auto_enable_io: false,
                delete_on_termination: false,
                guest_device: None,
                force_detach: false,
                error: None,
                source: None,
                boot,
                modification: None,
            },
        };
        cloud
            .store
            .create_volume(&volume.encode(), &[])
            .await
            .expect("volume");
        volume
    }

    /// Stores a snapshot of `account` of `size_gib`: completed (with empty
    /// data, no node) or pending on `node-1`.
    pub async fn snapshot(
        cloud: &Cloud,
        account: &str,
        size_gib: i64,
        completed: bool,
    ) -> Snapshot {
        let mut snapshot = super::pending(
            account,
            "vol-ffffffff",
            size_gib,
            (!completed).then(|| "node-1".to_owned()),
            SnapshotDetails::default(),
        );
        if completed {
            snapshot.status = SnapshotStatus::Completed;
            snapshot.record.progress = 100;
            snapshot.record.data = Some(SnapshotData {
                segments: Vec::new(),
                size: 0,
                sha256: String::new(),
                format: "qcow2".into(),
            });
        }
        cloud
            .store
            .create_snapshot(&snapshot.encode(), &[])
            .await
            .expect("snapshot");
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    const VOL: &str = "vol-0123456789abcdef0";

    #[tokio::test]
    async fn create_checks_the_volume_and_records_a_pending_snapshot() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        testing::volume(
            &cloud,
            owner.account_id(),
            VOL,
            3,
            VolumeStatus::Available,
            None,
            false,
        )
        .await;
        let creating = "vol-0123456789abcdef1";
        testing::volume(
            &cloud,
            owner.account_id(),
            creating,
            1,
            VolumeStatus::Creating,
            None,
            false,
        )
        .await;

        let err = create(&cloud, &other, VOL, "", &[])
            .await
            .expect_err("another account's volume");
        assert!(
            matches!(&err, CloudError::NotFound { kind: Kind::Volume, message } if message == &format!("The volume '{VOL}' does not exist.")),
            "{err:?}"
        );
        let err = create(&cloud, &owner, creating, "", &[])
            .await
            .expect_err("creating");
        assert!(
            matches!(
                err,
                CloudError::IncorrectState {
                    kind: Kind::Volume,
                    ..
                }
            ),
            "{err:?}"
        );

        let snapshot = create(&cloud, &owner, VOL, "nightly", &[])
            .await
            .expect("snapshot");
        assert_eq!(snapshot.status, SnapshotStatus::Pending);
        assert_eq!(snapshot.record.volume_size_gib, 3);
        assert_eq!(snapshot.record.node_id.as_deref(), Some("node-1"));
        let stored = load_owned(&cloud, &owner, snapshot.id())
            .await
            .expect("stored");
        assert_eq!(stored.details.description, "nightly");
    }

    #[tokio::test]
    async fn delete_removes_stored_snapshots_and_marks_pending_ones() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let completed = testing::snapshot(&cloud, owner.account_id(), 1, true).await;
        let pending = testing::snapshot(&cloud, owner.account_id(), 1, false).await;

        assert_eq!(
            delete(&cloud, &other, completed.id()).await,
            Err(super::super::access::not_found(completed.id()))
        );
        delete(&cloud, &owner, completed.id())
            .await
            .expect("delete");
        assert_eq!(
            cloud.store.snapshot(completed.id()).await.expect("read"),
            None
        );

        delete(&cloud, &owner, pending.id())
            .await
            .expect("delete pending");
        let record = cloud
            .store
            .snapshot(pending.id())
            .await
            .expect("read")
            .expect("kept until its node lets go");
        assert_eq!(
            Snapshot::decode(record).expect("decodes").desired,
            SnapshotDesired::Deleted
        );
        assert!(load_owned(&cloud, &owner, pending.id()).await.is_err());
    }
}
