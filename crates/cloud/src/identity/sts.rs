//! STS: temporary credentials. GetSessionToken gives a user credentials
//! that act as that user; AssumeRole gives a role session, allowed by the
//! role's trust policy (and, in the caller's own account, checked against
//! the caller's identity policies by the protocol layer like every other
//! action). Credentials stop working when they expire or when what they
//! stand for (the user, the role) is deleted.

use mallee_policy::{Caller, Context, Request};
use mallee_store::{SessionRecord, Store};
use subtle::ConstantTimeEq;

use super::authorize::{CallerIdentity, assumed_role_arn};
use super::roles::{self, parse_trust};
use super::{IdentityError, Result, check_name};
use crate::ids;
use crate::{Principal, Session};

/// GetSessionToken's range of durations, in seconds.
pub const SESSION_TOKEN_SECONDS: std::ops::RangeInclusive<i64> = 900..=129_600;
/// GetSessionToken's default duration.
pub const SESSION_TOKEN_DEFAULT: i64 = 43_200;
/// AssumeRole's shortest duration; the longest is the role's.
pub const ASSUME_ROLE_MIN: i64 = 900;
/// The longest session a role session may assume another role for
/// (role chaining), as AWS limits it.
pub const CHAINED_MAX: i64 = 3600;

/// Temporary credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// When they expire (ms since the epoch).
    pub expires_at: i64,
}

/// What AssumeRole answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedRole {
    /// The credentials.
    pub credentials: Credentials,
    /// `AROA…:SESSION`.
    pub assumed_role_id: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
}

fn check_duration(seconds: i64, range: std::ops::RangeInclusive<i64>, what: &str) -> Result<()> {
    if range.contains(&seconds) {
        Ok(())
    } else {
        Err(IdentityError::Validation(format!(
            "The requested DurationSeconds exceeds the {what} set for this role: it must be between {} and {} seconds.",
            range.start(),
            range.end()
        )))
    }
}

async fn issue(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
    role_name: Option<String>,
    session_name: &str,
    seconds: i64,
) -> Result<Credentials> {
    let now = ids::now_millis();
    let record = SessionRecord {
        access_key_id: ids::session_key_id(),
        secret_access_key: ids::secret_access_key(),
        session_token: ids::session_token(),
        account_id: account_id.to_owned(),
        user_name: user_name.to_owned(),
        role_name,
        session_name: session_name.to_owned(),
        details: "{}".into(),
        expires_at: now + seconds * 1000,
        created_at: now,
    };
    store.create_session(&record).await?;
    // Expired sessions are swept as new ones are made.
    if let Err(e) = store.delete_expired_sessions(now).await {
        tracing::warn!(error = %e, "could not remove expired STS sessions");
    }
    Ok(Credentials {
        access_key_id: record.access_key_id,
        secret_access_key: record.secret_access_key,
        session_token: record.session_token,
        expires_at: record.expires_at,
    })
}

/// A session of `role` in `account_id` for `user_name` (an instance id for
/// instance profile credentials), lasting `seconds`.
pub async fn role_session(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
    role: &str,
    session_name: &str,
    seconds: i64,
) -> Result<Credentials> {
    issue(
        store,
        account_id,
        user_name,
        Some(role.to_owned()),
        session_name,
        seconds,
    )
    .await
}

/// GetSessionToken: credentials that act as the calling user.
pub async fn session_token(
    store: &dyn Store,
    principal: &Principal,
    seconds: Option<i64>,
) -> Result<Credentials> {
    if principal.session.is_some() {
        return Err(IdentityError::AccessDenied(
            "Cannot call GetSessionToken with session credentials".into(),
        ));
    }
    let seconds = seconds.unwrap_or(SESSION_TOKEN_DEFAULT);
    check_duration(seconds, SESSION_TOKEN_SECONDS, "MaxSessionDuration")?;
    issue(
        store,
        principal.account_id(),
        &principal.user_name,
        None,
        &principal.user_name,
        seconds,
    )
    .await
}

/// How long a console sign-in lasts (AWS's console sessions last 12 hours).
pub const CONSOLE_SESSION_SECONDS: i64 = 43_200;

/// Credentials that act as user `user_name` of `account_id`, for a
/// console sign-in whose password [`super::login::sign_in`] has checked.
pub(crate) async fn console_session(
    store: &dyn Store,
    account_id: &str,
    user_name: &str,
) -> Result<Credentials> {
    issue(
        store,
        account_id,
        user_name,
        None,
        user_name,
        CONSOLE_SESSION_SECONDS,
    )
    .await
}

/// The account and name of a role ARN (`arn:aws:iam::ACCOUNT:role/PATH/NAME`).
fn parse_role_arn(role_arn: &str) -> Option<(&str, &str)> {
    let rest = role_arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
        .then_some((account, name))
}

/// AssumeRole: a session of the role, if its trust policy lets the caller
/// in. `context` carries the request's condition keys.
pub async fn assume_role(
    store: &dyn Store,
    principal: &Principal,
    role_arn: &str,
    session_name: &str,
    seconds: Option<i64>,
    context: &Context,
) -> Result<AssumedRole> {
    check_session_name(session_name)?;
    let caller = CallerIdentity::load(store, principal).await?;
    let denied = || {
        IdentityError::AccessDenied(format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            caller.arn()
        ))
    };
    let (account, name) = parse_role_arn(role_arn).ok_or_else(|| {
        IdentityError::Validation(format!("{role_arn} is invalid: not a role ARN"))
    })?;
    let Ok((entity, details)) = roles::load(store, account, name).await else {
        return Err(denied());
    };
    let view = roles::RoleView::new(&entity, &details);
    if view.arn != role_arn {
        return Err(denied());
    }
    let trust = parse_trust(&details.trust)?;
    let req = Request {
        action: "sts:AssumeRole",
        resource: role_arn,
        caller: Caller::Aws {
            account: principal.account_id(),
            arn: caller.arn(),
        },
        canonical_user: None,
        context,
    };
    if !mallee_policy::trust_allows(&req, &trust) {
        tracing::info!(target: "mallee::authz", principal = %caller.arn(), role = role_arn, "AssumeRole refused by the trust policy");
        return Err(denied());
    }
    let max = if principal.role().is_some() {
        CHAINED_MAX.min(details.max_session_seconds)
    } else {
        details.max_session_seconds
    };
    let seconds = seconds.unwrap_or(3600.min(max));
    check_duration(seconds, ASSUME_ROLE_MIN..=max, "MaxSessionDuration")?;
    let credentials = issue(
        store,
        account,
        &principal.user_name,
        Some(name.to_owned()),
        session_name,
        seconds,
    )
    .await?;
    Ok(AssumedRole {
        credentials,
        assumed_role_id: format!("{}:{session_name}", entity.entity_id),
        arn: assumed_role_arn(account, name, session_name),
    })
}

/// `RoleSessionName`: 2–64 of `[\w+=,.@-]`.
fn check_session_name(name: &str) -> Result<()> {
    if name.len() < 2 {
        return Err(IdentityError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2"
        )));
    }
    check_name("roleSessionName", name, 64)
}

/// The caller a set of temporary credentials stands for, if they are
/// valid now and what they stand for still exists.
#[derive(Debug)]
pub enum SessionCheck {
    /// Valid: the principal.
    Valid(Principal),
    /// Expired.
    Expired,
    /// The token does not match, or the key is unknown.
    Invalid,
}

/// Checks temporary credentials presented with `token`.
pub async fn check_session(
    store: &dyn Store,
    record: &SessionRecord,
    token: Option<&str>,
) -> Result<SessionCheck> {
    let token_ok =
        token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(record.session_token.as_bytes())));
    if !token_ok {
        return Ok(SessionCheck::Invalid);
    }
    if record.expires_at <= ids::now_millis() {
        return Ok(SessionCheck::Expired);
    }
    let Some(account) = store.account_by_id(&record.account_id).await? else {
        return Ok(SessionCheck::Invalid);
    };
    Ok(SessionCheck::Valid(Principal {
        account,
        user_name: record.user_name.clone(),
        access_key_id: record.access_key_id.clone(),
        session: Some(Session {
            role_name: record.role_name.clone(),
            session_name: record.session_name.clone(),
            expires_at: record.expires_at,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    #[tokio::test]
    async fn sessions_need_their_token_and_end_when_they_expire() {
        let cloud = TestCloud::new().await;
        let admin = cloud.principal("acme").await;
        let store = &*cloud.store;
        let creds = session_token(store, &admin, Some(900))
            .await
            .expect("session");
        let record = store
            .session(&creds.access_key_id)
            .await
            .expect("read")
            .expect("stored");
        match check_session(store, &record, Some(&creds.session_token))
            .await
            .expect("check")
        {
            SessionCheck::Valid(p) => {
                assert_eq!(p.account_id(), admin.account_id());
                assert_eq!(p.user_name, "admin");
                assert_eq!(p.role(), None, "a user's own session acts as the user");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_session(store, &record, Some("forged"))
                .await
                .expect("check"),
            SessionCheck::Invalid
        ));
        assert!(matches!(
            check_session(store, &record, None).await.expect("check"),
            SessionCheck::Invalid
        ));
        let expired = SessionRecord {
            expires_at: ids::now_millis() - 1,
            ..record
        };
        assert!(matches!(
            check_session(store, &expired, Some(&creds.session_token))
                .await
                .expect("check"),
            SessionCheck::Expired
        ));
        // Session credentials cannot make more sessions, and durations
        // outside 900–129600 s are refused.
        assert!(matches!(
            session_token(
                store,
                &Principal {
                    session: Some(Session {
                        role_name: None,
                        session_name: "x".into(),
                        expires_at: 0
                    }),
                    ..admin.clone()
                },
                None
            )
            .await,
            Err(IdentityError::AccessDenied(_))
        ));
        assert!(matches!(
            session_token(store, &admin, Some(899)).await,
            Err(IdentityError::Validation(_))
        ));
    }

    #[test]
    fn role_arns() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/ops/reader"),
            Some(("123456789012", "reader"))
        );
        assert_eq!(parse_role_arn("arn:aws:iam::123456789012:user/x"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::12:role/x"), None);
    }
}
