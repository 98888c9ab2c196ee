//! Login profiles: a user's console password, kept only as a salted
//! PBKDF2-HMAC-SHA256 hash, checked against IAM's default password policy
//! when set, and verified in constant time when the user signs in.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use std::time::Instant;

use super::sign_in_guard::SignInGuard;
use super::{IdentityError, Result, users};
use crate::ids;
use mallee_store::Store;

/// PBKDF2 rounds (OWASP's figure for PBKDF2-HMAC-SHA256). This crate's
/// unit tests use fewer: unoptimised, each derivation takes seconds, and
/// they check the logic, not the cost (the acceptance tests run the real
/// figure). Each profile records its own rounds, so either verifies.
const ROUNDS: u32 = if cfg!(test) { 1_000 } else { 600_000 };

/// Sign-ins checked at once: each takes a CPU for a while by design, so a
/// flood of sign-in attempts queues here instead of taking every core
/// (and the blocking pool) from the API.
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A stored login profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginProfile {
    /// Salt, hex.
    pub salt: String,
    /// PBKDF2 rounds.
    pub rounds: u32,
    /// The derived key, hex.
    pub hash: String,
    /// When it was created.
    pub created_at: i64,
    /// The user must choose a new password at the next sign-in.
    pub reset_required: bool,
}

/// PBKDF2-HMAC-SHA256 through ring: compiled optimised as a dependency,
/// where a generic implementation would be instantiated, unoptimised, in
/// this crate's debug builds (seconds per sign-in in the test suite). A
/// profile with zero rounds (never written) derives nothing that matches.
fn derive(password: &str, salt: &[u8], rounds: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Some(rounds) = std::num::NonZeroU32::new(rounds) {
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            salt,
            password.as_bytes(),
            &mut out,
        );
    }
    out
}

/// IAM's default password policy: 8–128 characters, at least three of
/// upper case, lower case, digits and symbols, and not the user's name.
fn check_password(user: &str, password: &str) -> Result<()> {
    let classes = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    let length = password.chars().count();
    if !(8..=128).contains(&length) || classes < 3 || password.eq_ignore_ascii_case(user) {
        return Err(IdentityError::PasswordPolicy(
            "Password should have a minimum length of 8, and use at least three of: upper case letters, lower case letters, numbers and symbols; it must not be the user name.".into(),
        ));
    }
    Ok(())
}

fn profile(password: &str, reset_required: bool) -> LoginProfile {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    LoginProfile {
        salt: hex::encode(salt),
        rounds: ROUNDS,
        hash: hex::encode(derive(password, &salt, ROUNDS)),
        created_at: ids::now_millis(),
        reset_required,
    }
}

/// CreateLoginProfile.
pub async fn create(
    store: &dyn Store,
    account_id: &str,
    user: &str,
    password: &str,
    reset_required: bool,
) -> Result<LoginProfile> {
    check_password(user, password)?;
    let made = profile(password, reset_required);
    users::modify(store, account_id, user, |d| {
        if d.login_profile.is_some() {
            return Err(IdentityError::EntityAlreadyExists(format!(
                "Login Profile for user {user} already exists."
            )));
        }
        d.login_profile = Some(made.clone());
        Ok(())
    })
    .await?;
    Ok(made)
}

fn no_profile(user: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!("Login Profile for User {user} cannot be found."))
}

/// GetLoginProfile.
pub async fn get(store: &dyn Store, account_id: &str, user: &str) -> Result<LoginProfile> {
    users::load(store, account_id, user)
        .await?
        .1
        .login_profile
        .ok_or_else(|| no_profile(user))
}

/// UpdateLoginProfile: a new password, or only the reset flag.
pub async fn update(
    store: &dyn Store,
    account_id: &str,
    user: &str,
    password: Option<&str>,
    reset_required: Option<bool>,
) -> Result<()> {
    if let Some(p) = password {
        check_password(user, p)?;
    }
    let fresh = password.map(|p| profile(p, reset_required.unwrap_or(false)));
    users::modify(store, account_id, user, |d| {
        let current = d.login_profile.as_mut().ok_or_else(|| no_profile(user))?;
        if let Some(f) = &fresh {
            *current = f.clone();
        }
        if let Some(r) = reset_required {
            current.reset_required = r;
        }
        Ok(())
    })
    .await
}

/// DeleteLoginProfile.
pub async fn delete(store: &dyn Store, account_id: &str, user: &str) -> Result<()> {
    users::modify(store, account_id, user, |d| {
        d.login_profile
            .take()
            .map(|_| ())
            .ok_or_else(|| no_profile(user))
    })
    .await
}

/// Whether `password` is the user's console password.
pub async fn verify(
    store: &dyn Store,
    account_id: &str,
    user: &str,
    password: &str,
) -> Result<bool> {
    let Ok(p) = get(store, account_id, user).await else {
        return Ok(false);
    };
    matches(&p, password)
}

/// Whether `password` derives to `profile`'s hash (constant time).
fn matches(profile: &LoginProfile, password: &str) -> Result<bool> {
    let salt = hex::decode(&profile.salt).map_err(|e| IdentityError::Corrupt(e.to_string()))?;
    let want = hex::decode(&profile.hash).map_err(|e| IdentityError::Corrupt(e.to_string()))?;
    Ok(bool::from(
        derive(password, &salt, profile.rounds).ct_eq(&want[..]),
    ))
}

/// Why a console sign-in was refused. One answer for every wrong
/// account, user or password, so a caller cannot probe which exist.
pub const SIGN_IN_REFUSED: &str = "Your authentication information is incorrect. Please try again.";

/// A console sign-in: the user `user` of the account named or numbered
/// `account` with its console password. Answers session credentials that
/// act as that user (so every later request is authorised as the user's
/// own), or `AccessDenied` with [`SIGN_IN_REFUSED`].
///
/// With `new_password`, the password is changed (under the password
/// policy) as the user signs in; a profile created or updated with
/// `PasswordResetRequired` refuses the sign-in with
/// `PasswordResetRequired` until one is given, as AWS's console asks for a
/// new password first.
///
/// The key derivation runs on the blocking pool (it takes a CPU for a
/// while by design), and runs whether or not the account, the user and
/// its login profile exist, so the time taken does not tell them apart.
/// After a run of failures `guard` makes the user wait before the
/// password is checked at all (`Throttled`).
pub async fn sign_in(
    store: &dyn Store,
    guard: &SignInGuard,
    account: &str,
    user: &str,
    password: &str,
    new_password: Option<&str>,
) -> Result<(mallee_store::Account, super::sts::Credentials)> {
    if let Some(wait) = guard.wait(account, user, Instant::now()) {
        return Err(IdentityError::Throttled(format!(
            "Too many failed sign-in attempts for this user: try again in {} seconds.",
            wait.as_millis().div_ceil(1000)
        )));
    }
    let refused = || {
        guard.failed(account, user, Instant::now());
        IdentityError::AccessDenied(SIGN_IN_REFUSED.into())
    };
    let found = if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        store.account_by_id(account).await?
    } else {
        store.account_by_name(account).await?
    };
    let profile = match &found {
        Some(a) => get(store, &a.account_id, user).await.ok(),
        None => None,
    };
    let reset_required = profile.as_ref().is_some_and(|p| p.reset_required);
    let password = password.to_owned();
    let _turn = CHECKS
        .acquire()
        .await
        .map_err(|e| IdentityError::Corrupt(format!("password check: {e}")))?;
    let matched = tokio::task::spawn_blocking(move || match profile {
        Some(p) => matches(&p, &password),
        None => {
            let _ = derive(&password, &[0u8; 16], ROUNDS);
            Ok(false)
        }
    })
    .await
    .map_err(|e| IdentityError::Corrupt(format!("password check: {e}")))??;
    let Some(found) = found.filter(|_| matched) else {
        return Err(refused());
    };
    guard.succeeded(account, user);
    match new_password {
        Some(new) => {
            update(store, &found.account_id, user, Some(new), Some(false)).await?;
        }
        None if reset_required => {
            return Err(IdentityError::PasswordResetRequired(
                "Your password has expired or must be changed: choose a new password to sign in."
                    .into(),
            ));
        }
        None => {}
    }
    let credentials = super::sts::console_session(store, &found.account_id, user).await?;
    Ok((found, credentials))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    #[test]
    fn derivation_is_standard_pbkdf2_hmac_sha256() {
        // The published test vectors (P = "password", S = "salt"), so
        // profiles stored by any PBKDF2-HMAC-SHA256 still verify.
        assert_eq!(
            hex::encode(derive("password", b"salt", 1)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
        assert_eq!(
            hex::encode(derive("password", b"salt", 4096)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
        assert_eq!(derive("password", b"salt", 0), [0; 32]);
    }

    #[test]
    fn the_default_password_policy() {
        assert!(check_password("ci", "Correct-Horse9").is_ok());
        assert!(check_password("ci", "short1A").is_err());
        assert!(check_password("ci", "alllowercase").is_err());
        assert!(check_password("Password1!", "password1!").is_err());
    }

    #[tokio::test]
    async fn passwords_are_hashed_and_verified() {
        let cloud = TestCloud::new().await;
        let p = cloud.principal("acme").await;
        let store = &*cloud.store;
        users::create(store, p.account_id(), "ci", None, Default::default())
            .await
            .expect("user");
        let made = create(store, p.account_id(), "ci", "Correct-Horse9", true)
            .await
            .expect("profile");
        assert!(!made.hash.contains("Correct"));
        assert!(
            verify(store, p.account_id(), "ci", "Correct-Horse9")
                .await
                .expect("verify")
        );
        assert!(
            !verify(store, p.account_id(), "ci", "Wrong-Horse9")
                .await
                .expect("verify")
        );
        assert!(matches!(
            create(store, p.account_id(), "ci", "Correct-Horse9", false).await,
            Err(IdentityError::EntityAlreadyExists(_))
        ));
        update(store, p.account_id(), "ci", Some("Battery-Staple7"), None)
            .await
            .expect("update");
        assert!(
            verify(store, p.account_id(), "ci", "Battery-Staple7")
                .await
                .expect("verify")
        );
        let account = store
            .account_by_id(p.account_id())
            .await
            .expect("read")
            .expect("account");
        let guard = SignInGuard::default();
        let (signed_in, creds) =
            sign_in(store, &guard, &account.name, "ci", "Battery-Staple7", None)
                .await
                .expect("sign in by account name");
        assert_eq!(signed_in.account_id, account.account_id);
        assert!(creds.access_key_id.starts_with("ASIA"));
        assert!(
            sign_in(store, &guard, p.account_id(), "ci", "Battery-Staple7", None)
                .await
                .is_ok()
        );
        for (acct, user, pass) in [
            (account.name.as_str(), "ci", "Wrong-Horse9"),
            (account.name.as_str(), "nobody", "Battery-Staple7"),
            ("no-such-account", "ci", "Battery-Staple7"),
        ] {
            assert!(matches!(
                sign_in(store, &guard, acct, user, pass, None).await,
                Err(IdentityError::AccessDenied(m)) if m == SIGN_IN_REFUSED
            ));
        }
        // A reset is required: refused until a new password is chosen,
        // which must meet the policy, and then is the password.
        update(store, p.account_id(), "ci", None, Some(true))
            .await
            .expect("require a reset");
        assert!(matches!(
            sign_in(store, &guard, p.account_id(), "ci", "Battery-Staple7", None).await,
            Err(IdentityError::PasswordResetRequired(_))
        ));
        assert!(matches!(
            sign_in(
                store,
                &guard,
                p.account_id(),
                "ci",
                "Battery-Staple7",
                Some("weak")
            )
            .await,
            Err(IdentityError::PasswordPolicy(_))
        ));
        sign_in(
            store,
            &guard,
            p.account_id(),
            "ci",
            "Battery-Staple7",
            Some("Horse-Staple8"),
        )
        .await
        .expect("signed in with a new password");
        assert!(
            !get(store, p.account_id(), "ci")
                .await
                .expect("profile")
                .reset_required
        );
        assert!(
            verify(store, p.account_id(), "ci", "Horse-Staple8")
                .await
                .expect("verify")
        );
        delete(store, p.account_id(), "ci").await.expect("delete");
        assert!(
            !verify(store, p.account_id(), "ci", "Battery-Staple7")
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn a_run_of_wrong_passwords_makes_even_the_right_one_wait() {
        let cloud = TestCloud::new().await;
        let p = cloud.principal("acme").await;
        let store = &*cloud.store;
        users::create(store, p.account_id(), "ci", None, Default::default())
            .await
            .expect("user");
        create(store, p.account_id(), "ci", "Correct-Horse9", false)
            .await
            .expect("create");
        let guard = SignInGuard::default();
        for _ in 0..super::super::sign_in_guard::FREE_FAILURES {
            assert!(matches!(
                sign_in(store, &guard, p.account_id(), "ci", "Wrong-Horse9", None).await,
                Err(IdentityError::AccessDenied(_))
            ));
        }
        assert!(matches!(
            sign_in(store, &guard, p.account_id(), "ci", "Correct-Horse9", None).await,
            Err(IdentityError::Throttled(m)) if m.contains("try again in 30 seconds")
        ));
        // Another user of the account, and made-up ones, are counted apart.
        assert!(matches!(
            sign_in(
                store,
                &guard,
                p.account_id(),
                "other",
                "Correct-Horse9",
                None
            )
            .await,
            Err(IdentityError::AccessDenied(_))
        ));
    }
}
