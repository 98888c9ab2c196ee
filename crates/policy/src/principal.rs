//! The `Principal`/`NotPrincipal` element of resource-based and trust
//! policies, and the [`Caller`] it is matched against.
//!
//! Accepted forms: `"*"`, `{"AWS": …}` with `"*"`, a 12-digit account id,
//! `arn:aws:iam::ACCOUNT:root`, user and role ARNs and assumed-role session
//! ARNs; `{"Service": "ec2.amazonaws.com"}`; `{"CanonicalUser": …}`.
//! `Federated` principals are refused: mallee has no identity providers.
//! An account (or its `root` ARN) stands for every principal of the account;
//! a role ARN also matches that role's sessions
//! (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`), as in AWS.

use serde_json::Value;

/// Why a `Principal` element was refused; each message is IAM's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// `"Principal": {}` or an empty list.
    #[error("Missing required field Principal cannot be empty!")]
    Empty,
    /// A principal that is neither `*` nor an object (trust policies want
    /// an object).
    #[error("Principal must be a JSON object.")]
    NotObject,
    /// A value or principal type that cannot name anyone here; the text is
    /// the `"TYPE":"value"` at fault.
    #[error("Invalid principal in policy: {0}")]
    Invalid(String),
    /// Values of the wrong JSON type.
    #[error("Syntax errors in policy.")]
    Shape,
}

/// Who makes a request, as resource and trust policies see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// An unsigned request.
    Anonymous,
    /// An IAM identity: `arn` is the user ARN (`arn:aws:iam::A:user/x`), the
    /// account's `arn:aws:iam::A:root`, or a role session ARN
    /// (`arn:aws:sts::A:assumed-role/ROLE/SESSION`).
    Aws {
        /// The caller's 12-digit account id.
        account: &'a str,
        /// The caller's ARN.
        arn: &'a str,
    },
    /// An AWS service acting for itself (`ec2.amazonaws.com`).
    Service(&'a str),
}

impl Caller<'_> {
    /// The caller's account, if it has one.
    pub fn account(&self) -> Option<&str> {
        match self {
            Caller::Aws { account, .. } => Some(account),
            _ => None,
        }
    }
}

/// One `AWS` principal value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AwsPrincipal {
    Anyone,
    Account(Box<str>),
    /// A user, assumed-role session or other exact ARN.
    Exact(Box<str>),
    /// A role: its ARN, and what its sessions' ARNs start with
    /// (`arn:aws:sts::ACCOUNT:assumed-role/NAME/`).
    Role {
        arn: Box<str>,
        session_prefix: Box<str>,
    },
}

/// A compiled `Principal` (or `NotPrincipal`) element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principals {
    aws: Vec<AwsPrincipal>,
    services: Vec<Box<str>>,
    canonical: Vec<Box<str>>,
    /// The values as written, `(type, value)`, for messages.
    raw: Vec<(String, String)>,
}

fn strings(v: &Value) -> Result<Vec<String>, PrincipalError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or(PrincipalError::Shape))
            .collect(),
        _ => Err(PrincipalError::Shape),
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_aws(value: &str) -> Option<AwsPrincipal> {
    if value == "*" {
        return Some(AwsPrincipal::Anyone);
    }
    if is_account_id(value) {
        return Some(AwsPrincipal::Account(value.into()));
    }
    if value.contains(['*', '?']) {
        return None;
    }
    if let Some(rest) = value.strip_prefix("arn:aws:iam::") {
        let (account, resource) = rest.split_once(':')?;
        if !is_account_id(account) {
            return None;
        }
        if resource == "root" {
            return Some(AwsPrincipal::Account(account.into()));
        }
        if let Some(path_name) = resource.strip_prefix("role/") {
            let name = path_name.rsplit('/').next().filter(|n| !n.is_empty())?;
            return Some(AwsPrincipal::Role {
                arn: value.into(),
                session_prefix: format!("arn:aws:sts::{account}:assumed-role/{name}/").into(),
            });
        }
        if resource
            .strip_prefix("user/")
            .is_some_and(|n| !n.is_empty() && !n.ends_with('/'))
        {
            return Some(AwsPrincipal::Exact(value.into()));
        }
        return None;
    }
    if let Some(rest) = value.strip_prefix("arn:aws:sts::") {
        let (account, resource) = rest.split_once(':')?;
        let parts: Vec<&str> = resource.split('/').collect();
        if is_account_id(account)
            && parts.len() == 3
            && parts[0] == "assumed-role"
            && parts[1..].iter().all(|p| !p.is_empty())
        {
            return Some(AwsPrincipal::Exact(value.into()));
        }
    }
    None
}

impl Principals {
    /// Compiles a `Principal`/`NotPrincipal` element. `object_only` is the
    /// trust policies' rule that the element be an object.
    pub(crate) fn parse(element: &Value, object_only: bool) -> Result<Self, PrincipalError> {
        let mut p = Principals {
            aws: Vec::new(),
            services: Vec::new(),
            canonical: Vec::new(),
            raw: Vec::new(),
        };
        let map = match element {
            Value::String(s) if s == "*" && !object_only => {
                p.aws.push(AwsPrincipal::Anyone);
                p.raw.push(("AWS".into(), "*".into()));
                return Ok(p);
            }
            Value::String(_) if object_only => return Err(PrincipalError::NotObject),
            Value::String(s) => return Err(PrincipalError::Invalid(format!("\"{s}\""))),
            Value::Object(map) => map,
            _ => return Err(PrincipalError::Shape),
        };
        if map.is_empty() {
            return Err(PrincipalError::Empty);
        }
        for (kind, values) in map {
            let values = strings(values)?;
            if values.is_empty() {
                return Err(PrincipalError::Empty);
            }
            for v in values {
                let invalid = || PrincipalError::Invalid(format!("\"{kind}\":\"{v}\""));
                match kind.as_str() {
                    "AWS" => p.aws.push(parse_aws(&v).ok_or_else(invalid)?),
                    "Service" if !v.is_empty() && !v.contains(['*', '?']) => {
                        p.services.push(v.as_str().into())
                    }
                    "CanonicalUser" if !v.is_empty() => p.canonical.push(v.as_str().into()),
                    _ => return Err(invalid()),
                }
                p.raw.push((kind.clone(), v));
            }
        }
        Ok(p)
    }

    /// Whether the element names `caller`. `canonical_user` is the S3
    /// canonical user id of the caller's account, when the caller knows it.
    pub fn matches(&self, caller: &Caller<'_>, canonical_user: Option<&str>) -> bool {
        if self.aws.contains(&AwsPrincipal::Anyone) {
            return true;
        }
        match caller {
            Caller::Anonymous => false,
            Caller::Service(name) => self.services.iter().any(|s| &**s == *name),
            Caller::Aws { account, arn } => {
                self.aws.iter().any(|p| match p {
                    AwsPrincipal::Anyone => true,
                    AwsPrincipal::Account(a) => &**a == *account,
                    AwsPrincipal::Exact(e) => &**e == *arn,
                    AwsPrincipal::Role {
                        arn: role,
                        session_prefix,
                    } => {
                        &**role == *arn
                            || arn.strip_prefix(&**session_prefix).is_some_and(|session| {
                                !session.is_empty() && !session.contains('/')
                            })
                    }
                }) || canonical_user.is_some_and(|c| self.canonical.iter().any(|x| &**x == c))
            }
        }
    }

    /// The values as written, `(type, value)` (`("AWS", "123456789012")`).
    pub fn values(&self) -> &[(String, String)] {
        &self.raw
    }

    /// Whether the element names everyone (`"*"` or `{"AWS": "*"}`).
    pub fn is_public(&self) -> bool {
        self.aws.contains(&AwsPrincipal::Anyone)
    }

    /// The account ids the element names (accounts, and the accounts of the
    /// users, roles and sessions it names).
    pub fn accounts(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .aws
            .iter()
            .filter_map(|p| match p {
                AwsPrincipal::Anyone => None,
                AwsPrincipal::Account(a) => Some(&**a),
                AwsPrincipal::Exact(arn) | AwsPrincipal::Role { arn, .. } => arn.split(':').nth(4),
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "111122223333";
    const B: &str = "444455556666";

    fn user(account: &'static str, arn: &'static str) -> Caller<'static> {
        Caller::Aws { account, arn }
    }

    fn parse(v: Value) -> Principals {
        Principals::parse(&v, false).expect("principal parses")
    }

    #[test]
    fn star_names_everyone() {
        for p in [parse(json!("*")), parse(json!({"AWS": "*"}))] {
            assert!(p.is_public());
            assert!(p.matches(&Caller::Anonymous, None));
            assert!(p.matches(&user(A, "arn:aws:iam::111122223333:user/a"), None));
            assert!(p.matches(&Caller::Service("ec2.amazonaws.com"), None));
        }
    }

    #[test]
    fn accounts_and_root() {
        for p in [
            parse(json!({"AWS": A})),
            parse(json!({"AWS": ["arn:aws:iam::111122223333:root"]})),
        ] {
            assert!(p.matches(&user(A, "arn:aws:iam::111122223333:user/a"), None));
            assert!(p.matches(&user(A, "arn:aws:sts::111122223333:assumed-role/r/s"), None));
            assert!(!p.matches(&user(B, "arn:aws:iam::444455556666:user/a"), None));
            assert!(!p.matches(&Caller::Anonymous, None));
            assert_eq!(p.accounts(), [A]);
        }
    }

    #[test]
    fn users_roles_sessions() {
        let p = parse(
            json!({"AWS": ["arn:aws:iam::111122223333:user/dev/alice", "arn:aws:iam::444455556666:role/ops/Deploy"]}),
        );
        assert!(p.matches(&user(A, "arn:aws:iam::111122223333:user/dev/alice"), None));
        assert!(!p.matches(&user(A, "arn:aws:iam::111122223333:user/dev/bob"), None));
        assert!(p.matches(&user(B, "arn:aws:iam::444455556666:role/ops/Deploy"), None));
        assert!(p.matches(
            &user(B, "arn:aws:sts::444455556666:assumed-role/Deploy/ci-42"),
            None
        ));
        assert!(!p.matches(
            &user(B, "arn:aws:sts::444455556666:assumed-role/Deployer/ci"),
            None
        ));
        assert!(!p.matches(
            &user(A, "arn:aws:sts::111122223333:assumed-role/Deploy/ci"),
            None
        ));
        assert!(!p.matches(
            &user(B, "arn:aws:sts::444455556666:assumed-role/Deploy/"),
            None
        ));
        assert_eq!(p.accounts(), [A, B]);
        let s = parse(json!({"AWS": "arn:aws:sts::444455556666:assumed-role/Deploy/ci-42"}));
        assert!(s.matches(
            &user(B, "arn:aws:sts::444455556666:assumed-role/Deploy/ci-42"),
            None
        ));
        assert!(!s.matches(
            &user(B, "arn:aws:sts::444455556666:assumed-role/Deploy/other"),
            None
        ));
    }

    #[test]
    fn services_and_canonical_users() {
        let p = parse(json!({"Service": ["ec2.amazonaws.com"], "CanonicalUser": "abc"}));
        assert!(p.matches(&Caller::Service("ec2.amazonaws.com"), None));
        assert!(!p.matches(&Caller::Service("s3.amazonaws.com"), None));
        assert!(p.matches(&user(A, "arn:aws:iam::111122223333:root"), Some("abc")));
        assert!(!p.matches(&user(A, "arn:aws:iam::111122223333:root"), Some("abd")));
        assert_eq!(p.values().len(), 2);
    }

    #[test]
    fn refusals() {
        let err = |v: Value, object_only: bool| {
            Principals::parse(&v, object_only)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            err(json!({}), false),
            Err("Missing required field Principal cannot be empty!".into())
        );
        assert_eq!(
            err(json!({"AWS": []}), false),
            Err("Missing required field Principal cannot be empty!".into())
        );
        assert_eq!(
            err(json!("*"), true),
            Err("Principal must be a JSON object.".into())
        );
        assert_eq!(
            err(json!({"Federated": "cognito-identity.amazonaws.com"}), true),
            Err(
                "Invalid principal in policy: \"Federated\":\"cognito-identity.amazonaws.com\""
                    .into()
            )
        );
        assert_eq!(
            err(json!({"AWS": "arn:aws:iam::111122223333:user/*"}), false),
            Err("Invalid principal in policy: \"AWS\":\"arn:aws:iam::111122223333:user/*\"".into())
        );
        assert_eq!(
            err(json!({"AWS": "alice"}), false),
            Err("Invalid principal in policy: \"AWS\":\"alice\"".into())
        );
        assert_eq!(
            err(json!({"AWS": "12345"}), false),
            Err("Invalid principal in policy: \"AWS\":\"12345\"".into())
        );
        assert_eq!(
            err(json!({"AWS": 1}), false),
            Err("Syntax errors in policy.".into())
        );
        assert_eq!(
            err(json!(["*"]), false),
            Err("Syntax errors in policy.".into())
        );
        assert!(
            Principals::parse(&json!({"AWS": "arn:aws:iam::111122223333:group/g"}), false).is_err()
        );
    }
}
