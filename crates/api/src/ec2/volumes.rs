//! EBS volumes: CreateVolume, DescribeVolumes, DeleteVolume, AttachVolume,
//! DetachVolume, DescribeVolumeStatus, DescribeVolumeAttribute and
//! ModifyVolumeAttribute.
//!
//! Each action checks everything first, then records the volume's desired
//! state with compare-and-set (retried when the reconciler changed the row
//! meanwhile) and wakes the reconciler, which carries it out on the
//! volume's node (`compute::volumes`). A refused request changes nothing.
//! Which device of an instance a volume takes is guarded by the store, so
//! two attachments racing for one device cannot both win.

use mallee_node_api::SnapshotSource;
use mallee_store::{StoreError, TagPair, VolumeRecord};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::{QueryError, QueryParams};
use crate::xml::XmlWriter;
use mallee_cloud::ids;
use mallee_cloud::instances::model::{Instance, InstanceState};
use mallee_cloud::snapshots::SnapshotStatus;
use mallee_cloud::volumes::{
    self, AttachState, Volume, VolumeDesired, VolumeDetails, VolumeStatus,
};

use super::instances::{decode, instances_not_found, validate_instance_id};
use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error, iso8601};
use mallee_cloud::volumes::block_devices::device_slot;

/// Compare-and-set attempts before giving up on a contended volume.
const ATTEMPTS: usize = 8;
/// Largest volume (GiB) of every type but `standard`.
const MAX_SIZE_GIB: i64 = 16384;
/// Volume types CreateVolume accepts, with their smallest and largest
/// sizes in GiB (EC2's limits).
const VOLUME_TYPES: &[(&str, i64, i64)] = &[
    ("standard", 1, 1024),
    ("gp2", 1, MAX_SIZE_GIB),
    ("gp3", 1, MAX_SIZE_GIB),
    ("io1", 4, MAX_SIZE_GIB),
    ("io2", 4, MAX_SIZE_GIB),
    ("st1", 125, MAX_SIZE_GIB),
    ("sc1", 125, MAX_SIZE_GIB),
];
/// EC2's default type.
const DEFAULT_VOLUME_TYPE: &str = "gp2";

// --- shared helpers ------------------------------------------------------

/// Checks that `id` looks like a volume id (`vol-` + 8 or 17 hex digits).
pub fn validate_volume_id(id: &str) -> Result<(), Ec2Error> {
    let ok = id.strip_prefix("vol-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(Ec2Error::refused(
            "InvalidVolumeID.Malformed",
            format!("Invalid id: \"{id}\""),
        ))
    }
}

fn volume_not_found(id: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidVolume.NotFound",
        format!("The volume '{id}' does not exist."),
    )
}

fn contended(id: &str) -> Ec2Error {
    Ec2Error::Internal(format!("volume {id} kept changing; try again"))
}

fn decode_volume(record: VolumeRecord) -> Result<Volume, Ec2Error> {
    Volume::decode(record).map_err(|e| Ec2Error::Internal(e.to_string()))
}

/// The caller's volume `id` (another account's is not found).
async fn load_owned(ctx: &Ec2Context<'_>, id: &str) -> Result<Volume, Ec2Error> {
    match ctx.cloud.store.volume(id).await? {
        Some(record) if record.account_id == ctx.principal.account.account_id => {
            decode_volume(record)
        }
        _ => Err(volume_not_found(id)),
    }
}

/// Stores `volume` if its row is unchanged: `Ok(true)` stored, `Ok(false)`
/// stale (check again). A device another volume took first is
/// `InvalidParameterValue`, as EC2 answers for a taken device.
async fn store(ctx: &Ec2Context<'_>, volume: &mut Volume) -> Result<bool, Ec2Error> {
    volume.record.updated_at = ids::now_millis();
    match ctx.cloud.store.update_volume(&volume.encode()).await {
        Ok(true) => {
            ctx.cloud.compute.wake();
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(StoreError::Conflict(_)) => Err(device_in_use(
            volume.record.device.as_deref().unwrap_or_default(),
        )),
        Err(e) => Err(e.into()),
    }
}

fn device_in_use(device: &str) -> Ec2Error {
    Ec2Error::InvalidParameterValue(format!("Attachment point {device} is already in use"))
}

/// Checks a size against a volume type's limits.
fn check_size(size_gib: i64, volume_type: &str, min: i64, max: i64) -> Result<(), Ec2Error> {
    if size_gib > max {
        return Err(Ec2Error::InvalidParameterValue(format!(
            "Volume of {size_gib}GiB is too large; maximum is {max}GiB."
        )));
    }
    if size_gib < min {
        return Err(Ec2Error::InvalidParameterValue(format!(
            "The volume size is invalid for {volume_type} volumes: {size_gib}."
        )));
    }
    Ok(())
}

pub(super) fn gp2_iops(size_gib: i64) -> i64 {
    (size_gib * 3).clamp(100, 16000)
}

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
pub struct CreateVolume {
    size_gib: Option<i64>,
    snapshot_id: Option<String>,
    zone: String,
    volume_type: String,
    iops: Option<i64>,
    throughput: Option<i64>,
    client_token: Option<String>,
    tags: Vec<TagPair>,
}

impl CreateVolume {
    /// Reads `Size`, `SnapshotId`, `AvailabilityZone` (or
    /// `AvailabilityZoneId`), `VolumeType`, `Iops`, `Throughput`,
    /// `Encrypted`, `KmsKeyId`, `MultiAttachEnabled`, `ClientToken` and
    /// `TagSpecification.N` (`volume`). Zones are checked at execution.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let volume_type = params
            .get("VolumeType")
            .filter(|t| !t.is_empty())
            .unwrap_or(DEFAULT_VOLUME_TYPE)
            .to_owned();
        let Some(&(_, min, max)) = VOLUME_TYPES.iter().find(|(t, _, _)| *t == volume_type) else {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({volume_type}) for parameter volumeType is invalid. Valid values: standard, gp2, gp3, io1, io2, st1, sc1"
            )));
        };
        let snapshot_id = params
            .get("SnapshotId")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if let Some(id) = &snapshot_id {
            mallee_cloud::snapshots::access::validate_snapshot_id(id)?;
        }
        let size_gib = params.int("Size")?;
        if size_gib.is_none() && snapshot_id.is_none() {
            return Err(Ec2Error::refused(
                "MissingParameter",
                "The request must contain the parameter size or snapshotId",
            ));
        }
        check_size(size_gib.unwrap_or(min), &volume_type, min, max)?;
        let size_for_iops = size_gib.unwrap_or(min);
        if params.bool("Encrypted")? == Some(true)
            || params.get("KmsKeyId").is_some_and(|k| !k.is_empty())
        {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                "Encrypted volumes are not supported by this cloud.",
            ));
        }
        if params.bool("MultiAttachEnabled")? == Some(true) {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                "Multi-Attach is not supported by this cloud.",
            ));
        }
        let iops = params.int("Iops")?;
        let throughput = params.int("Throughput")?;
        let iops = match (volume_type.as_str(), iops) {
            ("io1" | "io2", None) => {
                return Err(Ec2Error::refused(
                    "MissingParameter",
                    format!("The parameter iops must be specified for {volume_type} volumes."),
                ));
            }
            ("io1" | "io2", Some(n)) if !(100..=64000).contains(&n) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Volume iops of {n} is not in the range 100 to 64000."
                )));
            }
            ("gp3", Some(n)) if !(3000..=16000).contains(&n) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Volume iops of {n} is not in the range 3000 to 16000."
                )));
            }
            ("io1" | "io2" | "gp3", Some(n)) => Some(n),
            ("gp3", None) => Some(3000),
            (_, Some(_)) => {
                return Err(Ec2Error::InvalidParameterCombination(format!(
                    "The parameter iops is not supported for {volume_type} volumes."
                )));
            }
            ("gp2", None) => Some(gp2_iops(size_for_iops)),
            (_, None) => None,
        };
        let throughput = match (volume_type.as_str(), throughput) {
            ("gp3", Some(n)) if !(125..=1000).contains(&n) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Throughput of {n} MiB/s is not in the range 125 to 1000."
                )));
            }
            ("gp3", t) => Some(t.unwrap_or(125)),
            (_, Some(_)) => {
                return Err(Ec2Error::InvalidParameterCombination(format!(
                    "The parameter throughput is not supported for {volume_type} volumes."
                )));
            }
            (_, None) => None,
        };
        let zone = match (
            params.get("AvailabilityZone").filter(|z| !z.is_empty()),
            params.get("AvailabilityZoneId").filter(|z| !z.is_empty()),
        ) {
            (Some(_), Some(_)) => {
                return Err(Ec2Error::InvalidParameterCombination(
                    "Either AvailabilityZone or AvailabilityZoneId can be specified, but not both."
                        .into(),
                ));
            }
            (Some(zone), None) => zone.to_owned(),
            // Resolved to a zone name at execution.
            (None, Some(id)) => format!("id:{id}"),
            (None, None) => return Err(QueryError::Missing("AvailabilityZone".into()).into()),
        };
        Ok(Self {
            size_gib,
            snapshot_id,
            zone,
            volume_type,
            iops,
            throughput,
            client_token: params
                .get("ClientToken")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            tags: parse_tag_specifications(params, "volume")?,
        })
    }

    fn zone_name(&self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let config = &ctx.cloud.config;
        let found = match self.zone.strip_prefix("id:") {
            Some(id) => config
                .zones
                .iter()
                .enumerate()
                .find(|(i, _)| config.zone_id(*i) == id)
                .map(|(_, z)| z.clone()),
            None => config.zones.iter().find(|z| **z == self.zone).cloned(),
        };
        found.ok_or_else(|| {
            Ec2Error::InvalidParameterValue(format!(
                "Invalid availability zone: [{}]",
                self.zone.trim_start_matches("id:")
            ))
        })
    }

    /// The volume's size and the snapshot data it starts from: the
    /// snapshot must be the caller's or shared with it, and completed; the
    /// size defaults to the snapshot's and cannot be smaller.
    async fn size_and_source(
        &self,
        ctx: &Ec2Context<'_>,
    ) -> Result<(i64, Option<SnapshotSource>), Ec2Error> {
        let Some(snapshot_id) = &self.snapshot_id else {
            return Ok((self.size_gib.unwrap_or(1), None));
        };
        let snapshot =
            mallee_cloud::snapshots::access::load_restorable(ctx.cloud, ctx.principal, snapshot_id)
                .await?;
        let Some(source) = snapshot
            .source()
            .filter(|_| snapshot.status == SnapshotStatus::Completed)
        else {
            return Err(Ec2Error::refused(
                "IncorrectState",
                format!("Snapshot is in invalid state - {}", snapshot.status.name()),
            ));
        };
        let smallest = snapshot.record.volume_size_gib;
        let size_gib = self.size_gib.unwrap_or(smallest);
        if size_gib < smallest {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Volume of size {size_gib}GiB is smaller than snapshot '{snapshot_id}', expect size >= {smallest}GiB"
            )));
        }
        let (min, max) = VOLUME_TYPES
            .iter()
            .find(|(t, _, _)| *t == self.volume_type)
            .map_or((1, MAX_SIZE_GIB), |&(_, min, max)| (min, max));
        check_size(size_gib, &self.volume_type, min, max)?;
        Ok((size_gib, Some(source)))
    }

    /// Records the volume on the zone's node with the most free disk; the
    /// reconciler creates it there.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        let zone = self.zone_name(ctx)?;
        let (size_gib, source) = self.size_and_source(ctx).await?;
        if let Some(token) = &self.client_token {
            let existing = cloud
                .store
                .volumes(Some(account))
                .await?
                .into_iter()
                .filter_map(|r| Volume::decode(r).ok())
                .find(|v| v.details.client_token.as_deref() == Some(token));
            if let Some(v) = existing {
                if v.record.size_gib != size_gib
                    || v.record.zone != zone
                    || v.details.source.as_ref().map(|s| &s.snapshot_id)
                        != self.snapshot_id.as_ref()
                    || v.details.volume_type != self.volume_type
                {
                    return Err(Ec2Error::refused(
                        "IdempotentParameterMismatch",
                        "The client token you have provided is associated with a resource that has different parameters.",
                    ));
                }
                let tags = TagsByResource::load(ctx, account)
                    .await?
                    .of(v.id())
                    .to_vec();
                return Ok(ctx.respond("CreateVolume", |w| write_volume(w, &v, &tags, false)));
            }
        }
        let _placing = cloud.compute.placement_lock.lock().await;
        let nodes = cloud.store.nodes().await?;
        let placed = cloud.store.volumes(None).await?;
        let Some(node) = volumes::place(&nodes, &placed, &zone) else {
            return Err(Ec2Error::ServerRefused {
                code: "InsufficientVolumeCapacity",
                message: format!(
                    "There is not enough capacity to fulfill your EBS volume provision request in {zone}: the zone has no node."
                ),
            });
        };
        let now = ids::now_millis();
        let volume = Volume {
            record: VolumeRecord {
                volume_id: ids::resource_id("vol"),
                account_id: account.clone(),
                zone,
                node_id: node.node_id.clone(),
                size_gib,
                state: String::new(),
                desired: String::new(),
                instance_id: None,
                device: None,
                attach_state: None,
                attach_time: None,
                generation: 1,
                revision: 0,
                details: String::new(),
                created_at: now,
                updated_at: now,
            },
            status: VolumeStatus::Creating,
            desired: VolumeDesired::Available,
            attach: None,
            details: VolumeDetails {
                volume_type: self.volume_type.clone(),
                iops: self.iops,
                throughput: self.throughput,
                client_token: self.client_token.clone(),
                auto_enable_io: false,
                delete_on_termination: false,
                guest_device: None,
                force_detach: false,
                error: None,
                source,
                boot: false,
            },
        };
        cloud
            .store
            .create_volume(&volume.encode(), &self.tags)
            .await?;
        drop(_placing);
        cloud.compute.wake();
        tracing::info!(volume = %volume.id(), account = %account, node = %node.node_id, size_gib, snapshot = ?self.snapshot_id, "volume created");
        let tags: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        Ok(ctx.respond("CreateVolume", |w| write_volume(w, &volume, &tags, false)))
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

/// The caller's volumes, those named in `ids` only when it names any
/// (every one must exist), ordered by id.
async fn select(ctx: &Ec2Context<'_>, ids: &[String]) -> Result<Vec<Volume>, Ec2Error> {
    let account = &ctx.principal.account.account_id;
    let all: Vec<Volume> = ctx
        .cloud
        .store
        .volumes(Some(account))
        .await?
        .into_iter()
        .map(decode_volume)
        .collect::<Result<_, _>>()?;
    if let Some(missing) = ids.iter().find(|id| !all.iter().any(|v| v.id() == *id)) {
        return Err(volume_not_found(missing));
    }
    Ok(all
        .into_iter()
        .filter(|v| ids.is_empty() || ids.iter().any(|id| id == v.id()))
        .collect())
}

/// DescribeVolumes input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeVolumes {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeVolumes {
    /// Reads `VolumeId.N`, `Filter.N`, `MaxResults` (5–500), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, VOLUME_FILTERS, true)?;
        Ok(Self {
            ids: parse_volume_ids(params)?,
            filters,
            page: PageRequest::parse(params, 5, 500)?,
        })
    }

    /// Lists the caller's volumes with their attachments.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let volumes = select(ctx, &self.ids).await?;
        let tags = TagsByResource::load(ctx, account).await?;
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
        let id = params.required_non_empty("VolumeId")?.to_owned();
        validate_volume_id(&id)?;
        Ok(Self { id })
    }

    /// Deletes an available (or failed) volume; an attached one is
    /// `VolumeInUse`.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        for _ in 0..ATTEMPTS {
            let mut volume = load_owned(ctx, &self.id).await?;
            if let Some(instance) = volume.instance_id() {
                return Err(Ec2Error::refused(
                    "VolumeInUse",
                    format!("Volume {} is currently attached to {instance}", self.id),
                ));
            }
            match volume.status {
                VolumeStatus::Deleting => return Ok(ctx.respond_true("DeleteVolume")),
                VolumeStatus::Available | VolumeStatus::Error => {}
                VolumeStatus::Creating | VolumeStatus::InUse => {
                    return Err(Ec2Error::refused(
                        "IncorrectState",
                        format!(
                            "The volume '{}' is '{}' and cannot be deleted.",
                            self.id,
                            volume.status.name()
                        ),
                    ));
                }
            }
            volume.status = VolumeStatus::Deleting;
            volume.desired = VolumeDesired::Deleted;
            if store(ctx, &mut volume).await? {
                tracing::info!(volume = %self.id, "volume deletion requested");
                return Ok(ctx.respond_true("DeleteVolume"));
            }
        }
        Err(contended(&self.id))
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

async fn load_instance(ctx: &Ec2Context<'_>, id: &str) -> Result<Instance, Ec2Error> {
    match ctx.cloud.store.instance(id).await? {
        Some(record) if record.account_id == ctx.principal.account.account_id => decode(record),
        _ => Err(instances_not_found(&[id])),
    }
}

/// AttachVolume input.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachVolume {
    volume_id: String,
    instance_id: String,
    device: String,
}

impl AttachVolume {
    /// Reads `VolumeId`, `InstanceId` and `Device` (`/dev/sd[f-p]` or
    /// `/dev/xvd[f-p]`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let volume_id = params.required_non_empty("VolumeId")?.to_owned();
        validate_volume_id(&volume_id)?;
        let instance_id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&instance_id)?;
        let device = params.required_non_empty("Device")?.to_owned();
        if device_slot(&device).is_none() {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name (use /dev/sdf to /dev/sdp or /dev/xvdf to /dev/xvdp)."
            )));
        }
        Ok(Self {
            volume_id,
            instance_id,
            device,
        })
    }

    /// Records the attachment; the reconciler hot-plugs the volume into
    /// the instance's VM (or records it for a stopped instance).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        for _ in 0..ATTEMPTS {
            let mut volume = load_owned(ctx, &self.volume_id).await?;
            let instance = load_instance(ctx, &self.instance_id).await?;
            if volume.record.zone != instance.record.zone {
                return Err(Ec2Error::refused(
                    "InvalidVolume.ZoneMismatch",
                    format!(
                        "The volume '{}' is not in the same availability zone as instance '{}'",
                        self.volume_id, self.instance_id
                    ),
                ));
            }
            if !matches!(
                instance.state,
                InstanceState::Running | InstanceState::Stopped
            ) || instance.desired == mallee_cloud::instances::model::Desired::Terminated
            {
                return Err(Ec2Error::refused(
                    "IncorrectInstanceState",
                    format!(
                        "Instance '{}' is not 'running' or 'stopped'.",
                        self.instance_id
                    ),
                ));
            }
            if let Some(holder) = volume.instance_id() {
                return Err(Ec2Error::refused(
                    "VolumeInUse",
                    format!(
                        "{} is already attached to an instance ({holder})",
                        self.volume_id
                    ),
                ));
            }
            if volume.status != VolumeStatus::Available {
                return Err(Ec2Error::refused(
                    "IncorrectState",
                    format!(
                        "The volume '{}' is '{}', not 'available'.",
                        self.volume_id,
                        volume.status.name()
                    ),
                ));
            }
            let slot = device_slot(&self.device);
            let taken = ctx
                .cloud
                .store
                .volumes_of_instance(&self.instance_id)
                .await?
                .iter()
                .any(|v| v.device.as_deref().and_then(device_slot) == slot);
            if taken {
                return Err(device_in_use(&self.device));
            }
            if volume.record.node_id != instance.record.node_id {
                return Err(Ec2Error::refused(
                    "UnsupportedOperation",
                    format!(
                        "The volume '{}' is stored on node {} and instance '{}' runs on node {}: attaching across nodes of a zone is not supported yet.",
                        self.volume_id,
                        volume.record.node_id,
                        self.instance_id,
                        instance.record.node_id
                    ),
                ));
            }
            volume.status = VolumeStatus::InUse;
            volume.desired = VolumeDesired::Attached;
            volume.attach = Some(AttachState::Attaching);
            volume.record.instance_id = Some(self.instance_id.clone());
            volume.record.device = Some(self.device.clone());
            volume.record.attach_time = Some(ids::now_millis());
            volume.record.generation += 1;
            volume.details.delete_on_termination = false;
            volume.details.force_detach = false;
            volume.details.guest_device = None;
            volume.details.error = None;
            if store(ctx, &mut volume).await? {
                tracing::info!(volume = %self.volume_id, instance = %self.instance_id, device = %self.device, "volume attachment requested");
                return Ok(respond_attachment(ctx, "AttachVolume", &volume));
            }
        }
        Err(contended(&self.volume_id))
    }
}

// --- DetachVolume ----------------------------------------------------------

/// DetachVolume input.
#[derive(Debug, Clone, PartialEq)]
pub struct DetachVolume {
    volume_id: String,
    instance_id: Option<String>,
    device: Option<String>,
    force: bool,
}

impl DetachVolume {
    /// Reads `VolumeId`, `InstanceId`, `Device` and `Force`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let volume_id = params.required_non_empty("VolumeId")?.to_owned();
        validate_volume_id(&volume_id)?;
        let instance_id = params
            .get("InstanceId")
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        if let Some(id) = &instance_id {
            validate_instance_id(id)?;
        }
        Ok(Self {
            volume_id,
            instance_id,
            device: params
                .get("Device")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            force: params.bool("Force")?.unwrap_or(false),
        })
    }

    /// Records the detachment; the reconciler asks the node to release the
    /// disk (the guest is told first; `Force` waits less for it).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        for _ in 0..ATTEMPTS {
            let mut volume = load_owned(ctx, &self.volume_id).await?;
            let (Some(attached_to), Some(device)) = (
                volume.record.instance_id.clone(),
                volume.record.device.clone(),
            ) else {
                return Err(Ec2Error::refused(
                    "IncorrectState",
                    format!(
                        "Volume '{}' is in the '{}' state.",
                        self.volume_id,
                        volume.status.name()
                    ),
                ));
            };
            if self.instance_id.as_ref().is_some_and(|i| *i != attached_to)
                || self.device.as_ref().is_some_and(|d| *d != device)
            {
                return Err(Ec2Error::refused(
                    "InvalidAttachment.NotFound",
                    format!(
                        "Volume '{}' is not attached to instance '{}' at device '{}'.",
                        self.volume_id,
                        self.instance_id.as_deref().unwrap_or(&attached_to),
                        self.device.as_deref().unwrap_or(&device)
                    ),
                ));
            }
            if volume.attach == Some(AttachState::Detaching)
                && (volume.details.force_detach || !self.force)
            {
                return Ok(respond_attachment(ctx, "DetachVolume", &volume));
            }
            volume.desired = VolumeDesired::Available;
            volume.attach = Some(AttachState::Detaching);
            volume.details.force_detach |= self.force;
            if store(ctx, &mut volume).await? {
                tracing::info!(volume = %self.volume_id, instance = %attached_to, force = self.force, "volume detachment requested");
                return Ok(respond_attachment(ctx, "DetachVolume", &volume));
            }
        }
        Err(contended(&self.volume_id))
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

/// EC2's overall status and the `io-enabled` check of a volume.
fn health(v: &Volume) -> (&'static str, &'static str) {
    match v.status {
        VolumeStatus::Creating => ("insufficient-data", "insufficient-data"),
        VolumeStatus::Error => ("impaired", "failed"),
        _ => ("ok", "passed"),
    }
}

struct StatusView<'a>(&'a Volume);

impl Filterable for StatusView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let (status, io) = health(self.0);
        Some(match name {
            "availability-zone" => vec![self.0.record.zone.clone()],
            "volume-status.status" => vec![status.to_owned()],
            "volume-status.details-name" => vec!["io-enabled".into(), "io-performance".into()],
            "volume-status.details-status" => vec![io.to_owned(), "not-applicable".into()],
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

    /// Reports each volume's health: `ok` once its storage exists,
    /// `impaired` when it failed; mallee raises no events.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let volumes = select(ctx, &self.ids).await?;
        let selected: Vec<&Volume> = volumes
            .iter()
            .filter(|v| v.status != VolumeStatus::Deleting)
            .filter(|v| filter::matches(&self.filters, &StatusView(v)))
            .collect();
        let (page, next) = self.page.apply(selected, |v| v.id().to_owned());
        Ok(ctx.respond("DescribeVolumeStatus", |w| {
            w.items("volumeStatusSet", page, |w, v| {
                let (status, io) = health(v);
                w.text("volumeId", v.id());
                w.text("availabilityZone", &v.record.zone);
                w.elem("volumeStatus", |w| {
                    w.text("status", status);
                    w.elem("details", |w| {
                        w.elem("item", |w| {
                            w.text("name", "io-enabled");
                            w.text("status", io);
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
        let id = params.required_non_empty("VolumeId")?.to_owned();
        validate_volume_id(&id)?;
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
        let volume = load_owned(ctx, &self.id).await?;
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
        let id = params.required_non_empty("VolumeId")?.to_owned();
        validate_volume_id(&id)?;
        let Some(auto_enable_io) = params.bool("AutoEnableIO.Value")? else {
            return Err(QueryError::Missing("AutoEnableIO.Value".into()).into());
        };
        Ok(Self { id, auto_enable_io })
    }

    /// Records `autoEnableIO` (mallee never disables a volume's I/O, so it
    /// changes nothing else).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        for _ in 0..ATTEMPTS {
            let mut volume = load_owned(ctx, &self.id).await?;
            if volume.details.auto_enable_io == self.auto_enable_io {
                return Ok(ctx.respond_true("ModifyVolumeAttribute"));
            }
            volume.details.auto_enable_io = self.auto_enable_io;
            if store(ctx, &mut volume).await? {
                return Ok(ctx.respond_true("ModifyVolumeAttribute"));
            }
        }
        Err(contended(&self.id))
    }
}

#[cfg(test)]
mod tests {
    use mallee_cloud::Principal;
    use mallee_cloud::instances::model::{Desired, InstanceState};
    use mallee_cloud::testkit::{InstanceBuilder, TestCloud, node};

    use super::*;
    use crate::error::AwsError;

    const ZONE: &str = "mallee-1a";
    const INSTANCE: &str = "i-0000000000000000a";

    struct Fixture {
        cloud: TestCloud,
        owner: Principal,
        other: Principal,
    }

    async fn fixture() -> Fixture {
        let cloud = TestCloud::new().await;
        cloud.add_node(node("node-1", ZONE, 2, 2048, 100)).await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let f = Fixture {
            cloud,
            owner,
            other,
        };
        launch(&f, INSTANCE, "running").await;
        f
    }

    async fn launch(f: &Fixture, id: &str, state: &str) {
        launch_in(f, id, state, ZONE).await;
    }

    async fn launch_in(f: &Fixture, id: &str, state: &str, zone: &str) {
        let state = InstanceState::from_name(state).expect("state");
        let desired = if state == InstanceState::Stopped {
            Desired::Stopped
        } else {
            Desired::Running
        };
        InstanceBuilder::new(id, f.owner.account_id())
            .zone(zone)
            .address(
                &format!("172.31.0.{}", id.len() + usize::from(id.as_bytes()[18])),
                &format!("02:00:00:00:01:{:02x}", id.as_bytes()[18]),
            )
            .state(state, desired)
            .store(&f.cloud)
            .await;
    }

    async fn run_as(
        f: &Fixture,
        who: &Principal,
        action: &str,
        pairs: &[(&str, &str)],
    ) -> Result<String, Ec2Error> {
        let params = QueryParams::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
        .expect("params");
        let ctx = Ec2Context {
            cloud: &f.cloud.cloud,
            principal: who,
            request_id: "req",
            namespace: super::super::namespace_for(None),
        };
        let parsed = super::super::Ec2Action::parse(action, &params)?;
        super::super::execute(&ctx, parsed, false).await
    }

    async fn run(f: &Fixture, action: &str, pairs: &[(&str, &str)]) -> Result<String, Ec2Error> {
        run_as(f, &f.owner, action, pairs).await
    }

    async fn code(f: &Fixture, who: &Principal, action: &str, pairs: &[(&str, &str)]) -> String {
        let err = run_as(f, who, action, pairs)
            .await
            .expect_err("the request should fail");
        err.code().into_owned()
    }

    fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
        v.iter().map(|(k, x)| (k.as_str(), x.as_str())).collect()
    }

    fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
        let open = format!("<{tag}>");
        let start = xml.find(&open).expect("tag present") + open.len();
        let end = xml[start..].find('<').expect("closing tag") + start;
        &xml[start..end]
    }

    async fn rows(f: &Fixture) -> Vec<VolumeRecord> {
        f.cloud.store.volumes(None).await.expect("volumes")
    }

    /// Creates a volume and records it as the reconciler would once its
    /// node has it.
    async fn available_volume(f: &Fixture) -> String {
        let created = run(
            f,
            "CreateVolume",
            &[("Size", "1"), ("AvailabilityZone", ZONE)],
        )
        .await
        .expect("create");
        let id = between(&created, "volumeId").to_owned();
        let mut v = decode_volume(f.cloud.store.volume(&id).await.expect("get").expect("row"))
            .expect("decode");
        v.status = VolumeStatus::Available;
        assert!(
            f.cloud
                .store
                .update_volume(&v.encode())
                .await
                .expect("update")
        );
        id
    }

    #[tokio::test]
    async fn creation_checks_everything_first() {
        let f = fixture().await;
        for (pairs, expected) in [
            (
                vec![("Size", "0"), ("AvailabilityZone", ZONE)],
                "InvalidParameterValue",
            ),
            (
                vec![("Size", "16385"), ("AvailabilityZone", ZONE)],
                "InvalidParameterValue",
            ),
            (
                vec![
                    ("Size", "1025"),
                    ("AvailabilityZone", ZONE),
                    ("VolumeType", "standard"),
                ],
                "InvalidParameterValue",
            ),
            (
                vec![
                    ("Size", "1"),
                    ("AvailabilityZone", ZONE),
                    ("VolumeType", "floppy"),
                ],
                "InvalidParameterValue",
            ),
            (
                vec![("Size", "1"), ("AvailabilityZone", "mallee-1z")],
                "InvalidParameterValue",
            ),
            (vec![("Size", "1")], "MissingParameter"),
            (vec![("AvailabilityZone", ZONE)], "MissingParameter"),
            (
                vec![
                    ("SnapshotId", "snap-0123456789abcdef0"),
                    ("AvailabilityZone", ZONE),
                ],
                "InvalidSnapshot.NotFound",
            ),
            (
                vec![
                    ("Size", "10"),
                    ("AvailabilityZone", ZONE),
                    ("VolumeType", "io1"),
                ],
                "MissingParameter",
            ),
            (
                vec![("Size", "10"), ("AvailabilityZone", ZONE), ("Iops", "500")],
                "InvalidParameterCombination",
            ),
            (
                vec![
                    ("Size", "1"),
                    ("AvailabilityZone", ZONE),
                    ("Encrypted", "true"),
                ],
                "UnsupportedOperation",
            ),
            (
                vec![
                    ("Size", "1"),
                    ("AvailabilityZone", ZONE),
                    ("TagSpecification.1.ResourceType", "instance"),
                    ("TagSpecification.1.Tag.1.Key", "k"),
                ],
                "InvalidParameterValue",
            ),
        ] {
            assert_eq!(
                code(&f, &f.owner, "CreateVolume", &pairs).await,
                expected,
                "{pairs:?}"
            );
        }
        assert!(
            rows(&f).await.is_empty(),
            "a refused creation left a volume"
        );

        let created = run(
            &f,
            "CreateVolume",
            &[
                ("Size", "16384"),
                ("AvailabilityZone", ZONE),
                ("VolumeType", "gp3"),
                ("TagSpecification.1.ResourceType", "volume"),
                ("TagSpecification.1.Tag.1.Key", "Name"),
                ("TagSpecification.1.Tag.1.Value", "data"),
                ("ClientToken", "once"),
            ],
        )
        .await
        .expect("create");
        assert_eq!(between(&created, "status"), "creating");
        assert_eq!(between(&created, "iops"), "3000");
        assert_eq!(between(&created, "throughput"), "125");
        let id = between(&created, "volumeId").to_owned();
        let stored = rows(&f).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (stored[0].node_id.as_str(), stored[0].size_gib),
            ("node-1", 16384)
        );
        // The same client token answers the same volume.
        let again = run(
            &f,
            "CreateVolume",
            &[
                ("Size", "16384"),
                ("AvailabilityZone", ZONE),
                ("VolumeType", "gp3"),
                ("ClientToken", "once"),
            ],
        )
        .await
        .expect("idempotent");
        assert_eq!(between(&again, "volumeId"), id);
        assert_eq!(rows(&f).await.len(), 1);

        let listed = run(
            &f,
            "DescribeVolumes",
            &[("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "data")],
        )
        .await
        .expect("describe");
        assert!(listed.contains(&id), "{listed}");
        assert!(
            listed.contains("<attachmentSet></attachmentSet>"),
            "{listed}"
        );
        let none = run(
            &f,
            "DescribeVolumes",
            &[
                ("Filter.1.Name", "status"),
                ("Filter.1.Value.1", "available"),
            ],
        )
        .await
        .expect("describe");
        assert!(!none.contains(&id), "{none}");
        // Creating: neither attachable nor deletable yet.
        assert_eq!(
            code(
                &f,
                &f.owner,
                "AttachVolume",
                &[
                    ("VolumeId", &id),
                    ("InstanceId", INSTANCE),
                    ("Device", "/dev/sdf")
                ]
            )
            .await,
            "IncorrectState"
        );
        assert_eq!(
            code(&f, &f.owner, "DeleteVolume", &[("VolumeId", &id)]).await,
            "IncorrectState"
        );
    }

    #[tokio::test]
    async fn attachment_errors_change_nothing() {
        let f = fixture().await;
        let a = available_volume(&f).await;
        let b = available_volume(&f).await;
        launch(&f, "i-0000000000000000b", "pending").await;
        launch_in(&f, "i-0000000000000000c", "running", "mallee-1b").await;
        let attach = |vol: &str, instance: &str, device: &str| {
            vec![
                ("VolumeId".to_owned(), vol.to_owned()),
                ("InstanceId".to_owned(), instance.to_owned()),
                ("Device".to_owned(), device.to_owned()),
            ]
        };
        for (request, expected) in [
            (attach(&a, INSTANCE, "/dev/sda1"), "InvalidParameterValue"),
            (attach(&a, INSTANCE, "/dev/sdq"), "InvalidParameterValue"),
            (
                attach("vol-zz", INSTANCE, "/dev/sdf"),
                "InvalidVolumeID.Malformed",
            ),
            (
                attach("vol-0000000000000ffff", INSTANCE, "/dev/sdf"),
                "InvalidVolume.NotFound",
            ),
            (
                attach(&a, "i-0000000000000ffff", "/dev/sdf"),
                "InvalidInstanceID.NotFound",
            ),
            (
                attach(&a, "i-0000000000000000b", "/dev/sdf"),
                "IncorrectInstanceState",
            ),
            (
                attach(&a, "i-0000000000000000c", "/dev/sdf"),
                "InvalidVolume.ZoneMismatch",
            ),
        ] {
            assert_eq!(
                code(&f, &f.owner, "AttachVolume", &as_refs(&request)).await,
                expected,
                "{request:?}"
            );
        }
        let before = rows(&f).await;

        let attached = run(
            &f,
            "AttachVolume",
            &as_refs(&attach(&a, INSTANCE, "/dev/sdf")),
        )
        .await
        .expect("attach");
        assert_eq!(between(&attached, "status"), "attaching");
        let after_attach = rows(&f).await;
        assert_ne!(before, after_attach);

        for (action, request, expected) in [
            (
                "AttachVolume",
                attach(&a, INSTANCE, "/dev/sdg"),
                "VolumeInUse",
            ),
            (
                "AttachVolume",
                attach(&b, INSTANCE, "/dev/sdf"),
                "InvalidParameterValue",
            ),
            (
                "AttachVolume",
                attach(&b, INSTANCE, "/dev/xvdf"),
                "InvalidParameterValue",
            ),
            (
                "DeleteVolume",
                vec![("VolumeId".into(), a.clone())],
                "VolumeInUse",
            ),
            (
                "DetachVolume",
                vec![("VolumeId".into(), b.clone())],
                "IncorrectState",
            ),
            (
                "DetachVolume",
                vec![
                    ("VolumeId".into(), a.clone()),
                    ("InstanceId".into(), "i-0000000000000000b".into()),
                ],
                "InvalidAttachment.NotFound",
            ),
            (
                "DetachVolume",
                vec![
                    ("VolumeId".into(), a.clone()),
                    ("Device".into(), "/dev/sdg".into()),
                ],
                "InvalidAttachment.NotFound",
            ),
        ] {
            assert_eq!(
                code(&f, &f.owner, action, &as_refs(&request)).await,
                expected,
                "{action} {request:?}"
            );
        }
        // Another account sees and touches none of it.
        for (action, request) in [
            (
                "DescribeVolumes",
                vec![("VolumeId.1".to_owned(), a.clone())],
            ),
            ("DeleteVolume", vec![("VolumeId".into(), b.clone())]),
            ("DetachVolume", vec![("VolumeId".into(), a.clone())]),
            ("AttachVolume", attach(&b, INSTANCE, "/dev/sdh")),
            (
                "DescribeVolumeAttribute",
                vec![
                    ("VolumeId".into(), a.clone()),
                    ("Attribute".into(), "autoEnableIO".into()),
                ],
            ),
            (
                "ModifyVolumeAttribute",
                vec![
                    ("VolumeId".into(), a.clone()),
                    ("AutoEnableIO.Value".into(), "true".into()),
                ],
            ),
        ] {
            assert_eq!(
                code(&f, &f.other, action, &as_refs(&request)).await,
                "InvalidVolume.NotFound",
                "{action}"
            );
        }
        let listed = run_as(&f, &f.other, "DescribeVolumes", &[])
            .await
            .expect("describe");
        assert!(!listed.contains("vol-"), "{listed}");
        assert_eq!(
            rows(&f).await,
            after_attach,
            "a refused request changed something"
        );

        let described = run(&f, "DescribeVolumes", &[("VolumeId.1", &a)])
            .await
            .expect("describe");
        assert_eq!(between(&described, "status"), "in-use");
        assert!(
            described.contains("<device>/dev/sdf</device><status>attaching</status>"),
            "{described}"
        );
        let filtered = run(
            &f,
            "DescribeVolumes",
            &[
                ("Filter.1.Name", "attachment.instance-id"),
                ("Filter.1.Value.1", INSTANCE),
            ],
        )
        .await
        .expect("describe");
        assert!(
            filtered.contains(&a) && !filtered.contains(&b),
            "{filtered}"
        );

        // Detach: the volume stays in use until its node lets go.
        let detached = run(
            &f,
            "DetachVolume",
            &[("VolumeId", &a), ("InstanceId", INSTANCE)],
        )
        .await
        .expect("detach");
        assert_eq!(between(&detached, "status"), "detaching");
        let row = f.cloud.store.volume(&a).await.expect("get").expect("row");
        assert_eq!(
            (row.state.as_str(), row.desired.as_str()),
            ("in-use", "available")
        );
        assert_eq!(
            code(
                &f,
                &f.owner,
                "AttachVolume",
                &as_refs(&attach(&a, INSTANCE, "/dev/sdg"))
            )
            .await,
            "VolumeInUse"
        );
        run(&f, "DetachVolume", &[("VolumeId", &a), ("Force", "true")])
            .await
            .expect("force");
        let forced = decode_volume(f.cloud.store.volume(&a).await.expect("get").expect("row"))
            .expect("decode");
        assert!(forced.details.force_detach);

        // Deleting b (available) is accepted once, then shows `deleting`.
        run(&f, "DeleteVolume", &[("VolumeId", &b)])
            .await
            .expect("delete");
        run(&f, "DeleteVolume", &[("VolumeId", &b)])
            .await
            .expect("again");
        let row = f.cloud.store.volume(&b).await.expect("get").expect("row");
        assert_eq!(
            (row.state.as_str(), row.desired.as_str()),
            ("deleting", "deleted")
        );
    }

    #[tokio::test]
    async fn status_and_attributes() {
        let f = fixture().await;
        let a = available_volume(&f).await;
        let status = run(&f, "DescribeVolumeStatus", &[("VolumeId.1", &a)])
            .await
            .expect("status");
        assert!(
            status.contains("<volumeStatus><status>ok</status>"),
            "{status}"
        );
        assert!(
            status.contains("<name>io-enabled</name><status>passed</status>"),
            "{status}"
        );
        let attr = run(
            &f,
            "DescribeVolumeAttribute",
            &[("VolumeId", &a), ("Attribute", "autoEnableIO")],
        )
        .await
        .expect("attribute");
        assert!(
            attr.contains("<autoEnableIO><value>false</value></autoEnableIO>"),
            "{attr}"
        );
        run(
            &f,
            "ModifyVolumeAttribute",
            &[("VolumeId", &a), ("AutoEnableIO.Value", "true")],
        )
        .await
        .expect("modify");
        let attr = run(
            &f,
            "DescribeVolumeAttribute",
            &[("VolumeId", &a), ("Attribute", "autoEnableIO")],
        )
        .await
        .expect("attribute");
        assert!(attr.contains("<value>true</value>"), "{attr}");
        let codes = run(
            &f,
            "DescribeVolumeAttribute",
            &[("VolumeId", &a), ("Attribute", "productCodes")],
        )
        .await
        .expect("attribute");
        assert!(codes.contains("<productCodes></productCodes>"), "{codes}");
        assert_eq!(
            code(
                &f,
                &f.owner,
                "DescribeVolumeAttribute",
                &[("VolumeId", &a), ("Attribute", "size")]
            )
            .await,
            "InvalidParameterValue"
        );
        assert_eq!(
            code(
                &f,
                &f.owner,
                "DescribeVolumeStatus",
                &[("VolumeId.1", "vol-0000000000000ffff")]
            )
            .await,
            "InvalidVolume.NotFound"
        );
    }

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
