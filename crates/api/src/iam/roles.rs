//! CreateRole, GetRole, ListRoles, UpdateRole, UpdateAssumeRolePolicy,
//! DeleteRole, TagRole, UntagRole and ListRoleTags on the wire.

use mallee_cloud::identity::roles::{self, NewRole, RoleView};
use mallee_cloud::ids::iso8601;

use super::policies::url_encode;
use super::{IamApiError, IamContext, Page, tags, write_tags};
use crate::query::QueryParams;
use crate::xml::XmlWriter;

type Result<T, E = IamApiError> = std::result::Result<T, E>;

/// Writes a role's fields.
pub fn write_role(w: &mut XmlWriter, r: &RoleView) {
    w.text("Path", &r.path);
    w.text("RoleName", &r.role_name);
    w.text("RoleId", &r.role_id);
    w.text("Arn", &r.arn);
    w.text("CreateDate", iso8601(r.created_at));
    w.text("AssumeRolePolicyDocument", url_encode(&r.trust));
    w.opt_text("Description", r.description.as_deref());
    w.text("MaxSessionDuration", r.max_session_seconds);
    if !r.tags.is_empty() {
        write_tags(w, &r.tags);
    }
}

fn role_name(params: &QueryParams) -> Result<String> {
    Ok(params.required_non_empty("RoleName")?.to_owned())
}

/// CreateRole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRole(NewRole);

impl CreateRole {
    /// Reads `RoleName`, `AssumeRolePolicyDocument`, `Path`, `Description`,
    /// `MaxSessionDuration`, `Tags`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self(NewRole {
            name: role_name(params)?,
            path: params.get("Path").map(str::to_owned),
            trust: params
                .required_non_empty("AssumeRolePolicyDocument")?
                .to_owned(),
            description: params.get("Description").map(str::to_owned),
            max_session_seconds: params.int("MaxSessionDuration")?,
            tags: tags(params)?,
        }))
    }

    /// Creates the role.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let r = roles::create(&*ctx.cloud.store, ctx.account(), self.0).await?;
        Ok(ctx.respond("CreateRole", |w| w.elem("Role", |w| write_role(w, &r))))
    }
}

/// GetRole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRole {
    role: String,
}

impl GetRole {
    /// Reads `RoleName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            role: role_name(params)?,
        })
    }

    /// Answers the role.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let r = roles::get(&*ctx.cloud.store, ctx.account(), &self.role).await?;
        Ok(ctx.respond("GetRole", |w| w.elem("Role", |w| write_role(w, &r))))
    }
}

/// ListRoles input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRoles {
    prefix: Option<String>,
    page: Page,
}

impl ListRoles {
    /// Reads `PathPrefix`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            prefix: params.get("PathPrefix").map(str::to_owned),
            page: Page::parse(params)?,
        })
    }

    /// Lists the account's roles.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let all = roles::list(&*ctx.cloud.store, ctx.account(), self.prefix.as_deref()).await?;
        Ok(ctx.respond("ListRoles", |w| {
            self.page.write(w, "Roles", &all, write_role)
        }))
    }
}

/// UpdateRole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRole {
    role: String,
    description: Option<String>,
    max_session: Option<i64>,
}

impl UpdateRole {
    /// Reads `RoleName`, `Description`, `MaxSessionDuration`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            role: role_name(params)?,
            description: params.get("Description").map(str::to_owned),
            max_session: params.int("MaxSessionDuration")?,
        })
    }

    /// Updates the role.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        roles::update(
            &*ctx.cloud.store,
            ctx.account(),
            &self.role,
            self.description,
            self.max_session,
        )
        .await?;
        Ok(ctx.respond("UpdateRole", |_| {}))
    }
}

/// UpdateAssumeRolePolicy input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateAssumeRolePolicy {
    role: String,
    document: String,
}

impl UpdateAssumeRolePolicy {
    /// Reads `RoleName`, `PolicyDocument`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            role: role_name(params)?,
            document: params.required_non_empty("PolicyDocument")?.to_owned(),
        })
    }

    /// Replaces the trust policy.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        roles::set_trust(&*ctx.cloud.store, ctx.account(), &self.role, &self.document).await?;
        Ok(ctx.respond("UpdateAssumeRolePolicy", |_| {}))
    }
}

/// DeleteRole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRole {
    role: String,
}

impl DeleteRole {
    /// Reads `RoleName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            role: role_name(params)?,
        })
    }

    /// Deletes the role; its sessions stop working.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        roles::delete(&*ctx.cloud.store, ctx.account(), &self.role).await?;
        Ok(ctx.respond("DeleteRole", |_| {}))
    }
}

/// TagRole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRole {
    role: String,
    tags: std::collections::BTreeMap<String, String>,
}

impl TagRole {
    /// Reads `RoleName`, `Tags`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            role: role_name(params)?,
            tags: tags(params)?,
        })
    }

    /// Adds the tags.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        roles::tag(&*ctx.cloud.store, ctx.account(), &self.role, self.tags).await?;
        Ok(ctx.respond("TagRole", |_| {}))
    }
}

/// UntagRole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntagRole {
    role: String,
    keys: Vec<String>,
}

impl UntagRole {
    /// Reads `RoleName`, `TagKeys.member.N`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            role: role_name(params)?,
            keys: params.list("TagKeys.member")?,
        })
    }

    /// Removes the tags.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        roles::untag(&*ctx.cloud.store, ctx.account(), &self.role, &self.keys).await?;
        Ok(ctx.respond("UntagRole", |_| {}))
    }
}

/// ListRoleTags input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRoleTags {
    role: String,
}

impl ListRoleTags {
    /// Reads `RoleName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            role: role_name(params)?,
        })
    }

    /// Lists the role's tags.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let r = roles::get(&*ctx.cloud.store, ctx.account(), &self.role).await?;
        Ok(ctx.respond("ListRoleTags", |w| {
            write_tags(w, &r.tags);
            w.text("IsTruncated", false);
        }))
    }
}
