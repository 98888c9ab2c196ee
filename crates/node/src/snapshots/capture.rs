//! Capturing a snapshot: through the running VM's QEMU
//! (`blockdev-backup` into an empty qcow2 target) or straight from the
//! volume's file (`qemu-img convert`) while no VM has it open, into the
//! complete export file the upload sends.

use super::*;

impl Snapshots {
    /// Captures a volume at this point in time into the snapshot's complete
    /// export file; returns its size and SHA-256.
    pub(super) async fn capture(
        &self,
        snapshot_id: &str,
        volume_id: &str,
        captured: &AtomicU8,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(u64, String), CaptureError> {
        let volumes = &self.shared.volumes;
        let export = self.export_path(snapshot_id);
        let export_tmp = self.export_tmp(snapshot_id);
        let _export_guard = TempGuard::new(export_tmp.clone());
        let failed =
            |what: &str, e: &dyn std::fmt::Display| CaptureError::Failed(format!("{what}: {e}"));
        loop {
            let data_lock = or_cancel(cancel, volumes.lock_volume(volume_id)).await?;
            let Some(volume) = volumes.get(volume_id) else {
                return Err(CaptureError::Failed(format!(
                    "{volume_id} was deleted before it could be captured"
                )));
            };
            if matches!(
                volume.state,
                VolumeState::Creating | VolumeState::Deleting | VolumeState::Failed(_)
            ) {
                return Err(CaptureError::Failed(format!(
                    "{volume_id} cannot be captured while {:?}",
                    volume.state
                )));
            }
            let disk = volumes.backend().disk(volume_id);
            // A storage host's exported volume is open in its export's
            // daemon: the backup job runs there, as it would in a VM.
            let daemon = match &self.shared.exports {
                Some(exports) => match exports.qmp(volume_id).await {
                    Some(Ok(qmp)) => Some(qmp),
                    Some(Err(e)) => return Err(failed("the export's daemon", &e)),
                    None => None,
                },
                None => None,
            };
            let vm = if daemon.is_some() {
                None
            } else {
                let handle = volume
                    .instance()
                    .and_then(|id| lock(&self.instances).get(id).cloned());
                match handle {
                    Some(handle) => match handle.vm_access().await.unwrap_or(VmAccess::Stopped) {
                        VmAccess::Busy => {
                            drop(data_lock);
                            or_cancel(cancel, tokio::time::sleep(BUSY_RETRY)).await?;
                            continue;
                        }
                        VmAccess::Stopped => None,
                        VmAccess::Running(vm) => Some(vm),
                    },
                    None => None,
                }
            };
            match daemon.as_ref().or(vm.as_ref().map(|vm| vm.qmp())) {
                Some(qmp) => {
                    tracing::info!(snapshot = %snapshot_id, volume = %volume_id,
                        through = if daemon.is_some() { "the export's daemon" } else { "the VM" },
                        "capturing with a backup job");
                    self.capture_through(
                        qmp,
                        snapshot_id,
                        volume_id,
                        &disk.path,
                        &export_tmp,
                        captured,
                        cancel,
                    )
                    .await?;
                }
                None => {
                    tracing::info!(snapshot = %snapshot_id, volume = %volume_id, "capturing from the volume's file");
                    let convert = crate::qemu_img::convert_to_qcow2(
                        &disk.path,
                        DiskFormat::Qcow2,
                        &export_tmp,
                        |p| {
                            let share = u16::from(p.min(100)) * u16::from(CAPTURE_SHARE) / 100;
                            captured.store(u8::try_from(share).unwrap_or(0), Ordering::Relaxed);
                        },
                    );
                    or_cancel(cancel, convert)
                        .await?
                        .map_err(|e| failed("capture", &e))?;
                }
            }
            drop(data_lock);
            break;
        }
        let dir = self.dir.clone();
        let (tmp, done) = (export_tmp.clone(), export.clone());
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &done)?;
            sync_dir(&dir)
        })
        .await
        .map_err(|e| failed("export", &e))?
        .map_err(|e| failed("export", &e))?;
        let digest = or_cancel(cancel, digest_file(&export))
            .await?
            .map_err(|e| failed("read the export", &e))?;
        captured.store(CAPTURE_SHARE, Ordering::Relaxed);
        Ok(digest)
    }

    /// Captures `volume_id`, open in the process `qmp` talks to (a VM or
    /// an export's daemon), with a backup job into a capture file, then
    /// converts that into `export_tmp`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn capture_through(
        &self,
        qmp: &QmpClient,
        snapshot_id: &str,
        volume_id: &str,
        volume_path: &Path,
        export_tmp: &Path,
        captured: &AtomicU8,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), CaptureError> {
        let target = self.capture_path(snapshot_id);
        let _target_guard = TempGuard::new(target.clone());
        self.backup(
            qmp,
            snapshot_id,
            volume_id,
            volume_path,
            &target,
            captured,
            cancel,
        )
        .await?;
        let convert =
            crate::qemu_img::convert_to_qcow2(&target, DiskFormat::Qcow2, export_tmp, |p| {
                let share = u16::from(BACKUP_SHARE)
                    + u16::from(p.min(100)) * u16::from(CAPTURE_SHARE - BACKUP_SHARE) / 100;
                captured.store(u8::try_from(share).unwrap_or(0), Ordering::Relaxed);
            });
        or_cancel(cancel, convert)
            .await?
            .map_err(|e| CaptureError::Failed(format!("export: {e}")))
    }

    /// A `blockdev-backup` of a volume's block node (named after it, see
    /// [`node_name`]) into `target` (created here, as large as the
    /// volume's image at `volume_path`; its block node is removed
    /// afterwards whatever happens), through the QMP of whatever has the
    /// volume open: its VM, or a storage host's qemu-storage-daemon.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn backup(
        &self,
        qmp: &QmpClient,
        snapshot_id: &str,
        volume_id: &str,
        volume_path: &Path,
        target: &Path,
        captured: &AtomicU8,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), CaptureError> {
        let failed =
            |what: &str, e: &dyn std::fmt::Display| CaptureError::Failed(format!("{what}: {e}"));
        // Leftovers of an attempt the agent did not see end.
        clear_job(qmp, snapshot_id).await;
        let info = crate::qemu_img::info(volume_path, DiskFormat::Qcow2, true)
            .await
            .map_err(|e| failed("size of the volume", &e))?;
        match tokio::fs::remove_file(target).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(failed("remove an old capture", &e));
            }
            _ => {}
        }
        crate::qemu_img::create_qcow2(target, info.virtual_size)
            .await
            .map_err(|e| failed("capture target", &e))?;
        let node = target_node(snapshot_id);
        qmp.blockdev_add_file(&node, target, mallee_qemu::DiskFormat::Qcow2, false)
            .await
            .map_err(|e| failed("blockdev-add of the capture target", &e))?;
        let result = async {
            qmp.blockdev_backup(snapshot_id, &node_name(volume_id), &node, self.rate_limit)
                .await
                .map_err(|e| failed("blockdev-backup", &e))?;
            loop {
                let jobs = qmp
                    .query_jobs()
                    .await
                    .map_err(|e| failed("the VM went away during the capture", &e))?;
                let Some(job) = jobs.into_iter().find(|j| j.id == snapshot_id) else {
                    return Err(CaptureError::Failed(
                        "the VM's capture job disappeared".into(),
                    ));
                };
                if job.total_progress > 0 {
                    let share = u128::from(job.current_progress.min(job.total_progress))
                        * u128::from(BACKUP_SHARE)
                        / u128::from(job.total_progress);
                    captured.store(u8::try_from(share).unwrap_or(0), Ordering::Relaxed);
                }
                if job.concluded() {
                    if let Err(e) = qmp.job_dismiss(snapshot_id).await {
                        tracing::warn!(snapshot = %snapshot_id, error = %e, "job-dismiss");
                    }
                    return match job.error {
                        None => Ok(()),
                        Some(e) => Err(CaptureError::Failed(format!(
                            "the VM's capture job failed: {e}"
                        ))),
                    };
                }
                if or_cancel(cancel, tokio::time::sleep(JOB_POLL))
                    .await
                    .is_err()
                {
                    clear_job(qmp, snapshot_id).await;
                    return Err(CaptureError::Cancelled);
                }
            }
        }
        .await;
        match qmp.blockdev_del(&node).await {
            Ok(()) | Err(QmpError::Disconnected) => {}
            Err(e) => {
                tracing::warn!(snapshot = %snapshot_id, error = %e, "blockdev-del of the capture target")
            }
        }
        result
    }
}

/// Cancels and dismisses job `job_id` (of a VM or qemu-storage-daemon,
/// by its QMP) and removes its target node, if they exist.
pub(super) async fn clear_job(qmp: &QmpClient, job_id: &str) {
    let listed = |jobs: Result<Vec<mallee_qemu::JobInfo>, QmpError>| {
        jobs.ok()
            .and_then(|jobs| jobs.into_iter().find(|j| j.id == job_id))
    };
    if let Some(job) = listed(qmp.query_jobs().await) {
        if !job.concluded()
            && let Err(e) = qmp.job_cancel(job_id).await
        {
            tracing::warn!(job = %job_id, error = %e, "job-cancel");
        }
        for _ in 0..150 {
            match listed(qmp.query_jobs().await) {
                Some(job) if !job.concluded() => tokio::time::sleep(JOB_POLL).await,
                _ => break,
            }
        }
        if let Err(e) = qmp.job_dismiss(job_id).await {
            tracing::warn!(job = %job_id, error = %e, "job-dismiss");
        }
    }
    if qmp.blockdev_del(&target_node(job_id)).await.is_ok() {
        tracing::info!(job = %job_id, "removed a leftover capture target");
    }
}
