//! Managed policies on the wire: CreatePolicy, GetPolicy, ListPolicies,
//! DeletePolicy, the version actions, attaching to and detaching from
//! users, groups and roles, and the listings of attachments.

use mallee_cloud::identity::managed::{self, PolicyView};
use mallee_cloud::identity::policies::Holder;
use mallee_cloud::identity::{PolicyVersion, groups, roles, users};
use mallee_cloud::ids::iso8601;

use super::policies::{group, role, url_encode, user};
use super::{IamApiError, IamContext, Page, members, tags};
use crate::query::QueryParams;
use crate::xml::XmlWriter;

type Result<T, E = IamApiError> = std::result::Result<T, E>;

fn write_policy(w: &mut XmlWriter, p: &PolicyView) {
    w.text("PolicyName", &p.name);
    w.text("PolicyId", &p.id);
    w.text("Arn", &p.arn);
    w.text("Path", &p.path);
    w.text("DefaultVersionId", &p.default_version);
    w.text("AttachmentCount", p.attachment_count);
    w.text("PermissionsBoundaryUsageCount", 0);
    w.text("IsAttachable", true);
    w.opt_text("Description", p.description.as_deref());
    w.text("CreateDate", iso8601(p.created_at));
    w.text("UpdateDate", iso8601(p.updated_at));
}

/// A version and whether it is the default.
type Version = (PolicyVersion, bool);

fn write_version(w: &mut XmlWriter, v: &Version, with_document: bool) {
    if with_document {
        w.text("Document", url_encode(&v.0.document));
    }
    w.text("VersionId", &v.0.id);
    w.text("IsDefaultVersion", v.1);
    w.text("CreateDate", iso8601(v.0.created_at));
}

fn policy_arn(params: &QueryParams) -> Result<String> {
    Ok(params.required_non_empty("PolicyArn")?.to_owned())
}

fn version_id(params: &QueryParams) -> Result<String> {
    Ok(params.required_non_empty("VersionId")?.to_owned())
}

/// CreatePolicy input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePolicy {
    name: String,
    path: Option<String>,
    document: String,
    description: Option<String>,
    tags: std::collections::BTreeMap<String, String>,
}

impl CreatePolicy {
    /// Reads `PolicyName`, `Path`, `PolicyDocument`, `Description`, `Tags`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: params.required_non_empty("PolicyName")?.to_owned(),
            path: params.get("Path").map(str::to_owned),
            document: params.required_non_empty("PolicyDocument")?.to_owned(),
            description: params.get("Description").map(str::to_owned),
            tags: tags(params)?,
        })
    }

    /// Creates the policy (version v1, the default).
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let p = managed::create(
            &*ctx.cloud.store,
            ctx.account(),
            &self.name,
            self.path.as_deref(),
            &self.document,
            self.description,
            self.tags,
        )
        .await?;
        Ok(ctx.respond("CreatePolicy", |w| {
            w.elem("Policy", |w| write_policy(w, &p))
        }))
    }
}

/// GetPolicy input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetPolicy {
    arn: String,
}

impl GetPolicy {
    /// Reads `PolicyArn`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            arn: policy_arn(params)?,
        })
    }

    /// Answers the policy.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let p = managed::get(&*ctx.cloud.store, ctx.account(), &self.arn).await?;
        Ok(ctx.respond("GetPolicy", |w| w.elem("Policy", |w| write_policy(w, &p))))
    }
}

/// ListPolicies input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPolicies {
    aws_only: bool,
    only_attached: bool,
    prefix: Option<String>,
    page: Page,
}

impl ListPolicies {
    /// Reads `Scope` (All, AWS, Local), `OnlyAttached`, `PathPrefix`,
    /// `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        let aws_only = match params.get("Scope") {
            None | Some("All" | "Local") => false,
            Some("AWS") => true,
            Some(other) => {
                return Err(params
                    .invalid("Scope", other, "Must be All, AWS or Local.")
                    .into());
            }
        };
        Ok(Self {
            aws_only,
            only_attached: params.bool("OnlyAttached")?.unwrap_or(false),
            prefix: params.get("PathPrefix").map(str::to_owned),
            page: Page::parse(params)?,
        })
    }

    /// Lists the account's policies (mallee ships no AWS-managed ones).
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let all = if self.aws_only {
            Vec::new()
        } else {
            managed::list(
                &*ctx.cloud.store,
                ctx.account(),
                self.only_attached,
                self.prefix.as_deref(),
            )
            .await?
        };
        Ok(ctx.respond("ListPolicies", |w| {
            self.page.write(w, "Policies", &all, write_policy)
        }))
    }
}

/// DeletePolicy input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePolicy {
    arn: String,
}

impl DeletePolicy {
    /// Reads `PolicyArn`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            arn: policy_arn(params)?,
        })
    }

    /// Deletes the policy.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        managed::delete(&*ctx.cloud.store, ctx.account(), &self.arn).await?;
        Ok(ctx.respond("DeletePolicy", |_| {}))
    }
}

/// CreatePolicyVersion input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePolicyVersion {
    arn: String,
    document: String,
    set_default: bool,
}

impl CreatePolicyVersion {
    /// Reads `PolicyArn`, `PolicyDocument`, `SetAsDefault`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            arn: policy_arn(params)?,
            document: params.required_non_empty("PolicyDocument")?.to_owned(),
            set_default: params.bool("SetAsDefault")?.unwrap_or(false),
        })
    }

    /// Adds the version.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let v = managed::create_version(
            &*ctx.cloud.store,
            ctx.account(),
            &self.arn,
            &self.document,
            self.set_default,
        )
        .await?;
        Ok(ctx.respond("CreatePolicyVersion", |w| {
            w.elem("PolicyVersion", |w| {
                write_version(w, &(v, self.set_default), false)
            });
        }))
    }
}

/// GetPolicyVersion input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetPolicyVersion {
    arn: String,
    version: String,
}

impl GetPolicyVersion {
    /// Reads `PolicyArn`, `VersionId`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            arn: policy_arn(params)?,
            version: version_id(params)?,
        })
    }

    /// Answers the version with its document.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let v = managed::get_version(&*ctx.cloud.store, ctx.account(), &self.arn, &self.version)
            .await?;
        Ok(ctx.respond("GetPolicyVersion", |w| {
            w.elem("PolicyVersion", |w| write_version(w, &v, true))
        }))
    }
}

/// ListPolicyVersions input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPolicyVersions {
    arn: String,
    page: Page,
}

impl ListPolicyVersions {
    /// Reads `PolicyArn`, `Marker`, `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            arn: policy_arn(params)?,
            page: Page::parse(params)?,
        })
    }

    /// Lists the versions, newest first.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let all = managed::versions(&*ctx.cloud.store, ctx.account(), &self.arn).await?;
        Ok(ctx.respond("ListPolicyVersions", |w| {
            self.page
                .write(w, "Versions", &all, |w, v| write_version(w, v, false));
        }))
    }
}

/// DeletePolicyVersion input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePolicyVersion {
    arn: String,
    version: String,
}

impl DeletePolicyVersion {
    /// Reads `PolicyArn`, `VersionId`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            arn: policy_arn(params)?,
            version: version_id(params)?,
        })
    }

    /// Deletes a version that is not the default.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        managed::delete_version(&*ctx.cloud.store, ctx.account(), &self.arn, &self.version).await?;
        Ok(ctx.respond("DeletePolicyVersion", |_| {}))
    }
}

/// SetDefaultPolicyVersion input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDefaultPolicyVersion {
    arn: String,
    version: String,
}

impl SetDefaultPolicyVersion {
    /// Reads `PolicyArn`, `VersionId`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            arn: policy_arn(params)?,
            version: version_id(params)?,
        })
    }

    /// Makes the version the one in force.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        managed::set_default(&*ctx.cloud.store, ctx.account(), &self.arn, &self.version).await?;
        Ok(ctx.respond("SetDefaultPolicyVersion", |_| {}))
    }
}

/// Declares Attach, Detach and ListAttached for one kind of holder.
macro_rules! attachment_actions {
    ($holder:ident, $attach:ident, $detach:ident, $list:ident) => {
        #[doc = concat!(stringify!($attach), " input.")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $attach {
            holder: Holder,
            arn: String,
        }

        impl $attach {
            /// Reads the holder and `PolicyArn`.
            pub fn parse(params: &QueryParams) -> Result<Self> {
                Ok(Self {
                    holder: $holder(params)?,
                    arn: policy_arn(params)?,
                })
            }

            /// Attaches the policy.
            pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
                managed::attach(&*ctx.cloud.store, ctx.account(), &self.holder, &self.arn).await?;
                Ok(ctx.respond(stringify!($attach), |_| {}))
            }
        }

        #[doc = concat!(stringify!($detach), " input.")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $detach {
            holder: Holder,
            arn: String,
        }

        impl $detach {
            /// Reads the holder and `PolicyArn`.
            pub fn parse(params: &QueryParams) -> Result<Self> {
                Ok(Self {
                    holder: $holder(params)?,
                    arn: policy_arn(params)?,
                })
            }

            /// Detaches the policy.
            pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
                managed::detach(&*ctx.cloud.store, ctx.account(), &self.holder, &self.arn).await?;
                Ok(ctx.respond(stringify!($detach), |_| {}))
            }
        }

        #[doc = concat!(stringify!($list), " input.")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $list {
            holder: Holder,
            page: Page,
        }

        impl $list {
            /// Reads the holder, `Marker`, `MaxItems`.
            pub fn parse(params: &QueryParams) -> Result<Self> {
                Ok(Self {
                    holder: $holder(params)?,
                    page: Page::parse(params)?,
                })
            }

            /// Lists the attached policies.
            pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
                let all = managed::attached(&*ctx.cloud.store, ctx.account(), &self.holder).await?;
                Ok(ctx.respond(stringify!($list), |w| {
                    self.page
                        .write(w, "AttachedPolicies", &all, |w, (name, arn)| {
                            w.text("PolicyName", name);
                            w.text("PolicyArn", arn);
                        });
                }))
            }
        }
    };
}

attachment_actions!(
    user,
    AttachUserPolicy,
    DetachUserPolicy,
    ListAttachedUserPolicies
);
attachment_actions!(
    group,
    AttachGroupPolicy,
    DetachGroupPolicy,
    ListAttachedGroupPolicies
);
attachment_actions!(
    role,
    AttachRolePolicy,
    DetachRolePolicy,
    ListAttachedRolePolicies
);

/// ListEntitiesForPolicy input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntitiesForPolicy {
    arn: String,
}

impl ListEntitiesForPolicy {
    /// Reads `PolicyArn` (`EntityFilter` is applied by the client's
    /// reading of the three lists).
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            arn: policy_arn(params)?,
        })
    }

    /// Lists the users, groups and roles the policy is attached to.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let store = &*ctx.cloud.store;
        managed::get(store, ctx.account(), &self.arn).await?;
        let a = managed::attachments(store, ctx.account(), &self.arn).await?;
        let mut user_ids = Vec::new();
        for u in &a.users {
            user_ids.push((
                u.clone(),
                users::get(store, ctx.account(), u).await?.user_id,
            ));
        }
        let mut group_ids = Vec::new();
        for g in &a.groups {
            group_ids.push((
                g.clone(),
                groups::load(store, ctx.account(), g).await?.0.entity_id,
            ));
        }
        let mut role_ids = Vec::new();
        for r in &a.roles {
            role_ids.push((
                r.clone(),
                roles::load(store, ctx.account(), r).await?.0.entity_id,
            ));
        }
        Ok(ctx.respond("ListEntitiesForPolicy", |w| {
            members(w, "PolicyGroups", &group_ids, |w, (n, id)| {
                w.text("GroupName", n);
                w.text("GroupId", id);
            });
            members(w, "PolicyUsers", &user_ids, |w, (n, id)| {
                w.text("UserName", n);
                w.text("UserId", id);
            });
            members(w, "PolicyRoles", &role_ids, |w, (n, id)| {
                w.text("RoleName", n);
                w.text("RoleId", id);
            });
            w.text("IsTruncated", false);
        }))
    }
}
