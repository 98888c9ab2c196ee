//! The account as IAM shows it: its alias, its summary, and — for the
//! cloud's administrators — the Eucalyptus account actions (CreateAccount,
//! ListAccounts, DeleteAccount) that `mallee admin account …` also runs.

use std::collections::BTreeMap;

use mallee_store::{Account, IamEntity, Store, StoreError};

use super::{
    GROUP, INSTANCE_PROFILE, IdentityError, POLICY, ROLE, Result, entities, is_cloud_admin, keys,
    managed,
};
use crate::Principal;
use crate::accounts::{self, AdminError};
use crate::ids;

/// The `kind` of account aliases; an alias's entity id is `alias:NAME`, so
/// the store keeps aliases unique across the cloud, as IAM does.
pub const ALIAS: &str = "account-alias";

fn check_alias(alias: &str) -> Result<()> {
    let b = alias.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(|c| *c != b'-')
        && b.last().is_some_and(|c| *c != b'-')
        && !alias.contains("--");
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Validation(format!(
            "1 validation error detected: Value '{alias}' at 'accountAlias' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-z0-9]([a-z0-9]|-(?!-)){{1,61}}[a-z0-9]$"
        )))
    }
}

/// CreateAccountAlias: an account has one alias (a new one replaces it).
pub async fn create_alias(store: &dyn Store, account_id: &str, alias: &str) -> Result<()> {
    check_alias(alias)?;
    let current = store.entities(account_id, ALIAS).await?;
    if current.iter().any(|e| e.name == alias) {
        return Ok(());
    }
    let entity = IamEntity {
        account_id: account_id.to_owned(),
        kind: ALIAS.into(),
        name: alias.to_owned(),
        entity_id: format!("alias:{alias}"),
        details: "{}".into(),
        revision: 0,
        created_at: ids::now_millis(),
    };
    match store.create_entity(&entity).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(IdentityError::EntityAlreadyExists(format!(
                "The account alias {alias} already exists."
            )));
        }
        Err(e) => return Err(e.into()),
    }
    for old in current {
        store
            .delete_entity(account_id, ALIAS, &old.name, old.revision)
            .await?;
    }
    Ok(())
}

/// DeleteAccountAlias.
pub async fn delete_alias(store: &dyn Store, account_id: &str, alias: &str) -> Result<()> {
    let found = store.entity(account_id, ALIAS, alias).await?;
    match found {
        Some(e)
            if store
                .delete_entity(account_id, ALIAS, alias, e.revision)
                .await? =>
        {
            Ok(())
        }
        _ => Err(IdentityError::NoSuchEntity(format!(
            "The account alias {alias} cannot be found."
        ))),
    }
}

/// ListAccountAliases.
pub async fn aliases(store: &dyn Store, account_id: &str) -> Result<Vec<String>> {
    Ok(store
        .entities(account_id, ALIAS)
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect())
}

/// GetAccountSummary: what the account has, and the limits mallee
/// enforces.
pub async fn summary(store: &dyn Store, account_id: &str) -> Result<BTreeMap<&'static str, i64>> {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let users = store.users(account_id).await?;
    let mut out = BTreeMap::new();
    out.insert("Users", count(users.len()));
    out.insert(
        "Groups",
        count(store.entities(account_id, GROUP).await?.len()),
    );
    out.insert(
        "Roles",
        count(store.entities(account_id, ROLE).await?.len()),
    );
    let policies = entities::list::<super::ManagedDetails>(store, account_id, POLICY).await?;
    out.insert("Policies", count(policies.len()));
    out.insert(
        "PolicyVersionsInUse",
        count(policies.iter().map(|(_, d)| d.versions.len()).sum()),
    );
    out.insert(
        "InstanceProfiles",
        count(store.entities(account_id, INSTANCE_PROFILE).await?.len()),
    );
    out.insert("AccessKeysPerUserQuota", count(keys::MAX_KEYS_PER_USER));
    out.insert("VersionsPerPolicyQuota", count(managed::MAX_VERSIONS));
    out.insert("PolicySizeQuota", 6144);
    out.insert("UserPolicySizeQuota", 2048);
    out.insert("GroupPolicySizeQuota", 5120);
    out.insert("RolePolicySizeQuota", 10240);
    out.insert("AccountMFAEnabled", 0);
    out.insert("MFADevices", 0);
    out.insert("MFADevicesInUse", 0);
    Ok(out)
}

fn admins_only(principal: &Principal) -> Result<()> {
    if is_cloud_admin(principal) {
        Ok(())
    } else {
        Err(IdentityError::AccessDenied(
            "Only the cloud's administrators manage accounts.".into(),
        ))
    }
}

fn admin_error(e: AdminError) -> IdentityError {
    match e {
        AdminError::InvalidAccountName(_) => IdentityError::Validation(e.to_string()),
        AdminError::AccountExists(n) => {
            IdentityError::EntityAlreadyExists(format!("Account {n} already exists."))
        }
        AdminError::NoSuchAccount(n) => {
            IdentityError::NoSuchEntity(format!("The account {n} cannot be found."))
        }
        AdminError::Store(s) => IdentityError::Store(s),
    }
}

/// CreateAccount (Eucalyptus): a new account with its `admin` user.
pub async fn create_account(
    store: &dyn Store,
    principal: &Principal,
    name: &str,
) -> Result<Account> {
    admins_only(principal)?;
    accounts::create_account(store, name, false)
        .await
        .map_err(admin_error)
}

/// ListAccounts (Eucalyptus).
pub async fn list_accounts(store: &dyn Store, principal: &Principal) -> Result<Vec<Account>> {
    admins_only(principal)?;
    Ok(store.accounts().await?)
}

/// DeleteAccount (Eucalyptus): an account that owns nothing but its IAM
/// users, groups, roles and policies; never an administrator account.
pub async fn delete_account(store: &dyn Store, principal: &Principal, name: &str) -> Result<()> {
    admins_only(principal)?;
    delete_named(store, name).await
}

/// Deletes account `name` as [`delete_account`] does, for the cloud's
/// administrator (`mallee admin account delete`).
pub async fn delete_named(store: &dyn Store, name: &str) -> Result<()> {
    let account = store
        .account_by_name(name)
        .await?
        .ok_or_else(|| admin_error(AdminError::NoSuchAccount(name.to_owned())))?;
    if account.is_admin {
        return Err(IdentityError::DeleteConflict(
            "An administrator account cannot be deleted.".into(),
        ));
    }
    match store.delete_account(&account.account_id).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(IdentityError::DeleteConflict(format!(
            "Cannot delete account {name}: it still owns resources (instances, volumes, snapshots, images, buckets, key pairs, addresses, security groups); delete them first."
        ))),
        Err(e) => Err(e.into()),
    }
}
