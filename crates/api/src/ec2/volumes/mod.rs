//! EBS volumes on the wire: CreateVolume, DescribeVolumes, DeleteVolume,
//! AttachVolume, DetachVolume, DescribeVolumeStatus,
//! DescribeVolumeAttribute and ModifyVolumeAttribute: parameters in, XML
//! out. What the actions do (checks, compare-and-set, device slots, zones,
//! snapshot sources) is `mallee_cloud::volumes`.

use mallee_cloud::volumes::{
    self, Attach, AttachState, Detach, NewVolume, RequestedSpec, Volume, VolumeSpec,
};
use mallee_cloud::zones::ZoneRef;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::{QueryError, QueryParams};
use crate::xml::XmlWriter;

use super::instances::validate_instance_id;
use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error, iso8601};

/// Volume ids are checked by the domain; other groups (snapshots) read
/// them from here too.
pub use mallee_cloud::volumes::validate_volume_id;

// --- XML -------------------------------------------------------------------

fn write_attachment(w: &mut XmlWriter, v: &Volume) {
    let (Some(instance), Some(device), Some(state)) = (
        v.record.instance_id.as_deref(),
        v.record.device.as_deref(),
        v.attach,
    ) else {
        return;
    };
    w.elem("item", |w| {
        w.text("volumeId", v.id());
        w.text("instanceId", instance);
        w.text("device", device);
        w.text("status", state.name());
        w.text(
            "attachTime",
            iso8601(v.record.attach_time.unwrap_or(v.record.updated_at)),
        );
        w.text("deleteOnTermination", v.details.delete_on_termination);
    });
}

/// A volume's fields as CreateVolume and DescribeVolumes show them.
fn write_volume(w: &mut XmlWriter, v: &Volume, tags: &[(String, String)], attachments: bool) {
    w.text("volumeId", v.id());
    w.text("size", v.record.size_gib);
    w.text(
        "snapshotId",
        v.details
            .source
            .as_ref()
            .map_or("", |s| s.snapshot_id.as_str()),
    );
    w.text("availabilityZone", &v.record.zone);
    w.text("status", v.status.name());
    w.text("createTime", iso8601(v.record.created_at));
    if attachments {
        w.elem("attachmentSet", |w| write_attachment(w, v));
    }
    write_tag_set(w, tags.iter().map(|(k, val)| (k.as_str(), val.as_str())));
    w.text("volumeType", &v.details.volume_type);
    w.opt_text("iops", v.details.iops);
    w.opt_text("throughput", v.details.throughput);
    w.text("encrypted", "false");
    w.text("multiAttachEnabled", "false");
}

// --- CreateVolume ----------------------------------------------------------

/// CreateVolume input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateVolume(NewVolume);

impl CreateVolume {
    /// Reads `Size`, `SnapshotId`, `AvailabilityZone` (or
    /// `AvailabilityZoneId`), `VolumeType`, `Iops`, `Throughput`,
    /// `Encrypted`, `KmsKeyId`, `MultiAttachEnabled`, `ClientToken` and
    /// `TagSpecification.N` (`volume`). Zones are checked at execution.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let non_empty = |name: &str| params.get(name).filter(|v| !v.is_empty());
        let spec = VolumeSpec::new(RequestedSpec {
            volume_type: non_empty("VolumeType").map(str::to_owned),
            size_gib: params.int("Size")?,
            snapshot_id: non_empty("SnapshotId").map(str::to_owned),
            iops: params.int("Iops")?,
            throughput: params.int("Throughput")?,
            encrypted: params.bool("Encrypted")? == Some(true) || non_empty("KmsKeyId").is_some(),
            multi_attach: params.bool("MultiAttachEnabled")? == Some(true),
        })?;
        let zone = match (
            non_empty("AvailabilityZone"),
            non_empty("AvailabilityZoneId"),
        ) {
            (Some(_), Some(_)) => {
                return Err(Ec2Error::InvalidParameterCombination(
                    "Either AvailabilityZone or AvailabilityZoneId can be specified, but not both."
                        .into(),
                ));
            }
            (Some(zone), None) => ZoneRef::Name(zone.to_owned()),
            (None, Some(id)) => ZoneRef::Id(id.to_owned()),
            (None, None) => return Err(QueryError::Missing("AvailabilityZone".into()).into()),
        };
        Ok(Self(NewVolume {
            zone,
            spec,
            client_token: non_empty("ClientToken").map(str::to_owned),
            tags: parse_tag_specifications(params, "volume")?,
        }))
    }

    /// Records the volume (or finds the one its client token created) and
    /// answers with it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let requested_tags: Vec<(String, String)> = self
            .0
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        let created = volumes::create(ctx.cloud, ctx.principal, self.0).await?;
        let volume = &created.volume;
        let tags = if created.existing {
            TagsByResource::load(ctx, ctx.principal.account_id())
                .await?
                .of(volume.id())
                .to_vec()
        } else {
            requested_tags
        };
        Ok(ctx.respond("CreateVolume", |w| write_volume(w, volume, &tags, false)))
    }
}

// --- DescribeVolumes -------------------------------------------------------

const VOLUME_FILTERS: &[&str] = &[
    "attachment.attach-time",
    "attachment.delete-on-termination",
    "attachment.device",
    "attachment.instance-id",
    "attachment.status",
    "availability-zone",
    "create-time",
    "encrypted",
    "multi-attach-enabled",
    "size",
    "snapshot-id",
    "status",
    "volume-id",
    "volume-type",
];

struct VolumeView<'a> {
    volume: &'a Volume,
    tags: &'a [(String, String)],
}

impl Filterable for VolumeView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let v = self.volume;
        let attached = |value: String| -> Vec<String> {
            if v.attach.is_some() {
                vec![value]
            } else {
                Vec::new()
            }
        };
        Some(match name {
            "attachment.attach-time" => attached(iso8601(v.record.attach_time.unwrap_or(0))),
            "attachment.delete-on-termination" => {
                attached(v.details.delete_on_termination.to_string())
            }
            "attachment.device" => v.record.device.iter().cloned().collect(),
            "attachment.instance-id" => v.record.instance_id.iter().cloned().collect(),
            "attachment.status" => v.attach.map(|a| a.name().to_owned()).into_iter().collect(),
            "availability-zone" => vec![v.record.zone.clone()],
            "create-time" => vec![iso8601(v.record.created_at)],
            "encrypted" | "multi-attach-enabled" => vec!["false".into()],
            "size" => vec![v.record.size_gib.to_string()],
            "snapshot-id" => vec![
                v.details
                    .source
                    .as_ref()
                    .map_or_else(String::new, |s| s.snapshot_id.clone()),
            ],
            "status" => vec![v.status.name().to_owned()],
            "volume-id" => vec![v.id().to_owned()],
            "volume-type" => vec![v.details.volume_type.clone()],
            _ => return None,
        })
    }

    fn tags(&self) -> &[(String, String)] {
        self.tags
    }

    fn taggable(&self) -> bool {
        true
    }
}

fn parse_volume_ids(params: &QueryParams) -> Result<Vec<String>, Ec2Error> {
    let ids = params.list("VolumeId")?;
    for id in &ids {
        validate_volume_id(id)?;
    }
    Ok(ids)
}

/// Reads a required `VolumeId`.
fn required_volume_id(params: &QueryParams) -> Result<String, Ec2Error> {
    let id = params.required_non_empty("VolumeId")?.to_owned();
    validate_volume_id(&id)?;
    Ok(id)
}

/// DescribeVolumes input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeVolumes {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeVolumes {
    /// Reads `VolumeId.N`, `Filter.N`, `MaxResults` (at least 5; above
    /// 500 gives 500, so the CLI's default of 1000 works), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, VOLUME_FILTERS, true)?;
        Ok(Self {
            ids: parse_volume_ids(params)?,
            filters,
            page: PageRequest::parse_capped(params, 5, 500)?,
        })
    }

    /// Lists the caller's volumes with their attachments.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let volumes = volumes::list(ctx.cloud, ctx.principal, &self.ids).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<VolumeView<'_>> = volumes
            .iter()
            .map(|v| VolumeView {
                volume: v,
                tags: tags.of(v.id()),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self
            .page
            .apply(selected, |view| view.volume.id().to_owned());
        Ok(ctx.respond("DescribeVolumes", |w| {
            w.items("volumeSet", page, |w, view| {
                write_volume(w, view.volume, view.tags, true);
            });
            w.opt_text("nextToken", next);
        }))
    }
}

// --- DeleteVolume ----------------------------------------------------------

/// DeleteVolume input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteVolume {
    id: String,
}

impl DeleteVolume {
    /// Reads `VolumeId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            id: required_volume_id(params)?,
        })
    }

    /// Deletes an available (or failed) volume; an attached one is
    /// `VolumeInUse`.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        volumes::delete(ctx.cloud, ctx.principal, &self.id).await?;
        Ok(ctx.respond_true("DeleteVolume"))
    }
}

// --- AttachVolume ----------------------------------------------------------

fn respond_attachment(ctx: &Ec2Context<'_>, action: &str, v: &Volume) -> String {
    ctx.respond(action, |w| {
        w.text("volumeId", v.id());
        w.opt_text("instanceId", v.record.instance_id.as_deref());
        w.opt_text("device", v.record.device.as_deref());
        w.text("status", v.attach.map_or("detached", AttachState::name));
        w.text(
            "attachTime",
            iso8601(v.record.attach_time.unwrap_or(v.record.updated_at)),
        );
        w.text("deleteOnTermination", v.details.delete_on_termination);
    })
}

/// AttachVolume input.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachVolume(Attach);

impl AttachVolume {
    /// Reads `VolumeId`, `InstanceId` and `Device` (`/dev/sd[f-p]` or
    /// `/dev/xvd[f-p]`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let volume_id = required_volume_id(params)?;
        let instance_id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&instance_id)?;
        let device = params.required_non_empty("Device")?.to_owned();
        volumes::check_attach_device(&device)?;
        Ok(Self(Attach {
            volume_id,
            instance_id,
            device,
        }))
    }

    /// Records the attachment; the reconciler hot-plugs the volume into
    /// the instance's VM (or records it for a stopped instance).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let volume = volumes::attach(ctx.cloud, ctx.principal, &self.0).await?;
        Ok(respond_attachment(ctx, "AttachVolume", &volume))
    }
}

// --- DetachVolume ----------------------------------------------------------

/// DetachVolume input.
#[derive(Debug, Clone, PartialEq)]
pub struct DetachVolume(Detach);

impl DetachVolume {
    /// Reads `VolumeId`, `InstanceId`, `Device` and `Force`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let volume_id = required_volume_id(params)?;
        let instance_id = params
            .get("InstanceId")
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        if let Some(id) = &instance_id {
            validate_instance_id(id)?;
        }
        Ok(Self(Detach {
            volume_id,
            instance_id,
            device: params
                .get("Device")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            force: params.bool("Force")?.unwrap_or(false),
        }))
    }

    /// Records the detachment; the reconciler asks the node to release the
    /// disk (the guest is told first; `Force` waits less for it).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let volume = volumes::detach(ctx.cloud, ctx.principal, &self.0).await?;
        Ok(respond_attachment(ctx, "DetachVolume", &volume))
    }
}

// --- DescribeVolumeStatus --------------------------------------------------

const STATUS_FILTERS: &[&str] = &[
    "availability-zone",
    "volume-status.status",
    "volume-status.details-name",
    "volume-status.details-status",
    "event.description",
    "event.event-id",
    "event.event-type",
    "event.not-after",
    "event.not-before",
    "action.code",
    "action.description",
    "action.event-id",
];

struct StatusView<'a> {
    volume: &'a Volume,
    health: volumes::Health,
}

impl Filterable for StatusView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "availability-zone" => vec![self.volume.record.zone.clone()],
            "volume-status.status" => vec![self.health.status.to_owned()],
            "volume-status.details-name" => vec!["io-enabled".into(), "io-performance".into()],
            "volume-status.details-status" => {
                vec![self.health.io_enabled.to_owned(), "not-applicable".into()]
            }
            n if n.starts_with("event.") || n.starts_with("action.") => Vec::new(),
            _ => return None,
        })
    }
}

/// DescribeVolumeStatus input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeVolumeStatus {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeVolumeStatus {
    /// Reads `VolumeId.N`, `Filter.N`, `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, STATUS_FILTERS, false)?;
        Ok(Self {
            ids: parse_volume_ids(params)?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Reports each volume's health (`Volume::health`); mallee raises no
    /// events.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let volumes = volumes::statuses(ctx.cloud, ctx.principal, &self.ids).await?;
        let selected: Vec<StatusView<'_>> = volumes
            .iter()
            .map(|(volume, health)| StatusView {
                volume,
                health: *health,
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self
            .page
            .apply(selected, |view| view.volume.id().to_owned());
        Ok(ctx.respond("DescribeVolumeStatus", |w| {
            w.items("volumeStatusSet", page, |w, view| {
                let v = view.volume;
                w.text("volumeId", v.id());
                w.text("availabilityZone", &v.record.zone);
                w.elem("volumeStatus", |w| {
                    w.text("status", view.health.status);
                    w.elem("details", |w| {
                        w.elem("item", |w| {
                            w.text("name", "io-enabled");
                            w.text("status", view.health.io_enabled);
                        });
                        w.elem("item", |w| {
                            w.text("name", "io-performance");
                            w.text("status", "not-applicable");
                        });
                    });
                });
                w.elem("eventsSet", |_| {});
                w.elem("actionsSet", |_| {});
            });
            w.opt_text("nextToken", next);
        }))
    }
}

// --- Describe/ModifyVolumeAttribute ----------------------------------------

/// DescribeVolumeAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeVolumeAttribute {
    id: String,
    attribute: String,
}

impl DescribeVolumeAttribute {
    /// Reads `VolumeId` and `Attribute` (`autoEnableIO` or `productCodes`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = required_volume_id(params)?;
        let attribute = params.required_non_empty("Attribute")?.to_owned();
        if !matches!(attribute.as_str(), "autoEnableIO" | "productCodes") {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({attribute}) for parameter attribute is invalid. Valid values: autoEnableIO, productCodes"
            )));
        }
        Ok(Self { id, attribute })
    }

    /// Answers the attribute of the caller's volume.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let volume = volumes::load_owned(ctx.cloud, ctx.principal, &self.id).await?;
        Ok(ctx.respond("DescribeVolumeAttribute", |w| {
            w.text("volumeId", volume.id());
            if self.attribute == "autoEnableIO" {
                w.elem("autoEnableIO", |w| {
                    w.text("value", volume.details.auto_enable_io);
                });
            } else {
                w.elem("productCodes", |_| {});
            }
        }))
    }
}

/// ModifyVolumeAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyVolumeAttribute {
    id: String,
    auto_enable_io: bool,
}

impl ModifyVolumeAttribute {
    /// Reads `VolumeId` and `AutoEnableIO.Value`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = required_volume_id(params)?;
        let Some(auto_enable_io) = params.bool("AutoEnableIO.Value")? else {
            return Err(QueryError::Missing("AutoEnableIO.Value".into()).into());
        };
        Ok(Self { id, auto_enable_io })
    }

    /// Records `autoEnableIO`.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        volumes::set_auto_enable_io(ctx.cloud, ctx.principal, &self.id, self.auto_enable_io)
            .await?;
        Ok(ctx.respond_true("ModifyVolumeAttribute"))
    }
}

#[cfg(test)]
mod tests;
