//! DescribeProfiles, AddProfile (an image profile, or an installer
//! profile), RenderAnswerFile and RemoveProfile on the wire: parameters
//! in, XML out. What they do is `mallee_cloud::metal::profiles`.

use mallee_cloud::metal::images::{OBJECT_PREFIX, object_location};
use mallee_cloud::metal::profiles::{self, NewImageProfile, NewInstallerProfile};
use mallee_cloud::metal::systems::Target;
use mallee_metal::model::{Install, check_digest};

use super::params::{
    check_in_port_param, name_param, opt_name, target, template_param, variables_param,
};
use super::{MetalApiError, MetalContext, write_variables};
use crate::query::QueryParams;

type Result<T, E = MetalApiError> = std::result::Result<T, E>;

/// DescribeProfiles input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeProfiles;

impl DescribeProfiles {
    /// Takes no parameters.
    pub fn parse(_params: &QueryParams) -> Result<Self> {
        Ok(Self)
    }

    /// Lists the profiles with what each installs.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let profiles = profiles::profiles(ctx.metal).await?;
        Ok(ctx.respond("DescribeProfiles", |w| {
            w.items("profileSet", &profiles, |w, p| {
                w.text("name", &p.name);
                w.text("kind", p.install.kind());
                match &p.install {
                    Install::Image {
                        location,
                        size,
                        sha256,
                    } => {
                        w.text("location", location);
                        w.text("size", size);
                        w.text("sha256", sha256);
                        w.text("agentArgs", &p.agent_args);
                    }
                    Install::Installer {
                        distro,
                        template,
                        kernel_args,
                    } => {
                        w.text("distro", distro);
                        w.text("template", template);
                        w.text("kernelArgs", kernel_args);
                    }
                }
                w.opt_text("checkInPort", p.check_in_port);
                write_variables(w, &p.variables);
            });
        }))
    }
}

/// AddProfile input: an image profile (`Location`) or an installer
/// profile (`Distro` and `Template`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddProfile {
    /// A disk image.
    Image(NewImageProfile),
    /// A distro's installer with an answer-file template.
    Installer(NewInstallerProfile),
}

impl AddProfile {
    /// Reads `Name`, then `Distro`, `Template` and `KernelArgs` (both
    /// templates must parse), or `Location` (absolute, or
    /// `object:BUCKET/KEY`), `Sha256` and `AgentArgs`; and `Variables` and
    /// `CheckInPort` for both.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        if params.get("Distro").is_some() {
            Self::parse_installer(params)
        } else {
            Self::parse_image(params)
        }
    }

    fn parse_installer(params: &QueryParams) -> Result<Self> {
        if params.get("Location").is_some() {
            return Err(MetalApiError::Invalid(
                "give Location (an image profile) or Distro and Template (an installer profile), not both".into(),
            ));
        }
        let template = params.required_non_empty("Template")?.to_owned();
        template_param(params, "Template", &template)?;
        let kernel_args = params.get("KernelArgs").unwrap_or_default().to_owned();
        template_param(params, "KernelArgs", &kernel_args)?;
        Ok(Self::Installer(NewInstallerProfile {
            name: name_param(params, "Name", "profile name")?,
            distro: name_param(params, "Distro", "distro name")?,
            template,
            kernel_args,
            variables: variables_param(params)?.unwrap_or_default(),
            check_in_port: check_in_port_param(params)?,
        }))
    }

    fn parse_image(params: &QueryParams) -> Result<Self> {
        let location = params.required_non_empty("Location")?.to_owned();
        let is_object = location.starts_with(OBJECT_PREFIX);
        if (is_object && object_location(&location).is_none())
            || (!is_object && !location.starts_with('/'))
        {
            return Err(params
                .invalid(
                    "Location",
                    &location,
                    "Expected an absolute path on the controller or object:BUCKET/KEY.",
                )
                .into());
        }
        let sha256 = match params.get("Sha256") {
            None | Some("") => None,
            Some(d) => {
                let d = d.to_ascii_lowercase();
                check_digest(&d).map_err(|e| MetalApiError::Invalid(e.to_string()))?;
                Some(d)
            }
        };
        Ok(Self::Image(NewImageProfile {
            name: name_param(params, "Name", "profile name")?,
            location,
            sha256,
            agent_args: params.get("AgentArgs").unwrap_or_default().to_owned(),
            variables: variables_param(params)?.unwrap_or_default(),
            check_in_port: check_in_port_param(params)?,
        }))
    }

    /// Adds or replaces the profile; answers with its name and kind, and
    /// an image's location, size and digest or an installer's distro.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        match self {
            Self::Image(new) => {
                let location = new.location.clone();
                let added = profiles::add_image_profile(ctx.metal, new).await?;
                Ok(ctx.respond("AddProfile", |w| {
                    w.text("name", &added.name);
                    w.text("kind", "image");
                    w.text("location", &location);
                    w.text("size", added.size);
                    w.text("sha256", &added.sha256);
                }))
            }
            Self::Installer(new) => {
                let (name, distro) = (new.name.clone(), new.distro.clone());
                profiles::add_installer_profile(ctx.metal, new).await?;
                Ok(ctx.respond("AddProfile", |w| {
                    w.text("name", &name);
                    w.text("kind", "installer");
                    w.text("distro", &distro);
                }))
            }
        }
    }
}

/// RenderAnswerFile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderAnswerFile {
    /// The system.
    pub target: Target,
    /// The profile (default: the system's).
    pub profile: Option<String>,
}

impl RenderAnswerFile {
    /// Reads `Name` or `Ip`, and `Profile`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            target: target(params)?,
            profile: opt_name(params, "Profile", "profile name")?,
        })
    }

    /// Renders the answer file the system would get now.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let answer = profiles::render_answer_file(ctx.metal, &self.target, self.profile).await?;
        Ok(ctx.respond("RenderAnswerFile", |w| {
            w.text("name", &answer.system);
            w.text("profile", &answer.profile);
            w.text("answerFile", &answer.text);
        }))
    }
}

/// RemoveProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveProfile {
    /// The profile.
    pub name: String,
}

impl RemoveProfile {
    /// Reads `Name`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: name_param(params, "Name", "profile name")?,
        })
    }

    /// Removes the profile.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        profiles::remove_profile(ctx.metal, &self.name).await?;
        Ok(ctx.respond_true("RemoveProfile"))
    }
}
