//! Access control lists on the S3 wire: the permissions' names, the
//! canonical user ids and group URIs S3 shows, the `x-amz-grant-*`
//! headers, the canned ACL header and AccessControlPolicy documents a
//! request sets an ACL with, and the document an ACL is shown as. What an
//! ACL is and allows is `mallee_cloud::objects::acl`.

use mallee_cloud::Cloud;
use s3s::dto::{self as dto, AccessControlPolicy, Type};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use sha2::{Digest, Sha256};

pub use mallee_cloud::objects::acl::{Acl, AclRequest, Grant, Grantee, Permission};

use super::dto::{account_name, owner_of};
use super::error::internal;

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

/// A grant header or grantee that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GrantError(String);

/// The S3 wire name of a permission.
pub fn permission_name(permission: Permission) -> &'static str {
    match permission {
        Permission::FullControl => "FULL_CONTROL",
        Permission::Read => "READ",
        Permission::Write => "WRITE",
        Permission::ReadAcp => "READ_ACP",
        Permission::WriteAcp => "WRITE_ACP",
    }
}

/// A permission from its S3 wire name.
pub fn parse_permission(name: &str) -> Option<Permission> {
    Some(match name {
        "FULL_CONTROL" => Permission::FullControl,
        "READ" => Permission::Read,
        "WRITE" => Permission::Write,
        "READ_ACP" => Permission::ReadAcp,
        "WRITE_ACP" => Permission::WriteAcp,
        _ => return None,
    })
}

/// Adds to `grants` those of an `x-amz-grant-*` header value
/// (`id="…", uri="…", emailAddress="…"`). `resolve_id` maps a canonical
/// id to an account id.
pub fn add_header_grants(
    grants: &mut Vec<Grant>,
    permission: Permission,
    value: &str,
    resolve_id: &dyn Fn(&str) -> Option<String>,
) -> Result<(), GrantError> {
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, raw) = part
            .split_once('=')
            .ok_or_else(|| GrantError(format!("Invalid grant: {part}")))?;
        let target = raw.trim().trim_matches('"');
        let grantee = match kind.trim().to_ascii_lowercase().as_str() {
            "id" => {
                Grantee::Account(resolve_id(target).ok_or_else(|| GrantError("Invalid id".into()))?)
            }
            "uri" => group(target)?,
            _ => {
                return Err(GrantError(format!("Unsupported grantee type: {kind}")));
            }
        };
        grants.push(Grant {
            grantee,
            permission,
        });
    }
    Ok(())
}

/// The grantee for a group URI.
pub fn group(uri: &str) -> Result<Grantee, GrantError> {
    match uri {
        ALL_USERS_URI => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS_URI => Ok(Grantee::AuthenticatedUsers),
        other => Err(GrantError(format!("Invalid group uri: {other}"))),
    }
}

/// The ACL a write asks for: a canned ACL or `x-amz-grant-*` headers (not
/// both), else private.
pub(super) async fn requested_acl(
    cloud: &Cloud,
    canned: Option<&str>,
    grants: [(Permission, Option<&str>); 5],
) -> S3Result<AclRequest> {
    let has_grants = grants.iter().any(|(_, v)| v.is_some());
    match canned {
        Some(_) if has_grants => Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        )),
        Some(name) => Ok(AclRequest::Canned(name.to_owned())),
        None if has_grants => {
            let resolve = resolve_canonical(cloud).await?;
            let mut granted = Vec::new();
            for (permission, value) in grants {
                if let Some(value) = value {
                    add_header_grants(&mut granted, permission, value, &resolve).map_err(|e| {
                        S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string())
                    })?;
                }
            }
            Ok(AclRequest::Grants(granted))
        }
        None => Ok(AclRequest::default()),
    }
}

/// The ACL a Put*Acl request sets: a canned ACL, grant headers, or an
/// AccessControlPolicy document (exactly one of them).
pub(super) async fn acl_from_request(
    cloud: &Cloud,
    canned: Option<&str>,
    policy: Option<&AccessControlPolicy>,
    grants: [(Permission, Option<&str>); 5],
) -> S3Result<AclRequest> {
    let Some(policy) = policy else {
        if canned.is_none() && grants.iter().all(|(_, g)| g.is_none()) {
            return Err(s3_error!(
                MissingSecurityHeader,
                "Your request was missing a required header"
            ));
        }
        return requested_acl(cloud, canned, grants).await;
    };
    if canned.is_some() || grants.iter().any(|(_, g)| g.is_some()) {
        return Err(s3_error!(
            UnexpectedContent,
            "This request does not support content"
        ));
    }
    let resolve = resolve_canonical(cloud).await?;
    let mut granted = Vec::new();
    for grant in policy.grants.iter().flatten() {
        let permission = grant
            .permission
            .as_ref()
            .and_then(|p| parse_permission(p.as_str()))
            .ok_or_else(|| s3_error!(MalformedACLError, "The XML you provided was not well-formed or did not validate against our published schema"))?;
        let grantee = grant
            .grantee
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedACLError))?;
        let grantee = match (grantee.type_.as_str(), &grantee.id, &grantee.uri) {
            ("CanonicalUser", Some(id), _) => Grantee::Account(
                resolve(id).ok_or_else(|| s3_error!(InvalidArgument, "Invalid id"))?,
            ),
            ("Group", _, Some(uri)) => group(uri)
                .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string()))?,
            _ => {
                return Err(s3_error!(
                    MalformedACLError,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ));
            }
        };
        granted.push(Grant {
            grantee,
            permission,
        });
    }
    Ok(AclRequest::Policy(granted))
}

/// The account a canonical id names, from every account's id.
async fn resolve_canonical(cloud: &Cloud) -> S3Result<impl Fn(&str) -> Option<String> + use<>> {
    let accounts = cloud.store.accounts().await.map_err(internal)?;
    let ids: Vec<(String, String)> = accounts
        .into_iter()
        .map(|a| (canonical_id(&a.account_id), a.account_id))
        .collect();
    Ok(move |canonical: &str| {
        ids.iter()
            .find(|(c, _)| c == canonical)
            .map(|(_, id)| id.clone())
    })
}

/// The AccessControlPolicy document for an ACL.
pub(super) async fn policy_of(cloud: &Cloud, acl: &Acl) -> AccessControlPolicy {
    let owner_name = account_name(cloud, &acl.owner).await;
    let mut grants = Vec::with_capacity(acl.grants.len());
    for grant in &acl.grants {
        let grantee = match &grant.grantee {
            Grantee::Account(id) => dto::Grantee {
                display_name: Some(account_name(cloud, id).await),
                email_address: None,
                id: Some(canonical_id(id)),
                type_: Type::from_static(Type::CANONICAL_USER),
                uri: None,
            },
            Grantee::AllUsers | Grantee::AuthenticatedUsers => dto::Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                uri: Some(
                    if grant.grantee == Grantee::AllUsers {
                        ALL_USERS_URI
                    } else {
                        AUTHENTICATED_USERS_URI
                    }
                    .to_owned(),
                ),
            },
        };
        grants.push(dto::Grant {
            grantee: Some(grantee),
            permission: Some(dto::Permission::from(
                permission_name(grant.permission).to_owned(),
            )),
        });
    }
    AccessControlPolicy {
        grants: Some(grants),
        owner: Some(owner_of(&acl.owner, &owner_name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_grants_and_json() {
        let mut acl = Acl::private("A");
        let resolve = |id: &str| (id == canonical_id("B")).then(|| "B".to_string());
        add_header_grants(
            &mut acl.grants,
            Permission::Read,
            &format!("id=\"{}\", uri=\"{ALL_USERS_URI}\"", canonical_id("B")),
            &resolve,
        )
        .expect("grants");
        assert!(acl.allows(Some("B"), Permission::Read));
        assert!(acl.allows(None, Permission::Read));
        assert!(
            add_header_grants(&mut acl.grants, Permission::Read, "id=\"nobody\"", &resolve)
                .is_err()
        );
        assert_eq!(Acl::from_json(&acl.to_json(), "x"), acl);
        assert_eq!(Acl::from_json("garbage", "x"), Acl::private("x"));
        assert_eq!(canonical_id("A").len(), 64);
    }

    #[test]
    fn permission_names_round_trip() {
        for p in [
            Permission::FullControl,
            Permission::Read,
            Permission::Write,
            Permission::ReadAcp,
            Permission::WriteAcp,
        ] {
            assert_eq!(parse_permission(permission_name(p)), Some(p));
        }
        assert_eq!(parse_permission("read"), None);
    }
}
