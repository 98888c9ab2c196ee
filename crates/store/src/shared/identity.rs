//! IAM identities (`crate::identity`): what both backends share.

use super::StoreRow;
use crate::StoreResult;
use crate::identity::{IamEntity, IamUser, KeyLastUsed, SigningCertificate};

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
