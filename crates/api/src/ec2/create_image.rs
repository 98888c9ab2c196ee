//! CreateImage: an EBS-backed image of an EBS-backed instance. Each of the
//! instance's volumes is snapshotted (a crash-consistent point in time of
//! the running guest's disks, as with `NoReboot`), and an image whose block
//! device mappings name those snapshots is registered `pending`; the
//! snapshot reconciler makes it `available` once every snapshot has
//! completed, or `failed` if one fails.

use mallee_store::{Image, ImageBlockDevice, TagPair};

use crate::query::QueryParams;
use mallee_cloud::ids;
use mallee_cloud::instances::model::InstanceState;
use mallee_cloud::snapshots::SnapshotDetails;
use mallee_cloud::volumes::Volume;

use super::instances::{load_owned, validate_instance_id};
use super::snapshots::new_snapshot;
use super::tags::parse_tag_specifications;
use super::{Ec2Context, Ec2Error};
use mallee_cloud::images::{store_new_image, validate_description, validate_name};

/// CreateImage input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateImage {
    instance_id: String,
    name: String,
    description: Option<String>,
    excluded: Vec<String>,
    tags: Vec<TagPair>,
    snapshot_tags: Vec<TagPair>,
}

impl CreateImage {
    /// Reads `InstanceId`, `Name`, `Description`, `NoReboot` (the
    /// snapshots are crash-consistent either way), `BlockDeviceMapping.N`
    /// (`NoDevice` leaves a volume out) and `TagSpecification.N` (`image`,
    /// `snapshot`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let instance_id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&instance_id)?;
        let name = params.required_non_empty("Name")?.to_owned();
        validate_name(&name)?;
        let description = params
            .get("Description")
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        if let Some(d) = &description {
            validate_description(d)?;
        }
        params.bool("NoReboot")?;
        let mut excluded = Vec::new();
        for m in super::block_devices::parse(params)? {
            if m.no_device {
                excluded.push(m.device_name);
            } else {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "The mapping of {} is not supported: CreateImage snapshots the instance's volumes; use NoDevice to leave one out.",
                    m.device_name
                )));
            }
        }
        Ok(Self {
            instance_id,
            name,
            description,
            excluded,
            tags: parse_tag_specifications(params, "image")?,
            snapshot_tags: parse_tag_specifications(params, "snapshot")?,
        })
    }

    /// Snapshots the instance's volumes and registers the pending image.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let instance = load_owned(ctx, std::slice::from_ref(&self.instance_id))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Ec2Error::Internal("instance lookup returned nothing".into()))?;
        if instance.details.root_device_type != "ebs" {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "The instance '{}' is not an EBS-backed instance: only EBS-backed instances can be imaged.",
                self.instance_id
            )));
        }
        if !matches!(
            instance.state,
            InstanceState::Running | InstanceState::Stopped | InstanceState::Stopping
        ) {
            return Err(Ec2Error::refused(
                "IncorrectInstanceState",
                format!(
                    "The instance '{}' is not in a state from which it can be imaged ({}).",
                    self.instance_id,
                    instance.state.name()
                ),
            ));
        }
        let metadata = &instance.details.spec.metadata;
        let volumes: Vec<Volume> = ctx
            .cloud
            .store
            .volumes_of_instance(&self.instance_id)
            .await?
            .into_iter()
            .filter_map(|r| Volume::decode(r).ok())
            .filter(|v| {
                v.record.device.as_deref().is_some_and(|d| {
                    !self
                        .excluded
                        .iter()
                        .any(|x| mallee_cloud::volumes::block_devices::same_device(x, d))
                })
            })
            .collect();
        if !volumes.iter().any(|v| v.details.boot) {
            return Err(Ec2Error::refused(
                "IncorrectInstanceState",
                format!(
                    "The root volume of '{}' is not attached; it cannot be imaged.",
                    self.instance_id
                ),
            ));
        }
        // Refused before any snapshot exists.
        if ctx
            .cloud
            .store
            .images_visible_to(account)
            .await?
            .iter()
            .any(|i| &i.account_id == account && i.name == self.name)
        {
            return Err(Ec2Error::refused(
                "InvalidAMIName.Duplicate",
                format!(
                    "AMI name {} is already in use by an AMI owned by your account.",
                    self.name
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
                        "Created by CreateImage({}) for {image_id} from {}",
                        self.instance_id,
                        volume.id()
                    ),
                    created_for_image: Some(image_id.clone()),
                    ..SnapshotDetails::default()
                },
            );
            ctx.cloud
                .store
                .create_snapshot(&snapshot.encode(), &self.snapshot_tags)
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
            image_id: image_id.clone(),
            account_id: account.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            image_type: "machine".into(),
            architecture: metadata.architecture.clone(),
            virtualization_type: instance.details.virtualization_type.clone(),
            root_device_name: metadata.root_device_name.clone(),
            root_device_type: "ebs".into(),
            kernel_id: metadata.kernel_id.clone(),
            ramdisk_id: metadata.ramdisk_id.clone(),
            location: format!("{account}/{}", self.name),
            bucket: String::new(),
            key: String::new(),
            size: 0,
            etag: String::new(),
            disk_format: "none".into(),
            state: "pending".into(),
            is_public: false,
            created_at: ids::now_millis(),
            launch_permissions: Vec::new(),
            block_device_mappings: mappings,
        };
        store_new_image(ctx.cloud, &image, &self.tags).await?;
        ctx.cloud.compute.wake();
        tracing::info!(image = %image_id, instance = %self.instance_id, volumes = volumes.len(), "image creation started");
        Ok(ctx.respond("CreateImage", |w| w.text("imageId", &image_id)))
    }
}
