//! Cluster membership: enrolment tokens and the certificates the cluster
//! CA issued to nodes, kept by [`NodeEnrolmentIndex`].
//!
//! The store guarantees what must hold however requests race: a token
//! enrols at most one node, and only while unused and unexpired; a node
//! id has at most one enrolment that is not revoked; a removed node's
//! certificates are revoked and its record gone in one transaction; and a
//! registration is recorded only for a certificate that is not revoked.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Node, StoreResult, UnixMillis};

/// One enrolment token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentTokenRecord {
    /// Token id (public part).
    pub token_id: String,
    /// SHA-256 (hex) of the secret.
    pub secret_sha256: String,
    /// Zone of the node that enrols with it.
    pub zone: String,
    /// Creation time.
    pub created_at: UnixMillis,
    /// After this it is refused.
    pub expires_at: UnixMillis,
    /// When a node enrolled with it.
    pub used_at: Option<UnixMillis>,
    /// Which node.
    pub used_by: Option<String>,
}

/// A certificate the cluster CA issued to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCertificate {
    /// Serial number (lowercase hex).
    pub serial: String,
    /// The node it names.
    pub node_id: String,
    /// The zone the node serves.
    pub zone: String,
    /// SHA-256 (hex) of the certificate.
    pub fingerprint: String,
    /// When it was issued.
    pub issued_at: UnixMillis,
    /// When it ends.
    pub expires_at: UnixMillis,
    /// The token it was issued for (`None`: issued directly).
    pub token_id: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<UnixMillis>,
}

/// What became of an enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolOutcome {
    /// The token is spent and the certificate recorded.
    Enrolled,
    /// The token was used meanwhile or has expired: nothing recorded.
    TokenSpent,
    /// The node id holds a certificate that is not revoked: nothing
    /// recorded.
    NodeEnrolled,
}

/// Membership persistence.
#[async_trait]
pub trait NodeEnrolmentIndex: Send + Sync {
    /// Records a new token; `Conflict` when its id is taken.
    async fn create_enrolment_token(&self, token: &EnrolmentTokenRecord) -> StoreResult<()>;
    /// A token by id.
    async fn enrolment_token(&self, token_id: &str) -> StoreResult<Option<EnrolmentTokenRecord>>;
    /// Spends token `token_id` on `certificate`'s node at `now` and records
    /// the certificate, in one transaction: only while the token is unused
    /// and unexpired and the node holds no certificate that is not revoked.
    async fn enrol_node(
        &self,
        token_id: &str,
        now: UnixMillis,
        certificate: &NodeCertificate,
    ) -> StoreResult<EnrolOutcome>;
    /// Records a certificate issued without a token.
    async fn record_node_certificate(&self, certificate: &NodeCertificate) -> StoreResult<()>;
    /// A certificate by serial.
    async fn node_certificate(&self, serial: &str) -> StoreResult<Option<NodeCertificate>>;
    /// A node's certificates, oldest first.
    async fn node_certificates(&self, node_id: &str) -> StoreResult<Vec<NodeCertificate>>;
    /// Serials of every revoked certificate.
    async fn revoked_serials(&self) -> StoreResult<Vec<String>>;
    /// Removes node `node_id` from the cluster at `now`: revokes every
    /// certificate of it and deletes its node record, in one transaction.
    /// Returns the serials revoked now (empty: nothing to revoke).
    async fn revoke_node(&self, node_id: &str, now: UnixMillis) -> StoreResult<Vec<String>>;
    /// Records `node`'s registration (as `upsert_node`) if `serial` is a
    /// certificate of that node and zone that is not revoked; `false`, and
    /// nothing written, otherwise.
    async fn register_node(&self, node: &Node, serial: &str) -> StoreResult<bool>;
}
