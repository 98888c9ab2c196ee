//! Instance profiles on the wire: Create, Get, List, Delete, Add and
//! Remove a role, ListInstanceProfilesForRole.

use mallee_cloud::identity::profiles::{self, ProfileView};
use mallee_cloud::ids::iso8601;

use super::roles::write_role;
use super::{IamApiError, IamContext, Page, members};
use crate::query::QueryParams;
use crate::xml::XmlWriter;

type Result<T, E = IamApiError> = std::result::Result<T, E>;

/// Writes a profile's fields, its role included.
pub fn write_profile(w: &mut XmlWriter, p: &ProfileView) {
    w.text("Path", &p.path);
    w.text("InstanceProfileName", &p.name);
    w.text("InstanceProfileId", &p.id);
    w.text("Arn", &p.arn);
    w.text("CreateDate", iso8601(p.created_at));
    members(w, "Roles", &p.roles, write_role);
}

fn profile_name(params: &QueryParams) -> Result<String> {
    Ok(params.required_non_empty("InstanceProfileName")?.to_owned())
}

/// CreateInstanceProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateInstanceProfile {
    name: String,
    path: Option<String>,
}

impl CreateInstanceProfile {
    /// Reads `InstanceProfileName`, `Path`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: profile_name(params)?,
            path: params.get("Path").map(str::to_owned),
        })
    }

    /// Creates the profile.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let p = profiles::create(
            &*ctx.cloud.store,
            ctx.account(),
            &self.name,
            self.path.as_deref(),
        )
        .await?;
        Ok(ctx.respond("CreateInstanceProfile", |w| {
            w.elem("InstanceProfile", |w| write_profile(w, &p))
        }))
    }
}

/// GetInstanceProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetInstanceProfile {
    name: String,
}

impl GetInstanceProfile {
    /// Reads `InstanceProfileName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: profile_name(params)?,
        })
    }

    /// Answers the profile.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let p = profiles::get(&*ctx.cloud.store, ctx.account(), &self.name).await?;
        Ok(ctx.respond("GetInstanceProfile", |w| {
            w.elem("InstanceProfile", |w| write_profile(w, &p))
        }))
    }
}

/// ListInstanceProfiles input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInstanceProfiles {
    prefix: Option<String>,
    page: Page,
}

impl ListInstanceProfiles {
    /// Reads `PathPrefix`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            prefix: params.get("PathPrefix").map(str::to_owned),
            page: Page::parse(params)?,
        })
    }

    /// Lists the account's profiles.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let all = profiles::list(&*ctx.cloud.store, ctx.account(), self.prefix.as_deref()).await?;
        Ok(ctx.respond("ListInstanceProfiles", |w| {
            self.page.write(w, "InstanceProfiles", &all, write_profile)
        }))
    }
}

/// ListInstanceProfilesForRole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInstanceProfilesForRole {
    role: String,
    page: Page,
}

impl ListInstanceProfilesForRole {
    /// Reads `RoleName`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            role: params.required_non_empty("RoleName")?.to_owned(),
            page: Page::parse(params)?,
        })
    }

    /// Lists the profiles holding the role.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let all = profiles::for_role(&*ctx.cloud.store, ctx.account(), &self.role).await?;
        Ok(ctx.respond("ListInstanceProfilesForRole", |w| {
            self.page.write(w, "InstanceProfiles", &all, write_profile);
        }))
    }
}

/// DeleteInstanceProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteInstanceProfile {
    name: String,
}

impl DeleteInstanceProfile {
    /// Reads `InstanceProfileName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: profile_name(params)?,
        })
    }

    /// Deletes the profile.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        profiles::delete(&*ctx.cloud.store, ctx.account(), &self.name).await?;
        Ok(ctx.respond("DeleteInstanceProfile", |_| {}))
    }
}

/// AddRoleToInstanceProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddRoleToInstanceProfile {
    name: String,
    role: String,
}

impl AddRoleToInstanceProfile {
    /// Reads `InstanceProfileName`, `RoleName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: profile_name(params)?,
            role: params.required_non_empty("RoleName")?.to_owned(),
        })
    }

    /// Puts the role in the profile.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        profiles::add_role(&*ctx.cloud.store, ctx.account(), &self.name, &self.role).await?;
        Ok(ctx.respond("AddRoleToInstanceProfile", |_| {}))
    }
}

/// RemoveRoleFromInstanceProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveRoleFromInstanceProfile {
    name: String,
    role: String,
}

impl RemoveRoleFromInstanceProfile {
    /// Reads `InstanceProfileName`, `RoleName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: profile_name(params)?,
            role: params.required_non_empty("RoleName")?.to_owned(),
        })
    }

    /// Takes the role out of the profile.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        profiles::remove_role(&*ctx.cloud.store, ctx.account(), &self.name, &self.role).await?;
        Ok(ctx.respond("RemoveRoleFromInstanceProfile", |_| {}))
    }
}
