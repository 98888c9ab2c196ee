//! Inline policies of users and groups: put (validated, within IAM's size
//! limits), get, delete and list. A policy is stored as the caller wrote
//! it and answered back the same way.

use mallee_policy::{SizeLimit, policy_size};
use mallee_store::Store;

use super::{IdentityError, ROLE, Result, RoleDetails, check_name, entities, groups, roles, users};

/// Who holds an inline policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A user, by name.
    User(String),
    /// A group, by name.
    Group(String),
    /// A role, by name.
    Role(String),
}

impl Holder {
    /// The holder's name.
    pub fn name(&self) -> &str {
        match self {
            Self::User(n) | Self::Group(n) | Self::Role(n) => n,
        }
    }
}

fn no_such_policy(holder: &Holder, name: &str) -> IdentityError {
    let (kind, who) = match holder {
        Holder::User(n) => ("user", n),
        Holder::Group(n) => ("group", n),
        Holder::Role(n) => ("role", n),
    };
    IdentityError::NoSuchEntity(format!(
        "The {kind} policy with name {name} cannot be found for {kind} {who}."
    ))
}

/// Checks that `others` and `document` together stay within `limit`
/// (IAM's `LimitExceeded` wording).
fn check_size<'a>(
    others: impl Iterator<Item = (&'a String, &'a String)>,
    name: &str,
    document: &str,
    limit: SizeLimit<'_>,
) -> Result<()> {
    let total: usize = others
        .filter(|(n, _)| n.as_str() != name)
        .map(|(_, d)| policy_size(d))
        .sum::<usize>()
        + policy_size(document);
    mallee_policy::check_size(total, limit).map_err(|e| IdentityError::LimitExceeded(e.to_string()))
}

/// PutUserPolicy / PutGroupPolicy: validates the document as an identity
/// policy and stores it (replacing one of the same name).
pub async fn put(
    store: &dyn Store,
    account_id: &str,
    holder: &Holder,
    name: &str,
    document: &str,
) -> Result<()> {
    check_name("policyName", name, 128)?;
    super::authorize::parse_identity_policy(document)?;
    match holder {
        Holder::User(user) => {
            users::modify(store, account_id, user, |d| {
                check_size(
                    d.policies.iter(),
                    name,
                    document,
                    SizeLimit::UserInline(user),
                )?;
                d.policies.insert(name.to_owned(), document.to_owned());
                Ok(())
            })
            .await
        }
        Holder::Group(group) => {
            groups::modify(store, account_id, group, |d| {
                check_size(
                    d.policies.iter(),
                    name,
                    document,
                    SizeLimit::GroupInline(group),
                )?;
                d.policies.insert(name.to_owned(), document.to_owned());
                Ok(())
            })
            .await
        }
        Holder::Role(role) => {
            entities::modify(store, account_id, ROLE, role, |d: &mut RoleDetails| {
                check_size(
                    d.policies.iter(),
                    name,
                    document,
                    SizeLimit::RoleInline(role),
                )?;
                d.policies.insert(name.to_owned(), document.to_owned());
                Ok(())
            })
            .await
        }
    }
}

/// GetUserPolicy / GetGroupPolicy: the document as it was put.
pub async fn get(
    store: &dyn Store,
    account_id: &str,
    holder: &Holder,
    name: &str,
) -> Result<String> {
    let policies = match holder {
        Holder::User(user) => users::load(store, account_id, user).await?.1.policies,
        Holder::Group(group) => groups::load(store, account_id, group).await?.1.policies,
        Holder::Role(role) => roles::load(store, account_id, role).await?.1.policies,
    };
    policies
        .get(name)
        .cloned()
        .ok_or_else(|| no_such_policy(holder, name))
}

/// DeleteUserPolicy / DeleteGroupPolicy.
pub async fn delete(
    store: &dyn Store,
    account_id: &str,
    holder: &Holder,
    name: &str,
) -> Result<()> {
    let remove = |policies: &mut std::collections::BTreeMap<String, String>| {
        policies
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| no_such_policy(holder, name))
    };
    match holder {
        Holder::User(user) => {
            users::modify(store, account_id, user, |d| remove(&mut d.policies)).await
        }
        Holder::Group(group) => {
            groups::modify(store, account_id, group, |d| remove(&mut d.policies)).await
        }
        Holder::Role(role) => {
            entities::modify(store, account_id, ROLE, role, |d: &mut RoleDetails| {
                remove(&mut d.policies)
            })
            .await
        }
    }
}

/// ListUserPolicies / ListGroupPolicies: the names, in order.
pub async fn list(store: &dyn Store, account_id: &str, holder: &Holder) -> Result<Vec<String>> {
    let policies = match holder {
        Holder::User(user) => users::load(store, account_id, user).await?.1.policies,
        Holder::Group(group) => groups::load(store, account_id, group).await?.1.policies,
        Holder::Role(role) => roles::load(store, account_id, role).await?.1.policies,
    };
    Ok(policies.into_keys().collect())
}
