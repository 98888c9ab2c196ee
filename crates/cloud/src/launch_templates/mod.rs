//! EC2 launch templates: named, numbered versions of launch parameters
//! ([`data::LaunchData`]) that RunInstances starts from.
//!
//! A template is created with version 1 as its default. New versions
//! take the next number (never reused, even after a delete) and may start
//! from a source version. A launch that names a template merges its own
//! parameters over the chosen version's and tags its instances with
//! `aws:ec2launchtemplate:id` and `aws:ec2launchtemplate:version`, as
//! EC2 does.

pub mod data;

use mallee_store::{LaunchTemplateRecord, LaunchTemplateVersion, StoreError, TagPair};

use crate::instances::launch::{self, Launched};
use crate::{Cloud, CloudError, Kind, Principal, ids};
use data::LaunchData;

/// Most versions a template may have, as on EC2.
pub const MAX_VERSIONS: usize = 10_000;

/// How a request names a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRef {
    /// `LaunchTemplateId`.
    Id(String),
    /// `LaunchTemplateName`.
    Name(String),
}

/// Which version of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    /// `$Default` (or no version given).
    Default,
    /// `$Latest`.
    Latest,
    /// A number.
    Number(i64),
}

impl VersionRef {
    /// Reads `$Latest`, `$Default` or a positive number.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "$Latest" => Some(Self::Latest),
            "$Default" => Some(Self::Default),
            n => n.parse().ok().filter(|n| *n >= 1).map(Self::Number),
        }
    }

    fn number(self, template: &LaunchTemplateRecord) -> i64 {
        match self {
            Self::Default => template.default_version,
            Self::Latest => template.latest_version,
            Self::Number(n) => n,
        }
    }
}

/// One version with the template it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateVersion {
    /// The template.
    pub template: LaunchTemplateRecord,
    /// The version's number.
    pub version: i64,
    /// `VersionDescription`.
    pub description: Option<String>,
    /// Its launch parameters.
    pub data: LaunchData,
    /// When it was made.
    pub created_at: i64,
    /// Who made it (ARN).
    pub created_by: String,
}

impl TemplateVersion {
    /// Whether it is its template's default version.
    pub fn is_default(&self) -> bool {
        self.template.default_version == self.version
    }

    fn from_record(
        template: &LaunchTemplateRecord,
        v: LaunchTemplateVersion,
    ) -> Result<Self, CloudError> {
        let data = serde_json::from_str(&v.data).map_err(|e| {
            CloudError::Internal(format!(
                "launch data of {} v{}: {e}",
                v.template_id, v.version
            ))
        })?;
        Ok(Self {
            template: template.clone(),
            version: v.version,
            description: v.description,
            data,
            created_at: v.created_at,
            created_by: v.created_by,
        })
    }
}

/// Why a version was not deleted (DeleteLaunchTemplateVersions answers
/// per version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionNotDeleted {
    /// It is the default version.
    IsDefault,
    /// The template has no such version.
    DoesNotExist,
}

/// The caller's ARN, as `CreatedBy` shows it.
fn created_by(caller: &Principal) -> String {
    let account = caller.account_id();
    match &caller.session {
        Some(s) => match &s.role_name {
            Some(role) => {
                crate::identity::authorize::assumed_role_arn(account, role, &s.session_name)
            }
            None => format!("arn:aws:iam::{account}:user/{}", caller.user_name),
        },
        None => format!("arn:aws:iam::{account}:user/{}", caller.user_name),
    }
}

/// Checks a template name: 3 to 128 of `A-Z a-z 0-9 ( ) . - / _`.
pub fn validate_name(name: &str) -> Result<(), CloudError> {
    let ok = (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "().-/_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(CloudError::Malformed {
            kind: Kind::LaunchTemplateName,
            message: "A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.'".into(),
        })
    }
}

fn encode(data: &LaunchData) -> Result<String, CloudError> {
    serde_json::to_string(data).map_err(|e| CloudError::Internal(format!("launch data: {e}")))
}

/// Creates a template whose version 1 (the default) is `data`.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    name: &str,
    description: Option<String>,
    data: &LaunchData,
    tags: &[TagPair],
) -> Result<LaunchTemplateRecord, CloudError> {
    validate_name(name)?;
    let now = ids::now_millis();
    let record = LaunchTemplateRecord {
        template_id: ids::resource_id("lt"),
        account_id: caller.account_id().to_owned(),
        name: name.to_owned(),
        default_version: 1,
        latest_version: 1,
        created_at: now,
        created_by: created_by(caller),
    };
    let first = LaunchTemplateVersion {
        template_id: record.template_id.clone(),
        version: 1,
        description,
        data: encode(data)?,
        created_at: now,
        created_by: record.created_by.clone(),
    };
    match cloud
        .store
        .create_launch_template(&record, &first, tags)
        .await
    {
        Ok(()) => Ok(record),
        Err(StoreError::Conflict(_)) => Err(CloudError::Duplicate {
            kind: Kind::LaunchTemplateName,
            message: "Launch template name already in use.".into(),
        }),
        Err(e) => Err(e.into()),
    }
}

fn not_found(by: &TemplateRef) -> CloudError {
    match by {
        TemplateRef::Id(id) => CloudError::not_found(
            Kind::LaunchTemplate,
            format!("The specified launch template, with template ID {id}, does not exist."),
        ),
        TemplateRef::Name(name) => CloudError::not_found(
            Kind::LaunchTemplateName,
            format!("The specified launch template, with template name {name}, does not exist."),
        ),
    }
}

/// Checks the form of a template id (`lt-` and 17 hex digits).
pub fn validate_id(id: &str) -> Result<(), CloudError> {
    let ok = id
        .strip_prefix("lt-")
        .is_some_and(|h| (8..=17).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(CloudError::Malformed {
            kind: Kind::LaunchTemplate,
            message: format!(
                "The specified ID for the launch template ({id}) is not valid. Specify a valid launch template ID in the form lt-xxxxxxxxxxxxxxxxx."
            ),
        })
    }
}

/// The caller's template named by `by`.
pub async fn find(
    cloud: &Cloud,
    caller: &Principal,
    by: &TemplateRef,
) -> Result<LaunchTemplateRecord, CloudError> {
    if let TemplateRef::Id(id) = by {
        validate_id(id)?;
    }
    cloud
        .store
        .launch_templates(caller.account_id())
        .await?
        .into_iter()
        .find(|t| match by {
            TemplateRef::Id(id) => &t.template_id == id,
            TemplateRef::Name(name) => &t.name == name,
        })
        .ok_or_else(|| not_found(by))
}

/// The caller's templates, only those named by `ids` and `names` when any
/// are given (each must exist).
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
    names: &[String],
) -> Result<Vec<LaunchTemplateRecord>, CloudError> {
    for id in ids {
        validate_id(id)?;
    }
    let all = cloud.store.launch_templates(caller.account_id()).await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !all.iter().any(|t| &t.template_id == *id))
    {
        return Err(not_found(&TemplateRef::Id(missing.clone())));
    }
    if let Some(missing) = names.iter().find(|n| !all.iter().any(|t| &t.name == *n)) {
        return Err(not_found(&TemplateRef::Name(missing.clone())));
    }
    Ok(all
        .into_iter()
        .filter(|t| {
            (ids.is_empty() && names.is_empty())
                || ids.contains(&t.template_id)
                || names.contains(&t.name)
        })
        .collect())
}

async fn all_versions(
    cloud: &Cloud,
    caller: &Principal,
    template: &LaunchTemplateRecord,
) -> Result<Vec<TemplateVersion>, CloudError> {
    cloud
        .store
        .launch_template_versions(caller.account_id(), &template.template_id)
        .await?
        .into_iter()
        .map(|v| TemplateVersion::from_record(template, v))
        .collect()
}

fn version_not_found(template: &LaunchTemplateRecord, number: i64) -> CloudError {
    CloudError::not_found(
        Kind::LaunchTemplateVersion,
        format!(
            "Could not find launch template version {number} for launch template {}.",
            template.template_id
        ),
    )
}

/// One version of the caller's template.
pub async fn version(
    cloud: &Cloud,
    caller: &Principal,
    by: &TemplateRef,
    which: VersionRef,
) -> Result<TemplateVersion, CloudError> {
    let template = find(cloud, caller, by).await?;
    let number = which.number(&template);
    all_versions(cloud, caller, &template)
        .await?
        .into_iter()
        .find(|v| v.version == number)
        .ok_or_else(|| version_not_found(&template, number))
}

/// Versions of the caller's templates. With a template: the versions
/// named by `which` (all when empty) between `min` and `max`. Without one,
/// only `$Latest` and `$Default` may be asked for, of every template.
pub async fn versions(
    cloud: &Cloud,
    caller: &Principal,
    by: Option<&TemplateRef>,
    which: &[VersionRef],
    min: Option<i64>,
    max: Option<i64>,
) -> Result<Vec<TemplateVersion>, CloudError> {
    let templates = match by {
        Some(by) => vec![find(cloud, caller, by).await?],
        None => {
            if which.is_empty() || which.iter().any(|w| matches!(w, VersionRef::Number(_))) {
                return Err(CloudError::Missing(
                    "The request must contain the parameter LaunchTemplateId or LaunchTemplateName when versions other than $Latest and $Default are asked for".into(),
                ));
            }
            cloud.store.launch_templates(caller.account_id()).await?
        }
    };
    let mut out = Vec::new();
    for template in &templates {
        let all = all_versions(cloud, caller, template).await?;
        let wanted: Vec<i64> = which.iter().map(|w| w.number(template)).collect();
        if by.is_some()
            && let Some(missing) = wanted
                .iter()
                .find(|n| !all.iter().any(|v| v.version == **n))
        {
            return Err(version_not_found(template, *missing));
        }
        out.extend(all.into_iter().filter(|v| {
            (wanted.is_empty() || wanted.contains(&v.version))
                && min.is_none_or(|m| v.version >= m)
                && max.is_none_or(|m| v.version <= m)
        }));
    }
    Ok(out)
}

/// Adds a version: `data`, over the `source` version's when one is named.
pub async fn create_version(
    cloud: &Cloud,
    caller: &Principal,
    by: &TemplateRef,
    source: Option<VersionRef>,
    description: Option<String>,
    data: LaunchData,
) -> Result<TemplateVersion, CloudError> {
    let template = find(cloud, caller, by).await?;
    let existing = all_versions(cloud, caller, &template).await?;
    if existing.len() >= MAX_VERSIONS {
        return Err(CloudError::LimitExceeded {
            limit: crate::error::Limit::LaunchTemplateVersions,
            message: format!(
                "You have reached the maximum of {MAX_VERSIONS} versions for launch template {}.",
                template.template_id
            ),
        });
    }
    let data = match source {
        None => data,
        Some(s) => {
            let number = s.number(&template);
            let source = existing
                .into_iter()
                .find(|v| v.version == number)
                .ok_or_else(|| version_not_found(&template, number))?;
            data.over(source.data)
        }
    };
    let stored = cloud
        .store
        .add_launch_template_version(
            caller.account_id(),
            &template.template_id,
            description.as_deref(),
            &encode(&data)?,
            ids::now_millis(),
            &created_by(caller),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => not_found(by),
            e => e.into(),
        })?;
    let template = LaunchTemplateRecord {
        latest_version: stored.version,
        ..template
    };
    TemplateVersion::from_record(&template, stored)
}

/// Makes `which` the template's default version.
pub async fn set_default(
    cloud: &Cloud,
    caller: &Principal,
    by: &TemplateRef,
    which: VersionRef,
) -> Result<LaunchTemplateRecord, CloudError> {
    let template = find(cloud, caller, by).await?;
    let number = which.number(&template);
    cloud
        .store
        .set_default_launch_template_version(caller.account_id(), &template.template_id, number)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => version_not_found(&template, number),
            e => e.into(),
        })
}

/// Deletes the template with all its versions.
pub async fn delete(
    cloud: &Cloud,
    caller: &Principal,
    by: &TemplateRef,
) -> Result<LaunchTemplateRecord, CloudError> {
    let template = find(cloud, caller, by).await?;
    cloud
        .store
        .delete_launch_template(caller.account_id(), &template.template_id)
        .await?
        .ok_or_else(|| not_found(by))
}

/// Deletes versions of a template; each is deleted or says why not.
pub async fn delete_versions(
    cloud: &Cloud,
    caller: &Principal,
    by: &TemplateRef,
    numbers: &[i64],
) -> Result<(LaunchTemplateRecord, Vec<(i64, Option<VersionNotDeleted>)>), CloudError> {
    let template = find(cloud, caller, by).await?;
    let deletable: Vec<i64> = numbers
        .iter()
        .copied()
        .filter(|n| *n != template.default_version)
        .collect();
    let deleted = cloud
        .store
        .delete_launch_template_versions(caller.account_id(), &template.template_id, &deletable)
        .await?;
    let outcome = numbers
        .iter()
        .map(|&n| {
            let why = if n == template.default_version {
                Some(VersionNotDeleted::IsDefault)
            } else if deleted.contains(&n) {
                None
            } else {
                Some(VersionNotDeleted::DoesNotExist)
            };
            (n, why)
        })
        .collect();
    Ok((template, outcome))
}

/// A RunInstances request: its own parameters and the template (and
/// version) it starts from, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    /// The request's own launch parameters.
    pub data: LaunchData,
    /// `MinCount`.
    pub min_count: usize,
    /// `MaxCount`.
    pub max_count: usize,
    /// `ClientToken`.
    pub client_token: Option<String>,
    /// `LaunchTemplate.LaunchTemplateId`/`Name` and `.Version`.
    pub template: Option<(TemplateRef, VersionRef)>,
}

/// The launch the request makes: its parameters over its template's, the
/// instances tagged with the template id and version.
pub async fn resolve_launch(
    cloud: &Cloud,
    caller: &Principal,
    request: LaunchRequest,
) -> Result<launch::RunInstances, CloudError> {
    let data = match &request.template {
        None => request.data,
        Some((by, which)) => {
            let v = version(cloud, caller, by, *which).await?;
            let mut data = request.data.over(v.data);
            let system_tags = [
                ("aws:ec2launchtemplate:id", v.template.template_id.clone()),
                ("aws:ec2launchtemplate:version", v.version.to_string()),
            ];
            let instance_tags = match data
                .tag_specifications
                .iter_mut()
                .find(|s| s.resource_type == "instance")
            {
                Some(spec) => spec,
                None => {
                    data.tag_specifications.push(data::TagSpecification {
                        resource_type: "instance".into(),
                        tags: Vec::new(),
                    });
                    data.tag_specifications.last_mut().expect("just pushed")
                }
            };
            for (key, value) in system_tags {
                instance_tags.tags.retain(|t| t.key != key);
                instance_tags.tags.push(TagPair {
                    key: key.into(),
                    value,
                });
            }
            data
        }
    };
    data.into_run(request.min_count, request.max_count, request.client_token)
}

/// Launches what the request asks for (see [`resolve_launch`]).
pub async fn run(
    cloud: &Cloud,
    caller: &Principal,
    request: LaunchRequest,
) -> Result<Launched, CloudError> {
    let run = resolve_launch(cloud, caller, request).await?;
    launch::run(cloud, caller, run).await
}
