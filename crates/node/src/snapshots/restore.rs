//! Volumes created from snapshots: the snapshot's data downloaded (size
//! and SHA-256 checked), converted into the volume's qcow2 file and grown
//! to the volume's size, in the background while the volume is `creating`.

use super::*;

impl Snapshots {
    /// Whether a volume is being created from a snapshot.
    pub fn creating(&self, volume_id: &str) -> bool {
        lock(&self.creations)
            .get(volume_id)
            .is_some_and(|t| !t.is_finished())
    }

    /// Starts creating a volume (recorded `creating`, with a source) from
    /// its snapshot, unless that runs already.
    pub fn create_volume(self: &Arc<Self>, volume_id: &str) {
        let mut creations = lock(&self.creations);
        if creations.get(volume_id).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let this = self.clone();
        let id = volume_id.to_owned();
        creations.insert(
            volume_id.to_owned(),
            tokio::spawn(async move { this.run_creation(&id).await }),
        );
    }

    /// Stops a volume's creation and waits until it has stopped (its
    /// temporary files are gone then).
    pub async fn abort_creation(&self, volume_id: &str) {
        let task = lock(&self.creations).remove(volume_id);
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    async fn run_creation(&self, volume_id: &str) {
        let outcome = self.fill_volume(volume_id).await;
        let volumes = &self.shared.volumes;
        let _ops = volumes.lock_ops().await;
        let Some(mut record) = volumes.get(volume_id) else {
            return;
        };
        if record.state != VolumeState::Creating {
            return;
        }
        record.state = match outcome {
            Ok(()) => {
                tracing::info!(volume = %volume_id, "volume created from its snapshot");
                VolumeState::Available
            }
            Err(reason) => {
                tracing::warn!(volume = %volume_id, %reason, "volume creation from a snapshot failed");
                VolumeState::Failed(reason)
            }
        };
        if let Err(e) = volumes.put(record) {
            tracing::error!(volume = %volume_id, error = %e, "cannot persist the volume record");
        }
    }

    /// Makes the volume from its snapshot's data: downloaded and kept once
    /// per snapshot (however many volumes are made from it at once), the
    /// volume a thin overlay on it.
    async fn fill_volume(&self, volume_id: &str) -> Result<(), String> {
        let volumes = &self.shared.volumes;
        let Some(record) = volumes.get(volume_id) else {
            return Err(format!("{volume_id} was deleted"));
        };
        let Some(source) = record.source.clone() else {
            return Err(format!("{volume_id} has no snapshot to be created from"));
        };
        let backend = volumes.backend();
        let base = {
            // One download per snapshot: the others wait, then find it kept.
            let _one = volumes.lock_volume(&source.snapshot_id).await;
            match backend.snapshot_base(&source) {
                Some(base) => base,
                None => {
                    let download = self.fetch_snapshot(volume_id, &source).await?;
                    let _download = TempGuard::new(download.clone());
                    backend
                        .keep_snapshot(&source, &download)
                        .await
                        .map_err(|e| e.to_string())?
                }
            }
        };
        backend
            .create_over(volume_id, record.size_gib, &base)
            .await
            .map_err(|e| e.to_string())
    }

    /// Downloads snapshot `source` for `volume_id`, retrying with backoff
    /// until it is stored or refused; returns the file.
    async fn fetch_snapshot(
        &self,
        volume_id: &str,
        source: &SnapshotSource,
    ) -> Result<PathBuf, String> {
        let download = self.download_path(volume_id);
        let mut guard = TempGuard::new(download.clone());
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.data.download(source, &download).await {
                Ok(()) => {
                    guard.disarm();
                    return Ok(download);
                }
                Err(TransferError::Gone) => {
                    return Err(format!(
                        "the snapshot {} no longer exists",
                        source.snapshot_id
                    ));
                }
                Err(TransferError::Refused(reason)) => return Err(reason),
                Err(TransferError::Retry(reason)) => {
                    tracing::warn!(volume = %volume_id, snapshot = %source.snapshot_id,
                        error = %reason, retry_in = ?backoff, "snapshot download failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}
