//! Node enrolment (`crate::enrolment`): what both backends share.

use super::StoreRow;
use crate::StoreResult;
use crate::enrolment::{EnrolmentTokenRecord, NodeCertificate};

pub(crate) fn token_from_row(row: &impl StoreRow) -> StoreResult<EnrolmentTokenRecord> {
    Ok(EnrolmentTokenRecord {
        token_id: row.try_get("token_id")?,
        secret_sha256: row.try_get("secret_sha256")?,
        zone: row.try_get("zone")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        used_by: row.try_get("used_by")?,
    })
}

pub(crate) fn certificate_from_row(row: &impl StoreRow) -> StoreResult<NodeCertificate> {
    Ok(NodeCertificate {
        serial: row.try_get("serial")?,
        node_id: row.try_get("node_id")?,
        zone: row.try_get("zone")?,
        fingerprint: row.try_get("fingerprint")?,
        issued_at: row.try_get("issued_at")?,
        expires_at: row.try_get("expires_at")?,
        token_id: row.try_get("token_id")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
