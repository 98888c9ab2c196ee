//! Block device mappings as a launch turns them into volumes: device names
//! and slots, and the EBS volumes each instance of an image gets (the
//! image's mappings overridden by the request's).

use crate::volumes::model::VolumeSource;
use mallee_store::ImageBlockDevice;

use super::actions::snapshot_source;
use crate::images::LaunchImage;
use crate::{Cloud, CloudError, Principal};

/// The data-volume slot of `device` (`/dev/sdf`–`/dev/sdp` or
/// `/dev/xvdf`–`/dev/xvdp`), `f`–`p`.
pub fn device_slot(device: &str) -> Option<char> {
    let rest = device
        .strip_prefix("/dev/sd")
        .or_else(|| device.strip_prefix("/dev/xvd"))?;
    let mut chars = rest.chars();
    match (chars.next(), chars.next()) {
        (Some(c @ 'f'..='p'), None) => Some(c),
        _ => None,
    }
}

/// Whether `name` is a device name (`/dev/sda1`, `/dev/xvdf`, `/dev/vdb`).
pub fn is_device_name(name: &str) -> bool {
    name.strip_prefix("/dev/").is_some_and(|n| {
        n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.len() <= 16
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Whether two device names denote the same disk slot (`/dev/sda1` and
/// `/dev/sda`, `/dev/sdf` and `/dev/xvdf`).
pub fn same_device(a: &str, b: &str) -> bool {
    fn slot(name: &str) -> &str {
        let rest = name
            .strip_prefix("/dev/xvd")
            .or_else(|| name.strip_prefix("/dev/sd"))
            .or_else(|| name.strip_prefix("/dev/vd"))
            .unwrap_or(name);
        rest.trim_end_matches(|c: char| c.is_ascii_digit())
    }
    a == b || slot(a) == slot(b)
}

/// Refuses an EBS mapping that names neither a snapshot nor a size (only
/// a launch may, to change a mapping of its image).
pub fn require_source(m: &ImageBlockDevice) -> Result<(), CloudError> {
    if m.virtual_name.is_none()
        && !m.no_device
        && m.snapshot_id.is_none()
        && m.volume_size_gib.is_none()
    {
        return Err(CloudError::Missing(format!(
            "The mapping of {} needs Ebs.SnapshotId or Ebs.VolumeSize.",
            m.device_name
        )));
    }
    Ok(())
}

/// One EBS volume an instance gets at launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchVolume {
    /// Device name (`/dev/sda1`, `/dev/sdf`).
    pub device: String,
    /// Size in GiB.
    pub size_gib: i64,
    /// Deleted when the instance terminates.
    pub delete_on_termination: bool,
    /// Volume type.
    pub volume_type: String,
    /// Snapshot data it starts from.
    pub source: Option<VolumeSource>,
    /// The instance's root volume (it boots from it).
    pub boot: bool,
}

/// The EBS volumes each instance of `image` gets: the image's mappings,
/// overridden device by device by the request's (`NoDevice` drops one, a
/// size grows one, `DeleteOnTermination` changes), plus the request's new
/// ones. Snapshots must be the caller's to restore, and completed.
pub async fn launch_volumes(
    cloud: &Cloud,
    caller: &Principal,
    image: &LaunchImage,
    requested: &[ImageBlockDevice],
) -> Result<Vec<LaunchVolume>, CloudError> {
    let mut volumes: Vec<LaunchVolume> = Vec::new();
    for (mapping, source) in &image.ebs_mappings {
        if mapping.virtual_name.is_some() || mapping.no_device {
            continue;
        }
        let boot = same_device(&mapping.device_name, &image.root_device_name);
        // RegisterImage records every snapshot mapping's size.
        let size_gib = mapping.volume_size_gib.unwrap_or(1);
        volumes.push(LaunchVolume {
            device: mapping.device_name.clone(),
            size_gib,
            delete_on_termination: mapping.delete_on_termination,
            volume_type: mapping.volume_type.clone().unwrap_or_else(|| "gp2".into()),
            source: source.clone(),
            boot,
        });
    }
    for m in requested {
        let existing = volumes
            .iter()
            .position(|v| same_device(&v.device, &m.device_name));
        let is_root = same_device(&m.device_name, &image.root_device_name);
        if m.virtual_name.is_some() {
            // Instance-store volumes: this cloud's instance types have
            // none, as on EC2's EBS-only types, where such mappings are
            // ignored.
            continue;
        }
        if m.no_device {
            match existing {
                Some(_) if is_root => {
                    return Err(CloudError::Invalid(format!(
                        "The root device {} cannot be suppressed.",
                        m.device_name
                    )));
                }
                Some(index) => {
                    volumes.remove(index);
                }
                None => {}
            }
            continue;
        }
        if is_root && !image.ebs_backed() {
            return Err(CloudError::Invalid(format!(
                "The root device {} of the instance-store image {} cannot be an EBS volume.",
                m.device_name, image.image_id
            )));
        }
        let mut snapshot_gib = 1;
        let source = match &m.snapshot_id {
            None => None,
            Some(id) => {
                let (source, size_gib) = snapshot_source(cloud, caller, id, |state| {
                    format!("Snapshot {id} is in invalid state - {state}")
                })
                .await?;
                snapshot_gib = size_gib;
                Some(source)
            }
        };
        let mut volume = match existing {
            Some(index) => volumes.remove(index),
            None => {
                require_source(m)?;
                if device_slot(&m.device_name).is_none() {
                    return Err(CloudError::Invalid(format!(
                        "Invalid device name {}: data volumes use /dev/sdf to /dev/sdp (or /dev/xvdf to /dev/xvdp).",
                        m.device_name
                    )));
                }
                LaunchVolume {
                    device: m.device_name.clone(),
                    size_gib: 0,
                    delete_on_termination: true,
                    volume_type: "gp2".into(),
                    source: None,
                    boot: false,
                }
            }
        };
        if source.is_some() {
            volume.source = source;
        }
        // Volumes only grow: at least the snapshot's size, and at least the
        // image mapping's size when overriding one.
        let smallest = snapshot_gib.max(volume.size_gib);
        let size_gib = m.volume_size_gib.unwrap_or(smallest);
        if size_gib < smallest {
            return Err(CloudError::Invalid(format!(
                "Volume of size {size_gib}GiB for {} is smaller than its snapshot, expect size >= {smallest}GiB",
                m.device_name
            )));
        }
        volume.size_gib = size_gib;
        volume.delete_on_termination = m.delete_on_termination;
        if let Some(t) = &m.volume_type {
            volume.volume_type.clone_from(t);
        }
        volumes.push(volume);
    }
    if image.ebs_backed() && !volumes.iter().any(|v| v.boot) {
        return Err(CloudError::Invalid(format!(
            "The image {} has no root volume mapping for {}.",
            image.image_id, image.root_device_name
        )));
    }
    // The root first: it is the instance's first disk.
    volumes.sort_by_key(|v| !v.boot);
    Ok(volumes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_slots() {
        assert_eq!(device_slot("/dev/sdf"), Some('f'));
        assert_eq!(device_slot("/dev/xvdp"), Some('p'));
        for bad in [
            "/dev/sda1",
            "/dev/sde",
            "/dev/sdq",
            "/dev/sdff",
            "sdf",
            "/dev/vdb",
        ] {
            assert_eq!(device_slot(bad), None, "{bad}");
        }
    }
}
