//! Node enrolment (`crate::enrolment`): what both backends share.

use super::{Binder, StoreRow};
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

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const INSERT_CERTIFICATE: &str =
    "INSERT INTO node_certificates (serial, node_id, zone, fingerprint, issued_at, expires_at,
                                   token_id, revoked_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) const CREATE_ENROLMENT_TOKEN: &str =
    "INSERT INTO node_enrolment_tokens (token_id, secret_sha256, zone, created_at,
                                       expires_at, used_at, used_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const ENROLMENT_TOKEN: &str = "SELECT * FROM node_enrolment_tokens WHERE token_id = $1";

pub(crate) const ENROL_NODE_UPDATE_NODE_ENROLMENT_TOKENS: &str =
    "UPDATE node_enrolment_tokens SET used_at = $1, used_by = $2
    WHERE token_id = $3 AND used_at IS NULL AND expires_at > $4";

pub(crate) const NODE_CERTIFICATE: &str = "SELECT * FROM node_certificates WHERE serial = $1";

pub(crate) const NODE_CERTIFICATES: &str =
    "SELECT * FROM node_certificates WHERE node_id = $1 ORDER BY issued_at, serial";

pub(crate) const REVOKED_SERIALS: &str =
    "SELECT serial FROM node_certificates WHERE revoked_at IS NOT NULL ORDER BY serial";

pub(crate) const REVOKE_NODE_UPDATE_NODE_CERTIFICATES: &str =
    "UPDATE node_certificates SET revoked_at = $1
    WHERE node_id = $2 AND revoked_at IS NULL RETURNING serial";

pub(crate) const REVOKE_NODE_DELETE_NODES: &str = "DELETE FROM nodes WHERE node_id = $1";

/// Binds [`INSERT_CERTIFICATE`]'s parameters.
pub(crate) fn bind_insert_certificate<Q: Binder>(query: Q, c: &NodeCertificate) -> Q {
    query
        .arg(&c.serial)
        .arg(&c.node_id)
        .arg(&c.zone)
        .arg(&c.fingerprint)
        .arg(c.issued_at)
        .arg(c.expires_at)
        .arg(&c.token_id)
        .arg(c.revoked_at)
}

/// Binds [`CREATE_ENROLMENT_TOKEN`]'s parameters.
pub(crate) fn bind_insert_token<Q: Binder>(query: Q, t: &EnrolmentTokenRecord) -> Q {
    query
        .arg(&t.token_id)
        .arg(&t.secret_sha256)
        .arg(&t.zone)
        .arg(t.created_at)
        .arg(t.expires_at)
        .arg(t.used_at)
        .arg(&t.used_by)
}
