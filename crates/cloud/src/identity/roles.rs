//! IAM roles: create with a trust policy, read, list, update, change the
//! trust policy, tag, delete. Who may assume a role, and what its sessions
//! may do, is `sts` and `authorize`.

use std::collections::BTreeMap;

use mallee_policy::{Policy, PolicyKind, SizeLimit, policy_size};
use mallee_store::{IamEntity, Store};

use super::{
    INSTANCE_PROFILE, IdentityError, ProfileDetails, ROLE, Result, RoleDetails, arn, check_name,
    check_path, entities,
};

/// Longest role name IAM accepts.
pub const MAX_ROLE_NAME: usize = 64;
/// Session lengths a role may allow, in seconds.
pub const SESSION_RANGE: std::ops::RangeInclusive<i64> = 3600..=43200;

/// A role as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleView {
    /// Name.
    pub role_name: String,
    /// `AROA…`.
    pub role_id: String,
    /// IAM path.
    pub path: String,
    /// `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
    pub arn: String,
    /// Creation time.
    pub created_at: i64,
    /// The trust policy, as given.
    pub trust: String,
    /// Free text.
    pub description: Option<String>,
    /// Longest session, in seconds.
    pub max_session_seconds: i64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl RoleView {
    /// The view of a stored role.
    pub fn new(entity: &IamEntity, d: &RoleDetails) -> Self {
        Self {
            role_name: entity.name.clone(),
            role_id: entity.entity_id.clone(),
            path: d.path.clone(),
            arn: arn(&entity.account_id, "role", &d.path, &entity.name),
            created_at: entity.created_at,
            trust: d.trust.clone(),
            description: d.description.clone(),
            max_session_seconds: d.max_session_seconds,
            tags: d.tags.clone(),
        }
    }
}

/// Parses a trust policy; `MalformedPolicyDocument` with IAM's reason.
pub fn parse_trust(document: &str) -> Result<Policy> {
    let policy = Policy::parse(document, PolicyKind::Trust)
        .map_err(|e| IdentityError::MalformedPolicyDocument(e.to_string()))?;
    mallee_policy::check_size(policy_size(document), SizeLimit::Trust)
        .map_err(|e| IdentityError::LimitExceeded(e.to_string()))?;
    Ok(policy)
}

fn check_session(seconds: i64) -> Result<()> {
    if SESSION_RANGE.contains(&seconds) {
        Ok(())
    } else {
        Err(IdentityError::Validation(format!(
            "The requested MaxSessionDuration {seconds} is out of range: it must be between {} and {} seconds.",
            SESSION_RANGE.start(),
            SESSION_RANGE.end()
        )))
    }
}

/// What CreateRole takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRole {
    /// Name.
    pub name: String,
    /// IAM path (default `/`).
    pub path: Option<String>,
    /// The trust policy.
    pub trust: String,
    /// Free text.
    pub description: Option<String>,
    /// Longest session (default 3600).
    pub max_session_seconds: Option<i64>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// CreateRole.
pub async fn create(store: &dyn Store, account_id: &str, new: NewRole) -> Result<RoleView> {
    check_name("roleName", &new.name, MAX_ROLE_NAME)?;
    let path = new.path.unwrap_or_else(|| "/".into());
    check_path(&path)?;
    parse_trust(&new.trust)?;
    let max = new.max_session_seconds.unwrap_or(3600);
    check_session(max)?;
    let details = RoleDetails {
        path,
        trust: new.trust,
        description: new.description,
        max_session_seconds: max,
        tags: new.tags,
        ..RoleDetails::default()
    };
    let entity = entities::create(store, account_id, ROLE, &new.name, "AROA", &details).await?;
    Ok(RoleView::new(&entity, &details))
}

/// A stored role.
pub async fn load(
    store: &dyn Store,
    account_id: &str,
    name: &str,
) -> Result<(IamEntity, RoleDetails)> {
    entities::load(store, account_id, ROLE, name).await
}

/// GetRole.
pub async fn get(store: &dyn Store, account_id: &str, name: &str) -> Result<RoleView> {
    let (e, d) = load(store, account_id, name).await?;
    Ok(RoleView::new(&e, &d))
}

/// ListRoles.
pub async fn list(
    store: &dyn Store,
    account_id: &str,
    path_prefix: Option<&str>,
) -> Result<Vec<RoleView>> {
    Ok(entities::list::<RoleDetails>(store, account_id, ROLE)
        .await?
        .iter()
        .filter(|(_, d)| path_prefix.is_none_or(|p| d.path.starts_with(p)))
        .map(|(e, d)| RoleView::new(e, d))
        .collect())
}

/// UpdateRole: description and longest session.
pub async fn update(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    description: Option<String>,
    max_session_seconds: Option<i64>,
) -> Result<()> {
    if let Some(s) = max_session_seconds {
        check_session(s)?;
    }
    entities::modify(store, account_id, ROLE, name, |d: &mut RoleDetails| {
        if let Some(text) = &description {
            d.description = Some(text.clone());
        }
        if let Some(s) = max_session_seconds {
            d.max_session_seconds = s;
        }
        Ok(())
    })
    .await
}

/// UpdateAssumeRolePolicy.
pub async fn set_trust(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    document: &str,
) -> Result<()> {
    parse_trust(document)?;
    entities::modify(store, account_id, ROLE, name, |d: &mut RoleDetails| {
        document.clone_into(&mut d.trust);
        Ok(())
    })
    .await
}

/// DeleteRole: refused while it has policies or is in an instance
/// profile, as IAM refuses it. Its sessions stop working at once.
pub async fn delete(store: &dyn Store, account_id: &str, name: &str) -> Result<()> {
    let in_profile = entities::list::<ProfileDetails>(store, account_id, INSTANCE_PROFILE)
        .await?
        .iter()
        .any(|(_, p)| p.roles.iter().any(|r| r == name));
    if in_profile {
        return Err(entities::conflict("remove roles from instance profile"));
    }
    entities::delete(store, account_id, ROLE, name, |d: &RoleDetails| {
        entities::no_policies_left(&d.policies, &d.attached)
    })
    .await
}

/// TagRole.
pub async fn tag(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    tags: BTreeMap<String, String>,
) -> Result<()> {
    entities::modify(store, account_id, ROLE, name, |d: &mut RoleDetails| {
        let mut next = d.tags.clone();
        next.extend(tags.clone());
        super::users::check_tags(&next)?;
        d.tags = next;
        Ok(())
    })
    .await
}

/// UntagRole.
pub async fn untag(store: &dyn Store, account_id: &str, name: &str, keys: &[String]) -> Result<()> {
    entities::modify(store, account_id, ROLE, name, |d: &mut RoleDetails| {
        for k in keys {
            d.tags.remove(k);
        }
        Ok(())
    })
    .await
}
