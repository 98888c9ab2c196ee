//! Administrator operations on accounts and access keys, used by
//! `mallee admin …` and by first-start bootstrap (the IAM API comes later).

use mallee_store::{AccessKey, Account, Store, StoreError, User};

use crate::ids;

/// Errors of admin operations.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Account names are 3–63 characters of lowercase letters, digits and
    /// hyphens, starting and ending with a letter or digit.
    #[error(
        "invalid account name '{0}': use 3-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit"
    )]
    InvalidAccountName(String),
    /// The account name is taken.
    #[error("account '{0}' already exists")]
    AccountExists(String),
    /// No such account.
    #[error("account '{0}' does not exist")]
    NoSuchAccount(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The user every new account starts with.
pub const FIRST_USER: &str = "admin";

fn valid_account_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// Creates an account with its `admin` user.
pub async fn create_account(
    store: &dyn Store,
    name: &str,
    is_admin: bool,
) -> Result<Account, AdminError> {
    if !valid_account_name(name) {
        return Err(AdminError::InvalidAccountName(name.into()));
    }
    let now = ids::now_millis();
    // Retry on the (astronomically unlikely) collision of a random account id.
    for _ in 0..5 {
        let account = Account {
            account_id: ids::account_id(),
            name: name.into(),
            is_admin,
            created_at: now,
            iam_generation: 0,
        };
        let user = User {
            account_id: account.account_id.clone(),
            user_name: FIRST_USER.into(),
            user_id: ids::user_id(),
            created_at: now,
        };
        match store.create_account(&account, &user).await {
            Ok(()) => return Ok(account),
            Err(StoreError::Conflict(_)) if store.account_by_name(name).await?.is_some() => {
                return Err(AdminError::AccountExists(name.into()));
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::AccountExists(name.into()))
}

/// Creates an access key for the `admin` user of account `name`.
pub async fn create_access_key(
    store: &dyn Store,
    name: &str,
) -> Result<(AccessKey, Account), AdminError> {
    let account = store
        .account_by_name(name)
        .await?
        .ok_or_else(|| AdminError::NoSuchAccount(name.into()))?;
    let key = AccessKey {
        access_key_id: ids::access_key_id(),
        secret_access_key: ids::secret_access_key(),
        account_id: account.account_id.clone(),
        user_name: FIRST_USER.into(),
        active: true,
        created_at: ids::now_millis(),
    };
    store.create_access_key(&key).await?;
    Ok((key, account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        assert!(valid_account_name("eucalyptus"));
        assert!(valid_account_name("team-42"));
        assert!(!valid_account_name("ab"));
        assert!(!valid_account_name("-ab"));
        assert!(!valid_account_name("Upper"));
        assert!(!valid_account_name("a_b"));
    }
}
