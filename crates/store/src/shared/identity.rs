//! IAM identities (`crate::identity`): what both backends share.

use super::{Binder, StoreRow};
use crate::StoreResult;
use crate::identity::{IamEntity, IamUser, KeyLastUsed, SessionRecord, SigningCertificate};

pub(crate) fn signing_certificate_from_row(row: &impl StoreRow) -> StoreResult<SigningCertificate> {
    Ok(SigningCertificate {
        certificate_id: row.try_get("certificate_id")?,
        account_id: row.try_get("account_id")?,
        user_name: row.try_get("user_name")?,
        body: row.try_get("body")?,
        active: row.try_get::<i64>("active")? != 0,
        uploaded_at: row.try_get("uploaded_at")?,
    })
}

pub(crate) fn user_from_row(row: &impl StoreRow) -> StoreResult<IamUser> {
    Ok(IamUser {
        account_id: row.try_get("account_id")?,
        user_name: row.try_get("user_name")?,
        user_id: row.try_get("user_id")?,
        details: row.try_get("details")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn entity_from_row(row: &impl StoreRow) -> StoreResult<IamEntity> {
    Ok(IamEntity {
        account_id: row.try_get("account_id")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        entity_id: row.try_get("entity_id")?,
        details: row.try_get("details")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn last_used_from_row(row: &impl StoreRow) -> StoreResult<Option<KeyLastUsed>> {
    let at: Option<i64> = row.try_get("last_used_at")?;
    Ok(match at {
        None => None,
        Some(at) => Some(KeyLastUsed {
            at,
            service: row
                .try_get::<Option<String>>("last_used_service")?
                .unwrap_or_default(),
            region: row
                .try_get::<Option<String>>("last_used_region")?
                .unwrap_or_default(),
        }),
    })
}

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const BUMP_GENERATION: &str =
    "UPDATE accounts SET iam_generation = iam_generation + 1 WHERE account_id = $1";

pub(crate) const CREATE_SIGNING_CERTIFICATE: &str = "INSERT INTO signing_certificates
       (certificate_id, account_id, user_name, body, active, uploaded_at)
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const SIGNING_CERTIFICATES: &str = "SELECT * FROM signing_certificates
    WHERE account_id = $1 AND ($2 IS NULL OR user_name = $2)
    ORDER BY uploaded_at, certificate_id";

pub(crate) const SET_SIGNING_CERTIFICATE_ACTIVE: &str =
    "UPDATE signing_certificates SET active = $1
    WHERE account_id = $2 AND user_name = $3 AND certificate_id = $4";

pub(crate) const DELETE_SIGNING_CERTIFICATE: &str = "DELETE FROM signing_certificates
    WHERE account_id = $1 AND user_name = $2 AND certificate_id = $3";

pub(crate) const CREATE_USER: &str =
    "INSERT INTO users (account_id, user_name, user_id, details, revision, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const USER: &str = "SELECT * FROM users WHERE account_id = $1 AND user_name = $2";

pub(crate) const USERS: &str = "SELECT * FROM users WHERE account_id = $1 ORDER BY user_name";

pub(crate) const UPDATE_USER_UPDATE_USERS: &str =
    "UPDATE users SET user_name = $1, details = $2, revision = revision + 1
    WHERE account_id = $3 AND user_name = $4 AND revision = $5";

pub(crate) const UPDATE_USER_UPDATE_ACCESS_KEYS: &str =
    "UPDATE access_keys SET user_name = $1 WHERE account_id = $2 AND user_name = $3";

pub(crate) const DELETE_USER: &str =
    "DELETE FROM users WHERE account_id = $1 AND user_name = $2 AND revision = $3";

pub(crate) const USER_ACCESS_KEYS: &str =
    "SELECT * FROM access_keys WHERE account_id = $1 AND user_name = $2
    ORDER BY created_at, access_key_id";

pub(crate) const DELETE_ACCESS_KEY: &str =
    "DELETE FROM access_keys WHERE account_id = $1 AND user_name = $2 AND access_key_id = $3";

pub(crate) const SET_ACCESS_KEY_ACTIVE: &str = "UPDATE access_keys SET active = $1
    WHERE account_id = $2 AND user_name = $3 AND access_key_id = $4";

pub(crate) const RECORD_KEY_USE: &str =
    "UPDATE access_keys SET last_used_at = $1, last_used_service = $2, last_used_region = $3
    WHERE access_key_id = $4";

pub(crate) const KEY_LAST_USED: &str = "SELECT * FROM access_keys WHERE access_key_id = $1";

pub(crate) const CREATE_ENTITY: &str =
    "INSERT INTO iam_entities (account_id, kind, name, entity_id, details, revision, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const ENTITY: &str =
    "SELECT * FROM iam_entities WHERE account_id = $1 AND kind = $2 AND name = $3";

pub(crate) const ENTITIES: &str =
    "SELECT * FROM iam_entities WHERE account_id = $1 AND kind = $2 ORDER BY name";

pub(crate) const UPDATE_ENTITY: &str =
    "UPDATE iam_entities SET details = $1, revision = revision + 1
    WHERE account_id = $2 AND kind = $3 AND name = $4 AND revision = $5";

pub(crate) const CREATE_SESSION: &str =
    "INSERT INTO sts_sessions (access_key_id, secret_access_key, session_token, account_id,
        user_name, role_name, session_name, details, expires_at, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

pub(crate) const SESSION: &str = "SELECT * FROM sts_sessions WHERE access_key_id = $1";

pub(crate) const DELETE_EXPIRED_SESSIONS: &str = "DELETE FROM sts_sessions WHERE expires_at < $1";

pub(crate) const DELETE_ENTITY: &str =
    "DELETE FROM iam_entities WHERE account_id = $1 AND kind = $2 AND name = $3 AND revision = $4";

/// Binds [`CREATE_SIGNING_CERTIFICATE`]'s parameters.
pub(crate) fn bind_insert_signing_certificate<Q: Binder>(query: Q, cert: &SigningCertificate) -> Q {
    query
        .arg(&cert.certificate_id)
        .arg(&cert.account_id)
        .arg(&cert.user_name)
        .arg(&cert.body)
        .arg(i64::from(cert.active))
        .arg(cert.uploaded_at)
}

/// Binds [`CREATE_USER`]'s parameters.
pub(crate) fn bind_insert_user<Q: Binder>(query: Q, user: &IamUser) -> Q {
    query
        .arg(&user.account_id)
        .arg(&user.user_name)
        .arg(&user.user_id)
        .arg(&user.details)
        .arg(user.revision)
        .arg(user.created_at)
}

/// Binds [`CREATE_ENTITY`]'s parameters.
pub(crate) fn bind_insert_entity<Q: Binder>(query: Q, entity: &IamEntity) -> Q {
    query
        .arg(&entity.account_id)
        .arg(&entity.kind)
        .arg(&entity.name)
        .arg(&entity.entity_id)
        .arg(&entity.details)
        .arg(entity.revision)
        .arg(entity.created_at)
}

/// Binds [`CREATE_SESSION`]'s parameters.
pub(crate) fn bind_insert_session<Q: Binder>(query: Q, session: &SessionRecord) -> Q {
    query
        .arg(&session.access_key_id)
        .arg(&session.secret_access_key)
        .arg(&session.session_token)
        .arg(&session.account_id)
        .arg(&session.user_name)
        .arg(&session.role_name)
        .arg(&session.session_name)
        .arg(&session.details)
        .arg(session.expires_at)
        .arg(session.created_at)
}
