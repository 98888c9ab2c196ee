//! CreateGroup, GetGroup, ListGroups, DeleteGroup, AddUserToGroup,
//! RemoveUserFromGroup and ListGroupsForUser on the wire.

use mallee_cloud::identity::groups::{self, GroupView};
use mallee_cloud::ids::iso8601;

use super::users::write_user;
use super::{IamApiError, IamContext, Page};
use crate::query::QueryParams;
use crate::xml::XmlWriter;

type Result<T, E = IamApiError> = std::result::Result<T, E>;

fn write_group(w: &mut XmlWriter, g: &GroupView) {
    w.text("Path", &g.path);
    w.text("GroupName", &g.group_name);
    w.text("GroupId", &g.group_id);
    w.text("Arn", &g.arn);
    w.text("CreateDate", iso8601(g.created_at));
}

fn group_name(params: &QueryParams) -> Result<String> {
    Ok(params.required_non_empty("GroupName")?.to_owned())
}

/// CreateGroup input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateGroup {
    group: String,
    path: Option<String>,
}

impl CreateGroup {
    /// Reads `GroupName`, `Path`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            group: group_name(params)?,
            path: params.get("Path").map(str::to_owned),
        })
    }

    /// Creates the group.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let g = groups::create(
            &*ctx.cloud.store,
            ctx.account(),
            &self.group,
            self.path.as_deref(),
        )
        .await?;
        Ok(ctx.respond("CreateGroup", |w| w.elem("Group", |w| write_group(w, &g))))
    }
}

/// GetGroup input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetGroup {
    group: String,
    page: Page,
}

impl GetGroup {
    /// Reads `GroupName`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            group: group_name(params)?,
            page: Page::parse(params)?,
        })
    }

    /// Answers the group and its members.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let (g, members) = groups::get(&*ctx.cloud.store, ctx.account(), &self.group).await?;
        Ok(ctx.respond("GetGroup", |w| {
            w.elem("Group", |w| write_group(w, &g));
            self.page.write(w, "Users", &members, write_user);
        }))
    }
}

/// ListGroups input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListGroups {
    prefix: Option<String>,
    page: Page,
}

impl ListGroups {
    /// Reads `PathPrefix`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            prefix: params.get("PathPrefix").map(str::to_owned),
            page: Page::parse(params)?,
        })
    }

    /// Lists the account's groups.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let all = groups::list(&*ctx.cloud.store, ctx.account(), self.prefix.as_deref()).await?;
        Ok(ctx.respond("ListGroups", |w| {
            self.page.write(w, "Groups", &all, write_group)
        }))
    }
}

/// DeleteGroup input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroup {
    group: String,
}

impl DeleteGroup {
    /// Reads `GroupName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            group: group_name(params)?,
        })
    }

    /// Deletes the group.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        groups::delete(&*ctx.cloud.store, ctx.account(), &self.group).await?;
        Ok(ctx.respond("DeleteGroup", |_| {}))
    }
}

/// AddUserToGroup input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddUserToGroup {
    group: String,
    user: String,
}

impl AddUserToGroup {
    /// Reads `GroupName`, `UserName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            group: group_name(params)?,
            user: params.required_non_empty("UserName")?.to_owned(),
        })
    }

    /// Adds the member.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        groups::add_user(&*ctx.cloud.store, ctx.account(), &self.group, &self.user).await?;
        Ok(ctx.respond("AddUserToGroup", |_| {}))
    }
}

/// RemoveUserFromGroup input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveUserFromGroup {
    group: String,
    user: String,
}

impl RemoveUserFromGroup {
    /// Reads `GroupName`, `UserName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            group: group_name(params)?,
            user: params.required_non_empty("UserName")?.to_owned(),
        })
    }

    /// Removes the member.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        groups::remove_user(&*ctx.cloud.store, ctx.account(), &self.group, &self.user).await?;
        Ok(ctx.respond("RemoveUserFromGroup", |_| {}))
    }
}

/// ListGroupsForUser input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListGroupsForUser {
    user: String,
    page: Page,
}

impl ListGroupsForUser {
    /// Reads `UserName`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.required_non_empty("UserName")?.to_owned(),
            page: Page::parse(params)?,
        })
    }

    /// Lists the user's groups.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let all = groups::of_user(&*ctx.cloud.store, ctx.account(), &self.user).await?;
        Ok(ctx.respond("ListGroupsForUser", |w| {
            self.page.write(w, "Groups", &all, write_group)
        }))
    }
}
