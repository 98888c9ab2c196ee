//! CreateLaunchTemplate, CreateLaunchTemplateVersion,
//! DescribeLaunchTemplates, DescribeLaunchTemplateVersions,
//! ModifyLaunchTemplate, DeleteLaunchTemplate and
//! DeleteLaunchTemplateVersions on the wire. Templates and versions
//! themselves are `mallee_cloud::launch_templates`.

use mallee_cloud::launch_templates::data::LaunchData;
use mallee_cloud::launch_templates::{
    self, TemplateRef, TemplateVersion, VersionNotDeleted, VersionRef,
};
use mallee_store::{LaunchTemplateRecord, TagPair};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::launch_data::{self, Source};
use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error, iso8601};

/// Most characters of a `VersionDescription`.
const MAX_DESCRIPTION: usize = 255;

fn description(params: &QueryParams) -> Result<Option<String>, Ec2Error> {
    match params.get("VersionDescription") {
        None => Ok(None),
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(Ec2Error::InvalidParameterValue(
            format!("The version description must be at most {MAX_DESCRIPTION} characters."),
        )),
        Some(d) => Ok(Some(d.to_owned())),
    }
}

/// Reads `LaunchTemplateId` or `LaunchTemplateName` (exactly one).
pub(crate) fn template_ref(
    params: &QueryParams,
    required: bool,
) -> Result<Option<TemplateRef>, Ec2Error> {
    let id = params.get("LaunchTemplateId").filter(|v| !v.is_empty());
    let name = params.get("LaunchTemplateName").filter(|v| !v.is_empty());
    match (id, name) {
        (Some(_), Some(_)) => Err(Ec2Error::InvalidParameterCombination(
            "Only one of LaunchTemplateId and LaunchTemplateName may be specified.".into(),
        )),
        (Some(id), None) => {
            launch_templates::validate_id(id)?;
            Ok(Some(TemplateRef::Id(id.to_owned())))
        }
        (None, Some(name)) => Ok(Some(TemplateRef::Name(name.to_owned()))),
        (None, None) if required => Err(crate::query::QueryError::Missing(
            "LaunchTemplateName or LaunchTemplateId".into(),
        )
        .into()),
        (None, None) => Ok(None),
    }
}

/// Reads a version (`$Latest`, `$Default` or a number) given as `name`.
pub(crate) fn version_ref(value: &str, name: &str) -> Result<VersionRef, Ec2Error> {
    VersionRef::parse(value).ok_or_else(|| {
        Ec2Error::InvalidParameterValue(format!(
            "Value ({value}) for parameter {name} is invalid. Specify a version number, $Latest or $Default."
        ))
    })
}

fn launch_data_of(params: &QueryParams) -> Result<LaunchData, Ec2Error> {
    launch_data::parse(&params.member("LaunchTemplateData"), Source::Template)
}

/// `launchTemplate` as Create, Modify, Delete and Describe show it.
fn write_template(w: &mut XmlWriter, t: &LaunchTemplateRecord, tags: &[(String, String)]) {
    w.text("launchTemplateId", &t.template_id);
    w.text("launchTemplateName", &t.name);
    w.text("createTime", iso8601(t.created_at));
    w.text("createdBy", &t.created_by);
    w.text("defaultVersionNumber", t.default_version);
    w.text("latestVersionNumber", t.latest_version);
    write_tag_set(w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

fn write_version(w: &mut XmlWriter, v: &TemplateVersion) {
    w.text("launchTemplateId", &v.template.template_id);
    w.text("launchTemplateName", &v.template.name);
    w.text("versionNumber", v.version);
    w.opt_text("versionDescription", v.description.as_deref());
    w.text("createTime", iso8601(v.created_at));
    w.text("createdBy", &v.created_by);
    w.text("defaultVersion", v.is_default());
    launch_data::write(w, &v.data);
}

fn pairs(tags: &[TagPair]) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

/// CreateLaunchTemplate input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateLaunchTemplate {
    name: String,
    description: Option<String>,
    data: LaunchData,
    tags: Vec<TagPair>,
}

impl CreateLaunchTemplate {
    /// Reads `LaunchTemplateName`, `VersionDescription`,
    /// `LaunchTemplateData.*` and `TagSpecification.N` (`launch-template`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let name = params.required_non_empty("LaunchTemplateName")?.to_owned();
        launch_templates::validate_name(&name)?;
        if params.member("LaunchTemplateData").is_empty() {
            return Err(crate::query::QueryError::Missing("LaunchTemplateData".into()).into());
        }
        Ok(Self {
            name,
            description: description(params)?,
            data: launch_data_of(params)?,
            tags: parse_tag_specifications(params, "launch-template")?,
        })
    }

    /// Creates the template with version 1.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let template = launch_templates::create(
            ctx.cloud,
            ctx.principal,
            &self.name,
            self.description,
            &self.data,
            &self.tags,
        )
        .await?;
        Ok(ctx.respond("CreateLaunchTemplate", |w| {
            w.elem("launchTemplate", |w| {
                write_template(w, &template, &pairs(&self.tags))
            });
        }))
    }
}

/// CreateLaunchTemplateVersion input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateLaunchTemplateVersion {
    template: TemplateRef,
    source: Option<VersionRef>,
    description: Option<String>,
    data: LaunchData,
}

impl CreateLaunchTemplateVersion {
    /// Reads the template, `SourceVersion`, `VersionDescription` and
    /// `LaunchTemplateData.*`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let template = template_ref(params, true)?.expect("required");
        let source = params
            .get("SourceVersion")
            .filter(|v| !v.is_empty())
            .map(|v| version_ref(v, "SourceVersion"))
            .transpose()?;
        Ok(Self {
            template,
            source,
            description: description(params)?,
            data: launch_data_of(params)?,
        })
    }

    /// Adds the version.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let version = launch_templates::create_version(
            ctx.cloud,
            ctx.principal,
            &self.template,
            self.source,
            self.description,
            self.data,
        )
        .await?;
        Ok(ctx.respond("CreateLaunchTemplateVersion", |w| {
            w.elem("launchTemplateVersion", |w| write_version(w, &version));
        }))
    }
}

struct TemplateView<'a> {
    template: &'a LaunchTemplateRecord,
    tags: &'a [(String, String)],
}

impl Filterable for TemplateView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        Some(vec![match name {
            "launch-template-name" => self.template.name.clone(),
            "create-time" => iso8601(self.template.created_at),
            _ => return None,
        }])
    }
    fn tags(&self) -> &[(String, String)] {
        self.tags
    }
    fn taggable(&self) -> bool {
        true
    }
}

/// DescribeLaunchTemplates input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeLaunchTemplates {
    ids: Vec<String>,
    names: Vec<String>,
    filters: Vec<Filter>,
}

impl DescribeLaunchTemplates {
    /// Reads `LaunchTemplateId.N`, `LaunchTemplateName.N`, `Filter.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, &["launch-template-name", "create-time"], true)?;
        Ok(Self {
            ids: params.list("LaunchTemplateId")?,
            names: params.list("LaunchTemplateName")?,
            filters,
        })
    }

    /// Lists the caller's templates.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let templates =
            launch_templates::list(ctx.cloud, ctx.principal, &self.ids, &self.names).await?;
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        let selected: Vec<TemplateView<'_>> = templates
            .iter()
            .map(|t| TemplateView {
                template: t,
                tags: tags.of(&t.template_id),
            })
            .filter(|v| filter::matches(&self.filters, v))
            .collect();
        Ok(ctx.respond("DescribeLaunchTemplates", |w| {
            w.items("launchTemplates", selected, |w, v| {
                write_template(w, v.template, v.tags);
            });
        }))
    }
}

struct VersionView<'a>(&'a TemplateVersion);

impl Filterable for VersionView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let d = &self.0.data;
        let one = |v: Option<&String>| v.cloned().into_iter().collect::<Vec<_>>();
        Some(match name {
            "image-id" => one(d.image_id.as_ref()),
            "instance-type" => one(d.instance_type.as_ref()),
            "is-default-version" => vec![self.0.is_default().to_string()],
            "kernel-id" => one(d.kernel_id.as_ref()),
            "ram-disk-id" => one(d.ramdisk_id.as_ref()),
            "create-time" => vec![iso8601(self.0.created_at)],
            "disable-api-termination" => d
                .disable_api_termination
                .map(|b| b.to_string())
                .into_iter()
                .collect(),
            "disable-api-stop" => d
                .disable_api_stop
                .map(|b| b.to_string())
                .into_iter()
                .collect(),
            _ => return None,
        })
    }
}

/// DescribeLaunchTemplateVersions input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeLaunchTemplateVersions {
    template: Option<TemplateRef>,
    versions: Vec<VersionRef>,
    min: Option<i64>,
    max: Option<i64>,
    filters: Vec<Filter>,
}

impl DescribeLaunchTemplateVersions {
    /// Reads the template, `LaunchTemplateVersion.N`, `MinVersion`,
    /// `MaxVersion`, `Filter.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(
            &filters,
            &[
                "image-id",
                "instance-type",
                "is-default-version",
                "kernel-id",
                "ram-disk-id",
                "create-time",
                "disable-api-termination",
                "disable-api-stop",
            ],
            false,
        )?;
        let bound = |name: &str| -> Result<Option<i64>, Ec2Error> {
            params
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| match version_ref(v, name)? {
                    VersionRef::Number(n) => Ok(n),
                    _ => Err(Ec2Error::InvalidParameterValue(format!(
                        "Value ({v}) for parameter {name} is invalid. Specify a version number."
                    ))),
                })
                .transpose()
        };
        Ok(Self {
            template: template_ref(params, false)?,
            versions: params
                .list("LaunchTemplateVersion")?
                .iter()
                .map(|v| version_ref(v, "LaunchTemplateVersion"))
                .collect::<Result<_, _>>()?,
            min: bound("MinVersion")?,
            max: bound("MaxVersion")?,
            filters,
        })
    }

    /// Lists the versions asked for.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let versions = launch_templates::versions(
            ctx.cloud,
            ctx.principal,
            self.template.as_ref(),
            &self.versions,
            self.min,
            self.max,
        )
        .await?;
        Ok(ctx.respond("DescribeLaunchTemplateVersions", |w| {
            w.items(
                "launchTemplateVersionSet",
                versions
                    .iter()
                    .filter(|v| filter::matches(&self.filters, &VersionView(v))),
                write_version,
            );
        }))
    }
}

/// ModifyLaunchTemplate input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyLaunchTemplate {
    template: TemplateRef,
    default_version: Option<VersionRef>,
}

impl ModifyLaunchTemplate {
    /// Reads the template and `SetDefaultVersion`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            template: template_ref(params, true)?.expect("required"),
            default_version: params
                .get("SetDefaultVersion")
                .filter(|v| !v.is_empty())
                .map(|v| version_ref(v, "SetDefaultVersion"))
                .transpose()?,
        })
    }

    /// Sets the default version (or changes nothing when none is given).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let template = match self.default_version {
            Some(v) => {
                launch_templates::set_default(ctx.cloud, ctx.principal, &self.template, v).await?
            }
            None => launch_templates::find(ctx.cloud, ctx.principal, &self.template).await?,
        };
        let tags = TagsByResource::load(ctx, ctx.principal.account_id()).await?;
        Ok(ctx.respond("ModifyLaunchTemplate", |w| {
            w.elem("launchTemplate", |w| {
                write_template(w, &template, tags.of(&template.template_id));
            });
        }))
    }
}

/// DeleteLaunchTemplate input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteLaunchTemplate {
    template: TemplateRef,
}

impl DeleteLaunchTemplate {
    /// Reads the template.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            template: template_ref(params, true)?.expect("required"),
        })
    }

    /// Deletes the template and every version.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let template = launch_templates::delete(ctx.cloud, ctx.principal, &self.template).await?;
        Ok(ctx.respond("DeleteLaunchTemplate", |w| {
            w.elem("launchTemplate", |w| write_template(w, &template, &[]));
        }))
    }
}

/// DeleteLaunchTemplateVersions input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteLaunchTemplateVersions {
    template: TemplateRef,
    versions: Vec<i64>,
}

impl DeleteLaunchTemplateVersions {
    /// Reads the template and `LaunchTemplateVersion.N` (numbers).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let template = template_ref(params, true)?.expect("required");
        let versions: Vec<i64> = params
            .list("LaunchTemplateVersion")?
            .iter()
            .map(|v| match version_ref(v, "LaunchTemplateVersion")? {
                VersionRef::Number(n) => Ok(n),
                _ => Err(Ec2Error::InvalidParameterValue(format!(
                    "Value ({v}) for parameter LaunchTemplateVersion is invalid. Specify version numbers."
                ))),
            })
            .collect::<Result<_, _>>()?;
        if versions.is_empty() {
            return Err(crate::query::QueryError::Missing("LaunchTemplateVersion".into()).into());
        }
        Ok(Self { template, versions })
    }

    /// Deletes what it can; each version is listed as deleted or not, with
    /// why.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let (template, outcome) = launch_templates::delete_versions(
            ctx.cloud,
            ctx.principal,
            &self.template,
            &self.versions,
        )
        .await?;
        let deleted: Vec<i64> = outcome
            .iter()
            .filter(|(_, why)| why.is_none())
            .map(|(n, _)| *n)
            .collect();
        let failed: Vec<(i64, VersionNotDeleted)> = outcome
            .iter()
            .filter_map(|(n, why)| why.map(|w| (*n, w)))
            .collect();
        Ok(ctx.respond("DeleteLaunchTemplateVersions", |w| {
            w.items(
                "successfullyDeletedLaunchTemplateVersionSet",
                &deleted,
                |w, n| {
                    w.text("launchTemplateId", &template.template_id);
                    w.text("launchTemplateName", &template.name);
                    w.text("versionNumber", n);
                },
            );
            w.items(
                "unsuccessfullyDeletedLaunchTemplateVersionSet",
                &failed,
                |w, (n, why)| {
                    w.text("launchTemplateId", &template.template_id);
                    w.text("launchTemplateName", &template.name);
                    w.text("versionNumber", n);
                    w.elem("responseError", |w| {
                        let (code, message) = match why {
                            VersionNotDeleted::IsDefault => (
                                "launchTemplateVersionIsDefaultVersion",
                                "Cannot delete the default version of a launch template.",
                            ),
                            VersionNotDeleted::DoesNotExist => (
                                "launchTemplateVersionDoesNotExist",
                                "The specified version does not exist.",
                            ),
                        };
                        w.text("code", code);
                        w.text("message", message);
                    });
                },
            );
        }))
    }
}
