//! IAM groups: create, read, list, delete, and membership. A user's
//! memberships live in the user's document, so a renamed user stays in its
//! groups and a member list is the account's users that name the group.

use mallee_store::{IamEntity, Store};

use super::users::{self, UserView};
use super::{
    GROUP, GroupDetails, IdentityError, Result, UserDetails, arn, check_name, check_path, decode,
    entities,
};

/// Longest group name IAM accepts.
pub const MAX_GROUP_NAME: usize = 128;

/// A group as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// Name.
    pub group_name: String,
    /// `AGPA…`.
    pub group_id: String,
    /// IAM path.
    pub path: String,
    /// `arn:aws:iam::ACCOUNT:group/PATH/NAME`.
    pub arn: String,
    /// Creation time.
    pub created_at: i64,
}

impl GroupView {
    fn new(entity: &IamEntity, details: &GroupDetails) -> Self {
        Self {
            group_name: entity.name.clone(),
            group_id: entity.entity_id.clone(),
            path: details.path.clone(),
            arn: arn(&entity.account_id, "group", &details.path, &entity.name),
            created_at: entity.created_at,
        }
    }
}

/// A stored group and its document; `NoSuchEntity` when there is none.
pub async fn load(
    store: &dyn Store,
    account_id: &str,
    name: &str,
) -> Result<(IamEntity, GroupDetails)> {
    entities::load(store, account_id, GROUP, name).await
}

/// Applies `change` to a group's document, retrying on concurrent edits.
pub async fn modify<T>(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    change: impl FnMut(&mut GroupDetails) -> Result<T>,
) -> Result<T> {
    entities::modify(store, account_id, GROUP, name, change).await
}

/// CreateGroup.
pub async fn create(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    path: Option<&str>,
) -> Result<GroupView> {
    check_name("groupName", name, MAX_GROUP_NAME)?;
    let path = path.unwrap_or("/");
    check_path(path)?;
    let details = GroupDetails {
        path: path.to_owned(),
        ..GroupDetails::default()
    };
    let entity = entities::create(store, account_id, GROUP, name, "AGPA", &details).await?;
    Ok(GroupView::new(&entity, &details))
}

/// GetGroup: the group and its members.
pub async fn get(
    store: &dyn Store,
    account_id: &str,
    name: &str,
) -> Result<(GroupView, Vec<UserView>)> {
    let (entity, details) = load(store, account_id, name).await?;
    let mut members = Vec::new();
    for user in store.users(account_id).await? {
        let d: UserDetails = decode("user", &user.details)?;
        if d.groups.contains(name) {
            members.push(UserView::new(&user, &d));
        }
    }
    Ok((GroupView::new(&entity, &details), members))
}

/// ListGroups: the account's groups whose path starts with `path_prefix`.
pub async fn list(
    store: &dyn Store,
    account_id: &str,
    path_prefix: Option<&str>,
) -> Result<Vec<GroupView>> {
    let mut out = Vec::new();
    for entity in store.entities(account_id, GROUP).await? {
        let details: GroupDetails = decode("group", &entity.details)?;
        if path_prefix.is_none_or(|p| details.path.starts_with(p)) {
            out.push(GroupView::new(&entity, &details));
        }
    }
    Ok(out)
}

/// DeleteGroup: refused while it has members or policies.
pub async fn delete(store: &dyn Store, account_id: &str, name: &str) -> Result<()> {
    let (_, members) = get(store, account_id, name).await?;
    if !members.is_empty() {
        return Err(entities::conflict("remove users from group"));
    }
    entities::delete(store, account_id, GROUP, name, |d: &GroupDetails| {
        entities::no_policies_left(&d.policies, &d.attached)
    })
    .await
}

/// AddUserToGroup (adding a member twice is not an error, as in IAM).
pub async fn add_user(store: &dyn Store, account_id: &str, group: &str, user: &str) -> Result<()> {
    load(store, account_id, group).await?;
    users::modify(store, account_id, user, |d| {
        d.groups.insert(group.to_owned());
        Ok(())
    })
    .await
}

/// RemoveUserFromGroup.
pub async fn remove_user(
    store: &dyn Store,
    account_id: &str,
    group: &str,
    user: &str,
) -> Result<()> {
    load(store, account_id, group).await?;
    users::modify(store, account_id, user, |d| {
        if d.groups.remove(group) {
            Ok(())
        } else {
            Err(IdentityError::NoSuchEntity(format!(
                "User {user} is not in group {group}."
            )))
        }
    })
    .await
}

/// ListGroupsForUser.
pub async fn of_user(store: &dyn Store, account_id: &str, user: &str) -> Result<Vec<GroupView>> {
    let (_, details) = users::load(store, account_id, user).await?;
    let mut out = Vec::new();
    for name in &details.groups {
        // A group deleted meanwhile is simply not listed.
        if let Some(entity) = store.entity(account_id, GROUP, name).await? {
            let d: GroupDetails = decode("group", &entity.details)?;
            out.push(GroupView::new(&entity, &d));
        }
    }
    Ok(out)
}
