//! CreateImage: an EBS-backed image of an EBS-backed instance. Each of the
//! instance's volumes is snapshotted (a crash-consistent point in time of
//! the running guest's disks, as with `NoReboot`), and an image whose block
//! device mappings name those snapshots is registered `pending`; the
//! snapshot reconciler makes it `available` once every snapshot has
//! completed, or `failed` if one fails.

use mallee_store::{Image, ImageBlockDevice, TagPair};

use super::{new_machine_image, store_new_image};
use crate::instances::model::{Instance, InstanceState};
use crate::snapshots::SnapshotDetails;
use crate::snapshots::create::new_snapshot;
use crate::volumes::Volume;
use crate::volumes::block_devices::same_device;
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// A CreateImage request.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceImage {
    /// The instance imaged.
    pub instance_id: String,
    /// The new image's name (see [`super::validate_name`]).
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Devices whose volumes are left out.
    pub excluded: Vec<String>,
    /// Tags of the image.
    pub tags: Vec<TagPair>,
    /// Tags of each snapshot.
    pub snapshot_tags: Vec<TagPair>,
}

/// Snapshots the caller's instance's volumes and registers the pending
/// image; returns its id.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    request: &InstanceImage,
) -> Result<String, CloudError> {
    let account = caller.account_id();
    let instance_id = request.instance_id.as_str();
    let instance = match cloud.store.instance(instance_id).await? {
        Some(record) if record.account_id == account => Instance::from_record(record)?,
        _ => return Err(CloudError::instances_not_found(&[instance_id])),
    };
    if instance.details.root_device_type != "ebs" {
        return Err(CloudError::invalid(format!(
            "The instance '{instance_id}' is not an EBS-backed instance: only EBS-backed instances can be imaged."
        )));
    }
    if !matches!(
        instance.state,
        InstanceState::Running | InstanceState::Stopped | InstanceState::Stopping
    ) {
        return Err(CloudError::incorrect_state(
            Kind::Instance,
            format!(
                "The instance '{instance_id}' is not in a state from which it can be imaged ({}).",
                instance.state.name()
            ),
        ));
    }
    let metadata = &instance.details.spec.metadata;
    let volumes: Vec<Volume> = cloud
        .store
        .volumes_of_instance(instance_id)
        .await?
        .into_iter()
        .filter_map(|r| Volume::decode(r).ok())
        .filter(|v| {
            v.record
                .device
                .as_deref()
                .is_some_and(|d| !request.excluded.iter().any(|x| same_device(x, d)))
        })
        .collect();
    if !volumes.iter().any(|v| v.details.boot) {
        return Err(CloudError::incorrect_state(
            Kind::Instance,
            format!("The root volume of '{instance_id}' is not attached; it cannot be imaged."),
        ));
    }
    // Refused before any snapshot exists.
    if cloud
        .store
        .images_visible_to(account)
        .await?
        .iter()
        .any(|i| i.account_id == account && i.name == request.name)
    {
        return Err(CloudError::duplicate(
            Kind::ImageName,
            format!(
                "AMI name {} is already in use by an AMI owned by your account.",
                request.name
            ),
        ));
    }
    let image_id = ids::resource_id("ami");
    let mut mappings = Vec::new();
    for volume in &volumes {
        let snapshot = new_snapshot(
            account,
            volume,
            SnapshotDetails {
                description: format!(
                    "Created by CreateImage({instance_id}) for {image_id} from {}",
                    volume.id()
                ),
                created_for_image: Some(image_id.clone()),
                ..SnapshotDetails::default()
            },
        );
        cloud
            .store
            .create_snapshot(&snapshot.encode(), &request.snapshot_tags)
            .await?;
        mappings.push(ImageBlockDevice {
            device_name: volume.record.device.clone().unwrap_or_default(),
            snapshot_id: Some(snapshot.id().to_owned()),
            volume_size_gib: Some(volume.record.size_gib),
            delete_on_termination: volume.details.boot || volume.details.delete_on_termination,
            volume_type: Some(volume.details.volume_type.clone()),
            virtual_name: None,
            no_device: false,
        });
    }
    let image = Image {
        architecture: metadata.architecture.clone(),
        virtualization_type: instance.details.virtualization_type.clone(),
        root_device_name: metadata.root_device_name.clone(),
        root_device_type: "ebs".into(),
        kernel_id: metadata.kernel_id.clone(),
        ramdisk_id: metadata.ramdisk_id.clone(),
        location: format!("{account}/{}", request.name),
        state: "pending".into(),
        block_device_mappings: mappings,
        ..new_machine_image(
            image_id.clone(),
            account,
            &request.name,
            request.description.clone(),
        )
    };
    store_new_image(cloud, &image, &request.tags).await?;
    cloud.compute.wake();
    tracing::info!(image = %image_id, instance = %instance_id, volumes = volumes.len(), "image creation started");
    Ok(image_id)
}

#[cfg(test)]
mod tests {
    use mallee_store::Reservation;

    use super::*;
    use crate::snapshots::access::load_owned;
    use crate::snapshots::create::testing::volume;
    use crate::testkit::{InstanceBuilder, TestCloud};
    use crate::volumes::VolumeStatus;

    const EBS: &str = "i-0123456789abcdef0";
    const STORE: &str = "i-0123456789abcdef1";

    /// Stores `id` of `account` at `ip` with its root device type.
    async fn instance(cloud: &Cloud, account: &str, id: &str, ip: &str, root_device_type: &str) {
        let mac = format!("02:00:00:00:00:{}", &id[id.len() - 2..]);
        let mut instance = InstanceBuilder::new(id, account)
            .address(ip, &mac)
            .instance();
        instance.details.root_device_type = root_device_type.into();
        let record = instance.encode();
        let reservation = Reservation {
            reservation_id: record.reservation_id.clone(),
            account_id: account.into(),
            client_token: None,
            request_hash: id.into(),
            created_at: 1,
        };
        cloud
            .store
            .create_reservation(&reservation, &[record], &[])
            .await
            .expect("instance");
    }

    fn request(instance_id: &str, name: &str, excluded: &[&str]) -> InstanceImage {
        InstanceImage {
            instance_id: instance_id.into(),
            name: name.into(),
            description: None,
            excluded: excluded.iter().map(|d| (*d).to_owned()).collect(),
            tags: Vec::new(),
            snapshot_tags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn snapshots_every_volume_and_registers_a_pending_image() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let account = owner.account_id();
        instance(&cloud, account, EBS, "172.31.0.4", "ebs").await;
        instance(&cloud, account, STORE, "172.31.0.5", "instance-store").await;
        let root = volume(
            &cloud,
            account,
            "vol-00000001",
            2,
            VolumeStatus::InUse,
            Some((EBS, "/dev/sda1")),
            true,
        )
        .await;
        volume(
            &cloud,
            account,
            "vol-00000002",
            5,
            VolumeStatus::InUse,
            Some((EBS, "/dev/sdf")),
            false,
        )
        .await;

        assert_eq!(
            create(&cloud, &other, &request(EBS, "theirs", &[])).await,
            Err(CloudError::instances_not_found(&[EBS]))
        );
        let err = create(&cloud, &owner, &request(STORE, "store", &[]))
            .await
            .expect_err("instance store");
        assert!(matches!(err, CloudError::Invalid(_)), "{err:?}");
        let err = create(&cloud, &owner, &request(EBS, "rootless", &["/dev/sda1"]))
            .await
            .expect_err("root left out");
        assert!(
            matches!(
                err,
                CloudError::IncorrectState {
                    kind: Kind::Instance,
                    ..
                }
            ),
            "{err:?}"
        );

        let id = create(&cloud, &owner, &request(EBS, "golden", &["/dev/xvdf"]))
            .await
            .expect("create");
        let image = cloud.store.image(&id).await.expect("read").expect("stored");
        assert_eq!(image.state, "pending");
        assert_eq!(image.root_device_type, "ebs");
        assert_eq!(image.location, format!("{account}/golden"));
        let [mapping] = image.block_device_mappings.as_slice() else {
            panic!("one mapping: {:?}", image.block_device_mappings);
        };
        assert_eq!(mapping.device_name, "/dev/sda1");
        assert_eq!(mapping.volume_size_gib, Some(2));
        assert!(mapping.delete_on_termination);
        let snapshot_id = mapping.snapshot_id.as_deref().expect("snapshot");
        let snapshot = load_owned(&cloud, &owner, snapshot_id)
            .await
            .expect("snapshot");
        assert_eq!(snapshot.record.volume_id, root.id());
        assert_eq!(
            snapshot.details.created_for_image.as_deref(),
            Some(id.as_str())
        );

        let err = create(&cloud, &owner, &request(EBS, "golden", &[]))
            .await
            .expect_err("duplicate");
        assert!(
            matches!(
                err,
                CloudError::Duplicate {
                    kind: Kind::ImageName,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
