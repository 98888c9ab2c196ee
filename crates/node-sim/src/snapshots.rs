//! Snapshots of the simulated node's volumes, with the real agent's life
//! cycle (`crates/node/src/snapshots.rs`): the volume's content is taken at
//! the call (the point in time), "captured" over `capture_delay` (progress
//! 0 to 60), then uploaded through the node's
//! [`crate::SnapshotTransfer`] (progress 60) until the controller
//! acknowledges it (uploaded, with size and SHA-256), forgets it (the
//! snapshot is dropped), or refuses it (failed). Transient upload errors
//! are retried with backoff. An agent outage fails a capture under way
//! and resumes an upload.

use bytes::Bytes;
use mallee_node_api::{
    NodeError, ObservedSnapshot, SnapshotSpec, SnapshotState, SnapshotUploaded, VolumeState,
};

use crate::state::{Effect, Phase, RESTARTED_WHILE_CAPTURING, Snap, State, Upload, valid_id};
use crate::transfer::{TransferError, sha256_hex};

/// Progress at the end of the capture (the upload takes the rest).
pub(crate) const CAPTURE_SHARE: u8 = 60;

impl Snap {
    pub fn observed(&self) -> ObservedSnapshot {
        let state = match &self.phase {
            Phase::Capturing(progress) => SnapshotState::Pending {
                progress: (*progress).min(CAPTURE_SHARE),
            },
            Phase::Uploading => SnapshotState::Pending {
                progress: CAPTURE_SHARE,
            },
            Phase::Uploaded { size, sha256 } => SnapshotState::Uploaded {
                size: *size,
                sha256: sha256.clone(),
            },
            Phase::Failed(reason) => SnapshotState::Failed(reason.clone()),
        };
        ObservedSnapshot {
            snapshot_id: self.snapshot_id.clone(),
            volume_id: self.volume_id.clone(),
            state,
            generation: self.generation,
        }
    }
}

impl State {
    pub fn put_snapshot(&mut self, spec: SnapshotSpec) -> Result<ObservedSnapshot, NodeError> {
        for id in [&spec.snapshot_id, &spec.volume_id] {
            if !valid_id(id) {
                return Err(NodeError::BadRequest(format!("bad id {id:?}")));
            }
        }
        if let Some(held) = self.snapshots.get_mut(&spec.snapshot_id) {
            if held.volume_id != spec.volume_id {
                return Err(NodeError::Conflict(format!(
                    "{} is a snapshot of {}, not {}",
                    spec.snapshot_id, held.volume_id, spec.volume_id
                )));
            }
            held.generation = held.generation.max(spec.generation);
            return Ok(held.observed());
        }
        let volume = self
            .volumes
            .get(&spec.volume_id)
            .ok_or_else(|| NodeError::NotFound(spec.volume_id.clone()))?;
        if matches!(
            volume.state,
            VolumeState::Creating | VolumeState::Deleting | VolumeState::Failed(_)
        ) {
            return Err(NodeError::Conflict(format!(
                "{} cannot be captured while {:?}",
                spec.volume_id, volume.state
            )));
        }
        let data = Bytes::from(volume.data.clone());
        let upload = Upload {
            sha256: sha256_hex(&data),
            data,
            format: volume.format,
        };
        let token = self.token();
        let snap = Snap {
            snapshot_id: spec.snapshot_id.clone(),
            volume_id: spec.volume_id.clone(),
            generation: spec.generation,
            phase: Phase::Capturing(0),
            upload: upload.clone(),
            task: Some(token),
        };
        let observed = snap.observed();
        self.snapshots.insert(spec.snapshot_id.clone(), snap);
        self.effects.push(Effect::Capture {
            snapshot_id: spec.snapshot_id,
            token,
            delay: self.delays.capture,
            upload,
        });
        Ok(observed)
    }

    /// Forgets a snapshot, stopping its capture or upload.
    pub fn delete_snapshot(&mut self, snapshot_id: &str) {
        if let Some(snap) = self.snapshots.remove(snapshot_id) {
            self.cancels.extend(snap.task);
        }
    }

    fn current_snapshot(&mut self, snapshot_id: &str, token: u64) -> Option<&mut Snap> {
        if !self.up {
            return None;
        }
        self.snapshots
            .get_mut(snapshot_id)
            .filter(|s| s.task == Some(token))
    }

    /// Whether the task `token` still carries the snapshot.
    pub fn snapshot_task_current(&mut self, snapshot_id: &str, token: u64) -> bool {
        self.current_snapshot(snapshot_id, token).is_some()
    }

    /// The capture got this far; `false`: the task is no longer wanted.
    pub fn capture_progress(&mut self, snapshot_id: &str, token: u64, progress: u8) -> bool {
        let Some(snap) = self.current_snapshot(snapshot_id, token) else {
            return false;
        };
        snap.phase = if progress >= CAPTURE_SHARE {
            Phase::Uploading
        } else {
            Phase::Capturing(progress)
        };
        true
    }

    /// The upload ended (transient failures are retried by the task and
    /// never end it).
    pub fn upload_done(
        &mut self,
        snapshot_id: &str,
        token: u64,
        result: Result<SnapshotUploaded, TransferError>,
    ) {
        let Some(snap) = self.current_snapshot(snapshot_id, token) else {
            return;
        };
        snap.task = None;
        match result {
            Ok(stored) => {
                snap.phase = Phase::Uploaded {
                    size: stored.size,
                    sha256: stored.sha256,
                };
            }
            // The controller no longer has the snapshot: forgotten.
            Err(TransferError::Gone) => {
                self.snapshots.remove(snapshot_id);
            }
            Err(TransferError::Refused(reason) | TransferError::Retry(reason)) => {
                snap.phase = Phase::Failed(reason);
            }
        }
    }

    /// At agent restart: a capture the outage interrupted has lost its
    /// point in time; an upload starts again.
    pub(crate) fn resume_snapshot(&mut self, snapshot_id: &str) {
        let token = self.token();
        let Some(snap) = self.snapshots.get_mut(snapshot_id) else {
            return;
        };
        match snap.phase {
            Phase::Capturing(_) => snap.phase = Phase::Failed(RESTARTED_WHILE_CAPTURING.into()),
            Phase::Uploading => {
                snap.task = Some(token);
                self.effects.push(Effect::Upload {
                    snapshot_id: snapshot_id.to_owned(),
                    token,
                    upload: snap.upload.clone(),
                });
            }
            Phase::Uploaded { .. } | Phase::Failed(_) => {}
        }
    }
}
