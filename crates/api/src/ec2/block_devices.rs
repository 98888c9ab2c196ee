//! Block device mappings as RegisterImage, RunInstances and CreateImage
//! take them (`BlockDeviceMapping.N.DeviceName`, `.Ebs.SnapshotId`,
//! `.Ebs.VolumeSize`, `.Ebs.DeleteOnTermination`, `.Ebs.VolumeType`,
//! `.VirtualName`, `.NoDevice`) and as DescribeImages shows them.

use mallee_store::ImageBlockDevice;

use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::Ec2Error;
use mallee_cloud::snapshots::access::validate_snapshot_id;
use mallee_cloud::volumes::block_devices::{is_device_name, same_device};
use mallee_cloud::volumes::types::{check_mapping, encryption_unsupported};

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
        let volume_type = entry
            .get("Ebs.VolumeType")
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        check_mapping(volume_size_gib, volume_type.as_deref())?;
        if entry.bool("Ebs.Encrypted")? == Some(true) {
            return Err(encryption_unsupported().into());
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
    use mallee_cloud::volumes::block_devices::require_source;

    use crate::query::test_params as params;

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
