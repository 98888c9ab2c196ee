//! Changes to a volume after it is made: ModifyVolume (a larger size, or
//! another type, IOPS or throughput) with the modification it leaves for
//! DescribeVolumesModifications, and the delete-on-termination flag of an
//! attachment (ModifyInstanceAttribute's block device mappings).
//!
//! Type, IOPS and throughput are recorded and complete at once (every
//! type is the same qcow2 file). A larger size is recorded as the
//! volume's size; the reconciler sends it to the volume's node, which
//! grows the data (`qemu-img resize`), and the modification completes once
//! the node reports the new size. The data of an attached volume is open
//! (in its VM, or in the storage daemon whose NBD export does not allow a
//! resize under it), so an attached volume's modification stays
//! `modifying` until the volume is detached. Volumes never shrink.

use super::actions::{ATTEMPTS, contended, load_owned, store};
use super::model::{Modification, Volume, VolumeStatus};
use super::types::{RequestedSpec, VolumeSpec};
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// What ModifyVolume asks for (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModifyRequest {
    /// New size, GiB (never smaller).
    pub size_gib: Option<i64>,
    /// New type.
    pub volume_type: Option<String>,
    /// New IOPS.
    pub iops: Option<i64>,
    /// New throughput, MiB/s.
    pub throughput: Option<i64>,
    /// Multi-Attach asked for (mallee has none).
    pub multi_attach: Option<bool>,
}

/// Applies ModifyVolume to the caller's volume `id` and returns the
/// modification as recorded. Refused, changing nothing: a volume that is
/// not `available` or `in-use`, one whose last size change has not
/// finished, a smaller size, a combination CreateVolume would refuse, or
/// a request that changes nothing.
pub async fn modify(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    request: &ModifyRequest,
) -> Result<Modification, CloudError> {
    if request.multi_attach == Some(true) {
        return Err(CloudError::unsupported(
            "Multi-Attach is not supported by this cloud.",
        ));
    }
    for _ in 0..ATTEMPTS {
        let mut volume = load_owned(cloud, caller, id).await?;
        if !matches!(volume.status, VolumeStatus::Available | VolumeStatus::InUse) {
            return Err(CloudError::incorrect_state(
                Kind::Volume,
                format!(
                    "The volume '{id}' is not in the 'available' or 'in-use' state (it is '{}').",
                    volume.status.name()
                ),
            ));
        }
        if volume
            .details
            .modification
            .as_ref()
            .is_some_and(Modification::growing)
        {
            return Err(CloudError::incorrect_state(
                Kind::VolumeModification,
                format!("Volume {id} is already being modified."),
            ));
        }
        let modification = plan(&volume, request)?;
        volume.record.size_gib = modification.target_size;
        volume.details.volume_type = modification.target_type.clone();
        volume.details.iops = modification.target_iops;
        volume.details.throughput = modification.target_throughput;
        volume.details.modification = Some(modification.clone());
        if store(cloud, &mut volume).await? {
            tracing::info!(
                volume = %id,
                size_gib = modification.target_size,
                volume_type = %modification.target_type,
                "volume modified"
            );
            return Ok(modification);
        }
    }
    Err(contended(id))
}

/// The modification `request` makes of `volume`, checked as CreateVolume
/// checks a new volume of the resulting type and size.
fn plan(volume: &Volume, request: &ModifyRequest) -> Result<Modification, CloudError> {
    let original_size = volume.record.size_gib;
    let target_size = request.size_gib.unwrap_or(original_size);
    if target_size < original_size {
        return Err(CloudError::invalid(format!(
            "New size cannot be smaller than existing size: {target_size} GiB < {original_size} GiB."
        )));
    }
    let details = &volume.details;
    let type_changes = request
        .volume_type
        .as_deref()
        .is_some_and(|t| t != details.volume_type);
    let target_type = request
        .volume_type
        .clone()
        .unwrap_or_else(|| details.volume_type.clone());
    // IOPS and throughput carry over where the new type takes them; a new
    // type without them gets its defaults (EC2's rule).
    let spec = VolumeSpec::new(RequestedSpec {
        volume_type: Some(target_type.clone()),
        size_gib: Some(target_size),
        snapshot_id: None,
        iops: request.iops.or(
            if type_changes || !matches!(target_type.as_str(), "io1" | "io2" | "gp3") {
                None
            } else {
                details.iops
            },
        ),
        throughput: request
            .throughput
            .or(if target_type == "gp3" && !type_changes {
                details.throughput
            } else {
                None
            }),
        encrypted: false,
        multi_attach: false,
    })
    .map_err(|e| match (type_changes, &e) {
        (true, CloudError::Missing(_)) => CloudError::invalid(format!(
            "The parameter iops must be specified to modify a volume to {target_type}."
        )),
        _ => e,
    })?;
    let modification = Modification {
        state: if target_size > original_size {
            "modifying".into()
        } else {
            "completed".into()
        },
        status_message: None,
        original_size,
        target_size,
        original_type: details.volume_type.clone(),
        target_type: spec.volume_type.name.to_owned(),
        original_iops: details.iops,
        target_iops: spec.iops,
        original_throughput: details.throughput,
        target_throughput: spec.throughput,
        start_time: ids::now_millis(),
        end_time: None,
    };
    if modification.original_size == modification.target_size
        && modification.original_type == modification.target_type
        && modification.original_iops == modification.target_iops
        && modification.original_throughput == modification.target_throughput
    {
        return Err(CloudError::InvalidCombination(format!(
            "New values for the volume {} are the same as its current ones: nothing to modify.",
            volume.id()
        )));
    }
    Ok(Modification {
        end_time: (modification.state == "completed").then_some(modification.start_time),
        ..modification
    })
}

/// The latest modification of each of the caller's volumes `ids` (every
/// volume when empty), with the volume id. A named volume without one
/// is `InvalidVolumeModification.NotFound`'s case: `Err` names it.
pub async fn modifications(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<(String, Modification)>, CloudError> {
    let volumes = super::actions::list(cloud, caller, ids).await?;
    let mut found = Vec::new();
    for volume in volumes {
        match volume.details.modification {
            Some(m) => found.push((volume.record.volume_id, m)),
            None if !ids.is_empty() => {
                return Err(CloudError::not_found(
                    Kind::VolumeModification,
                    format!(
                        "Modification for volume '{}' does not exist.",
                        volume.record.volume_id
                    ),
                ));
            }
            None => {}
        }
    }
    Ok(found)
}

/// Sets whether the volume attached to the caller's instance
/// `instance_id` at `device` goes with the instance, as
/// ModifyInstanceAttribute's `BlockDeviceMapping` does.
pub async fn set_delete_on_termination(
    cloud: &Cloud,
    caller: &Principal,
    instance_id: &str,
    device: &str,
    delete_on_termination: bool,
) -> Result<(), CloudError> {
    super::actions::load_instance(cloud, caller, instance_id).await?;
    for _ in 0..ATTEMPTS {
        let attached = cloud.store.volumes_of_instance(instance_id).await?;
        let Some(record) = attached
            .into_iter()
            .find(|v| v.device.as_deref() == Some(device))
        else {
            return Err(CloudError::invalid(format!(
                "No device is currently mapped at {device} on instance {instance_id}."
            )));
        };
        let id = record.volume_id.clone();
        let mut volume = Volume::decode(record).map_err(CloudError::internal)?;
        if volume.details.delete_on_termination == delete_on_termination {
            return Ok(());
        }
        volume.details.delete_on_termination = delete_on_termination;
        if store(cloud, &mut volume).await? {
            return Ok(());
        }
        if load_owned(cloud, caller, &id).await.is_err() {
            break;
        }
    }
    Err(contended(instance_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::model::tests::volume;
    use crate::volumes::model::{VolumeDesired, VolumeStatus};

    fn request(size: Option<i64>, volume_type: Option<&str>) -> ModifyRequest {
        ModifyRequest {
            size_gib: size,
            volume_type: volume_type.map(str::to_owned),
            ..ModifyRequest::default()
        }
    }

    #[test]
    fn plans_grow_only_and_checks_as_create_volume_does() {
        let v = volume(VolumeStatus::Available, VolumeDesired::Available, None);
        let grow = plan(&v, &request(Some(3), None)).expect("grows");
        assert_eq!((grow.original_size, grow.target_size), (1, 3));
        assert_eq!(grow.state, "modifying");
        assert_eq!(grow.end_time, None);
        // gp2's IOPS follow the size as EC2 computes them.
        assert_eq!(grow.target_iops, Some(100));
        let retype = plan(&v, &request(None, Some("gp3"))).expect("retypes");
        assert_eq!(retype.state, "completed");
        assert_eq!(
            (retype.target_iops, retype.target_throughput),
            (Some(3000), Some(125))
        );
        assert!(retype.end_time.is_some());
        assert!(matches!(
            plan(&v, &request(Some(0), None)),
            Err(CloudError::Invalid(_))
        ));
        assert!(matches!(
            plan(&v, &request(Some(1), Some("gp2"))),
            Err(CloudError::InvalidCombination(_))
        ));
        assert!(matches!(
            plan(&v, &request(None, Some("io1"))),
            Err(CloudError::Invalid(_))
        ));
        assert!(plan(&v, &request(Some(20_000), None)).is_err());
    }
}
