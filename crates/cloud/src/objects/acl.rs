//! Access control lists of buckets and objects: the grants S3 documents
//! (the owner, other accounts, everyone, every authenticated caller), the
//! canned ACLs, the JSON form the object index stores, and the permission
//! check every access makes. Their wire forms (`x-amz-grant-*` headers,
//! AccessControlPolicy documents, canonical ids) are the S3 API's.

use serde::{Deserialize, Serialize};

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

/// Errors building an ACL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A canned ACL name S3 does not define for this resource.
    #[error("The canned ACL '{0}' is not valid")]
    UnknownCanned(String),
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

/// The ACL a request asks for, before the owners it applies to are known
/// (they come from the bucket and the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclRequest {
    /// A canned ACL by name; writes that name none ask for `private`.
    Canned(String),
    /// The owner's full control plus these grants (grant headers).
    Grants(Vec<Grant>),
    /// Exactly these grants (an access control policy document).
    Policy(Vec<Grant>),
}

impl Default for AclRequest {
    fn default() -> Self {
        Self::Canned("private".into())
    }
}

impl AclRequest {
    /// The ACL of a bucket or object owned by `owner` in a bucket owned by
    /// `bucket_owner`.
    pub fn resolve(self, owner: &str, bucket_owner: &str) -> Result<Acl, AclError> {
        match self {
            Self::Canned(name) => Acl::canned(&name, owner, bucket_owner),
            Self::Grants(grants) => {
                let mut acl = Acl::private(owner);
                acl.grants.extend(grants);
                Ok(acl)
            }
            Self::Policy(grants) => Ok(Acl {
                owner: owner.to_owned(),
                grants,
            }),
        }
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
    fn requested_acls_resolve_against_their_owners() {
        let grant = Grant {
            grantee: Grantee::AllUsers,
            permission: Permission::Read,
        };
        assert_eq!(
            AclRequest::default().resolve("A", "B"),
            Ok(Acl::private("A"))
        );
        let with_grants = AclRequest::Grants(vec![grant.clone()])
            .resolve("A", "A")
            .expect("grants");
        assert_eq!(with_grants.grants.len(), 2);
        assert!(with_grants.allows(None, Permission::Read));
        let policy = AclRequest::Policy(vec![grant])
            .resolve("A", "A")
            .expect("policy");
        assert_eq!(policy.grants.len(), 1);
        assert!(policy.allows(Some("A"), Permission::WriteAcp));
        assert_eq!(
            AclRequest::Canned("nonsense".into()).resolve("A", "A"),
            Err(AclError::UnknownCanned("nonsense".into()))
        );
    }
}
