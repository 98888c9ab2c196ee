//! Snapshots of this node's volumes, and volumes created from snapshots.
//!
//! A snapshot is captured at a crash-consistent point in time, exported as
//! a compact qcow2 file, uploaded to the controller's blob store (see
//! [`crate::snapshot_data`]) and forgotten locally once the controller has
//! it:
//!
//! - a volume used by a running VM is captured through QEMU: a
//!   `blockdev-backup` job (`sync: full`) into an empty qcow2 target. The
//!   point in time is the job's start; the guest keeps writing meanwhile
//!   (QEMU copies a region before the guest overwrites it);
//! - any other volume is read directly (`qemu-img convert`) while the
//!   volume's data lock keeps VMs from opening it.
//!
//! A remote volume (its data on a storage host) is refused: the storage
//! host captures it, with the same `blockdev-backup` through its
//! qemu-storage-daemon's QMP.
//!
//! Each snapshot has a durable record, `DATA/snapshots/<snap-id>.json`,
//! written before anything starts: `exporting` (capturing), `exported`
//! (the export file is complete, with its size and SHA-256), `uploaded` or
//! `failed`. An agent that restarts finds `exporting` records whose point in
//! time is lost (they fail, never reported whole), and `exported` ones whose
//! upload it resumes from the local file. Uploads are retried with backoff
//! (1 s to 30 s) for as long as the controller is unreachable or answers
//! with server errors.
//!
//! Volumes created from a snapshot download its data (checking its size and
//! SHA-256), convert it into the volume's qcow2 file and grow it to the
//! volume's size, in the background: the volume is `creating` until the
//! file appears whole, and a creation a restart interrupted starts again
//! from scratch.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mallee_node_api::{
    DiskFormat, NodeError, ObservedSnapshot, SnapshotSource, SnapshotSpec, SnapshotState,
    VolumeState,
};
use mallee_qemu::{QmpClient, QmpError};
use mallee_util::durable::{TempGuard, sync_dir, write_atomic};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::instance::{InstanceHandle, Shared, VmAccess};
use crate::snapshot_data::{SnapshotData, TransferError, digest_file};
use crate::volumes::node_name;

mod capture;
mod restore;

use capture::clear_job;

/// Why a snapshot whose capture a restart interrupted failed.
pub const RESTARTED_WHILE_CAPTURING: &str =
    "the node agent restarted while capturing the snapshot; its point in time is lost";
/// Share of the progress the capture (and export) takes; the upload takes
/// the rest up to 99.
const CAPTURE_SHARE: u8 = 60;
/// Share of the capture a VM's backup job takes (the export conversion the
/// rest).
const BACKUP_SHARE: u8 = 50;
/// First wait before retrying a transfer.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between transfer retries.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a running backup job is polled.
const JOB_POLL: Duration = Duration::from_millis(200);
/// How long a capture waits for a starting or stopping instance.
const BUSY_RETRY: Duration = Duration::from_secs(1);
/// How long a forgotten snapshot's task gets to clean up.
const CANCEL_WAIT: Duration = Duration::from_secs(60);

/// A snapshot's progress as recorded durably.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
enum Phase {
    /// Capturing and exporting; lost if the agent restarts.
    Exporting,
    /// The export file is complete; uploading it.
    Exported {
        /// Bytes of the export.
        size: u64,
        /// Its SHA-256.
        sha256: String,
    },
    /// The controller has it.
    Uploaded {
        /// Bytes uploaded.
        size: u64,
        /// Their SHA-256.
        sha256: String,
    },
    /// Gave up; the reason says why.
    Failed(String),
}

/// What is persisted per snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SnapshotRecord {
    snapshot_id: String,
    volume_id: String,
    generation: u64,
    phase: Phase,
}

/// A snapshot the node holds: its record, its progress and its task.
#[derive(Debug)]
struct Entry {
    record: SnapshotRecord,
    /// Capture progress, 0..=[`CAPTURE_SHARE`].
    captured: Arc<AtomicU8>,
    /// Bytes of the export sent in the current upload attempt.
    sent: Arc<AtomicU64>,
    task: Option<JoinHandle<()>>,
    cancel: Option<watch::Sender<bool>>,
}

impl Entry {
    fn new(record: SnapshotRecord) -> Self {
        Self {
            record,
            captured: Arc::default(),
            sent: Arc::default(),
            task: None,
            cancel: None,
        }
    }

    fn observed(&self) -> ObservedSnapshot {
        let state = match &self.record.phase {
            Phase::Exporting => SnapshotState::Pending {
                progress: self.captured.load(Ordering::Relaxed).min(CAPTURE_SHARE),
            },
            Phase::Exported { size, .. } => {
                let sent = self.sent.load(Ordering::Relaxed).min(*size);
                let share = u64::from(99 - CAPTURE_SHARE);
                let done = sent.saturating_mul(share).checked_div(*size).unwrap_or(0);
                SnapshotState::Pending {
                    progress: CAPTURE_SHARE + u8::try_from(done.min(share)).unwrap_or(0),
                }
            }
            Phase::Uploaded { size, sha256 } => SnapshotState::Uploaded {
                size: *size,
                sha256: sha256.clone(),
            },
            Phase::Failed(reason) => SnapshotState::Failed(reason.clone()),
        };
        ObservedSnapshot {
            snapshot_id: self.record.snapshot_id.clone(),
            volume_id: self.record.volume_id.clone(),
            state,
            generation: self.record.generation,
        }
    }
}

/// The snapshot was forgotten while its task ran.
#[derive(Debug)]
struct Cancelled;

/// How a capture ended without a snapshot.
#[derive(Debug)]
enum CaptureError {
    Cancelled,
    Failed(String),
}

impl From<Cancelled> for CaptureError {
    fn from(_: Cancelled) -> Self {
        Self::Cancelled
    }
}

/// Runs `work` unless (or until) `cancel` turns true.
async fn or_cancel<T>(
    cancel: &mut watch::Receiver<bool>,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Cancelled> {
    if *cancel.borrow() {
        return Err(Cancelled);
    }
    tokio::select! {
        out = work => Ok(out),
        _ = cancel.wait_for(|c| *c) => Err(Cancelled),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The QEMU block node name of a snapshot's backup target: short (QEMU
/// keeps 31 bytes) and starting with a letter.
fn target_node(snapshot_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(snapshot_id.as_bytes()));
    format!("snapt{}", &digest[..20])
}

/// The node's snapshots and its volume creations from snapshots.
pub(crate) struct Snapshots {
    dir: PathBuf,
    shared: Arc<Shared>,
    instances: Arc<Mutex<HashMap<String, InstanceHandle>>>,
    data: SnapshotData,
    /// Bytes per second a VM's backup job may copy (0: unlimited).
    rate_limit: u64,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Held by [`Snapshots::put`], so that one snapshot starts once.
    puts: Mutex<()>,
    creations: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshots")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Snapshots {
    /// The snapshots recorded in `dir` (temporary files left by a crash are
    /// removed). Nothing runs until [`Snapshots::recover`].
    pub fn open(
        dir: &Path,
        shared: Arc<Shared>,
        instances: Arc<Mutex<HashMap<String, InstanceHandle>>>,
        data: SnapshotData,
        rate_limit: u64,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut entries = BTreeMap::new();
        for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "removing a leftover file");
                }
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let record: SnapshotRecord = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "unreadable snapshot record ignored");
                    continue;
                }
            };
            entries.insert(record.snapshot_id.clone(), Entry::new(record));
        }
        Ok(Self {
            dir: dir.to_owned(),
            shared,
            instances,
            data,
            rate_limit,
            entries: Mutex::new(entries),
            puts: Mutex::new(()),
            creations: Mutex::new(HashMap::new()),
        })
    }

    fn record_path(&self, snapshot_id: &str) -> PathBuf {
        self.dir.join(format!("{snapshot_id}.json"))
    }

    /// The complete export of a snapshot.
    fn export_path(&self, snapshot_id: &str) -> PathBuf {
        self.dir.join(format!("{snapshot_id}.qcow2"))
    }

    /// The export being written.
    fn export_tmp(&self, snapshot_id: &str) -> PathBuf {
        self.dir.join(format!(".{snapshot_id}.qcow2.tmp"))
    }

    /// A VM backup's target.
    fn capture_path(&self, snapshot_id: &str) -> PathBuf {
        self.dir.join(format!(".{snapshot_id}.capture.qcow2"))
    }

    /// Where a volume's snapshot data is downloaded.
    fn download_path(&self, volume_id: &str) -> PathBuf {
        self.dir.join(format!(".download-{volume_id}.tmp"))
    }

    /// Stores a record durably (temporary file, fsync, rename, directory
    /// fsync), then in memory.
    fn store(&self, record: &SnapshotRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_atomic(&self.record_path(&record.snapshot_id), &json)?;
        if let Some(entry) = lock(&self.entries).get_mut(&record.snapshot_id) {
            entry.record = record.clone();
        }
        Ok(())
    }

    /// Moves a snapshot to `phase`, durably.
    fn set_phase(&self, snapshot_id: &str, phase: Phase) {
        let Some(mut record) = lock(&self.entries)
            .get(snapshot_id)
            .map(|e| e.record.clone())
        else {
            return;
        };
        if let Phase::Failed(reason) = &phase {
            tracing::warn!(snapshot = %snapshot_id, %reason, "snapshot failed");
        } else {
            tracing::info!(snapshot = %snapshot_id, phase = ?phase, "snapshot");
        }
        record.phase = phase;
        if let Err(e) = self.store(&record) {
            tracing::error!(snapshot = %snapshot_id, error = %e, "cannot persist the snapshot record");
            // Reported from memory at least.
            if let Some(entry) = lock(&self.entries).get_mut(snapshot_id) {
                entry.record = record;
            }
        }
    }

    /// Removes a snapshot's local data files (not its record).
    async fn remove_files(&self, snapshot_id: &str) {
        for path in [
            self.export_path(snapshot_id),
            self.export_tmp(snapshot_id),
            self.capture_path(snapshot_id),
        ] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "removing a snapshot file");
                }
            }
        }
    }

    /// Every snapshot as reported.
    pub fn observed(&self) -> Vec<ObservedSnapshot> {
        lock(&self.entries).values().map(Entry::observed).collect()
    }

    /// At agent start, once the instances are adopted: captures a restart
    /// interrupted fail (and their leftovers in VMs are removed), exported
    /// snapshots resume their upload, interrupted volume creations from
    /// snapshots start again.
    pub async fn recover(self: &Arc<Self>) {
        let ids: Vec<(String, Phase)> = lock(&self.entries)
            .iter()
            .map(|(id, e)| (id.clone(), e.record.phase.clone()))
            .collect();
        for (id, phase) in ids {
            match phase {
                Phase::Exporting => {
                    self.remove_files(&id).await;
                    self.set_phase(&id, Phase::Failed(RESTARTED_WHILE_CAPTURING.into()));
                    let volume_id = lock(&self.entries)
                        .get(&id)
                        .map(|e| e.record.volume_id.clone());
                    if let Some(volume_id) = volume_id {
                        let this = self.clone();
                        tokio::spawn(
                            async move { this.clear_stale_capture(&id, &volume_id).await },
                        );
                    }
                }
                Phase::Exported { .. } => {
                    if self.export_path(&id).is_file() {
                        self.spawn(&id);
                    } else {
                        self.set_phase(
                            &id,
                            Phase::Failed("the exported snapshot file is gone".into()),
                        );
                    }
                }
                Phase::Uploaded { .. } | Phase::Failed(_) => self.remove_files(&id).await,
            }
        }
        for record in self.shared.volumes.all() {
            if record.state == VolumeState::Creating && record.source.is_some() {
                self.create_volume(&record.volume_id);
            }
        }
    }

    /// Removes what an interrupted VM capture left in the VM: its job and
    /// its target node.
    async fn clear_stale_capture(&self, snapshot_id: &str, volume_id: &str) {
        let Some(holder) = self
            .shared
            .volumes
            .get(volume_id)
            .and_then(|r| r.instance().map(str::to_owned))
        else {
            return;
        };
        let handle = lock(&self.instances).get(&holder).cloned();
        if let Some(handle) = handle
            && let Ok(VmAccess::Running(vm)) = handle.vm_access().await
        {
            clear_job(vm.qmp(), snapshot_id).await;
        }
    }

    /// Starts capturing and uploading a snapshot (see the module).
    pub fn put(self: &Arc<Self>, spec: SnapshotSpec) -> Result<ObservedSnapshot, NodeError> {
        let _put = lock(&self.puts);
        {
            let mut entries = lock(&self.entries);
            if let Some(entry) = entries.get_mut(&spec.snapshot_id) {
                if entry.record.volume_id != spec.volume_id {
                    return Err(NodeError::Conflict(format!(
                        "{} is a snapshot of {}, not {}",
                        spec.snapshot_id, entry.record.volume_id, spec.volume_id
                    )));
                }
                if spec.generation > entry.record.generation {
                    let mut record = entry.record.clone();
                    record.generation = spec.generation;
                    drop(entries);
                    self.store(&record)
                        .map_err(|e| NodeError::Internal(format!("snapshot record: {e}")))?;
                    entries = lock(&self.entries);
                }
                return entries
                    .get(&spec.snapshot_id)
                    .map(Entry::observed)
                    .ok_or_else(|| NodeError::Internal("snapshot forgotten meanwhile".into()));
            }
        }
        let volume = self
            .shared
            .volumes
            .get(&spec.volume_id)
            .ok_or_else(|| NodeError::NotFound(spec.volume_id.clone()))?;
        if let Some(export) = &volume.remote {
            return Err(NodeError::BadRequest(format!(
                "the data of {} is on storage host {}; snapshot it there",
                spec.volume_id, export.server_node_id
            )));
        }
        if matches!(
            volume.state,
            VolumeState::Creating | VolumeState::Deleting | VolumeState::Failed(_)
        ) {
            return Err(NodeError::Conflict(format!(
                "{} cannot be captured while {:?}",
                spec.volume_id, volume.state
            )));
        }
        let record = SnapshotRecord {
            snapshot_id: spec.snapshot_id.clone(),
            volume_id: spec.volume_id.clone(),
            generation: spec.generation,
            phase: Phase::Exporting,
        };
        lock(&self.entries).insert(spec.snapshot_id.clone(), Entry::new(record.clone()));
        if let Err(e) = self.store(&record) {
            lock(&self.entries).remove(&spec.snapshot_id);
            return Err(NodeError::Internal(format!("snapshot record: {e}")));
        }
        tracing::info!(snapshot = %spec.snapshot_id, volume = %spec.volume_id, "snapshot started");
        self.spawn(&spec.snapshot_id);
        lock(&self.entries)
            .get(&spec.snapshot_id)
            .map(Entry::observed)
            .ok_or_else(|| NodeError::Internal("snapshot forgotten meanwhile".into()))
    }

    /// Starts the task that carries a snapshot from its recorded phase.
    fn spawn(self: &Arc<Self>, snapshot_id: &str) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let this = self.clone();
        let id = snapshot_id.to_owned();
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.get_mut(snapshot_id) else {
            return;
        };
        let (captured, sent) = (entry.captured.clone(), entry.sent.clone());
        entry.cancel = Some(cancel_tx);
        entry.task = Some(tokio::spawn(async move {
            this.run(&id, captured, sent, cancel_rx).await;
        }));
    }

    /// Forgets a snapshot: stops its task (a VM backup is cancelled and its
    /// target removed), removes its files and record.
    pub async fn delete(&self, snapshot_id: &str) -> Result<(), NodeError> {
        let (task, cancel) = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.get_mut(snapshot_id) else {
                return Ok(());
            };
            (entry.task.take(), entry.cancel.take())
        };
        if let Some(cancel) = cancel {
            let _ = cancel.send(true);
        }
        if let Some(mut task) = task
            && tokio::time::timeout(CANCEL_WAIT, &mut task).await.is_err()
        {
            tracing::warn!(snapshot = %snapshot_id, "snapshot task did not stop; aborting it");
            task.abort();
        }
        self.remove_files(snapshot_id).await;
        let path = self.record_path(snapshot_id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => sync_dir(&self.dir)
                .map_err(|e| NodeError::Internal(format!("sync {}: {e}", self.dir.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(NodeError::Internal(format!(
                    "remove {}: {e}",
                    path.display()
                )));
            }
        }
        lock(&self.entries).remove(snapshot_id);
        tracing::info!(snapshot = %snapshot_id, "snapshot forgotten");
        Ok(())
    }

    /// Stops every task (the agent stops; records stay for the next start).
    pub fn shutdown(&self) {
        for entry in lock(&self.entries).values_mut() {
            if let Some(task) = entry.task.take() {
                task.abort();
            }
        }
        for (_, task) in lock(&self.creations).drain() {
            task.abort();
        }
    }

    /// A snapshot's task: capture and export (when the record says
    /// `exporting`), then upload until the controller has it.
    async fn run(
        self: Arc<Self>,
        snapshot_id: &str,
        captured: Arc<AtomicU8>,
        sent: Arc<AtomicU64>,
        mut cancel: watch::Receiver<bool>,
    ) {
        let Some(record) = lock(&self.entries)
            .get(snapshot_id)
            .map(|e| e.record.clone())
        else {
            return;
        };
        let (size, sha256) = match record.phase {
            Phase::Exporting => {
                match self
                    .capture(snapshot_id, &record.volume_id, &captured, &mut cancel)
                    .await
                {
                    Ok(done) => {
                        self.set_phase(
                            snapshot_id,
                            Phase::Exported {
                                size: done.0,
                                sha256: done.1.clone(),
                            },
                        );
                        done
                    }
                    Err(CaptureError::Cancelled) => return,
                    Err(CaptureError::Failed(reason)) => {
                        self.remove_files(snapshot_id).await;
                        self.set_phase(snapshot_id, Phase::Failed(reason));
                        return;
                    }
                }
            }
            Phase::Exported { size, sha256 } => (size, sha256),
            Phase::Uploaded { .. } | Phase::Failed(_) => return,
        };
        let export = self.export_path(snapshot_id);
        let mut backoff = BACKOFF_MIN;
        loop {
            let attempt = self
                .data
                .upload(snapshot_id, &export, size, &sha256, sent.clone());
            let Ok(result) = or_cancel(&mut cancel, attempt).await else {
                return;
            };
            match result {
                Ok(_) => {
                    self.set_phase(snapshot_id, Phase::Uploaded { size, sha256 });
                    self.remove_files(snapshot_id).await;
                    return;
                }
                Err(TransferError::Gone) => {
                    tracing::info!(snapshot = %snapshot_id,
                        "the controller no longer has the snapshot; forgetting it");
                    self.remove_files(snapshot_id).await;
                    let path = self.record_path(snapshot_id);
                    if let Err(e) = std::fs::remove_file(&path).and_then(|()| sync_dir(&self.dir)) {
                        tracing::warn!(path = %path.display(), error = %e, "removing a snapshot record");
                    }
                    lock(&self.entries).remove(snapshot_id);
                    return;
                }
                Err(TransferError::Refused(reason)) => {
                    self.remove_files(snapshot_id).await;
                    self.set_phase(snapshot_id, Phase::Failed(reason));
                    return;
                }
                Err(TransferError::Retry(reason)) => {
                    tracing::warn!(snapshot = %snapshot_id, error = %reason, retry_in = ?backoff,
                        "snapshot upload failed");
                    if or_cancel(&mut cancel, tokio::time::sleep(backoff))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_node_names_fit_qemu() {
        let name = target_node("snap-0123456789abcdef0");
        assert!(name.len() <= 31 && name.starts_with("snapt"));
        assert_ne!(name, target_node("snap-0123456789abcdef1"));
    }

    #[test]
    fn progress_of_each_phase() {
        let mut entry = Entry::new(SnapshotRecord {
            snapshot_id: "snap-1".into(),
            volume_id: "vol-1".into(),
            generation: 3,
            phase: Phase::Exporting,
        });
        entry.captured.store(42, Ordering::Relaxed);
        assert_eq!(
            entry.observed().state,
            SnapshotState::Pending { progress: 42 }
        );
        entry.record.phase = Phase::Exported {
            size: 1000,
            sha256: "ab".into(),
        };
        assert_eq!(
            entry.observed().state,
            SnapshotState::Pending { progress: 60 }
        );
        entry.sent.store(500, Ordering::Relaxed);
        assert_eq!(
            entry.observed().state,
            SnapshotState::Pending { progress: 79 }
        );
        entry.sent.store(1000, Ordering::Relaxed);
        assert_eq!(
            entry.observed().state,
            SnapshotState::Pending { progress: 99 }
        );
        entry.record.phase = Phase::Uploaded {
            size: 1000,
            sha256: "ab".into(),
        };
        assert_eq!(
            entry.observed(),
            ObservedSnapshot {
                snapshot_id: "snap-1".into(),
                volume_id: "vol-1".into(),
                state: SnapshotState::Uploaded {
                    size: 1000,
                    sha256: "ab".into()
                },
                generation: 3,
            }
        );
    }

    #[test]
    fn record_wire_form() {
        let record = SnapshotRecord {
            snapshot_id: "snap-1".into(),
            volume_id: "vol-1".into(),
            generation: 1,
            phase: Phase::Exported {
                size: 5,
                sha256: "cd".into(),
            },
        };
        let json = serde_json::to_value(&record).expect("json");
        assert_eq!(json["phase"]["state"], "exported");
        let back: SnapshotRecord = serde_json::from_value(json).expect("parse");
        assert_eq!(back, record);
    }
}
