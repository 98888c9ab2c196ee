//! Inline policies of users and groups on the wire: Put, Get, Delete and
//! List for each. Documents are answered URL-encoded, as IAM answers them.

use mallee_cloud::identity::policies::{self, Holder};

use super::{IamApiError, IamContext, Page};
use crate::query::QueryParams;

type Result<T, E = IamApiError> = std::result::Result<T, E>;

pub(super) fn user(params: &QueryParams) -> Result<Holder> {
    Ok(Holder::User(
        params.required_non_empty("UserName")?.to_owned(),
    ))
}

pub(super) fn role(params: &QueryParams) -> Result<Holder> {
    Ok(Holder::Role(
        params.required_non_empty("RoleName")?.to_owned(),
    ))
}

pub(super) fn group(params: &QueryParams) -> Result<Holder> {
    Ok(Holder::Group(
        params.required_non_empty("GroupName")?.to_owned(),
    ))
}

fn policy_name(params: &QueryParams) -> Result<String> {
    Ok(params.required_non_empty("PolicyName")?.to_owned())
}

/// IAM answers policy documents URL-encoded (RFC 3986).
pub(super) fn url_encode(document: &str) -> String {
    form_urlencoded::byte_serialize(document.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Declares Put/Get/Delete/List of inline policies for one kind of holder.
macro_rules! inline_policy_actions {
    ($holder:ident, $name_field:literal, $put:ident, $get:ident, $delete:ident, $list:ident) => {
        #[doc = concat!(stringify!($put), " input.")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $put {
            holder: Holder,
            name: String,
            document: String,
        }

        impl $put {
            /// Reads the holder, `PolicyName`, `PolicyDocument`.
            pub fn parse(params: &QueryParams) -> Result<Self> {
                Ok(Self {
                    holder: $holder(params)?,
                    name: policy_name(params)?,
                    document: params.required_non_empty("PolicyDocument")?.to_owned(),
                })
            }

            /// Validates and stores the policy.
            pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
                policies::put(
                    &*ctx.cloud.store,
                    ctx.account(),
                    &self.holder,
                    &self.name,
                    &self.document,
                )
                .await?;
                Ok(ctx.respond(stringify!($put), |_| {}))
            }
        }

        #[doc = concat!(stringify!($get), " input.")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $get {
            holder: Holder,
            name: String,
        }

        impl $get {
            /// Reads the holder and `PolicyName`.
            pub fn parse(params: &QueryParams) -> Result<Self> {
                Ok(Self {
                    holder: $holder(params)?,
                    name: policy_name(params)?,
                })
            }

            /// Answers the document.
            pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
                let document =
                    policies::get(&*ctx.cloud.store, ctx.account(), &self.holder, &self.name)
                        .await?;
                Ok(ctx.respond(stringify!($get), |w| {
                    w.text($name_field, self.holder.name());
                    w.text("PolicyName", &self.name);
                    w.text("PolicyDocument", url_encode(&document));
                }))
            }
        }

        #[doc = concat!(stringify!($delete), " input.")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $delete {
            holder: Holder,
            name: String,
        }

        impl $delete {
            /// Reads the holder and `PolicyName`.
            pub fn parse(params: &QueryParams) -> Result<Self> {
                Ok(Self {
                    holder: $holder(params)?,
                    name: policy_name(params)?,
                })
            }

            /// Deletes the policy.
            pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
                policies::delete(&*ctx.cloud.store, ctx.account(), &self.holder, &self.name)
                    .await?;
                Ok(ctx.respond(stringify!($delete), |_| {}))
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

            /// Lists the policy names.
            pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
                let names = policies::list(&*ctx.cloud.store, ctx.account(), &self.holder).await?;
                Ok(ctx.respond(stringify!($list), |w| {
                    self.page
                        .write(w, "PolicyNames", &names, |w, n| w.text_content(n));
                }))
            }
        }
    };
}

inline_policy_actions!(
    user,
    "UserName",
    PutUserPolicy,
    GetUserPolicy,
    DeleteUserPolicy,
    ListUserPolicies
);
inline_policy_actions!(
    group,
    "GroupName",
    PutGroupPolicy,
    GetGroupPolicy,
    DeleteGroupPolicy,
    ListGroupPolicies
);
inline_policy_actions!(
    role,
    "RoleName",
    PutRolePolicy,
    GetRolePolicy,
    DeleteRolePolicy,
    ListRolePolicies
);
