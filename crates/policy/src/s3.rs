//! S3's authorisation rule, as Eucalyptus' object store applied it and as
//! issue 15 asks: (the ACL allows, OR the caller's account owns the
//! resource, OR the bucket policy allows) AND no policy explicitly denies —
//! with the caller's own identity policies still required for anything but
//! a same-account bucket-policy grant. In full, [`authorize`] allows when
//! neither the identity policies nor the bucket policy deny, and one of:
//! - the bucket policy allows, and the caller is anonymous or of the
//!   bucket owner's account;
//! - the bucket policy allows a caller of another account, and the caller's
//!   identity policies allow too (AWS's cross-account rule);
//! - the caller's identity policies allow and the caller's account owns the
//!   resource;
//! - the ACL grants the permission (to the caller's account, to
//!   authenticated users or to everyone) and the caller's identity policies
//!   allow — or the caller is anonymous and the ACL grants to everyone.
//!
//! Also the checks S3 makes of a bucket policy's contents on
//! `PutBucketPolicy`.

use crate::document::{Policy, PolicyKind};
use crate::evaluate::{Decision, Verdict};

/// What the S3 layer knows about one request.
#[derive(Debug, Clone, Copy)]
pub struct S3Access<'a> {
    /// The caller's identity policies' decision: [`Decision::IMPLICIT_DENY`]
    /// for anonymous callers, [`Decision::allow_without_statement`] for an
    /// account's `admin` user and the cloud's administrators.
    pub identity: Decision<'a>,
    /// The bucket policy's decision, [`Decision::IMPLICIT_DENY`] when the
    /// bucket has none.
    pub bucket_policy: Decision<'a>,
    /// Whether the bucket's or object's ACL grants the permission to the
    /// caller (its account, authenticated users or everyone).
    pub acl_allows: bool,
    /// Whether the caller's account owns the bucket (or object).
    pub caller_owns: bool,
    /// Whether the request is unsigned.
    pub anonymous: bool,
}

/// What let a request in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3Grant {
    /// The bucket policy (with the identity policies, across accounts).
    BucketPolicy,
    /// The identity policies, in the owning account.
    Owner,
    /// The ACL (with the identity policies, for a signed request).
    Acl,
}

/// The outcome: `decision` names the deciding statement when one did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct S3Decision<'a> {
    /// Allow, explicit deny or implicit deny, and the statement behind it.
    pub decision: Decision<'a>,
    /// What granted an allowed request.
    pub grant: Option<S3Grant>,
}

impl S3Decision<'_> {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.decision.is_allowed()
    }
}

/// Applies the rule in this module's documentation.
pub fn authorize(access: S3Access<'_>) -> S3Decision<'_> {
    let deny = |decision| S3Decision {
        decision,
        grant: None,
    };
    if access.identity.verdict == Verdict::ExplicitDeny {
        return deny(access.identity);
    }
    if access.bucket_policy.verdict == Verdict::ExplicitDeny {
        return deny(access.bucket_policy);
    }
    let identity_allows = !access.anonymous && access.identity.is_allowed();
    let grant = |decision, grant| S3Decision {
        decision,
        grant: Some(grant),
    };
    if access.bucket_policy.is_allowed()
        && (access.anonymous || access.caller_owns || identity_allows)
    {
        return grant(access.bucket_policy, S3Grant::BucketPolicy);
    }
    if identity_allows && access.caller_owns {
        return grant(access.identity, S3Grant::Owner);
    }
    if access.acl_allows && (access.anonymous || identity_allows) {
        let decision = if access.anonymous {
            Decision::allow_without_statement()
        } else {
            access.identity
        };
        return grant(decision, S3Grant::Acl);
    }
    deny(Decision::IMPLICIT_DENY)
}

/// Why S3 refuses a bucket policy's contents (S3 answers
/// `MalformedPolicy`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketPolicyError {
    /// Not parsed as a resource policy.
    #[error("Policy is not a resource policy")]
    NotResourcePolicy,
    /// A resource outside the bucket (the text is the resource).
    #[error("Policy has invalid resource")]
    InvalidResource(String),
    /// An action of another service (the text is the action).
    #[error("Policy has invalid action")]
    InvalidAction(String),
}

/// S3's checks of a bucket policy for `bucket`: every resource is the
/// bucket or inside it, every action is an `s3:` one.
pub fn check_bucket_policy(policy: &Policy, bucket: &str) -> Result<(), BucketPolicyError> {
    if policy.kind() != PolicyKind::Resource {
        return Err(BucketPolicyError::NotResourcePolicy);
    }
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    for st in policy.statements() {
        for action in st.actions().0 {
            let lower = action.to_ascii_lowercase();
            if lower != "*" && !lower.starts_with("s3:") {
                return Err(BucketPolicyError::InvalidAction(action.clone()));
            }
        }
        for resource in st.resources().0 {
            let inside = resource
                .strip_prefix(&bucket_arn)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest == "*");
            if !inside {
                return Err(BucketPolicyError::InvalidResource(resource.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::evaluate::{Request, evaluate_one};
    use crate::principal::Caller;

    const A: &str = "111122223333";
    const B: &str = "444455556666";

    fn bucket_policy() -> Policy {
        Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Sid":"Public","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/public/*"},
                {"Sid":"OtherAccount","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/drop/*"},
                {"Sid":"NoSecrets","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/secret/*"}
            ]}"#,
            PolicyKind::Resource,
        )
        .expect("bucket policy parses")
    }

    fn decide<'a>(p: &'a Policy, caller: Caller<'_>, action: &str, key: &str) -> Decision<'a> {
        let ctx = Context::new();
        let resource = format!("arn:aws:s3:::b/{key}");
        let req = Request {
            action,
            resource: &resource,
            caller,
            canonical_user: None,
            context: &ctx,
        };
        evaluate_one(&req, "bucket policy of b", p)
    }

    fn access<'a>(identity: Decision<'a>, bucket_policy: Decision<'a>) -> S3Access<'a> {
        S3Access {
            identity,
            bucket_policy,
            acl_allows: false,
            caller_owns: false,
            anonymous: false,
        }
    }

    #[test]
    fn public_reads_through_the_bucket_policy() {
        let p = bucket_policy();
        let bp = decide(&p, Caller::Anonymous, "s3:GetObject", "public/x");
        let d = authorize(S3Access {
            anonymous: true,
            ..access(Decision::IMPLICIT_DENY, bp)
        });
        assert_eq!(d.grant, Some(S3Grant::BucketPolicy));
        assert_eq!(
            d.decision.to_string(),
            "allowed by bucket policy of b statement Public"
        );
        let bp = decide(&p, Caller::Anonymous, "s3:GetObject", "private/x");
        assert!(
            !authorize(S3Access {
                anonymous: true,
                ..access(Decision::IMPLICIT_DENY, bp)
            })
            .is_allowed()
        );
    }

    #[test]
    fn cross_account_grant_needs_the_callers_identity_allow() {
        let p = bucket_policy();
        let caller = Caller::Aws {
            account: B,
            arn: "arn:aws:iam::444455556666:user/u",
        };
        let bp = decide(&p, caller, "s3:PutObject", "drop/x");
        assert!(bp.is_allowed());
        assert!(!authorize(access(Decision::IMPLICIT_DENY, bp)).is_allowed());
        let d = authorize(access(Decision::allow_without_statement(), bp));
        assert_eq!(d.grant, Some(S3Grant::BucketPolicy));
        // Elsewhere in the bucket: nothing.
        let bp = decide(&p, caller, "s3:PutObject", "other/x");
        assert!(!authorize(access(Decision::allow_without_statement(), bp)).is_allowed());
    }

    #[test]
    fn owner_account_needs_identity_allow() {
        let none = Decision::IMPLICIT_DENY;
        let owner = |identity| S3Access {
            caller_owns: true,
            ..access(identity, none)
        };
        assert!(
            !authorize(owner(none)).is_allowed(),
            "a user without policies is refused"
        );
        let d = authorize(owner(Decision::allow_without_statement()));
        assert_eq!(d.grant, Some(S3Grant::Owner));
    }

    #[test]
    fn same_account_bucket_policy_grant_alone() {
        let p = Policy::parse(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/u"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}}"#,
            PolicyKind::Resource,
        )
        .expect("parses");
        let caller = Caller::Aws {
            account: A,
            arn: "arn:aws:iam::111122223333:user/u",
        };
        let bp = decide(&p, caller, "s3:GetObject", "k");
        let d = authorize(S3Access {
            caller_owns: true,
            ..access(Decision::IMPLICIT_DENY, bp)
        });
        assert_eq!(d.grant, Some(S3Grant::BucketPolicy));
    }

    #[test]
    fn acls() {
        let none = Decision::IMPLICIT_DENY;
        let acl = |identity, anonymous| S3Access {
            acl_allows: true,
            anonymous,
            ..access(identity, none)
        };
        assert_eq!(authorize(acl(none, true)).grant, Some(S3Grant::Acl));
        assert!(
            !authorize(acl(none, false)).is_allowed(),
            "a signed caller needs its own allow"
        );
        assert_eq!(
            authorize(acl(Decision::allow_without_statement(), false)).grant,
            Some(S3Grant::Acl)
        );
    }

    #[test]
    fn explicit_denies_win() {
        let p = bucket_policy();
        let caller = Caller::Aws {
            account: A,
            arn: "arn:aws:iam::111122223333:user/admin",
        };
        let bp = decide(&p, caller, "s3:GetObject", "secret/x");
        assert!(bp.is_explicit_deny());
        let d = authorize(S3Access {
            caller_owns: true,
            acl_allows: true,
            ..access(Decision::allow_without_statement(), bp)
        });
        assert!(!d.is_allowed());
        assert_eq!(
            d.decision.to_string(),
            "denied by bucket policy of b statement NoSecrets"
        );
        let identity_deny = Policy::parse(
            r#"{"Statement":{"Sid":"D","Effect":"Deny","Action":"s3:*","Resource":"*"}}"#,
            PolicyKind::Identity,
        )
        .expect("parses");
        let id = decide(&identity_deny, caller, "s3:GetObject", "public/x");
        let bp = decide(&p, caller, "s3:GetObject", "public/x");
        assert!(bp.is_allowed());
        let d = authorize(S3Access {
            caller_owns: true,
            ..access(id, bp)
        });
        assert!(d.decision.is_explicit_deny());
    }

    #[test]
    fn bucket_policy_contents() {
        let p = bucket_policy();
        assert_eq!(check_bucket_policy(&p, "b"), Ok(()));
        assert!(matches!(
            check_bucket_policy(&p, "other"),
            Err(BucketPolicyError::InvalidResource(_))
        ));
        let ec2 = Policy::parse(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"ec2:*","Resource":"arn:aws:s3:::b"}}"#,
            PolicyKind::Resource,
        )
        .expect("parses");
        assert_eq!(
            check_bucket_policy(&ec2, "b").map_err(|e| e.to_string()),
            Err("Policy has invalid action".into())
        );
        let prefix = Policy::parse(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b*"]}}"#,
            PolicyKind::Resource,
        )
        .expect("parses");
        assert_eq!(check_bucket_policy(&prefix, "b"), Ok(()));
        let other_bucket = Policy::parse(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::bb/*"}}"#,
            PolicyKind::Resource,
        )
        .expect("parses");
        assert!(check_bucket_policy(&other_bucket, "b").is_err());
    }
}
