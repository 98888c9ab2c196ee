//! Evaluation: a [`Request`] (action, resource ARN, caller, context) against
//! a set of labelled policies gives a [`Decision`] — explicit deny beats
//! allow, and nothing allowed is an implicit deny — naming the policy and
//! statement that decided it, for audit logs.
//!
//! [`combine`] joins an identity-policy decision with a resource-policy
//! decision by AWS's cross-account rule:
//! - an explicit deny in either wins;
//! - caller and resource in the same account: either allow suffices;
//! - different accounts: both must allow (the resource policy lets the
//!   other account in, the caller's own account lets the caller out).
//!
//! S3 adds ACLs and bucket ownership to this; see [`crate::s3`].

use std::fmt;

use crate::context::Context;
use crate::document::{Effect, Policy, PolicyKind, Statement};
use crate::principal::Caller;

/// One request to authorise: one action on one resource.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `service:Action`, e.g. `ec2:RunInstances` (any case).
    pub action: &'a str,
    /// The resource ARN, or `*` for actions without a resource.
    pub resource: &'a str,
    /// Who asks (used by resource and trust policies' principals).
    pub caller: Caller<'a>,
    /// The S3 canonical user id of the caller's account, when known (for
    /// `CanonicalUser` principals).
    pub canonical_user: Option<&'a str>,
    /// Condition keys and values.
    pub context: &'a Context,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A statement allows and none denies.
    Allow,
    /// A statement denies.
    ExplicitDeny,
    /// No statement applies.
    ImplicitDeny,
}

/// The statement that decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matched<'a> {
    /// The policy's label as the caller gave it (`user inline policy P`, a
    /// managed policy ARN, `bucket policy of B`).
    pub policy: &'a str,
    /// The statement's position in its policy, from 0.
    pub index: usize,
    /// The statement itself.
    pub statement: &'a Statement,
}

impl Matched<'_> {
    /// The statement's `Sid`, or `#N` (its position from 1) when it has none.
    pub fn statement_id(&self) -> StatementId<'_> {
        StatementId {
            sid: self.statement.sid(),
            index: self.index,
        }
    }
}

/// Displays as the `Sid`, or `#N` for a statement without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementId<'a> {
    sid: Option<&'a str>,
    index: usize,
}

impl fmt::Display for StatementId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sid {
            Some(sid) if !sid.is_empty() => f.write_str(sid),
            _ => write!(f, "#{}", self.index + 1),
        }
    }
}

/// A decision and the statement behind it (none for an implicit deny).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision<'a> {
    /// Allow, explicit deny or implicit deny.
    pub verdict: Verdict,
    /// The deciding statement: the first denying one, else the first
    /// allowing one.
    pub matched: Option<Matched<'a>>,
}

impl<'a> Decision<'a> {
    /// Nothing applies.
    pub const IMPLICIT_DENY: Decision<'static> = Decision {
        verdict: Verdict::ImplicitDeny,
        matched: None,
    };

    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// Whether a statement explicitly denies.
    pub fn is_explicit_deny(&self) -> bool {
        self.verdict == Verdict::ExplicitDeny
    }

    /// An allow granted outside any policy (the account's `admin` user, the
    /// cloud's administrators, an S3 ACL): `verdict` Allow, no statement.
    pub fn allow_without_statement() -> Decision<'static> {
        Decision {
            verdict: Verdict::Allow,
            matched: None,
        }
    }
}

/// Displays `allowed by P statement S`, `denied by P statement S` or
/// `implicitly denied`, for logs.
impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.verdict {
            Verdict::Allow => "allowed",
            Verdict::ExplicitDeny => "denied",
            Verdict::ImplicitDeny => return f.write_str("implicitly denied"),
        };
        match &self.matched {
            Some(m) => write!(f, "{word} by {} statement {}", m.policy, m.statement_id()),
            None => f.write_str(word),
        }
    }
}

impl Statement {
    /// Whether the statement applies to `req` (its effect aside).
    pub fn applies(&self, req: &Request<'_>) -> bool {
        if let Some((principals, not)) = &self.principal
            && principals.matches(&req.caller, req.canonical_user) == *not
        {
            return false;
        }
        let action = self
            .actions
            .iter()
            .any(|a| a.matches(req.action, req.context));
        if action == self.not_action {
            return false;
        }
        if let Some(resources) = &self.resources {
            let resource = resources
                .iter()
                .any(|r| r.matches(req.resource, req.context));
            if resource == self.not_resource {
                return false;
            }
        }
        self.conditions.holds(req.context)
    }
}

/// Evaluates `req` against every `(label, policy)`: the first statement that
/// denies decides at once; otherwise the first that allows; otherwise an
/// implicit deny.
pub fn evaluate<'a, I>(req: &Request<'_>, policies: I) -> Decision<'a>
where
    I: IntoIterator<Item = (&'a str, &'a Policy)>,
{
    let mut allow: Option<Matched<'a>> = None;
    for (label, policy) in policies {
        for (index, statement) in policy.statements.iter().enumerate() {
            // An allow found already cannot be beaten by another allow.
            if statement.effect == Effect::Allow && allow.is_some() {
                continue;
            }
            if !statement.applies(req) {
                continue;
            }
            let matched = Matched {
                policy: label,
                index,
                statement,
            };
            match statement.effect {
                Effect::Deny => {
                    return Decision {
                        verdict: Verdict::ExplicitDeny,
                        matched: Some(matched),
                    };
                }
                Effect::Allow => allow = Some(matched),
            }
        }
    }
    match allow {
        Some(m) => Decision {
            verdict: Verdict::Allow,
            matched: Some(m),
        },
        None => Decision::IMPLICIT_DENY,
    }
}

/// Evaluates one policy, under `label`.
pub fn evaluate_one<'a>(req: &Request<'_>, label: &'a str, policy: &'a Policy) -> Decision<'a> {
    evaluate(req, [(label, policy)])
}

/// Whether a role's trust policy lets `req.caller` perform `req.action`
/// (`sts:AssumeRole`) — the resource is the role and is not matched.
pub fn trust_allows(req: &Request<'_>, trust: &Policy) -> bool {
    trust.kind() == PolicyKind::Trust && evaluate_one(req, "trust policy", trust).is_allowed()
}

/// Joins the caller's identity-policy decision with the resource policy's
/// by the cross-account rule in this module's documentation.
/// `same_account` is whether the caller's account owns the resource.
pub fn combine<'a>(
    identity: Decision<'a>,
    resource: Decision<'a>,
    same_account: bool,
) -> Decision<'a> {
    if identity.is_explicit_deny() {
        return identity;
    }
    if resource.is_explicit_deny() {
        return resource;
    }
    match (identity.is_allowed(), resource.is_allowed()) {
        (true, true) => resource,
        (true, false) if same_account => identity,
        (false, true) if same_account => resource,
        _ => Decision::IMPLICIT_DENY,
    }
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
