//! Snapshots on the controller: what a snapshot is (its EC2 state, where it
//! is driven, its details), the snapshot reconciler, and storing the data
//! nodes upload.
//!
//! A snapshot of a volume is captured by the volume's node (a point in time
//! of the running guest's disk, or of the file when nothing has it open),
//! converted to a compact qcow2 and uploaded to the controller, which
//! streams it into the blob store and records the data and `completed` in
//! one compare-and-set: a snapshot is never completed without its whole
//! data, and a controller or node killed mid-way leaves it pending (the
//! node resumes its upload) or in `error` (a capture the node lost), never
//! half-stored. Imported snapshots (ImportSnapshot) are copied from an
//! object of the object store by the controller itself, copies
//! (CopySnapshot, `copy`) from their source snapshot's data.

pub mod access;
pub mod attributes;
pub mod copy;
pub mod create;
pub mod import;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mallee_blobs::{BlobStore, WriteLimits};
use mallee_node_api::{
    DiskFormat, NodeError, NodeReport, ObservedSnapshot, SnapshotSpec, SnapshotState,
};
use mallee_store::{Node, Segment, SnapshotData, SnapshotDeletion, SnapshotRecord, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Cloud;
use crate::ids::now_millis;

/// How long a node gets for a snapshot call (starting or forgetting one
/// returns at once; the work runs in the background on the node).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// One GiB.
const GIB: u64 = 1 << 30;
/// The volume id AWS shows for snapshots that do not come from a volume.
pub const IMPORTED_VOLUME_ID: &str = "vol-ffffffff";

/// EC2 snapshot states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SnapshotStatus {
    /// Being captured, uploaded or imported.
    Pending,
    /// Its data is whole in the object store.
    Completed,
    /// The capture or import failed; the details say why.
    Error,
}

impl SnapshotStatus {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Pending, Self::Completed, Self::Error];

    /// EC2's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Error => "error",
        }
    }

    /// Parses EC2's name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where the controller drives a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotDesired {
    /// Captured and stored.
    Completed,
    /// Forgotten by its node, then removed with its data.
    Deleted,
}

impl SnapshotDesired {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Deleted => "deleted",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Completed, Self::Deleted]
            .into_iter()
            .find(|d| d.name() == name)
    }
}

/// Where an imported snapshot's data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSource {
    /// `import-snap-…`.
    pub task_id: String,
    /// Bucket of the disk image.
    pub bucket: String,
    /// Key of the disk image.
    pub key: String,
    /// The format the user named (`RAW`, `VHD`, `VMDK`, `QCOW2`), as
    /// DescribeImportSnapshotTasks shows it.
    pub requested_format: String,
    /// Size of the object when the import was asked for.
    pub object_size: u64,
    /// The import task's description.
    pub task_description: Option<String>,
}

/// Details the store keeps as one JSON document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDetails {
    /// The user's description.
    #[serde(default)]
    pub description: String,
    /// Why the snapshot is in `error`.
    #[serde(default)]
    pub error: Option<String>,
    /// Set for snapshots made by ImportSnapshot.
    #[serde(default)]
    pub import: Option<ImportSource>,
    /// Set for snapshots CreateImage made (`Created by CreateImage(i-…)`).
    #[serde(default)]
    pub created_for_image: Option<String>,
    /// Set for snapshots CopySnapshot made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<copy::CopySource>,
}

/// A snapshot record with its states and details decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stored row (kept for compare-and-set updates).
    pub record: SnapshotRecord,
    /// Decoded state.
    pub status: SnapshotStatus,
    /// Decoded desired state.
    pub desired: SnapshotDesired,
    /// Decoded details.
    pub details: SnapshotDetails,
}

/// A stored snapshot that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("snapshot {snapshot_id} has a corrupt record: {message}")]
pub struct CorruptSnapshot {
    /// The snapshot.
    pub snapshot_id: String,
    /// What is wrong.
    pub message: String,
}

impl Snapshot {
    /// Decodes a stored record.
    pub fn decode(record: SnapshotRecord) -> Result<Self, CorruptSnapshot> {
        let corrupt = |message: String| CorruptSnapshot {
            snapshot_id: record.snapshot_id.clone(),
            message,
        };
        let status = SnapshotStatus::from_name(&record.state)
            .ok_or_else(|| corrupt(format!("state {:?}", record.state)))?;
        let desired = SnapshotDesired::from_name(&record.desired)
            .ok_or_else(|| corrupt(format!("desired state {:?}", record.desired)))?;
        let details: SnapshotDetails =
            serde_json::from_str(&record.details).map_err(|e| corrupt(e.to_string()))?;
        if status == SnapshotStatus::Completed && record.data.is_none() {
            return Err(corrupt("completed without data".into()));
        }
        Ok(Self {
            record,
            status,
            desired,
            details,
        })
    }

    /// The record to store for this snapshot's current fields.
    pub fn encode(&self) -> SnapshotRecord {
        let mut record = self.record.clone();
        record.state = self.status.name().to_owned();
        record.desired = self.desired.name().to_owned();
        record.details =
            serde_json::to_string(&self.details).expect("snapshot details always serialize");
        record
    }

    /// `snap-…`.
    pub fn id(&self) -> &str {
        &self.record.snapshot_id
    }

    fn generation(&self) -> u64 {
        u64::try_from(self.record.generation).unwrap_or(0)
    }

    /// What a node is sent to create a volume from this snapshot, once its
    /// data is stored.
    pub fn source(&self) -> Option<crate::volumes::model::VolumeSource> {
        let data = self.record.data.as_ref()?;
        Some(crate::volumes::model::VolumeSource {
            snapshot_id: self.id().to_owned(),
            size: data.size,
            sha256: data.sha256.clone(),
            format: crate::volumes::model::DataFormat::parse(&data.format)?,
        })
    }
}

/// What a recorded change does to a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The node got further.
    Progress(i64),
    /// The capture or upload failed.
    Failed(String),
}

/// One step toward a snapshot's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Where it should be, or waiting on its node.
    Nothing,
    /// Ask its node to capture and upload it.
    Start,
    /// Copy an import's object into the snapshot's data.
    Import,
    /// Copy the source snapshot's data (CopySnapshot).
    Copy,
    /// Ask its node to forget it (abort, remove local files).
    NodeForget,
    /// Record a change.
    Record(Change),
    /// Remove the record and release its data.
    Forget,
}

/// The next step for `snapshot` given what its node reports (`None`: the
/// node does not hold it, or it is an import).
pub fn decide(snapshot: &Snapshot, observed: Option<&ObservedSnapshot>) -> Step {
    if snapshot.desired == SnapshotDesired::Deleted {
        return match observed {
            Some(_) => Step::NodeForget,
            None => Step::Forget,
        };
    }
    match snapshot.status {
        // Stored (or given up): the node's local copy is no longer needed.
        SnapshotStatus::Completed | SnapshotStatus::Error => match observed {
            Some(_) => Step::NodeForget,
            None => Step::Nothing,
        },
        SnapshotStatus::Pending => {
            if snapshot.details.import.is_some() {
                return Step::Import;
            }
            if snapshot.details.copy_of.is_some() {
                return Step::Copy;
            }
            let Some(o) = observed else {
                return Step::Start;
            };
            match &o.state {
                SnapshotState::Pending { progress } => {
                    // Uploads that finished are recorded by the upload route.
                    let progress = i64::from((*progress).min(99));
                    if progress > snapshot.record.progress {
                        Step::Record(Change::Progress(progress))
                    } else {
                        Step::Nothing
                    }
                }
                SnapshotState::Failed(reason) => Step::Record(Change::Failed(reason.clone())),
                // The upload route records the data and `completed` in the
                // same change the node waits for before saying uploaded: a
                // pending row here means that change was lost.
                SnapshotState::Uploaded { .. } => Step::Record(Change::Failed(
                    "the node uploaded data the controller has no record of".into(),
                )),
            }
        }
    }
}

/// One pass over every snapshot, from the snapshots each node reported
/// this pass. `true` when some snapshot is still pending.
pub async fn pass(
    cloud: &Arc<Cloud>,
    nodes: &[Node],
    node_reports: &HashMap<String, Option<NodeReport>>,
) -> Result<bool, StoreError> {
    let records = cloud.store.snapshots(None).await?;
    let mut known = HashSet::new();
    let mut busy = false;
    for record in records {
        known.insert(record.snapshot_id.clone());
        let snapshot = match Snapshot::decode(record) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::error!(error = %e, "skipping a snapshot record");
                continue;
            }
        };
        busy |= snapshot.status == SnapshotStatus::Pending
            || snapshot.desired == SnapshotDesired::Deleted;
        let (node, observed) = match snapshot.record.node_id.as_deref() {
            None => (None, None),
            Some(node_id) => {
                let Some(Some(report)) = node_reports.get(node_id) else {
                    // Its node did not answer this pass.
                    continue;
                };
                let observed = report
                    .snapshots
                    .iter()
                    .find(|o| o.snapshot_id == snapshot.id());
                (nodes.iter().find(|n| n.node_id == node_id), observed)
            }
        };
        let step = decide(&snapshot, observed);
        apply(cloud, node, snapshot, step).await?;
    }
    busy |= settle_pending_images(cloud).await?;
    // Snapshots a node holds that the controller no longer knows (deleted
    // while the node was unreachable).
    for node in nodes {
        let Some(Some(report)) = node_reports.get(&node.node_id) else {
            continue;
        };
        for orphan in report
            .snapshots
            .iter()
            .filter(|o| !known.contains(&o.snapshot_id))
        {
            node_forget(cloud, node, orphan.snapshot_id.clone());
        }
    }
    Ok(busy)
}

/// Images CreateImage registered `pending`: `available` once every
/// snapshot they map has completed, `failed` when one failed or is gone.
/// `true` while some image still waits.
async fn settle_pending_images(cloud: &Cloud) -> Result<bool, StoreError> {
    let mut waiting = false;
    for image in cloud.store.images_in_state("pending").await? {
        // Bundled images are settled by their unbundling.
        if image.bundle_manifest.is_some() {
            continue;
        }
        let mut outcome = Some("available");
        for snapshot_id in image
            .block_device_mappings
            .iter()
            .filter_map(|m| m.snapshot_id.as_deref())
        {
            let status = cloud
                .store
                .snapshot(snapshot_id)
                .await?
                .and_then(|r| Snapshot::decode(r).ok())
                .filter(|s| s.desired != SnapshotDesired::Deleted)
                .map(|s| s.status);
            match status {
                Some(SnapshotStatus::Completed) => {}
                Some(SnapshotStatus::Pending) => outcome = outcome.and(None),
                Some(SnapshotStatus::Error) | None => {
                    outcome = Some("failed");
                    break;
                }
            }
        }
        match outcome {
            Some(state) => {
                if cloud
                    .store
                    .set_image_state(&image.image_id, "pending", state)
                    .await?
                {
                    tracing::info!(image = %image.image_id, state, "image settled");
                }
            }
            None => waiting = true,
        }
    }
    Ok(waiting)
}

async fn apply(
    cloud: &Arc<Cloud>,
    node: Option<&Node>,
    mut snapshot: Snapshot,
    step: Step,
) -> Result<(), StoreError> {
    match step {
        Step::Nothing => {}
        Step::Start => {
            if let Some(node) = node {
                node_start(cloud, node, snapshot.record.volume_id.clone(), &snapshot);
            }
        }
        Step::NodeForget => {
            if let Some(node) = node {
                node_forget(cloud, node, snapshot.id().to_owned());
            }
        }
        Step::Import => start_import(cloud, &snapshot),
        Step::Copy => copy::start_copy(cloud, &snapshot),
        Step::Record(change) => {
            match change {
                Change::Progress(progress) => snapshot.record.progress = progress,
                Change::Failed(message) => {
                    tracing::warn!(snapshot = %snapshot.id(), reason = %message, "snapshot failed");
                    snapshot.status = SnapshotStatus::Error;
                    snapshot.details.error = Some(message);
                }
            }
            snapshot.record.updated_at = now_millis();
            cloud.store.update_snapshot(&snapshot.encode()).await?;
        }
        Step::Forget => {
            match cloud.store.delete_snapshot(&snapshot.record).await? {
                SnapshotDeletion::Deleted(data) => {
                    tracing::info!(snapshot = %snapshot.id(), "snapshot deleted");
                    release(cloud, data).await;
                }
                SnapshotDeletion::InUseByImage(image) => {
                    // DeleteSnapshot refuses this; an image registered
                    // after the request keeps the snapshot.
                    tracing::warn!(snapshot = %snapshot.id(), image = %image, "snapshot kept: an image uses it");
                    snapshot.desired = SnapshotDesired::Completed;
                    snapshot.record.updated_at = now_millis();
                    cloud.store.update_snapshot(&snapshot.encode()).await?;
                }
                SnapshotDeletion::Changed => {}
            }
        }
    }
    Ok(())
}

/// Deletes the blobs of removed snapshot data (the start-up sweep removes
/// any this misses).
pub async fn release(cloud: &Cloud, data: Option<SnapshotData>) {
    let Some(data) = data else { return };
    let ids: Vec<String> = data.segments.into_iter().map(|s| s.blob_id).collect();
    if let Err(e) = cloud.blobs.delete(&ids).await {
        tracing::warn!(error = %e, "could not delete snapshot data; the start-up sweep will");
    }
}

pub(super) fn call_key(snapshot_id: &str) -> String {
    format!("snapshot:{snapshot_id}")
}

fn node_start(cloud: &Arc<Cloud>, node: &Node, volume_id: String, snapshot: &Snapshot) {
    let spec = SnapshotSpec {
        snapshot_id: snapshot.id().to_owned(),
        volume_id,
        generation: snapshot.generation(),
    };
    let snapshot_id = spec.snapshot_id.clone();
    let node_id = node.node_id.clone();
    crate::node_calls::spawn(
        cloud,
        node,
        call_key(&snapshot_id),
        CALL_TIMEOUT,
        |client| async move { client.put_snapshot(spec).await },
        move |cloud, answer| async move {
            match answer {
                Ok(_) => {}
                Err(
                    e
                    @ (NodeError::BadRequest(_) | NodeError::Conflict(_) | NodeError::NotFound(_)),
                ) => {
                    fail_refused(&cloud, &snapshot_id, e.to_string()).await;
                }
                Err(e) => {
                    tracing::warn!(snapshot = %snapshot_id, node = %node_id, error = %e, "node snapshot call failed; will retry");
                }
            }
        },
    );
}

pub(super) async fn fail_refused(cloud: &Cloud, snapshot_id: &str, message: String) {
    tracing::warn!(snapshot = %snapshot_id, error = %message, "node refused a snapshot");
    let Ok(Some(record)) = cloud.store.snapshot(snapshot_id).await else {
        return;
    };
    let Ok(mut snapshot) = Snapshot::decode(record) else {
        return;
    };
    if snapshot.status != SnapshotStatus::Pending {
        return;
    }
    snapshot.status = SnapshotStatus::Error;
    snapshot.details.error = Some(message);
    snapshot.record.updated_at = now_millis();
    if let Err(e) = cloud.store.update_snapshot(&snapshot.encode()).await {
        tracing::warn!(snapshot = %snapshot_id, error = %e, "could not record a refused snapshot");
    }
}

fn node_forget(cloud: &Arc<Cloud>, node: &Node, snapshot_id: String) {
    let id = snapshot_id.clone();
    crate::node_calls::spawn(
        cloud,
        node,
        call_key(&snapshot_id),
        CALL_TIMEOUT,
        |client| async move { client.delete_snapshot(&id).await },
        move |_, answer| async move {
            if let Err(e) = answer {
                tracing::warn!(snapshot = %snapshot_id, error = %e, "node could not forget a snapshot; will retry");
            }
        },
    );
}

// --- storing data ------------------------------------------------------------

/// Why snapshot data was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreDataError {
    /// The snapshot is gone (or being deleted).
    #[error("snapshot {0} does not exist")]
    Gone(String),
    /// It already holds other data.
    #[error("snapshot {0} already holds data with another digest")]
    Different(String),
    /// The data is not what was announced.
    #[error("{0}")]
    BadData(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed (or the body stream broke).
    #[error("could not store the data: {0}")]
    Blob(#[from] mallee_blobs::BlobError),
}

/// Largest data accepted for a snapshot of a `volume_size_gib` volume:
/// its raw size plus qcow2 metadata.
fn max_data(volume_size_gib: i64) -> u64 {
    u64::try_from(volume_size_gib)
        .unwrap_or(0)
        .saturating_mul(GIB)
        .saturating_add(256 << 20)
}

/// Streams `body` into the blob store, checks its SHA-256 against
/// `expected_sha256` (when given), and records it as `snapshot_id`'s data
/// with `completed`, in one compare-and-set. Repeating an upload that was
/// already stored with the same digest is a success (the node's earlier
/// attempt committed but its answer was lost).
pub async fn store_data<S, E>(
    cloud: &Cloud,
    blobs: &BlobStore,
    snapshot_id: &str,
    body: S,
    expected_size: Option<u64>,
    expected_sha256: Option<&str>,
    format: DiskFormat,
) -> Result<SnapshotData, StoreDataError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let snapshot = load(cloud, snapshot_id).await?;
    if let Some(data) = &snapshot.record.data {
        return same_data(snapshot_id, data, expected_sha256);
    }
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let hashing = hasher.clone();
    let body = body.map(move |chunk| {
        if let Ok(bytes) = &chunk {
            hashing.lock().expect("hasher lock").update(bytes);
        }
        chunk
    });
    let limits = WriteLimits {
        max_size: max_data(snapshot.record.volume_size_gib),
        expected_size,
        expected_md5: None,
    };
    let written = blobs.write(body, limits).await?;
    let sha256 = hex::encode(std::mem::take(&mut *hasher.lock().expect("hasher lock")).finalize());
    let data = SnapshotData {
        segments: vec![Segment {
            blob_id: written.blob_id.clone(),
            size: written.size,
        }],
        size: written.size,
        sha256,
        format: format.as_str().to_owned(),
    };
    let discard = || async {
        if let Err(e) = blobs.delete(std::slice::from_ref(&written.blob_id)).await {
            tracing::warn!(error = %e, "could not delete refused snapshot data; the start-up sweep will");
        }
    };
    if let Some(expected) = expected_sha256
        && !expected.eq_ignore_ascii_case(&data.sha256)
    {
        discard().await;
        return Err(StoreDataError::BadData(format!(
            "the data's SHA-256 is {}, not {expected}",
            data.sha256
        )));
    }
    for _ in 0..16 {
        let mut snapshot = match load(cloud, snapshot_id).await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                discard().await;
                return Err(e);
            }
        };
        if let Some(stored) = &snapshot.record.data {
            discard().await;
            return same_data(snapshot_id, stored, Some(&data.sha256));
        }
        snapshot.status = SnapshotStatus::Completed;
        snapshot.record.progress = 100;
        snapshot.record.data = Some(data.clone());
        snapshot.details.error = None;
        snapshot.record.updated_at = now_millis();
        match cloud.store.update_snapshot(&snapshot.encode()).await {
            Ok(true) => {
                tracing::info!(snapshot = %snapshot_id, size = data.size, sha256 = %data.sha256, "snapshot completed");
                cloud.compute.wake();
                return Ok(data);
            }
            Ok(false) => continue,
            Err(e) => {
                discard().await;
                return Err(e.into());
            }
        }
    }
    discard().await;
    Err(StoreDataError::Store(StoreError::Conflict(format!(
        "snapshot {snapshot_id} kept changing"
    ))))
}

async fn load(cloud: &Cloud, snapshot_id: &str) -> Result<Snapshot, StoreDataError> {
    let record = cloud
        .store
        .snapshot(snapshot_id)
        .await?
        .ok_or_else(|| StoreDataError::Gone(snapshot_id.to_owned()))?;
    let snapshot = Snapshot::decode(record)
        .map_err(|e| StoreDataError::Store(StoreError::Corrupt(e.to_string())))?;
    if snapshot.desired == SnapshotDesired::Deleted {
        return Err(StoreDataError::Gone(snapshot_id.to_owned()));
    }
    if snapshot.status == SnapshotStatus::Error {
        return Err(StoreDataError::BadData(format!(
            "snapshot {snapshot_id} has failed: {}",
            snapshot
                .details
                .error
                .as_deref()
                .unwrap_or("unknown reason")
        )));
    }
    Ok(snapshot)
}

fn same_data(
    snapshot_id: &str,
    stored: &SnapshotData,
    sha256: Option<&str>,
) -> Result<SnapshotData, StoreDataError> {
    match sha256 {
        Some(sha) if !sha.eq_ignore_ascii_case(&stored.sha256) => {
            Err(StoreDataError::Different(snapshot_id.to_owned()))
        }
        _ => Ok(stored.clone()),
    }
}

// --- imports ----------------------------------------------------------------

/// The format of disk image bytes that start with `head`, and the disk's
/// virtual size in bytes (`object_size` for raw data).
pub fn sniff_disk(head: &[u8], object_size: u64) -> (DiskFormat, u64) {
    if head.len() >= 32 && head.starts_with(b"QFI\xfb") {
        let mut size = [0u8; 8];
        size.copy_from_slice(&head[24..32]);
        (DiskFormat::Qcow2, u64::from_be_bytes(size))
    } else {
        (DiskFormat::Raw, object_size)
    }
}

/// GiB needed to hold `bytes` (at least 1).
pub fn gib_for(bytes: u64) -> i64 {
    i64::try_from(bytes.div_ceil(GIB).max(1)).unwrap_or(i64::MAX)
}

fn start_import(cloud: &Arc<Cloud>, snapshot: &Snapshot) {
    let Some(import) = snapshot.details.import.clone() else {
        return;
    };
    let snapshot_id = snapshot.id().to_owned();
    crate::node_calls::spawn_keyed(cloud, call_key(&snapshot_id), |cloud| async move {
        if let Err(e) = import_object(&cloud, &snapshot_id, &import).await {
            match e {
                StoreDataError::Gone(_) => {}
                StoreDataError::Store(_) => {
                    tracing::warn!(snapshot = %snapshot_id, error = %e, "snapshot import failed; will retry");
                }
                e => fail_refused(&cloud, &snapshot_id, e.to_string()).await,
            }
        }
    });
}

/// Copies an import's object into the snapshot's data (streamed; the
/// format is sniffed from the first bytes).
async fn import_object(
    cloud: &Cloud,
    snapshot_id: &str,
    import: &ImportSource,
) -> Result<SnapshotData, StoreDataError> {
    let object = cloud
        .store
        .object(&import.bucket, &import.key)
        .await?
        .ok_or_else(|| {
            StoreDataError::BadData(format!(
                "the object s3://{}/{} no longer exists",
                import.bucket, import.key
            ))
        })?;
    let segments: Vec<(String, u64)> = object
        .segments
        .iter()
        .map(|s| (s.blob_id.clone(), s.size))
        .collect();
    let head = cloud
        .blobs
        .open_object(&segments, Some(0..object.size.min(512)))
        .await?;
    let mut head_bytes = Vec::new();
    let mut stream = Box::pin(head.into_stream());
    while let Some(chunk) = stream.next().await {
        head_bytes.extend_from_slice(&chunk.map_err(mallee_blobs::BlobError::Io)?);
    }
    let (format, _) = sniff_disk(&head_bytes, object.size);
    let reader = cloud.blobs.open_object(&segments, None).await?;
    store_data(
        cloud,
        &cloud.blobs,
        snapshot_id,
        reader.into_stream(),
        Some(object.size),
        None,
        format,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(status: SnapshotStatus, desired: SnapshotDesired) -> Snapshot {
        Snapshot {
            record: SnapshotRecord {
                snapshot_id: "snap-0123456789abcdef0".into(),
                account_id: "111111111111".into(),
                volume_id: "vol-0123456789abcdef0".into(),
                volume_size_gib: 1,
                node_id: Some("node-1".into()),
                state: String::new(),
                desired: String::new(),
                progress: 10,
                data: (status == SnapshotStatus::Completed).then(|| SnapshotData {
                    segments: Vec::new(),
                    size: 0,
                    sha256: String::new(),
                    format: "qcow2".into(),
                }),
                generation: 1,
                revision: 0,
                details: String::new(),
                created_at: 0,
                updated_at: 0,
            },
            status,
            desired,
            details: SnapshotDetails::default(),
        }
    }

    fn observed(state: SnapshotState) -> ObservedSnapshot {
        ObservedSnapshot {
            snapshot_id: "snap-0123456789abcdef0".into(),
            volume_id: "vol-0123456789abcdef0".into(),
            state,
            generation: 1,
        }
    }

    #[test]
    fn decide_table() {
        use SnapshotDesired as D;
        use SnapshotStatus as S;
        let pending = |p| observed(SnapshotState::Pending { progress: p });
        let cases: Vec<(Snapshot, Option<ObservedSnapshot>, Step)> = vec![
            (snapshot(S::Pending, D::Completed), None, Step::Start),
            (
                snapshot(S::Pending, D::Completed),
                Some(pending(40)),
                Step::Record(Change::Progress(40)),
            ),
            // Progress never goes backwards, and never shows 100 before
            // the data is stored.
            (
                snapshot(S::Pending, D::Completed),
                Some(pending(5)),
                Step::Nothing,
            ),
            (
                snapshot(S::Pending, D::Completed),
                Some(pending(100)),
                Step::Record(Change::Progress(99)),
            ),
            (
                snapshot(S::Pending, D::Completed),
                Some(observed(SnapshotState::Failed("boom".into()))),
                Step::Record(Change::Failed("boom".into())),
            ),
            (
                snapshot(S::Pending, D::Completed),
                Some(observed(SnapshotState::Uploaded {
                    size: 1,
                    sha256: "aa".into(),
                })),
                Step::Record(Change::Failed(
                    "the node uploaded data the controller has no record of".into(),
                )),
            ),
            (
                snapshot(S::Completed, D::Completed),
                Some(observed(SnapshotState::Uploaded {
                    size: 1,
                    sha256: "aa".into(),
                })),
                Step::NodeForget,
            ),
            (snapshot(S::Completed, D::Completed), None, Step::Nothing),
            (
                snapshot(S::Error, D::Completed),
                Some(pending(3)),
                Step::NodeForget,
            ),
            (
                snapshot(S::Pending, D::Deleted),
                Some(pending(3)),
                Step::NodeForget,
            ),
            (snapshot(S::Pending, D::Deleted), None, Step::Forget),
            (snapshot(S::Completed, D::Deleted), None, Step::Forget),
        ];
        for (snapshot, observed, expected) in cases {
            assert_eq!(
                decide(&snapshot, observed.as_ref()),
                expected,
                "{:?}/{:?} with {observed:?}",
                snapshot.status,
                snapshot.desired
            );
        }
        let mut import = snapshot(S::Pending, D::Completed);
        import.record.node_id = None;
        import.details.import = Some(ImportSource {
            task_id: "import-snap-0123456789abcdef0".into(),
            bucket: "b".into(),
            key: "k".into(),
            requested_format: "RAW".into(),
            object_size: 1,
            task_description: None,
        });
        assert_eq!(decide(&import, None), Step::Import);
    }

    #[test]
    fn sniffs_qcow2_and_raw() {
        let mut qcow2 = b"QFI\xfb".to_vec();
        qcow2.resize(24, 0);
        qcow2.extend_from_slice(&(3u64 << 30).to_be_bytes());
        assert_eq!(sniff_disk(&qcow2, 1000), (DiskFormat::Qcow2, 3 << 30));
        assert_eq!(sniff_disk(b"\xeb\x63\x90", 5000), (DiskFormat::Raw, 5000));
        assert_eq!(gib_for(1), 1);
        assert_eq!(gib_for(1 << 30), 1);
        assert_eq!(gib_for((1 << 30) + 1), 2);
    }
}
