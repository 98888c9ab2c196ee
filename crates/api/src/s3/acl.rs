//! Access control lists for buckets and objects: the grants S3 documents
//! (owner, other accounts, AllUsers, AuthenticatedUsers), canned ACLs, the
//! `x-amz-grant-*` headers, and the permission check every operation makes.
//! Stored as JSON in the object index.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// One account, by account id.
    Account(String),
    /// Everyone, including anonymous callers.
    AllUsers,
    /// Every authenticated caller.
    AuthenticatedUsers,
}

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    /// Everything below.
    FullControl,
    /// Read the object, or list the bucket.
    Read,
    /// Write objects into the bucket.
    Write,
    /// Read the ACL.
    ReadAcp,
    /// Write the ACL.
    WriteAcp,
}

impl Permission {
    /// The S3 wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullControl => "FULL_CONTROL",
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::ReadAcp => "READ_ACP",
            Self::WriteAcp => "WRITE_ACP",
        }
    }

    /// From the S3 wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "FULL_CONTROL" => Self::FullControl,
            "READ" => Self::Read,
            "WRITE" => Self::Write,
            "READ_ACP" => Self::ReadAcp,
            "WRITE_ACP" => Self::WriteAcp,
            _ => return None,
        })
    }
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Grantee.
    pub grantee: Grantee,
    /// Permission.
    pub permission: Permission,
}

/// An ACL: its owner always has full control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// Owning account id.
    pub owner: String,
    /// Grants, owner's included.
    pub grants: Vec<Grant>,
}

/// URI S3 uses for the AllUsers group.
pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// URI S3 uses for the AuthenticatedUsers group.
pub const AUTHENTICATED_USERS_URI: &str =
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// The canonical user id S3 shows for an account: 64 hex digits derived
/// from the account id, stable across restarts.
pub fn canonical_id(account_id: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "mallee-canonical-user:{account_id}"
    )))
}

/// Errors building an ACL from a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A canned ACL name S3 does not define for this resource.
    #[error("The canned ACL '{0}' is not valid")]
    UnknownCanned(String),
    /// A grant header or grantee that cannot be understood.
    #[error("{0}")]
    InvalidGrant(String),
}

impl Acl {
    /// The owner-only ACL (`private`).
    pub fn private(owner: &str) -> Self {
        Self {
            owner: owner.into(),
            grants: vec![Grant {
                grantee: Grantee::Account(owner.into()),
                permission: Permission::FullControl,
            }],
        }
    }

    /// A canned ACL. `bucket_owner` is the owner of the bucket an object
    /// lives in (for `bucket-owner-*`).
    pub fn canned(name: &str, owner: &str, bucket_owner: &str) -> Result<Self, AclError> {
        let mut acl = Self::private(owner);
        let mut add = |grantee, permission| {
            acl.grants.push(Grant {
                grantee,
                permission,
            })
        };
        match name {
            // aws-exec-read: the cloud itself reads image bundles without
            // going through S3 authorisation, so for users it is private.
            "private" | "aws-exec-read" => {}
            "public-read" => add(Grantee::AllUsers, Permission::Read),
            "public-read-write" => {
                add(Grantee::AllUsers, Permission::Read);
                add(Grantee::AllUsers, Permission::Write);
            }
            "authenticated-read" => add(Grantee::AuthenticatedUsers, Permission::Read),
            "bucket-owner-read" if bucket_owner != owner => {
                add(Grantee::Account(bucket_owner.into()), Permission::Read)
            }
            "bucket-owner-full-control" if bucket_owner != owner => add(
                Grantee::Account(bucket_owner.into()),
                Permission::FullControl,
            ),
            "bucket-owner-read" | "bucket-owner-full-control" => {}
            "log-delivery-write" => {}
            other => return Err(AclError::UnknownCanned(other.into())),
        }
        Ok(acl)
    }

    /// Adds the grants of an `x-amz-grant-*` header value
    /// (`id="…", uri="…", emailAddress="…"`). `resolve_id` maps a canonical
    /// id to an account id.
    pub fn add_header_grants(
        &mut self,
        permission: Permission,
        value: &str,
        resolve_id: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), AclError> {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, raw) = part
                .split_once('=')
                .ok_or_else(|| AclError::InvalidGrant(format!("Invalid grant: {part}")))?;
            let target = raw.trim().trim_matches('"');
            let grantee = match kind.trim().to_ascii_lowercase().as_str() {
                "id" => Grantee::Account(
                    resolve_id(target)
                        .ok_or_else(|| AclError::InvalidGrant("Invalid id".into()))?,
                ),
                "uri" => Self::group(target)?,
                _ => {
                    return Err(AclError::InvalidGrant(format!(
                        "Unsupported grantee type: {kind}"
                    )));
                }
            };
            self.grants.push(Grant {
                grantee,
                permission,
            });
        }
        Ok(())
    }

    /// The grantee for a group URI.
    pub fn group(uri: &str) -> Result<Grantee, AclError> {
        match uri {
            ALL_USERS_URI => Ok(Grantee::AllUsers),
            AUTHENTICATED_USERS_URI => Ok(Grantee::AuthenticatedUsers),
            other => Err(AclError::InvalidGrant(format!(
                "Invalid group uri: {other}"
            ))),
        }
    }

    /// Whether `caller` (an account id, or `None` when anonymous) has
    /// `wanted`. The owner always has every permission.
    pub fn allows(&self, caller: Option<&str>, wanted: Permission) -> bool {
        if caller == Some(self.owner.as_str()) {
            return true;
        }
        self.grants.iter().any(|g| {
            let applies = match &g.grantee {
                Grantee::AllUsers => true,
                Grantee::AuthenticatedUsers => caller.is_some(),
                Grantee::Account(id) => caller == Some(id.as_str()),
            };
            applies && (g.permission == wanted || g.permission == Permission::FullControl)
        })
    }

    /// JSON for the store.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// From the store's JSON; an unreadable ACL is treated as private to
    /// `fallback_owner`, never as open.
    pub fn from_json(json: &str, fallback_owner: &str) -> Self {
        serde_json::from_str(json).unwrap_or_else(|_| Self::private(fallback_owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_acls_grant_what_s3_documents() {
        let public = Acl::canned("public-read", "A", "A").expect("canned");
        assert!(public.allows(None, Permission::Read));
        assert!(!public.allows(None, Permission::Write));
        assert!(!public.allows(Some("B"), Permission::WriteAcp));
        let auth = Acl::canned("authenticated-read", "A", "A").expect("canned");
        assert!(!auth.allows(None, Permission::Read));
        assert!(auth.allows(Some("B"), Permission::Read));
        let private = Acl::canned("private", "A", "A").expect("canned");
        assert!(private.allows(Some("A"), Permission::WriteAcp));
        assert!(!private.allows(Some("B"), Permission::Read));
        let full = Acl::canned("bucket-owner-full-control", "A", "B").expect("canned");
        assert!(full.allows(Some("B"), Permission::WriteAcp));
        assert!(Acl::canned("nonsense", "A", "A").is_err());
    }

    #[test]
    fn header_grants_and_json() {
        let mut acl = Acl::private("A");
        let resolve = |id: &str| (id == canonical_id("B")).then(|| "B".to_string());
        acl.add_header_grants(
            Permission::Read,
            &format!("id=\"{}\", uri=\"{ALL_USERS_URI}\"", canonical_id("B")),
            &resolve,
        )
        .expect("grants");
        assert!(acl.allows(Some("B"), Permission::Read));
        assert!(acl.allows(None, Permission::Read));
        assert!(
            acl.add_header_grants(Permission::Read, "id=\"nobody\"", &resolve)
                .is_err()
        );
        assert_eq!(Acl::from_json(&acl.to_json(), "x"), acl);
        assert_eq!(Acl::from_json("garbage", "x"), Acl::private("x"));
        assert_eq!(canonical_id("A").len(), 64);
    }
}
