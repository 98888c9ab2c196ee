//! Access control lists on the S3 wire: the permissions' names, the
//! canonical user ids and group URIs S3 shows, and the `x-amz-grant-*`
//! headers. What an ACL is and allows is `mallee_cloud::objects::acl`.

use sha2::{Digest, Sha256};

pub use mallee_cloud::objects::acl::{Acl, Grant, Grantee, Permission};

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

/// Adds to `acl` the grants of an `x-amz-grant-*` header value
/// (`id="…", uri="…", emailAddress="…"`). `resolve_id` maps a canonical
/// id to an account id.
pub fn add_header_grants(
    acl: &mut Acl,
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
        acl.grants.push(Grant {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_grants_and_json() {
        let mut acl = Acl::private("A");
        let resolve = |id: &str| (id == canonical_id("B")).then(|| "B".to_string());
        add_header_grants(
            &mut acl,
            Permission::Read,
            &format!("id=\"{}\", uri=\"{ALL_USERS_URI}\"", canonical_id("B")),
            &resolve,
        )
        .expect("grants");
        assert!(acl.allows(Some("B"), Permission::Read));
        assert!(acl.allows(None, Permission::Read));
        assert!(add_header_grants(&mut acl, Permission::Read, "id=\"nobody\"", &resolve).is_err());
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
