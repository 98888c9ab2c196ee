//! Block device mappings as RegisterImage, RunInstances and CreateImage
//! take them (`BlockDeviceMapping.N.DeviceName`, `.Ebs.SnapshotId`,
//! `.Ebs.VolumeSize`, `.Ebs.DeleteOnTermination`, `.Ebs.VolumeType`,
//! `.VirtualName`, `.NoDevice`) and as DescribeImages shows them.

use mallee_node_api::SnapshotSource;
use mallee_store::ImageBlockDevice;

use crate::api::query::QueryParams;
use crate::api::xml::XmlWriter;
use crate::compute::snapshots::SnapshotStatus;

use super::images::LaunchImage;
use super::snapshots::validate_snapshot_id;
use super::{Ec2Context, Ec2Error};

/// Largest EBS volume (GiB).
const MAX_SIZE_GIB: i64 = 16384;

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

/// Reads `BlockDeviceMapping.N`. Each entry names a device and either an
/// EBS volume (from a snapshot, or empty with a size), an instance-store
/// volume (`VirtualName` `ephemeralN`) or `NoDevice`.
pub fn parse(params: &QueryParams) -> Result<Vec<ImageBlockDevice>, Ec2Error> {
    let mut mappings: Vec<ImageBlockDevice> = Vec::new();
    for entry in params.structs("BlockDeviceMapping")? {
        let device_name = entry.required_non_empty("DeviceName")?.to_owned();
        if !is_device_name(&device_name) {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Invalid device name {device_name}"
            )));
        }
        if mappings
            .iter()
            .any(|m| same_device(&m.device_name, &device_name))
        {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "The device name {device_name} is used more than once."
            )));
        }
        let snapshot_id = entry
            .get("Ebs.SnapshotId")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if let Some(id) = &snapshot_id {
            validate_snapshot_id(id)?;
        }
        let volume_size_gib = entry.int("Ebs.VolumeSize")?;
        if let Some(size) = volume_size_gib
            && !(1..=MAX_SIZE_GIB).contains(&size)
        {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Volume of {size}GiB is not in the range 1 to {MAX_SIZE_GIB}GiB."
            )));
        }
        let volume_type = entry
            .get("Ebs.VolumeType")
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if let Some(t) = &volume_type
            && !["standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"].contains(&t.as_str())
        {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({t}) for parameter volumeType is invalid."
            )));
        }
        if entry.bool("Ebs.Encrypted")? == Some(true) {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                "Encrypted volumes are not supported by this cloud.",
            ));
        }
        let ebs = entry.names().any(|n| n.starts_with("Ebs."));
        let virtual_name = entry
            .get("VirtualName")
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let no_device = entry.get("NoDevice").is_some();
        if usize::from(ebs) + usize::from(virtual_name.is_some()) + usize::from(no_device) != 1 {
            return Err(Ec2Error::InvalidParameterCombination(format!(
                "The mapping of {device_name} must give exactly one of Ebs, VirtualName and NoDevice."
            )));
        }
        mappings.push(ImageBlockDevice {
            device_name,
            snapshot_id,
            volume_size_gib,
            delete_on_termination: entry.bool("Ebs.DeleteOnTermination")?.unwrap_or(true),
            volume_type,
            virtual_name,
            no_device,
        });
    }
    Ok(mappings)
}

/// Refuses an EBS mapping that names neither a snapshot nor a size (only
/// a launch may, to change a mapping of its image).
pub fn require_source(m: &ImageBlockDevice) -> Result<(), Ec2Error> {
    if m.virtual_name.is_none()
        && !m.no_device
        && m.snapshot_id.is_none()
        && m.volume_size_gib.is_none()
    {
        return Err(Ec2Error::refused(
            "MissingParameter",
            format!(
                "The mapping of {} needs Ebs.SnapshotId or Ebs.VolumeSize.",
                m.device_name
            ),
        ));
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
    pub source: Option<SnapshotSource>,
    /// The instance's root volume (it boots from it).
    pub boot: bool,
}

/// The EBS volumes each instance of `image` gets: the image's mappings,
/// overridden device by device by the request's (`NoDevice` drops one, a
/// size grows one, `DeleteOnTermination` changes), plus the request's new
/// ones. Snapshots must be the caller's to restore, and completed.
pub async fn launch_volumes(
    ctx: &Ec2Context<'_>,
    image: &LaunchImage,
    requested: &[ImageBlockDevice],
) -> Result<Vec<LaunchVolume>, Ec2Error> {
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
                    return Err(Ec2Error::InvalidParameterValue(format!(
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
            return Err(Ec2Error::InvalidParameterValue(format!(
                "The root device {} of the instance-store image {} cannot be an EBS volume.",
                m.device_name, image.image_id
            )));
        }
        let mut snapshot_gib = 1;
        let source = match &m.snapshot_id {
            None => None,
            Some(id) => {
                let snapshot = super::snapshots::load_restorable(ctx, id).await?;
                let Some(source) = snapshot
                    .source()
                    .filter(|_| snapshot.status == SnapshotStatus::Completed)
                else {
                    return Err(Ec2Error::refused(
                        "IncorrectState",
                        format!(
                            "Snapshot {id} is in invalid state - {}",
                            snapshot.status.name()
                        ),
                    ));
                };
                snapshot_gib = snapshot.record.volume_size_gib;
                Some(source)
            }
        };
        let mut volume = match existing {
            Some(index) => volumes.remove(index),
            None => {
                require_source(m)?;
                if super::volumes::device_slot(&m.device_name).is_none() {
                    return Err(Ec2Error::InvalidParameterValue(format!(
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
            return Err(Ec2Error::InvalidParameterValue(format!(
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
        return Err(Ec2Error::InvalidParameterValue(format!(
            "The image {} has no root volume mapping for {}.",
            image.image_id, image.root_device_name
        )));
    }
    // The root first: it is the instance's first disk.
    volumes.sort_by_key(|v| !v.boot);
    Ok(volumes)
}

/// Writes `blockDeviceMapping` items of an image.
pub fn write_image_mappings(w: &mut XmlWriter, mappings: &[ImageBlockDevice]) {
    w.items("blockDeviceMapping", mappings, |w, m| {
        w.text("deviceName", &m.device_name);
        if let Some(virtual_name) = &m.virtual_name {
            w.text("virtualName", virtual_name);
        } else if m.no_device {
            w.text("noDevice", "");
        } else {
            w.elem("ebs", |w| {
                w.opt_text("snapshotId", m.snapshot_id.as_deref());
                w.opt_text("volumeSize", m.volume_size_gib);
                w.text("deleteOnTermination", m.delete_on_termination);
                w.text("volumeType", m.volume_type.as_deref().unwrap_or("gp2"));
                w.text("encrypted", "false");
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .expect("params")
    }

    #[test]
    fn parses_and_refuses() {
        let m = parse(&params(&[
            ("BlockDeviceMapping.1.DeviceName", "/dev/sda1"),
            (
                "BlockDeviceMapping.1.Ebs.SnapshotId",
                "snap-0123456789abcdef0",
            ),
            ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "false"),
            ("BlockDeviceMapping.2.DeviceName", "/dev/sdf"),
            ("BlockDeviceMapping.2.Ebs.VolumeSize", "2"),
            ("BlockDeviceMapping.3.DeviceName", "/dev/sdb"),
            ("BlockDeviceMapping.3.VirtualName", "ephemeral0"),
        ]))
        .expect("parse");
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].snapshot_id.as_deref(), Some("snap-0123456789abcdef0"));
        assert!(!m[0].delete_on_termination);
        assert_eq!(
            (m[1].volume_size_gib, m[1].delete_on_termination),
            (Some(2), true)
        );
        assert_eq!(m[2].virtual_name.as_deref(), Some("ephemeral0"));
        for bad in [
            vec![("BlockDeviceMapping.1.DeviceName", "sda")],
            vec![
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "0"),
            ],
            vec![
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "1"),
                ("BlockDeviceMapping.2.DeviceName", "/dev/xvdf"),
                ("BlockDeviceMapping.2.Ebs.VolumeSize", "1"),
            ],
        ] {
            assert!(parse(&params(&bad)).is_err(), "{bad:?}");
        }
        let size_only = parse(&params(&[
            ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
            ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true"),
        ]))
        .expect("a launch may change only DeleteOnTermination");
        assert!(require_source(&size_only[0]).is_err());
        assert!(require_source(&m[1]).is_ok());
        assert!(same_device("/dev/sda1", "/dev/sda"));
        assert!(same_device("/dev/sdf", "/dev/xvdf"));
        assert!(!same_device("/dev/sdf", "/dev/sdg"));
    }
}
