//! CreateImage on the wire: parameters in, XML out. Snapshotting an
//! instance's volumes and registering the pending image is
//! `mallee_cloud::images::create`.

use mallee_cloud::images::create::{self, InstanceImage};
use mallee_cloud::images::{validate_description, validate_name};

use crate::query::QueryParams;

use super::instances::validate_instance_id;
use super::tags::parse_tag_specifications_of;
use super::{Ec2Context, Ec2Error};

/// CreateImage input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateImage(InstanceImage);

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
        let [tags, snapshot_tags] = parse_tag_specifications_of(params, ["image", "snapshot"])?;
        Ok(Self(InstanceImage {
            instance_id,
            name,
            description,
            excluded,
            tags,
            snapshot_tags,
        }))
    }

    /// Snapshots the instance's volumes and registers the pending image.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let image_id = create::create(ctx.cloud, ctx.principal, &self.0).await?;
        Ok(ctx.respond("CreateImage", |w| w.text("imageId", &image_id)))
    }
}
