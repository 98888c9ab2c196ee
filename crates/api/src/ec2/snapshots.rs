//! EBS snapshots on the wire: CreateSnapshot, DescribeSnapshots,
//! DeleteSnapshot, Describe/Modify/ResetSnapshotAttribute
//! (createVolumePermission), ImportSnapshot and
//! DescribeImportSnapshotTasks: parameters in, XML out. What a snapshot is,
//! who sees and changes it, and how one is taken, deleted or imported is
//! `mallee_cloud::snapshots`.

use mallee_store::TagPair;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;
use mallee_cloud::sharing::{Selection, is_account_id, malformed_user};
use mallee_cloud::snapshots::access::{
    self, ListedSnapshot, validate_description, validate_snapshot_id,
};
use mallee_cloud::snapshots::import::{self, Import};
use mallee_cloud::snapshots::{Snapshot, SnapshotStatus, attributes, create};

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::volumes::validate_volume_id;
use super::{Ec2Context, Ec2Error, iso8601};

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
        let snapshot = create::create(
            ctx.cloud,
            ctx.principal,
            &self.volume_id,
            &self.description,
            &self.tags,
        )
        .await?;
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
    selection: Selection,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeSnapshots {
    /// Reads `SnapshotId.N`, `Owner.N`, `RestorableBy.N`, `Filter.N`,
    /// `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let ids = params.list("SnapshotId")?;
        for id in &ids {
            validate_snapshot_id(id)?;
        }
        let selection = super::sharing::parse_selection(params, "RestorableBy", false)?;
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
            selection,
            filters,
            page,
        })
    }

    /// Lists the snapshots the caller may see that match every criterion.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let listed = access::describe(ctx.cloud, ctx.principal, &self.ids, &self.selection).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<SnapshotView<'_>> = listed
            .iter()
            .map(
                |ListedSnapshot {
                     snapshot,
                     owner_alias,
                 }| SnapshotView {
                    snapshot,
                    tags: tags.of(snapshot.id()),
                    owner_alias: *owner_alias,
                },
            )
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
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
        create::delete(ctx.cloud, ctx.principal, &self.id).await?;
        Ok(ctx.respond_true("DeleteSnapshot"))
    }
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
        let grantees =
            attributes::create_volume_permissions(ctx.cloud, ctx.principal, &self.id).await?;
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
        (None, Some(user)) => Err(malformed_user(user).into()),
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
        attributes::change_create_volume_permissions(
            ctx.cloud,
            ctx.principal,
            &self.id,
            &self.add,
            &self.remove,
        )
        .await?;
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
        attributes::reset_create_volume_permissions(ctx.cloud, ctx.principal, &self.id).await?;
        Ok(ctx.respond_true("ResetSnapshotAttribute"))
    }
}

// --- ImportSnapshot --------------------------------------------------------

/// ImportSnapshot input.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSnapshot(Import);

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
        Ok(Self(Import {
            bucket,
            key,
            format,
            description,
            task_description: params
                .get("Description")
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            tags: parse_tag_specifications(params, "import-snapshot-task")?,
        }))
    }

    /// Checks the caller may read the object, then records a pending
    /// snapshot the controller fills from it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let snapshot = import::import(ctx.cloud, ctx.principal, &self.0).await?;
        let tags: Vec<(String, String)> = self
            .0
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
        let imports = import::tasks(ctx.cloud, ctx.principal, &self.task_ids).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        Ok(ctx.respond("DescribeImportSnapshotTasks", |w| {
            w.items("importSnapshotTaskSet", &imports, |w, s| {
                write_import_task(w, s, tags.of(s.id()));
            });
        }))
    }
}
