//! Access keys of IAM users: create (at most two per user, as IAM), list,
//! activate or deactivate, delete, and when each was last used.

use mallee_store::{AccessKey, KeyLastUsed, Store, UserAccessKey};

use super::{IdentityError, Result, users};
use crate::ids;

/// IAM's limit of access keys per user.
pub const MAX_KEYS_PER_USER: usize = 2;

fn no_such_key(key_id: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("The Access Key with id {key_id} cannot be found."))
}

/// CreateAccessKey: a new active key for the user (the secret is shown
/// only in this answer).
pub async fn create(store: &dyn Store, account_id: &str, user_name: &str) -> Result<AccessKey> {
    users::load(store, account_id, user_name).await?;
    if store.user_access_keys(account_id, user_name).await?.len() >= MAX_KEYS_PER_USER {
        return Err(IdentityError::LimitExceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}"
        )));
    }
    let key = AccessKey {
        access_key_id: ids::access_key_id(),
        secret_access_key: ids::secret_access_key(),
        account_id: account_id.to_owned(),
        user_name: user_name.to_owned(),
        active: true,
        created_at: ids::now_millis(),
    };
    store.create_access_key(&key).await?;
    Ok(key)
}

/// ListAccessKeys.
pub async fn list(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
) -> Result<Vec<UserAccessKey>> {
    users::load(store, account_id, user_name).await?;
    Ok(store.user_access_keys(account_id, user_name).await?)
}

/// UpdateAccessKey (`Active` / `Inactive`).
pub async fn set_active(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
    key_id: &str,
    active: bool,
) -> Result<()> {
    users::load(store, account_id, user_name).await?;
    if store
        .set_access_key_active(account_id, user_name, key_id, active)
        .await?
    {
        Ok(())
    } else {
        Err(no_such_key(key_id))
    }
}

/// DeleteAccessKey: the key stops working at once.
pub async fn delete(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
    key_id: &str,
) -> Result<()> {
    users::load(store, account_id, user_name).await?;
    if store
        .delete_access_key(account_id, user_name, key_id)
        .await?
    {
        Ok(())
    } else {
        Err(no_such_key(key_id))
    }
}

/// GetAccessKeyLastUsed: the key's user and last use; only keys of the
/// caller's account are answered.
pub async fn last_used(
    store: &dyn Store,
    account_id: &str,
    key_id: &str,
) -> Result<(String, Option<KeyLastUsed>)> {
    let Some((key, _)) = store.access_key(key_id).await? else {
        return Err(no_such_key(key_id));
    };
    if key.account_id != account_id {
        return Err(IdentityError::AccessDenied(format!(
            "The access key {key_id} is not in your account."
        )));
    }
    Ok((key.user_name, store.key_last_used(key_id).await?))
}

/// The account a key belongs to (GetAccessKeyInfo), whichever account
/// asks, as STS answers it.
pub async fn account_of(store: &dyn Store, key_id: &str) -> Result<String> {
    match store.access_key(key_id).await? {
        Some((key, _)) => Ok(key.account_id),
        None => Err(no_such_key(key_id)),
    }
}

/// How often one key's use is written to the store: IAM reports the last
/// use to the minute, not per request.
const USE_RECORD_INTERVAL_MS: i64 = 60_000;

/// Remembers when each key's use was last written, so signing a request
/// costs a store write at most once a minute per key.
#[derive(Debug, Default)]
pub struct KeyUseLog {
    written: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl KeyUseLog {
    /// Records that `key_id` signed a request for `service` in `region`.
    pub async fn note(&self, store: &dyn Store, key_id: &str, service: &str, region: &str) {
        let now = ids::now_millis();
        {
            let Ok(mut written) = self.written.lock() else {
                return;
            };
            match written.get(key_id) {
                Some(at) if now - at < USE_RECORD_INTERVAL_MS => return,
                _ => {
                    written.insert(key_id.to_owned(), now);
                }
            }
        }
        let used = KeyLastUsed {
            at: now,
            service: service.to_owned(),
            region: region.to_owned(),
        };
        if let Err(e) = store.record_key_use(key_id, &used).await {
            tracing::warn!(key_id, error = %e, "could not record an access key's use");
        }
    }
}
