//! IAM users: create, read, list, rename, tag and delete; the
//! compare-and-set edit every user change goes through.

use std::collections::BTreeMap;

use mallee_store::{IamUser, Store, StoreError};

use super::{
    CAS_ATTEMPTS, IdentityError, Result, UserDetails, arn, check_name, check_path, decode, encode,
};
use crate::accounts::FIRST_USER;
use crate::ids;

/// Longest user name IAM accepts.
pub const MAX_USER_NAME: usize = 64;

/// AWS's limit of tags on one user or role.
pub const MAX_TAGS: usize = 50;

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    /// Name.
    pub user_name: String,
    /// `AIDA…`.
    pub user_id: String,
    /// IAM path.
    pub path: String,
    /// `arn:aws:iam::ACCOUNT:user/PATH/NAME`.
    pub arn: String,
    /// Creation time.
    pub created_at: i64,
    /// Tags, by key.
    pub tags: BTreeMap<String, String>,
}

impl UserView {
    /// The view of a stored user and its document.
    pub(super) fn new(user: &IamUser, details: &UserDetails) -> Self {
        Self {
            user_name: user.user_name.clone(),
            user_id: user.user_id.clone(),
            path: details.path.clone(),
            arn: arn(&user.account_id, "user", &details.path, &user.user_name),
            created_at: user.created_at,
            tags: details.tags.clone(),
        }
    }
}

fn no_such_user(name: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("The user with name {name} cannot be found."))
}

/// A stored user and its document; `NoSuchEntity` when there is none.
pub async fn load(
    store: &dyn Store,
    account_id: &str,
    name: &str,
) -> Result<(IamUser, UserDetails)> {
    let user = store
        .user(account_id, name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    let details = decode("user", &user.details)?;
    Ok((user, details))
}

/// Applies `change` to a user's document and stores it, retrying when
/// another request changed the user meanwhile. `change` sees the latest
/// document each time.
pub async fn modify<T>(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    mut change: impl FnMut(&mut UserDetails) -> Result<T>,
) -> Result<T> {
    for _ in 0..CAS_ATTEMPTS {
        let (mut user, mut details) = load(store, account_id, name).await?;
        let out = change(&mut details)?;
        user.details = encode("user", &details)?;
        if store.update_user(name, &user).await? {
            return Ok(out);
        }
    }
    Err(IdentityError::Concurrent(format!("user {name}")))
}

/// Checks IAM's tag limits.
pub(super) fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(IdentityError::LimitExceeded(format!(
            "The number of tags has reached the maximum limit of {MAX_TAGS}."
        )));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(IdentityError::Validation(format!(
                "Tag keys are 1-128 characters and values at most 256: {k}"
            )));
        }
    }
    Ok(())
}

/// CreateUser.
pub async fn create(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    path: Option<&str>,
    tags: BTreeMap<String, String>,
) -> Result<UserView> {
    check_name("userName", name, MAX_USER_NAME)?;
    let path = path.unwrap_or("/");
    check_path(path)?;
    check_tags(&tags)?;
    let details = UserDetails {
        path: path.to_owned(),
        tags,
        ..UserDetails::default()
    };
    let user = IamUser {
        account_id: account_id.to_owned(),
        user_name: name.to_owned(),
        user_id: ids::user_id(),
        details: encode("user", &details)?,
        revision: 0,
        created_at: ids::now_millis(),
    };
    match store.create_user(&user).await {
        Ok(()) => Ok(UserView::new(&user, &details)),
        Err(StoreError::Conflict(_)) => Err(IdentityError::EntityAlreadyExists(format!(
            "User with name {name} already exists."
        ))),
        Err(e) => Err(e.into()),
    }
}

/// GetUser.
pub async fn get(store: &dyn Store, account_id: &str, name: &str) -> Result<UserView> {
    let (user, details) = load(store, account_id, name).await?;
    Ok(UserView::new(&user, &details))
}

/// ListUsers: the account's users whose path starts with `path_prefix`.
pub async fn list(
    store: &dyn Store,
    account_id: &str,
    path_prefix: Option<&str>,
) -> Result<Vec<UserView>> {
    let mut out = Vec::new();
    for user in store.users(account_id).await? {
        let details: UserDetails = decode("user", &user.details)?;
        if path_prefix.is_none_or(|p| details.path.starts_with(p)) {
            out.push(UserView::new(&user, &details));
        }
    }
    Ok(out)
}

/// UpdateUser: a new name, a new path, or both.
pub async fn update(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    new_name: Option<&str>,
    new_path: Option<&str>,
) -> Result<()> {
    if let Some(n) = new_name {
        check_name("newUserName", n, MAX_USER_NAME)?;
        if name == FIRST_USER && n != FIRST_USER {
            return Err(IdentityError::AccessDenied(format!(
                "The account's {FIRST_USER} user cannot be renamed."
            )));
        }
    }
    if let Some(p) = new_path {
        check_path(p)?;
    }
    for _ in 0..CAS_ATTEMPTS {
        let (mut user, mut details) = load(store, account_id, name).await?;
        if let Some(p) = new_path {
            p.clone_into(&mut details.path);
        }
        user.details = encode("user", &details)?;
        if let Some(n) = new_name {
            n.clone_into(&mut user.user_name);
        }
        match store.update_user(name, &user).await {
            Ok(true) => return Ok(()),
            Ok(false) => continue,
            Err(StoreError::Conflict(_)) => {
                return Err(IdentityError::EntityAlreadyExists(format!(
                    "User with name {} already exists.",
                    user.user_name
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(IdentityError::Concurrent(format!("user {name}")))
}

/// DeleteUser: refused while the user has keys, signing certificates,
/// inline policies or group memberships, as IAM refuses it; the account's `admin` user stays.
pub async fn delete(store: &dyn Store, account_id: &str, name: &str) -> Result<()> {
    if name == FIRST_USER {
        return Err(IdentityError::DeleteConflict(format!(
            "The account's {FIRST_USER} user cannot be deleted."
        )));
    }
    for _ in 0..CAS_ATTEMPTS {
        let (user, details) = load(store, account_id, name).await?;
        let conflict = |what: &str| {
            Err(IdentityError::DeleteConflict(format!(
                "Cannot delete entity, must {what} first."
            )))
        };
        if !store.user_access_keys(account_id, name).await?.is_empty() {
            return conflict("delete access keys");
        }
        if !store
            .signing_certificates(account_id, Some(name))
            .await?
            .is_empty()
        {
            return conflict("delete signing certificates");
        }
        if !details.policies.is_empty() {
            return conflict("delete policies");
        }
        if !details.groups.is_empty() {
            return conflict("remove users from group");
        }
        if !details.attached.is_empty() {
            return conflict("detach all policies");
        }
        if details.login_profile.is_some() {
            return conflict("delete login profile");
        }
        if store.delete_user(account_id, name, user.revision).await? {
            return Ok(());
        }
    }
    Err(IdentityError::Concurrent(format!("user {name}")))
}

/// TagUser: adds or replaces tags.
pub async fn tag(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    tags: BTreeMap<String, String>,
) -> Result<()> {
    modify(store, account_id, name, |d| {
        let mut next = d.tags.clone();
        next.extend(tags.clone());
        check_tags(&next)?;
        d.tags = next;
        Ok(())
    })
    .await
}

/// UntagUser: removes tags by key.
pub async fn untag(store: &dyn Store, account_id: &str, name: &str, keys: &[String]) -> Result<()> {
    modify(store, account_id, name, |d| {
        for k in keys {
            d.tags.remove(k);
        }
        Ok(())
    })
    .await
}
