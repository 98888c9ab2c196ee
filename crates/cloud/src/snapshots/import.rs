//! ImportSnapshot and DescribeImportSnapshotTasks: a snapshot filled from
//! a disk image (raw or qcow2) of the object store, which the controller
//! copies itself; each import is a task of the snapshot it fills.

use mallee_store::TagPair;

use super::access::decode;
use super::create::pending;
use super::{IMPORTED_VOLUME_ID, ImportSource, Snapshot, SnapshotDetails, gib_for, sniff_disk};
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
    let details = SnapshotDetails {
        description: request.description.clone(),
        import: Some(ImportSource {
            task_id: ids::resource_id("import-snap"),
            bucket: request.bucket.clone(),
            key: request.key.clone(),
            requested_format: request.format.clone(),
            object_size: object.size,
            task_description: request.task_description.clone(),
        }),
        ..SnapshotDetails::default()
    };
    let snapshot = pending(
        account,
        IMPORTED_VOLUME_ID,
        gib_for(virtual_size),
        None,
        details,
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::acl::Acl;
    use crate::objects::testing::put;
    use crate::snapshots::SnapshotStatus;
    use crate::testkit::TestCloud;

    fn request(key: &str) -> Import {
        Import {
            bucket: "b".into(),
            key: key.into(),
            format: "RAW".into(),
            description: "disk".into(),
            task_description: Some("task".into()),
            tags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn import_needs_a_readable_object_and_sizes_the_snapshot() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let mut qcow2 = b"QFI\xfb".to_vec();
        qcow2.resize(24, 0);
        qcow2.extend_from_slice(&(3u64 << 30).to_be_bytes());
        put(
            &cloud,
            owner.account_id(),
            "b",
            "disk.qcow2",
            &qcow2,
            &Acl::private(owner.account_id()),
        )
        .await;

        for (who, key) in [(&other, "disk.qcow2"), (&owner, "missing")] {
            let err = import(&cloud, who, &request(key)).await.expect_err(key);
            assert_eq!(
                err,
                CloudError::InvalidParameter(format!(
                    "The object s3://b/{key} does not exist or you may not read it."
                ))
            );
        }
        let snapshot = import(&cloud, &owner, &request("disk.qcow2"))
            .await
            .expect("import");
        assert_eq!(snapshot.status, SnapshotStatus::Pending);
        assert_eq!(snapshot.record.volume_size_gib, 3);
        assert_eq!(snapshot.record.volume_id, IMPORTED_VOLUME_ID);
        assert_eq!(snapshot.record.node_id, None);
        let source = snapshot.details.import.clone().expect("import source");
        assert_eq!(source.object_size, qcow2.len() as u64);

        let ids = |listed: Vec<Snapshot>| -> Vec<String> {
            listed.iter().map(|s| s.id().to_owned()).collect()
        };
        let listed = tasks(&cloud, &owner, &[]).await.expect("tasks");
        assert_eq!(ids(listed), vec![snapshot.id().to_owned()]);
        let named = tasks(&cloud, &owner, std::slice::from_ref(&source.task_id))
            .await
            .expect("named");
        assert_eq!(named[0].details, snapshot.details);
        assert!(tasks(&cloud, &other, &[]).await.expect("none").is_empty());
        let err = tasks(&cloud, &other, std::slice::from_ref(&source.task_id))
            .await
            .expect_err("another account's task");
        assert!(
            matches!(
                err,
                CloudError::Malformed {
                    kind: Kind::ImportTask,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
