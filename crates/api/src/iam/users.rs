//! CreateUser, GetUser, ListUsers, UpdateUser, DeleteUser, TagUser,
//! UntagUser, ListUserTags and the access-key actions on the wire.

use std::collections::BTreeMap;

use mallee_cloud::identity::{keys, users};
use mallee_cloud::ids::iso8601;

use super::{IamApiError, IamContext, Page, tags, write_tags};
use crate::query::QueryParams;
use crate::xml::XmlWriter;

type Result<T, E = IamApiError> = std::result::Result<T, E>;

/// Writes a user's fields.
pub fn write_user(w: &mut XmlWriter, u: &users::UserView) {
    w.text("Path", &u.path);
    w.text("UserName", &u.user_name);
    w.text("UserId", &u.user_id);
    w.text("Arn", &u.arn);
    w.text("CreateDate", iso8601(u.created_at));
}

fn user_name(params: &QueryParams) -> Result<String> {
    Ok(params.required_non_empty("UserName")?.to_owned())
}

/// CreateUser input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateUser {
    user: String,
    path: Option<String>,
    tags: BTreeMap<String, String>,
}

impl CreateUser {
    /// Reads `UserName`, `Path`, `Tags`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: user_name(params)?,
            path: params.get("Path").map(str::to_owned),
            tags: tags(params)?,
        })
    }

    /// Creates the user.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let u = users::create(
            &*ctx.cloud.store,
            ctx.account(),
            &self.user,
            self.path.as_deref(),
            self.tags,
        )
        .await?;
        Ok(ctx.respond("CreateUser", |w| {
            w.elem("User", |w| {
                write_user(w, &u);
                if !u.tags.is_empty() {
                    write_tags(w, &u.tags);
                }
            });
        }))
    }
}

/// GetUser input (no `UserName`: the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetUser {
    user: Option<String>,
}

impl GetUser {
    /// Reads `UserName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.get("UserName").map(str::to_owned),
        })
    }

    /// Answers the user.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let name = ctx.user_or_caller(self.user)?;
        let u = users::get(&*ctx.cloud.store, ctx.account(), &name).await?;
        Ok(ctx.respond("GetUser", |w| {
            w.elem("User", |w| {
                write_user(w, &u);
                if !u.tags.is_empty() {
                    write_tags(w, &u.tags);
                }
            });
        }))
    }
}

/// ListUsers input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUsers {
    prefix: Option<String>,
    page: Page,
}

impl ListUsers {
    /// Reads `PathPrefix`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            prefix: params.get("PathPrefix").map(str::to_owned),
            page: Page::parse(params)?,
        })
    }

    /// Lists the account's users.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let all = users::list(&*ctx.cloud.store, ctx.account(), self.prefix.as_deref()).await?;
        Ok(ctx.respond("ListUsers", |w| {
            self.page.write(w, "Users", &all, write_user)
        }))
    }
}

/// UpdateUser input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateUser {
    user: String,
    new_name: Option<String>,
    new_path: Option<String>,
}

impl UpdateUser {
    /// Reads `UserName`, `NewUserName`, `NewPath`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: user_name(params)?,
            new_name: params.get("NewUserName").map(str::to_owned),
            new_path: params.get("NewPath").map(str::to_owned),
        })
    }

    /// Renames or moves the user.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        users::update(
            &*ctx.cloud.store,
            ctx.account(),
            &self.user,
            self.new_name.as_deref(),
            self.new_path.as_deref(),
        )
        .await?;
        Ok(ctx.respond("UpdateUser", |_| {}))
    }
}

/// DeleteUser input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteUser {
    user: String,
}

impl DeleteUser {
    /// Reads `UserName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: user_name(params)?,
        })
    }

    /// Deletes the user.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        users::delete(&*ctx.cloud.store, ctx.account(), &self.user).await?;
        Ok(ctx.respond("DeleteUser", |_| {}))
    }
}

/// TagUser input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagUser {
    user: String,
    tags: BTreeMap<String, String>,
}

impl TagUser {
    /// Reads `UserName`, `Tags`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: user_name(params)?,
            tags: tags(params)?,
        })
    }

    /// Adds the tags.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        users::tag(&*ctx.cloud.store, ctx.account(), &self.user, self.tags).await?;
        Ok(ctx.respond("TagUser", |_| {}))
    }
}

/// UntagUser input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntagUser {
    user: String,
    keys: Vec<String>,
}

impl UntagUser {
    /// Reads `UserName`, `TagKeys.member.N`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: user_name(params)?,
            keys: params.list("TagKeys.member")?,
        })
    }

    /// Removes the tags.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        users::untag(&*ctx.cloud.store, ctx.account(), &self.user, &self.keys).await?;
        Ok(ctx.respond("UntagUser", |_| {}))
    }
}

/// ListUserTags input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUserTags {
    user: String,
}

impl ListUserTags {
    /// Reads `UserName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: user_name(params)?,
        })
    }

    /// Lists the user's tags.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let u = users::get(&*ctx.cloud.store, ctx.account(), &self.user).await?;
        Ok(ctx.respond("ListUserTags", |w| {
            write_tags(w, &u.tags);
            w.text("IsTruncated", false);
        }))
    }
}

/// CreateAccessKey input (no `UserName`: the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAccessKey {
    user: Option<String>,
}

impl CreateAccessKey {
    /// Reads `UserName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.get("UserName").map(str::to_owned),
        })
    }

    /// Creates a key; the secret is in this answer only.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let user = ctx.user_or_caller(self.user)?;
        let key = keys::create(&*ctx.cloud.store, ctx.account(), &user).await?;
        Ok(ctx.respond("CreateAccessKey", |w| {
            w.elem("AccessKey", |w| {
                w.text("UserName", &key.user_name);
                w.text("AccessKeyId", &key.access_key_id);
                w.text("Status", "Active");
                w.text("SecretAccessKey", &key.secret_access_key);
                w.text("CreateDate", iso8601(key.created_at));
            });
        }))
    }
}

/// ListAccessKeys input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAccessKeys {
    user: Option<String>,
    page: Page,
}

impl ListAccessKeys {
    /// Reads `UserName`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.get("UserName").map(str::to_owned),
            page: Page::parse(params)?,
        })
    }

    /// Lists the user's keys (never their secrets).
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let user = ctx.user_or_caller(self.user)?;
        let all = keys::list(&*ctx.cloud.store, ctx.account(), &user).await?;
        Ok(ctx.respond("ListAccessKeys", |w| {
            w.text("UserName", &user);
            self.page.write(w, "AccessKeyMetadata", &all, |w, k| {
                w.text("UserName", &k.key.user_name);
                w.text("AccessKeyId", &k.key.access_key_id);
                w.text("Status", if k.key.active { "Active" } else { "Inactive" });
                w.text("CreateDate", iso8601(k.key.created_at));
            });
        }))
    }
}

/// UpdateAccessKey input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateAccessKey {
    user: Option<String>,
    key_id: String,
    active: bool,
}

impl UpdateAccessKey {
    /// Reads `UserName`, `AccessKeyId`, `Status` (`Active`, `Inactive`).
    pub fn parse(params: &QueryParams) -> Result<Self> {
        let active = active_status(params)?;
        Ok(Self {
            user: params.get("UserName").map(str::to_owned),
            key_id: params.required_non_empty("AccessKeyId")?.to_owned(),
            active,
        })
    }

    /// Activates or deactivates the key.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let user = ctx.user_or_caller(self.user)?;
        keys::set_active(
            &*ctx.cloud.store,
            ctx.account(),
            &user,
            &self.key_id,
            self.active,
        )
        .await?;
        Ok(ctx.respond("UpdateAccessKey", |_| {}))
    }
}

/// `Status` of UpdateAccessKey and UpdateSigningCertificate: `true` for
/// `Active`, `false` for `Inactive`.
pub(super) fn active_status(params: &QueryParams) -> Result<bool> {
    match params.required("Status")? {
        "Active" => Ok(true),
        "Inactive" => Ok(false),
        other => Err(params
            .invalid("Status", other, "Must be Active or Inactive.")
            .into()),
    }
}

/// DeleteAccessKey input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteAccessKey {
    user: Option<String>,
    key_id: String,
}

impl DeleteAccessKey {
    /// Reads `UserName`, `AccessKeyId`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.get("UserName").map(str::to_owned),
            key_id: params.required_non_empty("AccessKeyId")?.to_owned(),
        })
    }

    /// Deletes the key.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let user = ctx.user_or_caller(self.user)?;
        keys::delete(&*ctx.cloud.store, ctx.account(), &user, &self.key_id).await?;
        Ok(ctx.respond("DeleteAccessKey", |_| {}))
    }
}

/// GetAccessKeyLastUsed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAccessKeyLastUsed {
    key_id: String,
}

impl GetAccessKeyLastUsed {
    /// Reads `AccessKeyId`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            key_id: params.required_non_empty("AccessKeyId")?.to_owned(),
        })
    }

    /// Answers the key's user and last use (`N/A` when never used, as IAM).
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let (user, used) = keys::last_used(&*ctx.cloud.store, ctx.account(), &self.key_id).await?;
        Ok(ctx.respond("GetAccessKeyLastUsed", |w| {
            w.text("UserName", &user);
            w.elem("AccessKeyLastUsed", |w| match &used {
                Some(u) => {
                    w.text("LastUsedDate", iso8601(u.at));
                    w.text("ServiceName", &u.service);
                    w.text("Region", &u.region);
                }
                None => {
                    w.text("ServiceName", "N/A");
                    w.text("Region", "N/A");
                }
            });
        }))
    }
}
