//! Instance profiles: the container that carries a role to an instance.
//! Create, read, list, delete, add and remove its one role, and list the
//! profiles a role is in.

use mallee_store::{IamEntity, Store};

use super::roles::{self, RoleView};
use super::{
    INSTANCE_PROFILE, IdentityError, ProfileDetails, Result, arn, check_name, check_path, entities,
};

/// A profile as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileView {
    /// Name.
    pub name: String,
    /// `AIPA…`.
    pub id: String,
    /// IAM path.
    pub path: String,
    /// `arn:aws:iam::ACCOUNT:instance-profile/PATH/NAME`.
    pub arn: String,
    /// Creation time.
    pub created_at: i64,
    /// Its roles (none or one).
    pub roles: Vec<RoleView>,
}

async fn view(store: &dyn Store, e: &IamEntity, d: &ProfileDetails) -> Result<ProfileView> {
    let mut roles = Vec::new();
    for r in &d.roles {
        // A role deleted out from under a profile cannot be: DeleteRole
        // refuses while a profile holds it.
        roles.push(roles::get(store, &e.account_id, r).await?);
    }
    Ok(ProfileView {
        name: e.name.clone(),
        id: e.entity_id.clone(),
        path: d.path.clone(),
        arn: arn(&e.account_id, "instance-profile", &d.path, &e.name),
        created_at: e.created_at,
        roles,
    })
}

/// CreateInstanceProfile.
pub async fn create(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    path: Option<&str>,
) -> Result<ProfileView> {
    check_name("instanceProfileName", name, 128)?;
    let path = path.unwrap_or("/");
    check_path(path)?;
    let details = ProfileDetails {
        path: path.to_owned(),
        ..ProfileDetails::default()
    };
    let entity =
        entities::create(store, account_id, INSTANCE_PROFILE, name, "AIPA", &details).await?;
    view(store, &entity, &details).await
}

/// GetInstanceProfile.
pub async fn get(store: &dyn Store, account_id: &str, name: &str) -> Result<ProfileView> {
    let (e, d) =
        entities::load::<ProfileDetails>(store, account_id, INSTANCE_PROFILE, name).await?;
    view(store, &e, &d).await
}

/// ListInstanceProfiles.
pub async fn list(
    store: &dyn Store,
    account_id: &str,
    path_prefix: Option<&str>,
) -> Result<Vec<ProfileView>> {
    let mut out = Vec::new();
    for (e, d) in entities::list::<ProfileDetails>(store, account_id, INSTANCE_PROFILE).await? {
        if path_prefix.is_none_or(|p| d.path.starts_with(p)) {
            out.push(view(store, &e, &d).await?);
        }
    }
    Ok(out)
}

/// ListInstanceProfilesForRole.
pub async fn for_role(store: &dyn Store, account_id: &str, role: &str) -> Result<Vec<ProfileView>> {
    roles::load(store, account_id, role).await?;
    let mut out = Vec::new();
    for (e, d) in entities::list::<ProfileDetails>(store, account_id, INSTANCE_PROFILE).await? {
        if d.roles.iter().any(|r| r == role) {
            out.push(view(store, &e, &d).await?);
        }
    }
    Ok(out)
}

/// DeleteInstanceProfile: refused while it holds a role.
pub async fn delete(store: &dyn Store, account_id: &str, name: &str) -> Result<()> {
    entities::delete(
        store,
        account_id,
        INSTANCE_PROFILE,
        name,
        |d: &ProfileDetails| {
            if d.roles.is_empty() {
                Ok(())
            } else {
                Err(entities::conflict("remove roles from instance profile"))
            }
        },
    )
    .await
}

/// AddRoleToInstanceProfile: a profile holds one role.
pub async fn add_role(store: &dyn Store, account_id: &str, name: &str, role: &str) -> Result<()> {
    roles::load(store, account_id, role).await?;
    entities::modify(
        store,
        account_id,
        INSTANCE_PROFILE,
        name,
        |d: &mut ProfileDetails| {
            if !d.roles.is_empty() {
                return Err(IdentityError::LimitExceeded(
                    "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1".into(),
                ));
            }
            d.roles.push(role.to_owned());
            Ok(())
        },
    )
    .await
}

/// RemoveRoleFromInstanceProfile.
pub async fn remove_role(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    role: &str,
) -> Result<()> {
    entities::modify(
        store,
        account_id,
        INSTANCE_PROFILE,
        name,
        |d: &mut ProfileDetails| {
            let before = d.roles.len();
            d.roles.retain(|r| r != role);
            if d.roles.len() == before {
                return Err(IdentityError::NoSuchEntity(format!(
                    "The role with name {role} cannot be found in instance profile {name}."
                )));
            }
            Ok(())
        },
    )
    .await
}

/// The profile named by RunInstances' `IamInstanceProfile` (`Arn` or
/// `Name`) in the caller's account, and its role.
pub async fn resolve(
    store: &dyn Store,
    account_id: &str,
    arn_or_name: &str,
) -> Result<ProfileView> {
    let name = match arn_or_name.strip_prefix("arn:") {
        Some(_) => {
            let owner = arn_or_name.split(':').nth(4).unwrap_or_default();
            if owner != account_id {
                return Err(IdentityError::Validation(format!(
                    "Value ({arn_or_name}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN"
                )));
            }
            arn_or_name.rsplit('/').next().unwrap_or_default()
        }
        None => arn_or_name,
    };
    get(store, account_id, name).await
}
