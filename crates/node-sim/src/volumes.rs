//! Volumes of the simulated node, with the real agent's rules
//! (`crates/node/src/agent.rs` and `volumes.rs`): sizes 1..=16384 GiB, a
//! repeated spec changes nothing but a higher generation, a different size
//! is a conflict, an attached volume cannot be deleted, attachments are
//! kept across stop/start and agent outages, a root volume goes with its
//! instance.
//!
//! A volume's content is a small byte string standing for its disk: a new
//! empty volume holds a 512-byte label naming it (as if formatted), a
//! volume created from a snapshot holds exactly the snapshot's data, and
//! tests may write into it. Snapshots upload that content, so data goes
//! volume → snapshot → volume byte for byte.

use bytes::Bytes;
use mallee_node_api::{
    DiskFormat, NodeError, ObservedVolume, SnapshotSource, VolumeAttachment, VolumeSpec,
    VolumeState,
};

use crate::SimError;
use crate::instances::{root_volume, volume_holder};
use crate::state::{Effect, Process, State, Volume, valid_id};

/// Largest volume, in GiB (as the real agent).
pub const MAX_SIZE_GIB: u64 = 16384;
/// Bytes of the label a new empty volume holds.
const LABEL_BYTES: usize = 512;
const GIB: u64 = 1024 * 1024 * 1024;
/// The qcow2 magic.
const QCOW2_MAGIC: &[u8] = b"QFI\xfb";

/// Where a guest with udev finds a volume (the virtio serial is the
/// volume id without `-`, 20 bytes at most).
pub(crate) fn guest_device(volume_id: &str) -> String {
    let serial: String = volume_id.chars().filter(|c| *c != '-').take(20).collect();
    format!("/dev/disk/by-id/virtio-{serial}")
}

/// The content of a new empty volume.
fn label(volume_id: &str, size_gib: u64) -> Vec<u8> {
    let mut data = format!("mallee-sim volume {volume_id} {size_gib} GiB\n").into_bytes();
    data.resize(LABEL_BYTES, 0);
    data
}

/// Checks snapshot data a volume of `size_gib` is created from, as the
/// real agent's `qemu-img info` does: a qcow2 image must be one (and name
/// no backing file), and no disk may be larger than the volume.
fn check_image(data: &[u8], format: DiskFormat, size_gib: u64) -> Result<(), String> {
    let size = size_gib.saturating_mul(GIB);
    let virtual_size = match format {
        DiskFormat::Raw => data.len() as u64,
        DiskFormat::Qcow2 => {
            let field = |at: usize| {
                data.get(at..at + 8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
            };
            let (Some(backing), Some(virtual_size)) = (field(8), field(24)) else {
                return Err("the snapshot data is not a qcow2 image: too short".into());
            };
            if !data.starts_with(QCOW2_MAGIC) {
                return Err("the snapshot data is not a qcow2 image: no qcow2 magic".into());
            }
            if backing != 0 {
                return Err(
                    "the snapshot data names another file (a backing file); refused".into(),
                );
            }
            virtual_size
        }
    };
    if virtual_size > size {
        return Err(format!(
            "the snapshot's disk is {virtual_size} bytes, larger than the {size_gib} GiB volume"
        ));
    }
    Ok(())
}

impl Volume {
    pub fn observed(&self) -> ObservedVolume {
        ObservedVolume {
            volume_id: self.volume_id.clone(),
            state: self.state.clone(),
            size_gib: self.size_gib,
            generation: self.generation,
            export: None,
            remote: false,
        }
    }
}

impl State {
    pub fn put_volume(&mut self, spec: VolumeSpec) -> Result<ObservedVolume, NodeError> {
        if !valid_id(&spec.volume_id) {
            return Err(NodeError::BadRequest(format!(
                "bad volume id {:?}",
                spec.volume_id
            )));
        }
        if !(1..=MAX_SIZE_GIB).contains(&spec.size_gib) {
            return Err(NodeError::BadRequest(format!(
                "volume size must be 1..={MAX_SIZE_GIB} GiB, got {}",
                spec.size_gib
            )));
        }
        let id = spec.volume_id.clone();
        if let Some(held) = self.volumes.get_mut(&id) {
            if held.size_gib != spec.size_gib {
                return Err(NodeError::Conflict(format!(
                    "{id} exists with {} GiB, not {}",
                    held.size_gib, spec.size_gib
                )));
            }
            if held.state == VolumeState::Deleting {
                return Err(NodeError::Conflict(format!("{id} is being deleted")));
            }
            if held.state == VolumeState::Creating && held.creation.is_some() {
                return Ok(held.observed());
            }
            if !matches!(held.state, VolumeState::Creating | VolumeState::Failed(_)) {
                held.generation = held.generation.max(spec.generation);
                return Ok(held.observed());
            }
            // Creating (interrupted) or failed: create again.
            held.generation = held.generation.max(spec.generation);
            held.state = VolumeState::Creating;
            held.source = spec.source.clone();
        } else {
            self.volumes.insert(
                id.clone(),
                Volume {
                    volume_id: id.clone(),
                    size_gib: spec.size_gib,
                    generation: spec.generation,
                    state: VolumeState::Creating,
                    source: spec.source.clone(),
                    data: Vec::new(),
                    format: DiskFormat::Raw,
                    guest_keeps: false,
                    creation: None,
                },
            );
        }
        if spec.source.is_some() {
            self.start_creation(&id);
        } else if let Some(volume) = self.volumes.get_mut(&id) {
            volume.data = label(&id, volume.size_gib);
            volume.format = DiskFormat::Raw;
            volume.state = VolumeState::Available;
        }
        self.volumes
            .get(&id)
            .map(Volume::observed)
            .ok_or_else(|| NodeError::Internal(format!("{id} vanished")))
    }

    /// Starts filling a volume recorded `creating` from its snapshot.
    pub(crate) fn start_creation(&mut self, volume_id: &str) {
        if !self.up {
            return;
        }
        let token = self.token();
        let Some(volume) = self.volumes.get_mut(volume_id) else {
            return;
        };
        let Some(source) = volume.source.clone() else {
            return;
        };
        volume.creation = Some(token);
        self.effects.push(Effect::Create {
            volume_id: volume_id.to_owned(),
            token,
            source,
        });
    }

    /// A creation from a snapshot ended with its data (or why not).
    pub fn creation_done(&mut self, volume_id: &str, token: u64, data: Result<Bytes, String>) {
        let Some(volume) = self
            .volumes
            .get_mut(volume_id)
            .filter(|v| v.creation == Some(token) && v.state == VolumeState::Creating)
        else {
            return;
        };
        volume.creation = None;
        let format = volume
            .source
            .as_ref()
            .map_or(DiskFormat::Raw, |s: &SnapshotSource| s.format);
        let checked =
            data.and_then(|d| check_image(&d, format, volume.size_gib).map(|()| d.to_vec()));
        match checked {
            Ok(data) => {
                volume.data = data;
                volume.format = format;
                volume.state = VolumeState::Available;
            }
            Err(reason) => volume.state = VolumeState::Failed(reason),
        }
    }

    pub fn delete_volume(&mut self, volume_id: &str) -> Result<(), NodeError> {
        let Some(volume) = self.volumes.get(volume_id) else {
            return Ok(());
        };
        if let Some(instance) = volume_holder(&volume.state) {
            return Err(NodeError::Conflict(format!(
                "{volume_id} is attached to {instance}"
            )));
        }
        self.cancels.extend(volume.creation);
        self.volumes.remove(volume_id);
        Ok(())
    }

    pub fn attach_volume(
        &mut self,
        instance_id: &str,
        attachment: VolumeAttachment,
    ) -> Result<ObservedVolume, NodeError> {
        let volume_id = attachment.volume_id.clone();
        let volume = self
            .volumes
            .get(&volume_id)
            .ok_or_else(|| NodeError::NotFound(volume_id.clone()))?;
        match &volume.state {
            VolumeState::Available => {}
            VolumeState::InUse {
                instance_id: held,
                device,
                ..
            } if held == instance_id && *device == attachment.device => {
                return Ok(volume.observed());
            }
            state => {
                let why = match volume_holder(state) {
                    Some(other) => format!("attached to {other}"),
                    None => format!("{state:?}"),
                };
                return Err(NodeError::Conflict(format!(
                    "{volume_id} is not available ({why})"
                )));
            }
        }
        let vm = self
            .instances
            .get_mut(instance_id)
            .ok_or_else(|| NodeError::NotFound(instance_id.to_owned()))?;
        if let Some(other) = vm.volumes.iter().find(|v| v.device == attachment.device) {
            return Err(NodeError::Conflict(format!(
                "device {} of {instance_id} is already in use by {}",
                attachment.device, other.volume_id
            )));
        }
        vm.volumes.push(attachment.clone());
        let live = vm.process == Process::Running && vm.op.is_none();
        if live {
            vm.console_line(&format!(
                "[sim] {instance_id}: virtio disk {} attached",
                guest_device(&volume_id)
            ));
        }
        let volume = self
            .volumes
            .get_mut(&volume_id)
            .ok_or_else(|| NodeError::NotFound(volume_id.clone()))?;
        volume.generation = volume.generation.max(attachment.generation);
        volume.state = VolumeState::InUse {
            instance_id: instance_id.to_owned(),
            device: attachment.device,
            guest_device: guest_device(&volume_id),
        };
        Ok(volume.observed())
    }

    pub fn detach_volume(
        &mut self,
        instance_id: &str,
        volume_id: &str,
        force: bool,
    ) -> Result<ObservedVolume, NodeError> {
        if self
            .instances
            .get(instance_id)
            .and_then(|vm| root_volume(&vm.spec))
            == Some(volume_id)
        {
            return Err(NodeError::Conflict(format!(
                "{volume_id} is the root volume of {instance_id}; it goes with the instance"
            )));
        }
        let volume = self
            .volumes
            .get(volume_id)
            .ok_or_else(|| NodeError::NotFound(volume_id.to_owned()))?;
        match volume_holder(&volume.state) {
            None => return Ok(volume.observed()),
            Some(other) if other != instance_id => {
                return Err(NodeError::Conflict(format!(
                    "{volume_id} is attached to {other}, not {instance_id}"
                )));
            }
            Some(_) => {}
        }
        let guest_keeps = volume.guest_keeps;
        // An instance gone from the node holds no volume.
        if let Some(vm) = self.instances.get_mut(instance_id)
            && vm.volumes.iter().any(|v| v.volume_id == volume_id)
        {
            if vm.op.is_some() {
                return Err(NodeError::Conflict(format!(
                    "instance {instance_id} is starting or stopping; retry the detachment"
                )));
            }
            if vm.process == Process::Running {
                if guest_keeps && !force {
                    return Err(NodeError::Conflict(format!(
                        "the guest did not release {volume_id} within 10 s (is it mounted?); detach again, or force"
                    )));
                }
                vm.console_line(&format!(
                    "[sim] {instance_id}: virtio disk {} removed",
                    guest_device(volume_id)
                ));
            }
            vm.volumes.retain(|v| v.volume_id != volume_id);
        }
        let volume = self
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| NodeError::NotFound(volume_id.to_owned()))?;
        volume.state = VolumeState::Available;
        Ok(volume.observed())
    }

    /// Writes `data` at `offset` into a volume's raw content.
    pub fn write_volume(
        &mut self,
        volume_id: &str,
        offset: u64,
        data: &[u8],
    ) -> Result<(), SimError> {
        let volume = self
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| SimError::NoSuchVolume(volume_id.to_owned()))?;
        if volume.format != DiskFormat::Raw {
            return Err(SimError::NotRaw(volume_id.to_owned()));
        }
        let end = offset.saturating_add(data.len() as u64);
        let past_end = || SimError::PastEnd {
            volume_id: volume_id.to_owned(),
            end,
        };
        if end > volume.size_gib.saturating_mul(GIB) {
            return Err(past_end());
        }
        let start = usize::try_from(offset).map_err(|_| past_end())?;
        let end = usize::try_from(end).map_err(|_| past_end())?;
        if volume.data.len() < end {
            volume.data.resize(end, 0);
        }
        volume.data[start..end].copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_checked_like_qemu_img_info() {
        assert_eq!(check_image(&[1; 100], DiskFormat::Raw, 1), Ok(()));
        let mut qcow2 = b"QFI\xfb\0\0\0\x03".to_vec();
        qcow2.extend_from_slice(&0u64.to_be_bytes());
        qcow2.extend_from_slice(&[0; 8]);
        qcow2.extend_from_slice(&(2 * GIB).to_be_bytes());
        assert_eq!(check_image(&qcow2, DiskFormat::Qcow2, 2), Ok(()));
        let err = check_image(&qcow2, DiskFormat::Qcow2, 1).expect_err("too large");
        assert!(err.contains("larger than the 1 GiB volume"), "{err}");
        qcow2[15] = 1;
        let err = check_image(&qcow2, DiskFormat::Qcow2, 2).expect_err("backing file");
        assert!(err.contains("backing file"), "{err}");
        let err = check_image(&[0; 64], DiskFormat::Qcow2, 2).expect_err("not qcow2");
        assert!(err.contains("not a qcow2 image"), "{err}");
    }

    #[test]
    fn guest_device_is_the_virtio_serial() {
        assert_eq!(
            guest_device("vol-0123456789abcdef0"),
            "/dev/disk/by-id/virtio-vol0123456789abcdef0"
        );
    }
}
