//! ImportSnapshot and DescribeImportSnapshotTasks: a snapshot filled from
//! a disk image (raw or qcow2) of the object store, which the controller
//! copies itself; each import is a task of the snapshot it fills.

use mallee_store::{SnapshotRecord, TagPair};

use super::access::decode;
use super::{
    IMPORTED_VOLUME_ID, ImportSource, Snapshot, SnapshotDesired, SnapshotDetails, SnapshotStatus,
    gib_for, sniff_disk,
};
use crate::{Cloud, CloudError, Kind, Principal, ids, objects};

/// An ImportSnapshot request.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// Bucket of the disk image.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// The format the caller named (`RAW`, `QCOW2`).
    pub format: String,
    /// The snapshot's description.
    pub description: String,
    /// The task's description.
    pub task_description: Option<String>,
    /// Tags of the import task.
    pub tags: Vec<TagPair>,
}

/// Checks the caller may read the object, then records a pending
/// snapshot the controller fills from it.
pub async fn import(
    cloud: &Cloud,
    caller: &Principal,
    request: &Import,
) -> Result<Snapshot, CloudError> {
    let account = caller.account_id();
    let Some(object) = objects::readable(cloud, account, &request.bucket, &request.key).await?
    else {
        // Missing and unreadable objects answer alike.
        return Err(CloudError::InvalidParameter(format!(
            "The object s3://{}/{} does not exist or you may not read it.",
            request.bucket, request.key
        )));
    };
    let head = objects::read_header(cloud, &object).await?;
    let (_, virtual_size) = sniff_disk(&head, object.size);
    let now = ids::now_millis();
    let task_id = ids::resource_id("import-snap");
    let snapshot = Snapshot {
        record: SnapshotRecord {
            snapshot_id: ids::resource_id("snap"),
            account_id: account.to_owned(),
            volume_id: IMPORTED_VOLUME_ID.into(),
            volume_size_gib: gib_for(virtual_size),
            node_id: None,
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
        details: SnapshotDetails {
            description: request.description.clone(),
            import: Some(ImportSource {
                task_id,
                bucket: request.bucket.clone(),
                key: request.key.clone(),
                requested_format: request.format.clone(),
                object_size: object.size,
                task_description: request.task_description.clone(),
            }),
            ..SnapshotDetails::default()
        },
    };
    cloud
        .store
        .create_snapshot(&snapshot.encode(), &request.tags)
        .await?;
    cloud.compute.wake();
    tracing::info!(snapshot = %snapshot.id(), bucket = %request.bucket, key = %request.key, "snapshot import requested");
    Ok(snapshot)
}

/// The caller's imported snapshots whose task is one of `task_ids` (every
/// one when empty); a task id of none of them is refused.
pub async fn tasks(
    cloud: &Cloud,
    caller: &Principal,
    task_ids: &[String],
) -> Result<Vec<Snapshot>, CloudError> {
    let imports: Vec<Snapshot> = cloud
        .store
        .snapshots(Some(caller.account_id()))
        .await?
        .into_iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|s| {
            s.details
                .import
                .as_ref()
                .is_some_and(|i| task_ids.is_empty() || task_ids.contains(&i.task_id))
        })
        .collect();
    if let Some(missing) = task_ids.iter().find(|id| {
        !imports
            .iter()
            .any(|s| s.details.import.as_ref().is_some_and(|i| &i.task_id == *id))
    }) {
        return Err(CloudError::malformed(
            Kind::ImportTask,
            format!("The import task '{missing}' does not exist."),
        ));
    }
    Ok(imports)
}
