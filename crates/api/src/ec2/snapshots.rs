//! EBS snapshots: CreateSnapshot, DescribeSnapshots, DeleteSnapshot,
//! Describe/Modify/ResetSnapshotAttribute (createVolumePermission),
//! ImportSnapshot and DescribeImportSnapshotTasks.
//!
//! Each action checks everything first, then records the snapshot and
//! wakes the reconciler (`compute::snapshots`), which has the volume's node
//! capture it or copies an imported object. Visibility follows EC2: an
//! account sees its own snapshots and those shared with it (or public);
//! only the owner changes or deletes one.

use std::collections::HashSet;

use mallee_store::{SnapshotDeletion, SnapshotRecord, TagPair};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::s3::acl::{Acl, Permission};
use crate::xml::XmlWriter;
use mallee_cloud::ids;
use mallee_cloud::snapshots::{
    IMPORTED_VOLUME_ID, ImportSource, Snapshot, SnapshotDesired, SnapshotDetails, SnapshotStatus,
    gib_for, sniff_disk,
};
use mallee_cloud::volumes::{Volume, VolumeStatus};

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::volumes::validate_volume_id;
use super::{Ec2Context, Ec2Error, iso8601};
use mallee_cloud::snapshots::access::{
    admin_accounts, contended, decode, is_account_id, load_owned, not_found, validate_description,
    validate_snapshot_id, visible,
};

/// Compare-and-set attempts before giving up on a contended snapshot.
const ATTEMPTS: usize = 8;
/// Longest description EC2 accepts.
/// Owner aliases for snapshots of the cloud's administrator accounts.
const ADMIN_ALIASES: &[&str] = &["amazon", "mallee", "eucalyptus"];

// --- XML -------------------------------------------------------------------

fn progress(s: &Snapshot) -> String {
    format!("{}%", s.record.progress)
}

fn write_snapshot(
    w: &mut XmlWriter,
    s: &Snapshot,
    tags: &[(String, String)],
    owner_alias: Option<&str>,
) {
    w.text("snapshotId", s.id());
    w.text("volumeId", &s.record.volume_id);
    w.text("status", s.status.name());
    w.opt_text("stateMessage", s.details.error.as_deref());
    w.text("startTime", iso8601(s.record.created_at));
    w.text("progress", progress(s));
    w.text("ownerId", &s.record.account_id);
    w.opt_text("ownerAlias", owner_alias);
    w.text("volumeSize", s.record.volume_size_gib);
    w.text("description", &s.details.description);
    w.text("encrypted", "false");
    w.text("storageTier", "standard");
    write_tag_set(w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

// --- CreateSnapshot --------------------------------------------------------

/// CreateSnapshot input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSnapshot {
    volume_id: String,
    description: String,
    tags: Vec<TagPair>,
}

impl CreateSnapshot {
    /// Reads `VolumeId`, `Description`, `TagSpecification.N` (`snapshot`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let volume_id = params.required_non_empty("VolumeId")?.to_owned();
        validate_volume_id(&volume_id)?;
        let description = params.get("Description").unwrap_or_default().to_owned();
        validate_description(&description)?;
        if params.get("OutpostArn").is_some_and(|a| !a.is_empty()) {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                "Outposts are not supported by this cloud.",
            ));
        }
        Ok(Self {
            volume_id,
            description,
            tags: parse_tag_specifications(params, "snapshot")?,
        })
    }

    /// Records a pending snapshot of the caller's volume; its node captures
    /// the volume's content as of now.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let volume = match ctx.cloud.store.volume(&self.volume_id).await? {
            Some(record) if &record.account_id == account => {
                Volume::decode(record).map_err(|e| Ec2Error::Internal(e.to_string()))?
            }
            _ => {
                return Err(Ec2Error::refused(
                    "InvalidVolume.NotFound",
                    format!("The volume '{}' does not exist.", self.volume_id),
                ));
            }
        };
        if !matches!(volume.status, VolumeStatus::Available | VolumeStatus::InUse) {
            return Err(Ec2Error::refused(
                "IncorrectState",
                format!(
                    "The volume '{}' is '{}' and cannot be snapshotted.",
                    self.volume_id,
                    volume.status.name()
                ),
            ));
        }
        let snapshot = new_snapshot(
            account,
            &volume,
            SnapshotDetails {
                description: self.description.clone(),
                ..SnapshotDetails::default()
            },
        );
        ctx.cloud
            .store
            .create_snapshot(&snapshot.encode(), &self.tags)
            .await?;
        ctx.cloud.compute.wake();
        tracing::info!(snapshot = %snapshot.id(), volume = %self.volume_id, account = %account, "snapshot requested");
        let tags: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        Ok(ctx.respond("CreateSnapshot", |w| {
            write_snapshot(w, &snapshot, &tags, None);
        }))
    }
}

/// A new pending snapshot of `volume`, captured by its node.
pub fn new_snapshot(account: &str, volume: &Volume, details: SnapshotDetails) -> Snapshot {
    let now = ids::now_millis();
    Snapshot {
        record: SnapshotRecord {
            snapshot_id: ids::resource_id("snap"),
            account_id: account.to_owned(),
            volume_id: volume.id().to_owned(),
            volume_size_gib: volume.record.size_gib,
            node_id: Some(volume.record.node_id.clone()),
            state: String::new(),
            desired: String::new(),
            progress: 0,
            data: None,
            generation: 1,
            revision: 0,
            details: String::new(),
            created_at: now,
            updated_at: now,
        },
        status: SnapshotStatus::Pending,
        desired: SnapshotDesired::Completed,
        details,
    }
}

// --- DescribeSnapshots -----------------------------------------------------

const FILTERS: &[&str] = &[
    "description",
    "encrypted",
    "owner-alias",
    "owner-id",
    "progress",
    "snapshot-id",
    "start-time",
    "status",
    "storage-tier",
    "volume-id",
    "volume-size",
];

struct SnapshotView<'a> {
    snapshot: &'a Snapshot,
    tags: &'a [(String, String)],
    owner_alias: Option<&'static str>,
}

impl Filterable for SnapshotView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let s = self.snapshot;
        Some(match name {
            "description" => vec![s.details.description.clone()],
            "encrypted" => vec!["false".into()],
            "owner-alias" => self.owner_alias.map(str::to_owned).into_iter().collect(),
            "owner-id" => vec![s.record.account_id.clone()],
            "progress" => vec![progress(s)],
            "snapshot-id" => vec![s.id().to_owned()],
            "start-time" => vec![iso8601(s.record.created_at)],
            "status" => vec![s.status.name().to_owned()],
            "storage-tier" => vec!["standard".into()],
            "volume-id" => vec![s.record.volume_id.clone()],
            "volume-size" => vec![s.record.volume_size_gib.to_string()],
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

/// DescribeSnapshots input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeSnapshots {
    ids: Vec<String>,
    owners: Vec<String>,
    restorable_by: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

fn user_id_malformed(value: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidUserID.Malformed",
        format!("Invalid user id: '{value}'"),
    )
}

impl DescribeSnapshots {
    /// Reads `SnapshotId.N`, `Owner.N`, `RestorableBy.N`, `Filter.N`,
    /// `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let ids = params.list("SnapshotId")?;
        for id in &ids {
            validate_snapshot_id(id)?;
        }
        let owners = params.list("Owner")?;
        if let Some(bad) = owners.iter().find(|o| {
            !(o.as_str() == "self" || ADMIN_ALIASES.contains(&o.as_str()) || is_account_id(o))
        }) {
            return Err(user_id_malformed(bad));
        }
        let restorable_by = params.list("RestorableBy")?;
        if let Some(bad) = restorable_by
            .iter()
            .find(|r| !(r.as_str() == "self" || r.as_str() == "all" || is_account_id(r)))
        {
            return Err(user_id_malformed(bad));
        }
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, FILTERS, true)?;
        let page = PageRequest::parse(params, 5, 1000)?;
        if !ids.is_empty() && page.max_results.is_some() {
            return Err(Ec2Error::InvalidParameterCombination(
                "The parameter snapshotSet cannot be used with the parameter maxResults".into(),
            ));
        }
        Ok(Self {
            ids,
            owners,
            restorable_by,
            filters,
            page,
        })
    }

    fn owner_matches(&self, s: &Snapshot, caller: &str, admins: &HashSet<String>) -> bool {
        self.owners.is_empty()
            || self.owners.iter().any(|owner| match owner.as_str() {
                "self" => s.record.account_id == caller,
                alias if ADMIN_ALIASES.contains(&alias) => admins.contains(&s.record.account_id),
                id => s.record.account_id == id,
            })
    }

    /// `RestorableBy`: `all` is public snapshots, `self` (or the caller's
    /// id) the caller's own and those shared with it, another account id
    /// the caller's snapshots shared with that account.
    fn restorable_matches(&self, s: &Snapshot, grantees: &[String], caller: &str) -> bool {
        let own = s.record.account_id == caller;
        self.restorable_by.is_empty()
            || self.restorable_by.iter().any(|who| match who.as_str() {
                "all" => grantees.iter().any(|g| g == "all"),
                "self" => own || grantees.iter().any(|g| g == caller || g == "all"),
                id if id == caller => own || grantees.iter().any(|g| g == caller || g == "all"),
                id => own && grantees.iter().any(|g| g == id || g == "all"),
            })
    }

    /// Lists the snapshots the caller may see that match every criterion.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let caller = &ctx.principal.account.account_id;
        let snapshots = visible(ctx.cloud, ctx.principal).await?;
        if let Some(missing) = self
            .ids
            .iter()
            .find(|id| !snapshots.iter().any(|s| s.id() == id.as_str()))
        {
            return Err(Ec2Error::from(not_found(missing)));
        }
        let admins = admin_accounts(ctx.cloud).await?;
        let tags = TagsByResource::load(ctx, caller).await?;
        let mut selected = Vec::new();
        for s in &snapshots {
            if !(self.ids.is_empty() || self.ids.iter().any(|id| id == s.id()))
                || !self.owner_matches(s, caller, &admins)
            {
                continue;
            }
            if !self.restorable_by.is_empty() {
                let grantees = ctx.cloud.store.snapshot_permissions(s.id()).await?;
                if !self.restorable_matches(s, &grantees, caller) {
                    continue;
                }
            }
            let view = SnapshotView {
                snapshot: s,
                tags: tags.of(s.id()),
                owner_alias: admins
                    .contains(&s.record.account_id)
                    .then_some(ADMIN_ALIASES[0]),
            };
            if filter::matches(&self.filters, &view) {
                selected.push(view);
            }
        }
        let (page, next) = self
            .page
            .apply(selected, |view| view.snapshot.id().to_owned());
        Ok(ctx.respond("DescribeSnapshots", |w| {
            w.items("snapshotSet", page, |w, view| {
                write_snapshot(w, view.snapshot, view.tags, view.owner_alias);
            });
            w.opt_text("nextToken", next);
        }))
    }
}

// --- DeleteSnapshot --------------------------------------------------------

/// DeleteSnapshot input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteSnapshot {
    id: String,
}

impl DeleteSnapshot {
    /// Reads `SnapshotId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("SnapshotId")?.to_owned();
        validate_snapshot_id(&id)?;
        Ok(Self { id })
    }

    /// Deletes the caller's snapshot unless an image uses it: a stored one
    /// at once (with its data), a pending one once its node has let go.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        for _ in 0..ATTEMPTS {
            let mut snapshot = load_owned(ctx.cloud, ctx.principal, &self.id).await?;
            if snapshot.record.node_id.is_none() || snapshot.status != SnapshotStatus::Pending {
                // Nothing runs on a node for it (or the node's leftovers are
                // swept as orphans): remove it now.
                match ctx.cloud.store.delete_snapshot(&snapshot.record).await? {
                    SnapshotDeletion::Deleted(data) => {
                        mallee_cloud::snapshots::release(ctx.cloud, data).await;
                        ctx.cloud.compute.wake();
                        tracing::info!(snapshot = %self.id, "snapshot deleted");
                        return Ok(ctx.respond_true("DeleteSnapshot"));
                    }
                    SnapshotDeletion::InUseByImage(image) => return Err(in_use(&self.id, &image)),
                    SnapshotDeletion::Changed => continue,
                }
            }
            if let Some(image) = image_using(ctx, &self.id).await? {
                return Err(in_use(&self.id, &image));
            }
            snapshot.desired = SnapshotDesired::Deleted;
            snapshot.record.updated_at = ids::now_millis();
            if ctx.cloud.store.update_snapshot(&snapshot.encode()).await? {
                ctx.cloud.compute.wake();
                tracing::info!(snapshot = %self.id, "deletion of a pending snapshot requested");
                return Ok(ctx.respond_true("DeleteSnapshot"));
            }
        }
        Err(Ec2Error::from(contended(&self.id)))
    }
}

fn in_use(snapshot: &str, image: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidSnapshot.InUse",
        format!("The snapshot {snapshot} is currently in use by {image}"),
    )
}

/// An image whose block device mappings name the snapshot, if any.
async fn image_using(ctx: &Ec2Context<'_>, snapshot_id: &str) -> Result<Option<String>, Ec2Error> {
    let owner = &ctx.principal.account.account_id;
    Ok(ctx
        .cloud
        .store
        .images_visible_to(owner)
        .await?
        .into_iter()
        .find(|i| {
            i.block_device_mappings
                .iter()
                .any(|m| m.snapshot_id.as_deref() == Some(snapshot_id))
        })
        .map(|i| i.image_id))
}

// --- Describe/Modify/ResetSnapshotAttribute ------------------------------

/// Snapshot attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attribute {
    CreateVolumePermission,
    ProductCodes,
}

impl Attribute {
    fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        match params.required_non_empty("Attribute")? {
            "createVolumePermission" => Ok(Self::CreateVolumePermission),
            "productCodes" => Ok(Self::ProductCodes),
            other => Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({other}) for parameter attribute is invalid. Valid values: productCodes, createVolumePermission"
            ))),
        }
    }
}

/// DescribeSnapshotAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeSnapshotAttribute {
    id: String,
    attribute: Attribute,
}

impl DescribeSnapshotAttribute {
    /// Reads `SnapshotId` and `Attribute`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("SnapshotId")?.to_owned();
        validate_snapshot_id(&id)?;
        Ok(Self {
            id,
            attribute: Attribute::parse(params)?,
        })
    }

    /// Shows the attribute of the caller's snapshot.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        load_owned(ctx.cloud, ctx.principal, &self.id).await?;
        let grantees = ctx.cloud.store.snapshot_permissions(&self.id).await?;
        Ok(ctx.respond("DescribeSnapshotAttribute", |w| {
            w.text("snapshotId", &self.id);
            match self.attribute {
                Attribute::CreateVolumePermission => {
                    w.items("createVolumePermission", &grantees, |w, g| {
                        if g == "all" {
                            w.text("group", "all");
                        } else {
                            w.text("userId", g);
                        }
                    });
                }
                Attribute::ProductCodes => w.elem("productCodes", |_| {}),
            }
        }))
    }
}

/// ModifySnapshotAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifySnapshotAttribute {
    id: String,
    add: Vec<String>,
    remove: Vec<String>,
}

fn grantee(group: Option<&str>, user: Option<&str>) -> Result<String, Ec2Error> {
    match (
        group.filter(|g| !g.is_empty()),
        user.filter(|u| !u.is_empty()),
    ) {
        (Some("all"), None) => Ok("all".into()),
        (Some(other), None) => Err(Ec2Error::InvalidParameterValue(format!(
            "Value ({other}) for parameter group is invalid. Valid values: all"
        ))),
        (None, Some(user)) if is_account_id(user) => Ok(user.to_owned()),
        (None, Some(user)) => Err(user_id_malformed(user)),
        _ => Err(Ec2Error::InvalidParameterCombination(
            "Each createVolumePermission entry names either Group or UserId.".into(),
        )),
    }
}

impl ModifySnapshotAttribute {
    /// Reads `SnapshotId` and `CreateVolumePermission.Add.N` /
    /// `.Remove.N` (`Group` = `all` or `UserId`), or the older
    /// `Attribute=createVolumePermission`, `OperationType=add|remove`,
    /// `UserId.N`, `UserGroup.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("SnapshotId")?.to_owned();
        validate_snapshot_id(&id)?;
        if let Some(attribute) = params.get("Attribute").filter(|a| !a.is_empty())
            && attribute != "createVolumePermission"
        {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({attribute}) for parameter attribute is invalid. Only createVolumePermission can be modified."
            )));
        }
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for (list, target) in [
            ("CreateVolumePermission.Add", &mut add),
            ("CreateVolumePermission.Remove", &mut remove),
        ] {
            for entry in params.structs(list)? {
                target.push(grantee(entry.get("Group"), entry.get("UserId"))?);
            }
        }
        let users = params.list("UserId")?;
        let groups = params.list("UserGroup")?;
        if !users.is_empty() || !groups.is_empty() {
            let target = match params.get("OperationType") {
                Some("add") => &mut add,
                Some("remove") => &mut remove,
                Some(other) => {
                    return Err(Ec2Error::InvalidParameterValue(format!(
                        "Value ({other}) for parameter operationType is invalid. Valid values: add, remove"
                    )));
                }
                None => {
                    return Err(crate::query::QueryError::Missing("OperationType".into()).into());
                }
            };
            for g in &groups {
                target.push(grantee(Some(g), None)?);
            }
            for u in &users {
                target.push(grantee(None, Some(u))?);
            }
        }
        if add.is_empty() && remove.is_empty() {
            return Err(Ec2Error::InvalidParameterCombination(
                "No attributes specified.".into(),
            ));
        }
        Ok(Self { id, add, remove })
    }

    /// Shares (or stops sharing) the caller's snapshot.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        load_owned(ctx.cloud, ctx.principal, &self.id).await?;
        ctx.cloud
            .store
            .change_snapshot_permissions(&self.id, &self.add, &self.remove)
            .await
            .map_err(|e| match e {
                mallee_store::StoreError::NotFound(_) => Ec2Error::from(not_found(&self.id)),
                e => e.into(),
            })?;
        Ok(ctx.respond_true("ModifySnapshotAttribute"))
    }
}

/// ResetSnapshotAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetSnapshotAttribute {
    id: String,
}

impl ResetSnapshotAttribute {
    /// Reads `SnapshotId` and `Attribute` (`createVolumePermission`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("SnapshotId")?.to_owned();
        validate_snapshot_id(&id)?;
        if Attribute::parse(params)? != Attribute::CreateVolumePermission {
            return Err(Ec2Error::InvalidParameterValue(
                "Only createVolumePermission can be reset.".into(),
            ));
        }
        Ok(Self { id })
    }

    /// Makes the caller's snapshot private again.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        load_owned(ctx.cloud, ctx.principal, &self.id).await?;
        ctx.cloud.store.reset_snapshot_permissions(&self.id).await?;
        Ok(ctx.respond_true("ResetSnapshotAttribute"))
    }
}

// --- ImportSnapshot --------------------------------------------------------

/// ImportSnapshot input.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSnapshot {
    bucket: String,
    key: String,
    format: String,
    description: String,
    task_description: Option<String>,
    tags: Vec<TagPair>,
}

impl ImportSnapshot {
    /// Reads `DiskContainer.UserBucket.S3Bucket` / `.S3Key`,
    /// `DiskContainer.Format` (`RAW`, `QCOW2`; `VHD`/`VMDK` are refused),
    /// `DiskContainer.Description`, `Description`, `TagSpecification.N`
    /// (`import-snapshot-task`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        if params
            .get("DiskContainer.Url")
            .is_some_and(|u| !u.is_empty())
        {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                "Import from a URL is not supported; give DiskContainer.UserBucket.",
            ));
        }
        let bucket = params
            .required_non_empty("DiskContainer.UserBucket.S3Bucket")?
            .to_owned();
        let key = params
            .required_non_empty("DiskContainer.UserBucket.S3Key")?
            .to_owned();
        let format = params
            .get("DiskContainer.Format")
            .filter(|f| !f.is_empty())
            .unwrap_or("RAW")
            .to_ascii_uppercase();
        if !matches!(format.as_str(), "RAW" | "QCOW2") {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Unsupported disk format {format}: this cloud imports RAW and QCOW2 images."
            )));
        }
        let description = params
            .get("DiskContainer.Description")
            .unwrap_or_default()
            .to_owned();
        validate_description(&description)?;
        Ok(Self {
            bucket,
            key,
            format,
            description,
            task_description: params
                .get("Description")
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            tags: parse_tag_specifications(params, "import-snapshot-task")?,
        })
    }

    /// Checks the caller may read the object, then records a pending
    /// snapshot the controller fills from it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let object = match ctx.cloud.store.object(&self.bucket, &self.key).await? {
            Some(object)
                if Acl::from_json(&object.acl_json, &object.owner_account)
                    .allows(Some(account), Permission::Read) =>
            {
                object
            }
            // Missing and unreadable objects answer alike.
            _ => {
                return Err(Ec2Error::refused(
                    "InvalidParameter",
                    format!(
                        "The object s3://{}/{} does not exist or you may not read it.",
                        self.bucket, self.key
                    ),
                ));
            }
        };
        let head = super::images::read_header(ctx.cloud, &object).await?;
        let (_, virtual_size) = sniff_disk(&head, object.size);
        let now = ids::now_millis();
        let task_id = ids::resource_id("import-snap");
        let snapshot = Snapshot {
            record: SnapshotRecord {
                snapshot_id: ids::resource_id("snap"),
                account_id: account.clone(),
                volume_id: IMPORTED_VOLUME_ID.into(),
                volume_size_gib: gib_for(virtual_size),
                node_id: None,
                state: String::new(),
                desired: String::new(),
                progress: 0,
                data: None,
                generation: 1,
                revision: 0,
                details: String::new(),
                created_at: now,
                updated_at: now,
            },
            status: SnapshotStatus::Pending,
            desired: SnapshotDesired::Completed,
            details: SnapshotDetails {
                description: self.description.clone(),
                import: Some(ImportSource {
                    task_id,
                    bucket: self.bucket.clone(),
                    key: self.key.clone(),
                    requested_format: self.format.clone(),
                    object_size: object.size,
                    task_description: self.task_description.clone(),
                }),
                ..SnapshotDetails::default()
            },
        };
        ctx.cloud
            .store
            .create_snapshot(&snapshot.encode(), &self.tags)
            .await?;
        ctx.cloud.compute.wake();
        tracing::info!(snapshot = %snapshot.id(), bucket = %self.bucket, key = %self.key, "snapshot import requested");
        let tags: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        Ok(ctx.respond("ImportSnapshot", |w| {
            write_import_task(w, &snapshot, &tags);
        }))
    }
}

fn write_import_task(w: &mut XmlWriter, s: &Snapshot, tags: &[(String, String)]) {
    let Some(import) = &s.details.import else {
        return;
    };
    w.text("importTaskId", &import.task_id);
    w.opt_text("description", import.task_description.as_deref());
    w.elem("snapshotTaskDetail", |w| {
        w.text("description", &s.details.description);
        w.text("diskImageSize", import.object_size);
        w.text("format", &import.requested_format);
        w.text("progress", s.record.progress);
        w.text("snapshotId", s.id());
        let (status, message) = match s.status {
            SnapshotStatus::Pending => ("active", Some("pending")),
            SnapshotStatus::Completed => ("completed", None),
            SnapshotStatus::Error => ("deleted", s.details.error.as_deref()),
        };
        w.text("status", status);
        w.opt_text("statusMessage", message);
        w.elem("userBucket", |w| {
            w.text("s3Bucket", &import.bucket);
            w.text("s3Key", &import.key);
        });
    });
    write_tag_set(w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// DescribeImportSnapshotTasks input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeImportSnapshotTasks {
    task_ids: Vec<String>,
}

impl DescribeImportSnapshotTasks {
    /// Reads `ImportTaskId.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            task_ids: params.list("ImportTaskId")?,
        })
    }

    /// Lists the caller's import tasks (one per imported snapshot).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let snapshots: Vec<Snapshot> = ctx
            .cloud
            .store
            .snapshots(Some(account))
            .await?
            .into_iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        let imports: Vec<&Snapshot> = snapshots
            .iter()
            .filter(|s| {
                s.details
                    .import
                    .as_ref()
                    .is_some_and(|i| self.task_ids.is_empty() || self.task_ids.contains(&i.task_id))
            })
            .collect();
        if let Some(missing) = self.task_ids.iter().find(|id| {
            !imports
                .iter()
                .any(|s| s.details.import.as_ref().is_some_and(|i| &i.task_id == *id))
        }) {
            return Err(Ec2Error::refused(
                "InvalidConversionTaskId.Malformed",
                format!("The import task '{missing}' does not exist."),
            ));
        }
        let tags = TagsByResource::load(ctx, account).await?;
        Ok(ctx.respond("DescribeImportSnapshotTasks", |w| {
            w.items("importSnapshotTaskSet", &imports, |w, s| {
                write_import_task(w, s, tags.of(s.id()));
            });
        }))
    }
}
