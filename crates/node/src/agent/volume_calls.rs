//! The node's volume calls: creating, growing, deleting, attaching and
//! detaching volumes (local files or a storage host's, reached over NBD),
//! exporting them from a storage host, and claiming an instance's root
//! volume. Each takes the volume's locks in one order (data, then ops), so
//! a snapshot reading a file finishes before the file changes.

use super::*;

impl QemuNodeAgent {
    pub(super) async fn volume_put(&self, spec: VolumeSpec) -> Result<ObservedVolume, NodeError> {
        if !valid_id(&spec.volume_id) {
            return Err(NodeError::BadRequest(format!(
                "bad volume id {:?}",
                spec.volume_id
            )));
        }
        if !(1..=crate::volumes::MAX_SIZE_GIB).contains(&spec.size_gib) {
            return Err(NodeError::BadRequest(format!(
                "volume size must be 1..={} GiB, got {}",
                crate::volumes::MAX_SIZE_GIB,
                spec.size_gib
            )));
        }
        if let Some(export) = &spec.remote {
            return self.put_remote_volume(&spec, export).await;
        }
        let volumes = &self.shared.volumes;
        // Growing opens the data: after any snapshot reading it.
        let _data = match volumes.get(&spec.volume_id) {
            Some(held) if held.size_gib < spec.size_gib => {
                Some(volumes.lock_volume(&spec.volume_id).await)
            }
            _ => None,
        };
        let _ops = volumes.lock_ops().await;
        let held = volumes.get(&spec.volume_id);
        if let Some(held) = &held {
            check_put(held, &spec)?;
        }
        let mut record = match held {
            Some(held)
                if held.size_gib < spec.size_gib
                    && matches!(
                        held.state,
                        VolumeState::Available | VolumeState::InUse { .. }
                    ) =>
            {
                return self.grow_volume(held, &spec).await;
            }
            // Being created from its snapshot.
            Some(held)
                if held.state == VolumeState::Creating
                    && self.snapshots.creating(&spec.volume_id) =>
            {
                return Ok(held.observed());
            }
            Some(mut held)
                if !matches!(held.state, VolumeState::Creating | VolumeState::Failed(_)) =>
            {
                if spec.generation > held.generation {
                    held.generation = spec.generation;
                    volumes.put(held.clone()).map_err(internal)?;
                }
                return Ok(held.observed());
            }
            // Creating (interrupted) or failed: create again.
            Some(mut held) => {
                held.generation = held.generation.max(spec.generation);
                held.state = VolumeState::Creating;
                held.source = spec.source.clone();
                held
            }
            None => {
                let mut record =
                    volumes.new_record(&spec.volume_id, spec.size_gib, spec.generation);
                record.source = spec.source.clone();
                record
            }
        };
        volumes.put(record.clone()).map_err(internal)?;
        if record.source.is_some() {
            // Downloading and converting take long: in the background.
            self.snapshots.create_volume(&spec.volume_id);
            tracing::info!(volume = %spec.volume_id, size_gib = spec.size_gib, "creating a volume from a snapshot");
            return Ok(record.observed());
        }
        match volumes
            .backend()
            .create(&spec.volume_id, spec.size_gib)
            .await
        {
            Ok(()) => {
                record.state = VolumeState::Available;
                volumes.put(record.clone()).map_err(internal)?;
                tracing::info!(volume = %spec.volume_id, size_gib = spec.size_gib, "volume created");
                Ok(record.observed())
            }
            Err(e) => {
                record.state = VolumeState::Failed(e.to_string());
                volumes.put(record).map_err(internal)?;
                Err(NodeError::Internal(format!(
                    "create {}: {e}",
                    spec.volume_id
                )))
            }
        }
    }

    pub(super) async fn volume_delete(&self, volume_id: &str) -> Result<(), NodeError> {
        if let Some(export) = self
            .shared
            .exports
            .as_ref()
            .and_then(|exports| exports.get(volume_id))
        {
            return Err(NodeError::Conflict(format!(
                "{volume_id} is exported to {}",
                export.observed.node_id
            )));
        }
        let volumes = &self.shared.volumes;
        let _ops = volumes.lock_ops().await;
        let Some(mut record) = volumes.get(volume_id) else {
            return Ok(());
        };
        if let Some(instance) = record.instance() {
            return Err(NodeError::Conflict(format!(
                "{volume_id} is attached to {instance}"
            )));
        }
        if record.remote.is_some() {
            // Its data is the storage host's: only the record goes.
            self.shared.nbd_relays.remove(volume_id);
            volumes.remove(volume_id).map_err(internal)?;
            tracing::info!(volume = %volume_id, "remote volume forgotten");
            return Ok(());
        }
        self.snapshots.abort_creation(volume_id).await;
        let record_source = record.source.clone();
        record.state = VolumeState::Deleting;
        volumes.put(record).map_err(internal)?;
        volumes
            .backend()
            .delete(volume_id)
            .await
            .map_err(|e| NodeError::Internal(format!("delete {volume_id}: {e}")))?;
        volumes.remove(volume_id).map_err(internal)?;
        tracing::info!(volume = %volume_id, "volume deleted");
        if let Some(source) = &record_source {
            // The snapshot's data goes with the last volume made from it.
            let still_used = volumes.all().iter().any(|r| {
                r.source
                    .as_ref()
                    .is_some_and(|s| s.snapshot_id == source.snapshot_id)
            });
            if !still_used && let Err(e) = volumes.backend().forget_snapshot(source).await {
                tracing::warn!(volume = %volume_id, snapshot = %source.snapshot_id, error = %e, "could not remove the snapshot's data");
            }
        }
        Ok(())
    }

    pub(super) async fn volume_attach(
        &self,
        instance_id: &str,
        attachment: VolumeAttachment,
    ) -> Result<ObservedVolume, NodeError> {
        let volume_id = attachment.volume_id.clone();
        let volumes = &self.shared.volumes;
        // A snapshot reading the volume's file finishes first.
        let _data = volumes.lock_volume(&volume_id).await;
        let _ops = volumes.lock_ops().await;
        let previous = volumes
            .get(&volume_id)
            .ok_or_else(|| NodeError::NotFound(volume_id.clone()))?;
        match &previous.state {
            VolumeState::Available => {}
            VolumeState::InUse {
                instance_id: held,
                device,
                ..
            } if held == instance_id && *device == attachment.device => {
                return Ok(previous.observed());
            }
            state => {
                let why = match previous.instance() {
                    Some(other) => format!("attached to {other}"),
                    None => format!("{state:?}"),
                };
                return Err(NodeError::Conflict(format!(
                    "{volume_id} is not available ({why})"
                )));
            }
        }
        let handle = self
            .handle(instance_id)
            .ok_or_else(|| NodeError::NotFound(instance_id.to_owned()))?;
        let mut record = previous.clone();
        record.generation = record.generation.max(attachment.generation);
        record.state = VolumeState::Attaching {
            instance_id: instance_id.to_owned(),
        };
        volumes.put(record.clone()).map_err(internal)?;
        let attached = AttachedVolume {
            volume_id: volume_id.clone(),
            device: attachment.device.clone(),
            generation: attachment.generation,
        };
        let result = match handle.attach_volume(attached).await {
            Ok(result) => result,
            Err(instance::Gone) => Err(NodeError::NotFound(instance_id.to_owned())),
        };
        if let Err(e) = result {
            volumes.put(previous).map_err(internal)?;
            return Err(e);
        }
        record.state = VolumeState::InUse {
            instance_id: instance_id.to_owned(),
            device: attachment.device,
            guest_device: guest_device(&volume_id),
        };
        volumes.put(record.clone()).map_err(internal)?;
        Ok(record.observed())
    }

    pub(super) async fn volume_detach(
        &self,
        instance_id: &str,
        volume_id: &str,
        force: bool,
    ) -> Result<ObservedVolume, NodeError> {
        let volumes = &self.shared.volumes;
        if self
            .handle(instance_id)
            .and_then(|h| h.snapshot().root)
            .is_some_and(|(root, _)| root == volume_id)
        {
            return Err(NodeError::Conflict(format!(
                "{volume_id} is the root volume of {instance_id}; it goes with the instance"
            )));
        }
        // A snapshot being captured through the VM finishes first.
        let _data = volumes.lock_volume(volume_id).await;
        let _ops = volumes.lock_ops().await;
        let previous = volumes
            .get(volume_id)
            .ok_or_else(|| NodeError::NotFound(volume_id.to_owned()))?;
        match previous.instance() {
            // Not attached: nothing to do.
            None => return Ok(previous.observed()),
            Some(other) if other != instance_id => {
                return Err(NodeError::Conflict(format!(
                    "{volume_id} is attached to {other}, not {instance_id}"
                )));
            }
            Some(_) => {}
        }
        let mut record = previous.clone();
        record.state = VolumeState::Detaching {
            instance_id: instance_id.to_owned(),
        };
        volumes.put(record.clone()).map_err(internal)?;
        // An instance gone from the node holds no volume.
        if let Some(handle) = self.handle(instance_id)
            && let Ok(Err(e)) = handle.detach_volume(volume_id, force).await
        {
            volumes.put(previous).map_err(internal)?;
            return Err(e);
        }
        record.state = VolumeState::Available;
        volumes.put(record.clone()).map_err(internal)?;
        Ok(record.observed())
    }

    pub(super) async fn volume_export(
        &self,
        spec: ExportSpec,
    ) -> Result<ObservedExport, NodeError> {
        let Some(exports) = &self.shared.exports else {
            return Err(NodeError::BadRequest(format!(
                "{} is a compute node: it exports no volumes ({} stays unexported)",
                self.node_id, spec.volume_id
            )));
        };
        if !valid_id(&spec.volume_id) {
            return Err(NodeError::BadRequest(format!(
                "bad volume id {:?}",
                spec.volume_id
            )));
        }
        let volumes = &self.shared.volumes;
        // No snapshot reads the file while its daemon opens it.
        let _data = volumes.lock_volume(&spec.volume_id).await;
        let record = volumes
            .get(&spec.volume_id)
            .ok_or_else(|| NodeError::NotFound(spec.volume_id.clone()))?;
        if record.state != VolumeState::Available || record.remote.is_some() {
            return Err(NodeError::Conflict(format!(
                "{} cannot be exported while {:?}",
                spec.volume_id, record.state
            )));
        }
        let disk = volumes.backend().disk(&spec.volume_id);
        match exports
            .export(&spec.volume_id, &disk.path, &spec.node_id)
            .await
        {
            Ok(export) => {
                tracing::info!(volume = %spec.volume_id, node = %spec.node_id, port = export.observed.export.port, "volume exported");
                Ok(export.observed)
            }
            Err(e @ mallee_storage::ExportError::Conflict { .. }) => {
                Err(NodeError::Conflict(e.to_string()))
            }
            Err(e @ mallee_storage::ExportError::InvalidName(_)) => {
                Err(NodeError::BadRequest(e.to_string()))
            }
            Err(e) => Err(NodeError::Internal(format!(
                "export {}: {e}",
                spec.volume_id
            ))),
        }
    }

    pub(super) async fn volume_unexport(&self, volume_id: &str) -> Result<(), NodeError> {
        let Some(exports) = &self.shared.exports else {
            return Ok(());
        };
        if !valid_id(volume_id) {
            return Ok(());
        }
        let _data = self.shared.volumes.lock_volume(volume_id).await;
        let was = exports.get(volume_id).is_some();
        exports
            .unexport(volume_id)
            .await
            .map_err(|e| NodeError::Internal(format!("end the export of {volume_id}: {e}")))?;
        if was {
            tracing::info!(volume = %volume_id, "volume export ended");
        }
        Ok(())
    }

    /// Grows `held` to `spec`'s size, in the file itself: only while
    /// nothing has it open (neither a VM of this node nor an export; the
    /// controller asks once the volume is detached).
    async fn grow_volume(
        &self,
        mut held: VolumeRecord,
        spec: &VolumeSpec,
    ) -> Result<ObservedVolume, NodeError> {
        let id = &spec.volume_id;
        let exported = self
            .shared
            .exports
            .as_ref()
            .is_some_and(|exports| exports.get(id).is_some());
        if exported || held.instance().is_some() {
            return Err(NodeError::Conflict(format!(
                "{id} is open (attached or exported); it grows once detached"
            )));
        }
        self.shared
            .volumes
            .backend()
            .grow(id, spec.size_gib)
            .await
            .map_err(|e| NodeError::Internal(format!("grow {id}: {e}")))?;
        held.size_gib = spec.size_gib;
        held.generation = held.generation.max(spec.generation);
        self.shared.volumes.put(held.clone()).map_err(internal)?;
        tracing::info!(volume = %id, size_gib = spec.size_gib, "volume grown");
        Ok(held.observed())
    }

    /// Records a volume whose data a storage host exports to this node
    /// (see [`crate::volumes`]): available at once, nothing created, the
    /// relay to the export started. Repeating it changes nothing; an
    /// export that moved (another address or port) is recorded, unless
    /// the spec is older than the record. The relay takes the new address
    /// at once; a VM using the volume keeps its connection, and reaches
    /// the new address when it reconnects (the old server is gone) or at
    /// its next attachment or start.
    async fn put_remote_volume(
        &self,
        spec: &VolumeSpec,
        export: &mallee_node_api::NbdExport,
    ) -> Result<ObservedVolume, NodeError> {
        check_export(export)
            .map_err(|e| NodeError::BadRequest(format!("{}: {e}", spec.volume_id)))?;
        if spec.source.is_some() {
            return Err(NodeError::BadRequest(format!(
                "{} is exported by a storage host: it is not created from a snapshot here",
                spec.volume_id
            )));
        }
        let volumes = &self.shared.volumes;
        let _ops = volumes.lock_ops().await;
        let held = volumes.get(&spec.volume_id);
        if let Some(held) = &held {
            check_put(held, spec)?;
        }
        let record = match held {
            None => volumes.new_remote_record(
                &spec.volume_id,
                spec.size_gib,
                spec.generation,
                export.clone(),
            ),
            Some(held) if spec.generation < held.generation => return Ok(held.observed()),
            Some(mut held) => {
                held.generation = spec.generation;
                // The storage host grew the data (ModifyVolume).
                held.size_gib = held.size_gib.max(spec.size_gib);
                if held.remote.as_ref() != Some(export) {
                    tracing::info!(volume = %spec.volume_id, host = %export.host, port = export.port,
                        attached = held.instance().is_some(), "the volume's export moved");
                    held.set_export(export.clone());
                }
                held
            }
        };
        self.shared
            .nbd_relays
            .ensure(&spec.volume_id, export)
            .map_err(|e| {
                NodeError::Internal(format!("relay to the export of {}: {e}", spec.volume_id))
            })?;
        if volumes.get(&spec.volume_id).as_ref() != Some(&record) {
            volumes.put(record.clone()).map_err(internal)?;
            tracing::info!(volume = %spec.volume_id, host = %export.host, port = export.port,
                server = %export.server_node_id, "remote volume recorded");
        }
        Ok(record.observed())
    }

    /// Makes `root` (a volume of this node) the root disk of the instance
    /// of `spec`. Refused with a [`NodeError::Conflict`] (the controller
    /// retries) while the volume is missing, being created, or held by
    /// something else.
    pub(super) async fn claim_root(
        &self,
        spec: &InstanceSpec,
        root: &str,
    ) -> Result<(), NodeError> {
        if !valid_id(root) {
            return Err(NodeError::BadRequest(format!(
                "bad root volume id {root:?}"
            )));
        }
        if let Some(held) = self
            .handle(&spec.instance_id)
            .and_then(|h| h.snapshot().root)
            && held.0 != root
        {
            return Err(NodeError::BadRequest(format!(
                "{} boots from {}, not {root}",
                spec.instance_id, held.0
            )));
        }
        let volumes = &self.shared.volumes;
        let _ops = volumes.lock_ops().await;
        let mut record = volumes.get(root).ok_or_else(|| {
            NodeError::Conflict(format!(
                "the root volume {root} of {} is not on this node",
                spec.instance_id
            ))
        })?;
        match &record.state {
            VolumeState::Available => {
                record.state = VolumeState::InUse {
                    instance_id: spec.instance_id.clone(),
                    device: spec.metadata.root_device_name.clone(),
                    guest_device: ROOT_GUEST_DEVICE.to_owned(),
                };
                volumes.put(record).map_err(internal)?;
                tracing::info!(instance = %spec.instance_id, volume = %root, "root volume claimed");
                Ok(())
            }
            VolumeState::InUse { instance_id, .. } if *instance_id == spec.instance_id => Ok(()),
            state => Err(NodeError::Conflict(format!(
                "the root volume {root} of {} is not available ({state:?})",
                spec.instance_id
            ))),
        }
    }
}

/// Refuses a volume spec that cannot apply to the record held: another
/// kind (local or remote), another size, or a deletion under way.
fn check_put(held: &VolumeRecord, spec: &VolumeSpec) -> Result<(), NodeError> {
    let id = &spec.volume_id;
    let why = match (&held.remote, &spec.remote) {
        (Some(_), None) => format!("{id} is a storage host's volume here, not a local one"),
        (None, Some(_)) => format!("{id} is a local volume of this node"),
        // A larger size grows the volume (ModifyVolume); none shrinks it.
        _ if held.size_gib > spec.size_gib => format!(
            "{id} exists with {} GiB, not {}",
            held.size_gib, spec.size_gib
        ),
        _ if held.state == VolumeState::Deleting => format!("{id} is being deleted"),
        _ => return Ok(()),
    };
    Err(NodeError::Conflict(why))
}
