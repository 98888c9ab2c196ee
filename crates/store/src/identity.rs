//! IAM identities: users with their details, their access keys, and the
//! account's other IAM entities (groups, roles, managed policies, instance
//! profiles), kept by [`IdentityIndex`].
//!
//! What a user or an entity carries (path, tags, policies, memberships) is
//! a JSON document owned by the identity layer; the store guarantees
//! unique names per account and kind, globally unique ids, and
//! compare-and-set updates through `revision`, so two concurrent edits of
//! one entity never silently lose one of them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{AccessKey, StoreResult, UnixMillis};

/// One IAM user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamUser {
    /// Owning account.
    pub account_id: String,
    /// Name, unique in the account.
    pub user_name: String,
    /// Globally unique id (`AIDA…`).
    pub user_id: String,
    /// The identity layer's JSON document.
    pub details: String,
    /// Compare-and-set counter, bumped by every update.
    pub revision: i64,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// When and where an access key was last used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLastUsed {
    /// When.
    pub at: UnixMillis,
    /// The service's SigV4 name (`ec2`, `s3`, …).
    pub service: String,
    /// The region the request was signed for.
    pub region: String,
}

/// An access key with its use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccessKey {
    /// The key.
    pub key: AccessKey,
    /// Its last use, if any.
    pub last_used: Option<KeyLastUsed>,
}

/// One IAM entity other than a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamEntity {
    /// Owning account.
    pub account_id: String,
    /// `group`, `role`, `policy`, `instance-profile`.
    pub kind: String,
    /// Name, unique in the account for its kind.
    pub name: String,
    /// Globally unique id (`AGPA…`, `AROA…`, `ANPA…`, `AIPA…`).
    pub entity_id: String,
    /// The identity layer's JSON document.
    pub details: String,
    /// Compare-and-set counter, bumped by every update.
    pub revision: i64,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// STS temporary credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret signing uses.
    pub secret_access_key: String,
    /// The token requests carry (`X-Amz-Security-Token`).
    pub session_token: String,
    /// The account the session acts in (a role's account).
    pub account_id: String,
    /// The user it stands for (GetSessionToken), or that assumed the role.
    pub user_name: String,
    /// The role of a role session.
    pub role_name: Option<String>,
    /// `RoleSessionName`, or the user's name.
    pub session_name: String,
    /// The identity layer's JSON document (the source identity, tags).
    pub details: String,
    /// When it stops working.
    pub expires_at: UnixMillis,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// An IAM signing certificate (X.509) of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningCertificate {
    /// The certificate's id (IAM: 24–128 characters).
    pub certificate_id: String,
    /// The user's account.
    pub account_id: String,
    /// The user.
    pub user_name: String,
    /// The certificate, PEM.
    pub body: String,
    /// `Active` (true) or `Inactive`.
    pub active: bool,
    /// When it was uploaded.
    pub uploaded_at: UnixMillis,
}

/// IAM users, keys and entities.
#[async_trait]
pub trait IdentityIndex: Send + Sync {
    /// Stores a signing certificate; `Conflict` when its id exists,
    /// `NotFound` when the user does not.
    async fn create_signing_certificate(&self, cert: &SigningCertificate) -> StoreResult<()>;
    /// The signing certificates of one user, or (`None`) of every user of
    /// the account; oldest first.
    async fn signing_certificates(
        &self,
        account_id: &str,
        user_name: Option<&str>,
    ) -> StoreResult<Vec<SigningCertificate>>;
    /// Activates or deactivates one of the user's certificates; whether
    /// it exists.
    async fn set_signing_certificate_active(
        &self,
        account_id: &str,
        user_name: &str,
        certificate_id: &str,
        active: bool,
    ) -> StoreResult<bool>;
    /// Deletes one of the user's certificates; whether it existed.
    async fn delete_signing_certificate(
        &self,
        account_id: &str,
        user_name: &str,
        certificate_id: &str,
    ) -> StoreResult<bool>;

    /// Adds a user; `Conflict` when the account has one of that name (or
    /// the id is taken).
    async fn create_user(&self, user: &IamUser) -> StoreResult<()>;
    /// One user of the account.
    async fn user(&self, account_id: &str, user_name: &str) -> StoreResult<Option<IamUser>>;
    /// The account's users, ordered by name.
    async fn users(&self, account_id: &str) -> StoreResult<Vec<IamUser>>;
    /// Replaces the user named `user_name` by `user` (which may carry a new
    /// name: its keys follow it) if its revision is still `user.revision`;
    /// the stored revision becomes `user.revision + 1`. `Ok(false)` when it
    /// is gone or was changed meanwhile; `Conflict` when the new name is
    /// taken.
    async fn update_user(&self, user_name: &str, user: &IamUser) -> StoreResult<bool>;
    /// Deletes a user and its keys if its revision is still `revision`.
    async fn delete_user(
        &self,
        account_id: &str,
        user_name: &str,
        revision: i64,
    ) -> StoreResult<bool>;

    /// The user's access keys, oldest first.
    async fn user_access_keys(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> StoreResult<Vec<UserAccessKey>>;
    /// Deletes one of the user's keys; whether it existed.
    async fn delete_access_key(
        &self,
        account_id: &str,
        user_name: &str,
        access_key_id: &str,
    ) -> StoreResult<bool>;
    /// Activates or deactivates one of the user's keys; whether it exists.
    async fn set_access_key_active(
        &self,
        account_id: &str,
        user_name: &str,
        access_key_id: &str,
        active: bool,
    ) -> StoreResult<bool>;
    /// Records a use of a key.
    async fn record_key_use(&self, access_key_id: &str, used: &KeyLastUsed) -> StoreResult<()>;
    /// A key's last use (`None` when never used or unknown).
    async fn key_last_used(&self, access_key_id: &str) -> StoreResult<Option<KeyLastUsed>>;

    /// Adds an entity; `Conflict` when the name (for its kind) or the id is
    /// taken.
    async fn create_entity(&self, entity: &IamEntity) -> StoreResult<()>;
    /// One entity.
    async fn entity(
        &self,
        account_id: &str,
        kind: &str,
        name: &str,
    ) -> StoreResult<Option<IamEntity>>;
    /// The account's entities of a kind, ordered by name.
    async fn entities(&self, account_id: &str, kind: &str) -> StoreResult<Vec<IamEntity>>;
    /// Replaces an entity's details if its revision is still
    /// `entity.revision`; the stored revision becomes `entity.revision + 1`.
    async fn update_entity(&self, entity: &IamEntity) -> StoreResult<bool>;
    /// Stores temporary credentials; `Conflict` if the key id is taken.
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// Temporary credentials by key id (expired ones too: the caller
    /// decides).
    async fn session(&self, access_key_id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Removes sessions that expired before `now`; how many.
    async fn delete_expired_sessions(&self, now: UnixMillis) -> StoreResult<u64>;

    /// Deletes an entity if its revision is still `revision`.
    async fn delete_entity(
        &self,
        account_id: &str,
        kind: &str,
        name: &str,
        revision: i64,
    ) -> StoreResult<bool>;
}
