//! Managed policies: create, versions (at most five, one the default),
//! attach to and detach from users, groups and roles, and the listings
//! around them. A policy's ARN is `arn:aws:iam::ACCOUNT:policy/PATH/NAME`;
//! holders keep the ARNs they have attached.

use std::collections::BTreeMap;

use mallee_policy::{SizeLimit, policy_size};
use mallee_store::{IamEntity, Store};

use super::authorize::parse_identity_policy;
use super::policies::Holder;
use super::{
    GROUP, GroupDetails, IdentityError, ManagedDetails, POLICY, PolicyVersion, ROLE, Result,
    RoleDetails, UserDetails, arn, check_name, check_path, decode, entities, users,
};
use crate::ids;

/// IAM's limit of versions per managed policy.
pub const MAX_VERSIONS: usize = 5;

/// A managed policy as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyView {
    /// Name.
    pub name: String,
    /// `ANPA…`.
    pub id: String,
    /// IAM path.
    pub path: String,
    /// Its ARN.
    pub arn: String,
    /// The version in force.
    pub default_version: String,
    /// Users, groups and roles it is attached to.
    pub attachment_count: usize,
    /// Free text.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// When the default version last changed.
    pub updated_at: i64,
}

/// Who a policy is attached to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachments {
    /// Users, by name.
    pub users: Vec<String>,
    /// Groups, by name.
    pub groups: Vec<String>,
    /// Roles, by name.
    pub roles: Vec<String>,
}

impl Attachments {
    fn count(&self) -> usize {
        self.users.len() + self.groups.len() + self.roles.len()
    }
}

fn no_such_policy(arn: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("Policy {arn} does not exist or is not attachable."))
}

/// The name of the caller's policy `arn`; policies of other accounts (and
/// AWS's own, which mallee does not ship) do not exist for it.
pub fn name_in(account_id: &str, policy_arn: &str) -> Result<String> {
    let prefix = format!("arn:aws:iam::{account_id}:policy/");
    match policy_arn.strip_prefix(&prefix) {
        Some(rest) if !rest.is_empty() => Ok(rest.rsplit('/').next().unwrap_or(rest).to_owned()),
        _ => Err(no_such_policy(policy_arn)),
    }
}

async fn load(
    store: &dyn Store,
    account_id: &str,
    policy_arn: &str,
) -> Result<(IamEntity, ManagedDetails)> {
    let name = name_in(account_id, policy_arn)?;
    match store.entity(account_id, POLICY, &name).await? {
        Some(e) => {
            let d: ManagedDetails = decode(POLICY, &e.details)?;
            if arn(account_id, "policy", &d.path, &name) != policy_arn {
                return Err(no_such_policy(policy_arn));
            }
            Ok((e, d))
        }
        None => Err(no_such_policy(policy_arn)),
    }
}

/// Applies `change` to the caller's policy `policy_arn` (compare-and-set).
async fn modify_policy<T>(
    store: &dyn Store,
    account_id: &str,
    policy_arn: &str,
    change: impl FnMut(&mut ManagedDetails) -> Result<T>,
) -> Result<T> {
    let (e, _) = load(store, account_id, policy_arn).await?;
    entities::modify(store, account_id, POLICY, &e.name, change).await
}

fn check_document(document: &str) -> Result<()> {
    let policy = parse_identity_policy(document)?;
    policy
        .require_version_2012()
        .map_err(|e| IdentityError::MalformedPolicyDocument(e.to_string()))?;
    mallee_policy::check_size(policy_size(document), SizeLimit::Managed)
        .map_err(|e| IdentityError::LimitExceeded(e.to_string()))
}

/// Everything attached to `policy_arn` in the account.
pub async fn attachments(
    store: &dyn Store,
    account_id: &str,
    policy_arn: &str,
) -> Result<Attachments> {
    let mut out = Attachments::default();
    for u in store.users(account_id).await? {
        let d: UserDetails = decode("user", &u.details)?;
        if d.attached.contains(policy_arn) {
            out.users.push(u.user_name);
        }
    }
    for (e, d) in entities::list::<GroupDetails>(store, account_id, GROUP).await? {
        if d.attached.contains(policy_arn) {
            out.groups.push(e.name);
        }
    }
    for (e, d) in entities::list::<RoleDetails>(store, account_id, ROLE).await? {
        if d.attached.contains(policy_arn) {
            out.roles.push(e.name);
        }
    }
    Ok(out)
}

async fn view(store: &dyn Store, e: &IamEntity, d: &ManagedDetails) -> Result<PolicyView> {
    let policy_arn = arn(&e.account_id, "policy", &d.path, &e.name);
    let attachment_count = attachments(store, &e.account_id, &policy_arn)
        .await?
        .count();
    Ok(PolicyView {
        name: e.name.clone(),
        id: e.entity_id.clone(),
        path: d.path.clone(),
        arn: policy_arn,
        default_version: d.default_version.clone(),
        attachment_count,
        description: d.description.clone(),
        created_at: e.created_at,
        updated_at: d.updated_at,
    })
}

/// CreatePolicy: version `v1`, the default.
pub async fn create(
    store: &dyn Store,
    account_id: &str,
    name: &str,
    path: Option<&str>,
    document: &str,
    description: Option<String>,
    tags: BTreeMap<String, String>,
) -> Result<PolicyView> {
    check_name("policyName", name, 128)?;
    let path = path.unwrap_or("/");
    check_path(path)?;
    check_document(document)?;
    let now = ids::now_millis();
    let details = ManagedDetails {
        path: path.to_owned(),
        description,
        versions: vec![PolicyVersion {
            id: "v1".into(),
            document: document.to_owned(),
            created_at: now,
        }],
        default_version: "v1".into(),
        next_version: 2,
        updated_at: now,
        tags,
    };
    let e = entities::create(store, account_id, POLICY, name, "ANPA", &details).await?;
    view(store, &e, &details).await
}

/// GetPolicy.
pub async fn get(store: &dyn Store, account_id: &str, policy_arn: &str) -> Result<PolicyView> {
    let (e, d) = load(store, account_id, policy_arn).await?;
    view(store, &e, &d).await
}

/// ListPolicies of the account (`Scope=Local`; mallee ships no AWS-managed
/// policies), optionally only attached ones, under a path prefix.
pub async fn list(
    store: &dyn Store,
    account_id: &str,
    only_attached: bool,
    path_prefix: Option<&str>,
) -> Result<Vec<PolicyView>> {
    let mut out = Vec::new();
    for (e, d) in entities::list::<ManagedDetails>(store, account_id, POLICY).await? {
        if path_prefix.is_some_and(|p| !d.path.starts_with(p)) {
            continue;
        }
        let v = view(store, &e, &d).await?;
        if !only_attached || v.attachment_count > 0 {
            out.push(v);
        }
    }
    Ok(out)
}

/// DeletePolicy: refused while attached or while it has versions other
/// than the default, as IAM refuses it.
pub async fn delete(store: &dyn Store, account_id: &str, policy_arn: &str) -> Result<()> {
    let (e, _) = load(store, account_id, policy_arn).await?;
    if attachments(store, account_id, policy_arn).await?.count() > 0 {
        return Err(IdentityError::DeleteConflict(
            "Cannot delete a policy attached to entities.".into(),
        ));
    }
    entities::delete(store, account_id, POLICY, &e.name, |d: &ManagedDetails| {
        if d.versions.len() > 1 {
            return Err(IdentityError::DeleteConflict(
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.".into(),
            ));
        }
        Ok(())
    })
    .await
}

/// CreatePolicyVersion.
pub async fn create_version(
    store: &dyn Store,
    account_id: &str,
    policy_arn: &str,
    document: &str,
    set_default: bool,
) -> Result<PolicyVersion> {
    check_document(document)?;
    modify_policy(store, account_id, policy_arn, |d: &mut ManagedDetails| {
        if d.versions.len() >= MAX_VERSIONS {
            return Err(IdentityError::LimitExceeded(format!(
                "A managed policy can have up to {MAX_VERSIONS} versions. Before you create a new version, you must delete an existing version."
            )));
        }
        let now = ids::now_millis();
        let v = PolicyVersion {
            id: format!("v{}", d.next_version),
            document: document.to_owned(),
            created_at: now,
        };
        d.next_version += 1;
        d.versions.push(v.clone());
        if set_default {
            v.id.clone_into(&mut d.default_version);
            d.updated_at = now;
        }
        Ok(v)
    })
    .await
}

/// GetPolicyVersion (and whether it is the default).
pub async fn get_version(
    store: &dyn Store,
    account_id: &str,
    policy_arn: &str,
    version: &str,
) -> Result<(PolicyVersion, bool)> {
    let (_, d) = load(store, account_id, policy_arn).await?;
    let v = d
        .versions
        .iter()
        .find(|v| v.id == version)
        .cloned()
        .ok_or_else(|| no_such_version(policy_arn, version))?;
    Ok((v, d.default_version == version))
}

fn no_such_version(policy_arn: &str, version: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!(
        "Policy {policy_arn} version {version} does not exist or is not attachable."
    ))
}

/// ListPolicyVersions, newest first, with the default marked.
pub async fn versions(
    store: &dyn Store,
    account_id: &str,
    policy_arn: &str,
) -> Result<Vec<(PolicyVersion, bool)>> {
    let (_, d) = load(store, account_id, policy_arn).await?;
    Ok(d.versions
        .iter()
        .rev()
        .map(|v| (v.clone(), v.id == d.default_version))
        .collect())
}

/// DeletePolicyVersion: never the default.
pub async fn delete_version(
    store: &dyn Store,
    account_id: &str,
    policy_arn: &str,
    version: &str,
) -> Result<()> {
    modify_policy(store, account_id, policy_arn, |d: &mut ManagedDetails| {
        if d.default_version == version {
            return Err(IdentityError::DeleteConflict(
                "Cannot delete the default version of a policy.".into(),
            ));
        }
        let before = d.versions.len();
        d.versions.retain(|v| v.id != version);
        if d.versions.len() == before {
            return Err(no_such_version(policy_arn, version));
        }
        Ok(())
    })
    .await
}

/// SetDefaultPolicyVersion.
pub async fn set_default(
    store: &dyn Store,
    account_id: &str,
    policy_arn: &str,
    version: &str,
) -> Result<()> {
    modify_policy(store, account_id, policy_arn, |d: &mut ManagedDetails| {
        if !d.versions.iter().any(|v| v.id == version) {
            return Err(no_such_version(policy_arn, version));
        }
        version.clone_into(&mut d.default_version);
        d.updated_at = ids::now_millis();
        Ok(())
    })
    .await
}

/// Attach{User,Group,Role}Policy (attaching twice is not an error).
pub async fn attach(
    store: &dyn Store,
    account_id: &str,
    holder: &Holder,
    policy_arn: &str,
) -> Result<()> {
    load(store, account_id, policy_arn).await?;
    edit_attached(store, account_id, holder, |set| {
        set.insert(policy_arn.to_owned());
        Ok(())
    })
    .await
}

/// Detach{User,Group,Role}Policy.
pub async fn detach(
    store: &dyn Store,
    account_id: &str,
    holder: &Holder,
    policy_arn: &str,
) -> Result<()> {
    edit_attached(store, account_id, holder, |set| {
        if set.remove(policy_arn) {
            Ok(())
        } else {
            Err(IdentityError::NoSuchEntity(format!(
                "Policy {policy_arn} was not found."
            )))
        }
    })
    .await
}

async fn edit_attached(
    store: &dyn Store,
    account_id: &str,
    holder: &Holder,
    mut change: impl FnMut(&mut std::collections::BTreeSet<String>) -> Result<()>,
) -> Result<()> {
    match holder {
        Holder::User(n) => users::modify(store, account_id, n, |d| change(&mut d.attached)).await,
        Holder::Group(n) => {
            entities::modify(store, account_id, GROUP, n, |d: &mut GroupDetails| {
                change(&mut d.attached)
            })
            .await
        }
        Holder::Role(n) => {
            entities::modify(store, account_id, ROLE, n, |d: &mut RoleDetails| {
                change(&mut d.attached)
            })
            .await
        }
    }
}

/// List{User,Group,Role}AttachedPolicies: (name, ARN) pairs.
pub async fn attached(
    store: &dyn Store,
    account_id: &str,
    holder: &Holder,
) -> Result<Vec<(String, String)>> {
    let set = match holder {
        Holder::User(n) => users::load(store, account_id, n).await?.1.attached,
        Holder::Group(n) => {
            entities::load::<GroupDetails>(store, account_id, GROUP, n)
                .await?
                .1
                .attached
        }
        Holder::Role(n) => {
            entities::load::<RoleDetails>(store, account_id, ROLE, n)
                .await?
                .1
                .attached
        }
    };
    Ok(set
        .into_iter()
        .map(|a| (a.rsplit('/').next().unwrap_or(&a).to_owned(), a))
        .collect())
}

/// The default versions of attached policies, labelled by ARN, for
/// authorisation; a policy deleted meanwhile grants nothing.
pub async fn documents(
    store: &dyn Store,
    account_id: &str,
    attached: impl IntoIterator<Item = &String>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for policy_arn in attached {
        let Ok(name) = name_in(account_id, policy_arn) else {
            continue;
        };
        let Some(e) = store.entity(account_id, POLICY, &name).await? else {
            continue;
        };
        let d: ManagedDetails = decode(POLICY, &e.details)?;
        if let Some(v) = d.versions.iter().find(|v| v.id == d.default_version) {
            out.push((policy_arn.clone(), v.document.clone()));
        }
    }
    Ok(out)
}
