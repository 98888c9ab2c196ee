//! Profiles: what a system installs. An image profile writes a disk image
//! (a file on the controller or an object, [`super::images`]) whose size
//! and SHA-256 are recorded when it is added (computed by reading the
//! image unless the administrator gives the digest); an installer profile
//! boots a distro's installer with an answer-file template. Adding,
//! previewing and removing them is for administrators
//! ([`super::access::authorize`]).

use std::collections::BTreeMap;

use futures_util::StreamExt;
use mallee_metal::engine::ImageSource;
use mallee_metal::inventory::Inventory;
use mallee_metal::{Install, Profile};
use sha2::{Digest, Sha256};

use super::Metal;
use super::errors::{MetalResult, not_enabled};
use super::systems::{Target, lookup, require_profile};
use crate::{CloudError, Kind};

/// An image profile to add or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImageProfile {
    /// Name.
    pub name: String,
    /// Absolute path on the controller, or `object:BUCKET/KEY`.
    pub location: String,
    /// Its SHA-256, when the caller knows it (else the controller reads
    /// the image and computes it).
    pub sha256: Option<String>,
    /// Extra deploy agent kernel arguments.
    pub agent_args: String,
    /// Answer-file variables of the profile (unused by image profiles but
    /// kept with them).
    pub variables: BTreeMap<String, String>,
    /// The check-in fallback port (`None`: only a check-in POST counts).
    pub check_in_port: Option<u16>,
}

/// An installer profile (a distro's installer with an answer-file
/// template) to add or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstallerProfile {
    /// Name.
    pub name: String,
    /// The distro it boots.
    pub distro: String,
    /// The answer-file template.
    pub template: String,
    /// Kernel arguments after the distro's (a template).
    pub kernel_args: String,
    /// The profile's answer-file variables.
    pub variables: BTreeMap<String, String>,
    /// The check-in fallback port.
    pub check_in_port: Option<u16>,
}

/// An image profile as added: its image's size and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedImage {
    /// The profile's name.
    pub name: String,
    /// The image's size in bytes.
    pub size: u64,
    /// The image's SHA-256 (hex).
    pub sha256: String,
}

/// An answer file as a system would get it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerFile {
    /// The system.
    pub system: String,
    /// The profile rendered.
    pub profile: String,
    /// The rendered text.
    pub text: String,
}

/// Every profile.
pub async fn profiles(metal: &Metal) -> Result<Vec<Profile>, CloudError> {
    metal.inventory().profiles().await.metal()
}

/// Streams an image and computes its size and SHA-256.
async fn digest(metal: &Metal, location: &str) -> Result<(u64, String), CloudError> {
    let (declared, mut stream) = metal.images().open(location).await.metal()?;
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| CloudError::Internal(format!("read {location}: {e}")))?;
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    if read != declared {
        return Err(CloudError::Invalid(format!(
            "the image {location} changed while it was read ({declared} bytes announced, {read} read)"
        )));
    }
    Ok((read, hex::encode(hasher.finalize())))
}

/// Adds or replaces an image profile; returns its image's size and
/// digest.
pub async fn add_image_profile(
    metal: &Metal,
    new: NewImageProfile,
) -> Result<AddedImage, CloudError> {
    let (size, sha256) = match new.sha256 {
        Some(d) => {
            let (size, _) = metal.images().open(&new.location).await.metal()?;
            (size, d)
        }
        None => digest(metal, &new.location).await?,
    };
    let mut profile = Profile::image(&new.name, &new.location, size, &sha256);
    profile.agent_args = new.agent_args;
    profile.variables = new.variables;
    profile.check_in_port = new.check_in_port;
    metal.inventory().put_profile(&profile).await.metal()?;
    Ok(AddedImage {
        name: profile.name,
        size,
        sha256,
    })
}

/// Adds or replaces an installer profile of an existing distro.
pub async fn add_installer_profile(
    metal: &Metal,
    new: NewInstallerProfile,
) -> Result<(), CloudError> {
    let distros = metal.store().metal_distros().await.metal()?;
    if !distros.iter().any(|d| d.name == new.distro) {
        return Err(CloudError::not_found(
            Kind::Distro,
            format!("no distro named {}", new.distro),
        ));
    }
    let mut profile = Profile::image(&new.name, "", 0, "");
    profile.install = Install::Installer {
        distro: new.distro,
        template: new.template,
        kernel_args: new.kernel_args,
    };
    profile.variables = new.variables;
    profile.check_in_port = new.check_in_port;
    metal.inventory().put_profile(&profile).await.metal()
}

/// The answer file `target` would get with `profile` (default: its own),
/// rendered now.
pub async fn render_answer_file(
    metal: &Metal,
    target: &Target,
    profile: Option<String>,
) -> Result<AnswerFile, CloudError> {
    let engine = metal.engine().ok_or_else(not_enabled)?;
    let s = lookup(metal, target).await?;
    let profile = profile.or_else(|| s.profile.clone()).ok_or_else(|| {
        CloudError::Invalid(format!(
            "system {} has no profile: name one with Profile",
            s.name
        ))
    })?;
    require_profile(metal, &profile).await?;
    let text = engine
        .preview_answer_file(&s.name, &profile)
        .await
        .metal()?;
    Ok(AnswerFile {
        system: s.name,
        profile,
        text,
    })
}

/// Removes a profile no system is being installed with.
pub async fn remove_profile(metal: &Metal, name: &str) -> Result<(), CloudError> {
    let in_use = metal
        .inventory()
        .systems()
        .await
        .metal()?
        .into_iter()
        .find(|s| s.profile.as_deref() == Some(name) && s.state.is_busy());
    if let Some(s) = in_use {
        return Err(CloudError::in_use(
            Kind::Profile,
            format!("profile {name} is being installed on {}", s.name),
        ));
    }
    if !metal.store().delete_metal_profile(name).await.metal()? {
        return Err(CloudError::not_found(
            Kind::Profile,
            format!("no profile named {name}"),
        ));
    }
    Ok(())
}
