//! IAM in the domain: users and their access keys ([`users`], [`keys`]),
//! groups ([`groups`]), inline policies ([`policies`]), and the decision
//! whether a caller may run an action ([`authorize`]).
//!
//! The Eucalyptus account model: every account has an `admin` user with
//! implicit full rights over its account, and the admin user of the
//! cloud's system account (`eucalyptus`, the administrator account) is
//! always allowed. Every other user may do exactly what its policies and
//! its groups' policies allow.
//!
//! What a user or group carries beyond its name is one JSON document per
//! entity ([`UserDetails`], [`GroupDetails`]) in the store, updated by
//! compare-and-set, so concurrent edits never lose one another.

pub mod account;
pub mod authorize;
pub mod authz_seal;
pub mod cache;
pub mod entities;
pub mod groups;
pub mod keys;
pub mod login;
pub mod managed;
pub mod policies;
pub mod profiles;
pub mod resources;
pub mod roles;
pub mod sign_in_guard;
pub mod signing;
pub mod sts;
pub mod users;

use std::collections::{BTreeMap, BTreeSet};

use mallee_store::StoreError;
use serde::{Deserialize, Serialize};

use crate::Principal;
use crate::accounts::FIRST_USER;

/// What an IAM operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The entity does not exist (`NoSuchEntity`).
    #[error("{0}")]
    NoSuchEntity(String),
    /// The name is taken (`EntityAlreadyExists`).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// The entity still has something attached (`DeleteConflict`).
    #[error("{0}")]
    DeleteConflict(String),
    /// A per-entity limit was reached (`LimitExceeded`).
    #[error("{0}")]
    LimitExceeded(String),
    /// A certificate that does not parse (`MalformedCertificate`).
    #[error("{0}")]
    MalformedCertificate(String),
    /// A certificate that cannot be used (`InvalidCertificate`).
    #[error("{0}")]
    InvalidCertificate(String),
    /// A certificate uploaded before (`DuplicateCertificate`).
    #[error("{0}")]
    DuplicateCertificate(String),
    /// A policy document is not valid (`MalformedPolicyDocument`).
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// A password the password policy refuses (`PasswordPolicyViolation`).
    #[error("{0}")]
    PasswordPolicy(String),
    /// The user must choose a new password before signing in
    /// (`PasswordResetRequired`; the console's sign-in only).
    #[error("{0}")]
    PasswordResetRequired(String),
    /// A parameter is not valid (`ValidationError`).
    #[error("{0}")]
    Validation(String),
    /// A request the caller may not make in this model (`AccessDenied`).
    #[error("{0}")]
    AccessDenied(String),
    /// Too many failed sign-ins in a row: the user waits (`Throttling`).
    #[error("{0}")]
    Throttled(String),
    /// Another request changed the entity meanwhile, too often.
    #[error("{0} changed concurrently; retry")]
    Concurrent(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored document could not be read.
    #[error("corrupt identity record: {0}")]
    Corrupt(String),
}

/// Result alias of this module.
pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

/// How often a compare-and-set update is retried before giving up.
const CAS_ATTEMPTS: usize = 8;

/// A user's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetails {
    /// IAM path (`/`, `/qa/`).
    #[serde(default = "root_path")]
    pub path: String,
    /// Tags, by key.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Inline policies, by name: the documents as given.
    #[serde(default)]
    pub policies: BTreeMap<String, String>,
    /// The groups it is a member of.
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// Attached managed policies, by ARN.
    #[serde(default)]
    pub attached: BTreeSet<String>,
    /// The console password, hashed.
    #[serde(default)]
    pub login_profile: Option<login::LoginProfile>,
}

/// A group's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDetails {
    /// IAM path.
    #[serde(default = "root_path")]
    pub path: String,
    /// Inline policies, by name.
    #[serde(default)]
    pub policies: BTreeMap<String, String>,
    /// Attached managed policies, by ARN.
    #[serde(default)]
    pub attached: BTreeSet<String>,
}

/// A role's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDetails {
    /// IAM path.
    #[serde(default = "root_path")]
    pub path: String,
    /// The trust (assume-role) policy, as given.
    #[serde(default)]
    pub trust: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Longest session AssumeRole may grant, in seconds.
    #[serde(default = "default_session")]
    pub max_session_seconds: i64,
    /// Inline policies, by name.
    #[serde(default)]
    pub policies: BTreeMap<String, String>,
    /// Attached managed policies, by ARN.
    #[serde(default)]
    pub attached: BTreeSet<String>,
    /// Tags, by key.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One version of a managed policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// `v1`, `v2`, …
    pub id: String,
    /// The document, as given.
    pub document: String,
    /// When it was created.
    pub created_at: i64,
}

/// A managed policy's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedDetails {
    /// IAM path.
    #[serde(default = "root_path")]
    pub path: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Its versions, oldest first.
    #[serde(default)]
    pub versions: Vec<PolicyVersion>,
    /// The version in force.
    #[serde(default)]
    pub default_version: String,
    /// The number the next version gets.
    #[serde(default)]
    pub next_version: u32,
    /// When the default version last changed.
    #[serde(default)]
    pub updated_at: i64,
    /// Tags, by key.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// An instance profile's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileDetails {
    /// IAM path.
    #[serde(default = "root_path")]
    pub path: String,
    /// Its role (IAM allows one).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Tags, by key.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_session() -> i64 {
    3600
}

fn root_path() -> String {
    "/".into()
}

/// The `kind` of group entities in the store.
pub const GROUP: &str = "group";
/// The `kind` of role entities.
pub const ROLE: &str = "role";
/// The `kind` of managed policies.
pub const POLICY: &str = "policy";
/// The `kind` of instance profiles.
pub const INSTANCE_PROFILE: &str = "instance-profile";

fn decode<T: serde::de::DeserializeOwned + Default>(what: &str, json: &str) -> Result<T> {
    if json.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(json).map_err(|e| IdentityError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| IdentityError::Corrupt(format!("{what}: {e}")))
}

/// `arn:aws:iam::ACCOUNT:KIND{path}NAME`.
pub fn arn(account_id: &str, kind: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account_id}:{kind}{path}{name}")
}

/// Whether the caller is its account's `admin` user, which has implicit
/// full rights over its account.
pub fn is_account_admin(principal: &Principal) -> bool {
    principal.user_name == FIRST_USER && principal.role().is_none()
}

/// Whether the caller is a cloud administrator: the `admin` user of an
/// administrator account, always allowed.
pub fn is_cloud_admin(principal: &Principal) -> bool {
    principal.account.is_admin && is_account_admin(principal)
}

/// IAM names: 1–`max` characters of letters, digits and `+=,.@_-`.
pub fn check_name(what: &str, name: &str, max: usize) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Validation(format!(
            "1 validation error detected: Value '{name}' at '{what}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length between 1 and {max}"
        )))
    }
}

/// IAM paths: `/`, or `/` segments `/` of printable ASCII, at most 512.
pub fn check_path(path: &str) -> Result<()> {
    let ok = path.starts_with('/')
        && path.ends_with('/')
        && path.len() <= 512
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Validation(format!(
            "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters: {path}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(check_name("userName", "ci-user@qa.example", 64).is_ok());
        assert!(check_name("userName", "", 64).is_err());
        assert!(check_name("userName", "a b", 64).is_err());
        assert!(check_name("userName", &"a".repeat(65), 64).is_err());
        assert!(check_path("/").is_ok());
        assert!(check_path("/qa/ci/").is_ok());
        assert!(check_path("qa/").is_err());
        assert!(check_path("/qa").is_err());
    }

    #[test]
    fn details_default_and_round_trip() {
        let d: UserDetails = decode("user", "{}").expect("empty document");
        assert_eq!(d.path, "/");
        let mut d = d;
        d.groups.insert("qa".into());
        let back: UserDetails =
            decode("user", &encode("user", &d).expect("encode")).expect("decode");
        assert_eq!(back, d);
    }
}
