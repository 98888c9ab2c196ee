//! The IAM API (SigV4 service `iam`, Eucalyptus path `/services/Euare`):
//! AWS's Query protocol, `<ActionResponse><ActionResult>…` answers. Every
//! action is declared once, in the table below. One file per group of
//! actions: users, their keys and tags ([`users`]), groups ([`groups`])
//! inline policies ([`policies`]) and signing certificates ([`signing`]). What they do is
//! `mallee_cloud::identity`; who may call them is decided before they run,
//! like every other action.

pub mod account;
pub mod error;
pub mod groups;
pub mod managed;
pub mod policies;
pub mod profiles;
pub mod roles;
pub mod signing;
pub mod users;

use std::collections::BTreeMap;

use mallee_cloud::identity::IdentityError;
use mallee_cloud::{Cloud, Principal};

use crate::query::QueryParams;
use crate::xml::XmlWriter;
pub use error::IamApiError;

/// The XML namespace of IAM's answers.
pub const NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

crate::actions::declare! {
    /// One parsed IAM request.
    enum IamAction;
    /// Runs an action the caller was allowed.
    fn execute(IamContext, IamApiError, invalid: IamApiError::InvalidAction);
    service "iam";
    CreateUser => users::CreateUser,
    GetUser => users::GetUser,
    ListUsers => users::ListUsers,
    UpdateUser => users::UpdateUser,
    DeleteUser => users::DeleteUser,
    TagUser => users::TagUser,
    UntagUser => users::UntagUser,
    ListUserTags => users::ListUserTags,
    CreateAccessKey => users::CreateAccessKey,
    ListAccessKeys => users::ListAccessKeys,
    UpdateAccessKey => users::UpdateAccessKey,
    DeleteAccessKey => users::DeleteAccessKey,
    GetAccessKeyLastUsed => users::GetAccessKeyLastUsed,
    UploadSigningCertificate => signing::UploadSigningCertificate,
    ListSigningCertificates => signing::ListSigningCertificates,
    UpdateSigningCertificate => signing::UpdateSigningCertificate,
    DeleteSigningCertificate => signing::DeleteSigningCertificate,
    CreateGroup => groups::CreateGroup,
    GetGroup => groups::GetGroup,
    ListGroups => groups::ListGroups,
    DeleteGroup => groups::DeleteGroup,
    AddUserToGroup => groups::AddUserToGroup,
    RemoveUserFromGroup => groups::RemoveUserFromGroup,
    ListGroupsForUser => groups::ListGroupsForUser,
    PutUserPolicy => policies::PutUserPolicy,
    GetUserPolicy => policies::GetUserPolicy,
    DeleteUserPolicy => policies::DeleteUserPolicy,
    ListUserPolicies => policies::ListUserPolicies,
    PutGroupPolicy => policies::PutGroupPolicy,
    GetGroupPolicy => policies::GetGroupPolicy,
    DeleteGroupPolicy => policies::DeleteGroupPolicy,
    ListGroupPolicies => policies::ListGroupPolicies,
    PutRolePolicy => policies::PutRolePolicy,
    GetRolePolicy => policies::GetRolePolicy,
    DeleteRolePolicy => policies::DeleteRolePolicy,
    ListRolePolicies => policies::ListRolePolicies,
    CreateRole => roles::CreateRole,
    GetRole => roles::GetRole,
    ListRoles => roles::ListRoles,
    UpdateRole => roles::UpdateRole,
    UpdateAssumeRolePolicy => roles::UpdateAssumeRolePolicy,
    DeleteRole => roles::DeleteRole,
    TagRole => roles::TagRole,
    UntagRole => roles::UntagRole,
    ListRoleTags => roles::ListRoleTags,
    CreatePolicy => managed::CreatePolicy,
    GetPolicy => managed::GetPolicy,
    ListPolicies => managed::ListPolicies,
    DeletePolicy => managed::DeletePolicy,
    CreatePolicyVersion => managed::CreatePolicyVersion,
    GetPolicyVersion => managed::GetPolicyVersion,
    ListPolicyVersions => managed::ListPolicyVersions,
    DeletePolicyVersion => managed::DeletePolicyVersion,
    SetDefaultPolicyVersion => managed::SetDefaultPolicyVersion,
    AttachUserPolicy => managed::AttachUserPolicy,
    DetachUserPolicy => managed::DetachUserPolicy,
    ListAttachedUserPolicies => managed::ListAttachedUserPolicies,
    AttachGroupPolicy => managed::AttachGroupPolicy,
    DetachGroupPolicy => managed::DetachGroupPolicy,
    ListAttachedGroupPolicies => managed::ListAttachedGroupPolicies,
    AttachRolePolicy => managed::AttachRolePolicy,
    DetachRolePolicy => managed::DetachRolePolicy,
    ListAttachedRolePolicies => managed::ListAttachedRolePolicies,
    ListEntitiesForPolicy => managed::ListEntitiesForPolicy,
    CreateInstanceProfile => profiles::CreateInstanceProfile,
    GetInstanceProfile => profiles::GetInstanceProfile,
    ListInstanceProfiles => profiles::ListInstanceProfiles,
    ListInstanceProfilesForRole => profiles::ListInstanceProfilesForRole,
    DeleteInstanceProfile => profiles::DeleteInstanceProfile,
    AddRoleToInstanceProfile => profiles::AddRoleToInstanceProfile,
    RemoveRoleFromInstanceProfile => profiles::RemoveRoleFromInstanceProfile,
    CreateAccountAlias => account::CreateAccountAlias,
    DeleteAccountAlias => account::DeleteAccountAlias,
    ListAccountAliases => account::ListAccountAliases,
    GetAccountSummary => account::GetAccountSummary,
    CreateLoginProfile => account::CreateLoginProfile,
    GetLoginProfile => account::GetLoginProfile,
    UpdateLoginProfile => account::UpdateLoginProfile,
    DeleteLoginProfile => account::DeleteLoginProfile,
    CreateAccount => account::CreateAccount,
    ListAccounts => account::ListAccounts,
    DeleteAccount => account::DeleteAccount,
}

/// What an IAM action runs with.
#[derive(Debug)]
pub struct IamContext<'a> {
    /// The cloud.
    pub cloud: &'a Cloud,
    /// Who is calling.
    pub principal: &'a Principal,
    /// This request's id.
    pub request_id: &'a str,
}

impl IamContext<'_> {
    /// The caller's account id: IAM actions act on the caller's account.
    pub fn account(&self) -> &str {
        self.principal.account_id()
    }

    /// The named user, or the caller when the request names none, as IAM
    /// does for the actions whose `UserName` is optional.
    pub fn user_or_caller(&self, user: Option<String>) -> Result<String, IamApiError> {
        match user {
            Some(name) => Ok(name),
            None if self.principal.role().is_some() => Err(IdentityError::Validation(
                "Must specify userName when calling with non-User credentials".into(),
            )
            .into()),
            None => Ok(self.principal.user_name.clone()),
        }
    }

    /// Writes `<{action}Response><{action}Result>…</…><ResponseMetadata>…`.
    pub fn respond(&self, action: &str, body: impl FnOnce(&mut XmlWriter)) -> String {
        respond(NAMESPACE, action, self.request_id, body)
    }
}

/// Writes an AWS Query answer in `namespace` (IAM's and STS's shape).
pub fn respond(
    namespace: &str,
    action: &str,
    request_id: &str,
    body: impl FnOnce(&mut XmlWriter),
) -> String {
    let mut w = XmlWriter::new();
    w.root(&format!("{action}Response"), namespace, |w| {
        w.elem(&format!("{action}Result"), body);
        w.elem("ResponseMetadata", |w| w.text("RequestId", request_id));
    });
    w.finish()
}

/// A list of `<member>`s under `name`.
pub fn members<T>(
    w: &mut XmlWriter,
    name: &str,
    items: impl IntoIterator<Item = T>,
    mut each: impl FnMut(&mut XmlWriter, T),
) {
    w.elem(name, |w| {
        for item in items {
            w.elem("member", |w| each(w, item));
        }
    });
}

/// IAM's pages: `Marker` (an offset this API handed out) and `MaxItems`
/// (1–1000, default 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    start: usize,
    max: usize,
}

impl Page {
    /// Reads `Marker` and `MaxItems`.
    pub fn parse(params: &QueryParams) -> Result<Self, IamApiError> {
        let max = match params.int("MaxItems")? {
            None => 100,
            Some(n) if (1..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(params
                    .invalid("MaxItems", &n.to_string(), "Must be between 1 and 1000.")
                    .into());
            }
        };
        let start = match params.get("Marker") {
            None => 0,
            Some(m) => m
                .parse()
                .map_err(|_| params.invalid("Marker", m, "Not a marker this API returned."))?,
        };
        Ok(Self { start, max })
    }

    /// Writes this page of `items` as `<name><member>…` with `IsTruncated`
    /// and, when truncated, `Marker`.
    pub fn write<T>(
        &self,
        w: &mut XmlWriter,
        name: &str,
        items: &[T],
        each: impl FnMut(&mut XmlWriter, &T),
    ) {
        let end = self.start.saturating_add(self.max).min(items.len());
        let page = items.get(self.start.min(end)..end).unwrap_or_default();
        members(w, name, page, each);
        let truncated = end < items.len();
        w.text("IsTruncated", truncated);
        if truncated {
            w.text("Marker", end);
        }
    }
}

/// Tags given as `Tags.member.N.Key` / `.Value`.
pub fn tags(params: &QueryParams) -> Result<BTreeMap<String, String>, IamApiError> {
    let mut out = BTreeMap::new();
    for t in params.structs("Tags.member")? {
        let key = t.required("Key")?.to_owned();
        let value = t.get("Value").unwrap_or_default().to_owned();
        out.insert(key, value);
    }
    Ok(out)
}

/// Writes tags as `<Tags><member><Key>…`.
pub fn write_tags(w: &mut XmlWriter, tags: &BTreeMap<String, String>) {
    members(w, "Tags", tags, |w, (k, v)| {
        w.text("Key", k);
        w.text("Value", v);
    });
}
