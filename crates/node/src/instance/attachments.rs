//! An instance's attached volumes: the runner's attach, detach and
//! re-sync of the VM's disks with the record's list, and the QMP steps
//! (hot-plug, unplug) they are made of.

use super::*;

impl Runner {
    /// Attaches a volume: the `pre-attach` hooks, then the record, then (a
    /// running VM) the hot-plug. Repeating an attachment is a no-op.
    pub(super) async fn attach_volume(
        &mut self,
        volume: AttachedVolume,
        busy: bool,
    ) -> Result<(), NodeError> {
        if let Some(held) = self
            .record
            .volumes
            .iter()
            .find(|v| v.volume_id == volume.volume_id)
        {
            if held.device == volume.device {
                return Ok(());
            }
            return Err(NodeError::Conflict(format!(
                "{} is already attached to {} as {}",
                volume.volume_id, self.id, held.device
            )));
        }
        if let Some(other) = self
            .record
            .volumes
            .iter()
            .find(|v| v.device == volume.device)
        {
            return Err(NodeError::Conflict(format!(
                "device {} of {} is already in use by {}",
                volume.device, self.id, other.volume_id
            )));
        }
        let description = self.shared.volumes.record_path(&volume.volume_id);
        self.shared
            .hooks
            .run_with(HookEvent::PreAttach, Some(&self.dir), Some(&description))
            .await
            .map_err(|e| NodeError::Conflict(hook_reason(&e)))?;
        // Recorded before QEMU sees it: a crash in between is repaired by
        // the next adoption, which hot-plugs what the record lists.
        self.record.volumes.push(volume.clone());
        self.persist();
        // While a start or stop is under way there is no VM to plug into:
        // the end of a start makes the new VM match the record, a stopped
        // one gets the volume at its next start.
        if !busy
            && let Some(vm) = self.vm.clone()
            && let Err(e) = hot_plug(&self.shared, &vm, &volume).await
        {
            self.record
                .volumes
                .retain(|v| v.volume_id != volume.volume_id);
            self.persist();
            return Err(NodeError::Internal(format!(
                "attach {} to {}: {e}",
                volume.volume_id, self.id
            )));
        }
        tracing::info!(instance = %self.id, volume = %volume.volume_id, device = %volume.device,
            live = !busy && self.vm.is_some(), "volume attached");
        Ok(())
    }

    /// Detaches a volume: a running VM's guest is asked to release it, the
    /// disk is removed (`force`: even if the guest did not answer), then the record, then the
    /// `post-detach` hooks run. A guest that keeps the disk refuses the
    /// detach (the volume stays attached).
    pub(super) async fn detach_volume(
        &mut self,
        volume_id: &str,
        force: bool,
        busy: bool,
    ) -> Result<(), NodeError> {
        if !self.record.volumes.iter().any(|v| v.volume_id == volume_id) {
            return Ok(());
        }
        if busy {
            return Err(NodeError::Conflict(format!(
                "instance {} is starting or stopping; retry the detachment",
                self.id
            )));
        }
        if let Some(vm) = self.vm.clone() {
            unplug_volume(&vm, volume_id, DETACH_WAIT, force)
                .await
                .map_err(NodeError::Conflict)?;
        }
        self.record.volumes.retain(|v| v.volume_id != volume_id);
        self.persist();
        tracing::info!(instance = %self.id, volume = %volume_id, force, "volume detached");
        let description = self.shared.volumes.record_path(volume_id);
        if let Err(e) = self
            .shared
            .hooks
            .run_with(HookEvent::PostDetach, Some(&self.dir), Some(&description))
            .await
        {
            tracing::warn!(instance = %self.id, volume = %volume_id, error = %hook_reason(&e),
                "post-detach hook failed");
        }
        Ok(())
    }

    /// Makes the running VM's volume devices match the record: hot-plugs
    /// the listed volumes it lacks (an attach interrupted by an agent crash,
    /// or a VM from before the attachment) and unplugs volume devices the
    /// record no longer lists (an interrupted detach).
    pub(super) async fn sync_volumes(&mut self) {
        let Some(vm) = self.vm.clone() else {
            return;
        };
        let present = match peripheral_ids(&vm).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(instance = %self.id, error = %e, "cannot list the VM's devices");
                return;
            }
        };
        for volume in &self.record.volumes {
            if present.contains(&device_id(&volume.volume_id)) {
                continue;
            }
            match hot_plug(&self.shared, &vm, volume).await {
                Ok(()) => {
                    tracing::info!(instance = %self.id, volume = %volume.volume_id, "volume plugged again");
                }
                Err(e) => {
                    tracing::error!(instance = %self.id, volume = %volume.volume_id, error = %e,
                        "cannot plug an attached volume");
                }
            }
        }
        for id in present {
            let Some(volume_id) = id.strip_suffix("-dev").filter(|v| v.starts_with("vol-")) else {
                continue;
            };
            if self.record.volumes.iter().any(|v| v.volume_id == volume_id)
                || root_volume(&self.record.spec) == Some(volume_id)
            {
                continue;
            }
            if let Err(e) = unplug_volume(&vm, volume_id, DETACH_WAIT, true).await {
                tracing::error!(instance = %self.id, volume = %volume_id, error = %e,
                    "cannot unplug a detached volume");
            }
        }
    }
}

/// Ids of the VM's user-created devices (`qom-list /machine/peripheral`).
pub(super) async fn peripheral_ids(vm: &RunningVm) -> Result<Vec<String>, String> {
    let list = vm
        .qmp()
        .execute(
            "qom-list",
            serde_json::json!({"path": "/machine/peripheral"}),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| {
                    i.get("type")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|t| t.starts_with("child<"))
                })
                .filter_map(|i| i.get("name").and_then(serde_json::Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// The QEMU disk of a volume (attached, or an EBS root): its file, or for
/// a remote volume the export through the node's relay socket.
pub(super) fn volume_disk(shared: &Shared, volume_id: &str) -> Disk {
    let source = match shared.volumes.location(volume_id) {
        VolumeLocation::Local(disk) => DiskSource::file(disk.path, disk.format),
        VolumeLocation::Remote(export) => DiskSource::Nbd(NbdSource {
            server: NbdServer::Unix {
                path: shared.nbd_relays.socket(volume_id),
            },
            tls_hostname: PeerName::Node(export.server_node_id).dns_name(),
            export: export.name,
            tls_dir: shared.nbd_tls_dir.clone(),
        }),
    };
    Disk {
        source,
        read_only: false,
        id: Some(node_name(volume_id)),
        serial: Some(serial(volume_id)),
    }
}

/// Hot-plugs a volume into a running VM: (for a remote volume, the VM's
/// NBD TLS credentials if it has none yet,) its block node, then its
/// virtio-blk device (undoing the node if the device cannot be added).
pub(super) async fn hot_plug(
    shared: &Shared,
    vm: &RunningVm,
    volume: &AttachedVolume,
) -> Result<(), String> {
    let disk = volume_disk(shared, &volume.volume_id);
    let node = node_name(&volume.volume_id);
    let qmp = vm.qmp();
    if let DiskSource::Nbd(nbd) = &disk.source {
        match qmp
            .object_add(mallee_qemu::vm::nbd_tls_object_json(&nbd.tls_dir))
            .await
        {
            Ok(()) => {}
            // Added with the VM's first NBD disk.
            Err(QmpError::Command { desc, .. }) if desc.contains("duplicate property") => {}
            Err(e) => return Err(format!("object-add of the NBD TLS credentials: {e}")),
        }
    }
    match qmp
        .blockdev_add(mallee_qemu::vm::disk_blockdev_json(&node, &disk))
        .await
    {
        Ok(()) => {}
        // Left from an attempt the agent did not see finish.
        Err(QmpError::Command { desc, .. }) if desc.contains("Duplicate") => {}
        Err(e) => return Err(format!("blockdev-add: {e}")),
    }
    let props = mallee_qemu::vm::virtio_blk_props(&node, disk.serial.as_deref());
    if let Err(e) = qmp
        .device_add("virtio-blk-pci", &device_id(&volume.volume_id), props)
        .await
    {
        if let Err(undo) = qmp.blockdev_del(&node).await {
            tracing::warn!(volume = %volume.volume_id, error = %undo, "blockdev-del after a failed device_add");
        }
        return Err(format!("device_add: {e}"));
    }
    Ok(())
}

/// Removes a volume's device (waiting up to `wait` for the guest to release
/// it) and block node. Without `force`, a guest that keeps the device is an
/// error; with it, the block node is removed anyway if QEMU lets go of it.
/// Closing the block node flushes it: a remote volume's NBD client sends
/// the storage host a flush before it disconnects.
pub(super) async fn unplug_volume(
    vm: &RunningVm,
    volume_id: &str,
    wait: Duration,
    force: bool,
) -> Result<(), String> {
    let qmp = vm.qmp();
    match qmp.device_del_wait(&device_id(volume_id), wait).await {
        Ok(()) => {}
        Err(QmpError::Command { class, .. }) if class == "DeviceNotFound" => {}
        Err(QmpError::EventTimeout(_)) if force => {
            tracing::warn!(volume = %volume_id, "the guest did not release the volume; forcing");
        }
        Err(QmpError::EventTimeout(_)) => {
            return Err(format!(
                "the guest did not release {volume_id} within {} s (is it mounted?); detach again, or force",
                wait.as_secs()
            ));
        }
        Err(e) => return Err(format!("device_del {volume_id}: {e}")),
    }
    match qmp.blockdev_del(&node_name(volume_id)).await {
        Ok(()) => Ok(()),
        Err(QmpError::Command { desc, .. }) if desc.contains("Failed to find node") => Ok(()),
        Err(e) => Err(format!(
            "the guest still holds {volume_id}; QEMU cannot remove it ({e})"
        )),
    }
}
