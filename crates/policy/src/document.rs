//! Policy documents: the IAM JSON grammar (`Version`, `Id`, `Statement` as
//! an object or a list; `Sid`, `Effect`, `Action`/`NotAction`,
//! `Resource`/`NotResource`, `Principal`/`NotPrincipal`, `Condition`),
//! parsed once into a compiled [`Policy`] for one [`PolicyKind`], and the
//! size quotas IAM puts on them.
//!
//! A refused document gives a [`PolicyError`] whose message is the reason
//! AWS returns with `MalformedPolicyDocument` (IAM) or `MalformedPolicy`
//! (S3); trust policies have IAM's own wording for several of them.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::condition::{ConditionError, Conditions};
use crate::matching::{ActionPattern, ArnPattern};
use crate::principal::{PrincipalError, Principals};

/// Which policy a document is, which decides what it may and must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user, group or role (inline or managed): no principal,
    /// resources required.
    Identity,
    /// Attached to a resource (an S3 bucket policy): a principal required.
    Resource,
    /// A role's trust (assume-role) policy: a principal required, only
    /// `sts:AssumeRole…` actions, no resources.
    Trust,
}

/// The policy language version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `2008-10-17`, also what a document without `Version` means: no
    /// policy variables.
    V2008_10_17,
    /// `2012-10-17`: policy variables.
    V2012_10_17,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The statement grants.
    Allow,
    /// The statement refuses, whatever else grants.
    Deny,
}

/// Why a policy document was refused. The message is AWS's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON, an unknown element, a value of the wrong type, or two
    /// exclusive elements together (`Action` and `NotAction`).
    #[error("Syntax errors in policy.")]
    Syntax,
    /// A trust policy that is not JSON.
    #[error("This policy contains invalid Json")]
    InvalidJson,
    /// A trust policy's `Version` is not one IAM knows.
    #[error("The policy must contain a valid version string")]
    InvalidVersion,
    /// [`Policy::require_version_2012`]: managed policies must be 2012-10-17.
    #[error("Policy document must be version 2012-10-17 or greater.")]
    VersionTooOld,
    /// A trust policy with `"Statement": []`.
    #[error("Could not parse the policy: Statement is empty!")]
    EmptyStatement,
    /// Two statements share a `Sid`.
    #[error("Statement IDs (SID) in a single policy must be unique.")]
    DuplicateSid,
    /// Two statements of a trust policy share a `Sid`.
    #[error("The Statement Ids in the policy are not unique")]
    DuplicateSidTrust,
    /// A resource or trust policy statement without `Effect`.
    #[error("Missing required field Effect")]
    MissingEffect,
    /// An `Effect` other than `Allow` or `Deny` (resource and trust).
    #[error("Invalid effect: {0}")]
    InvalidEffect(String),
    /// `Effect` written in another case (`allow`).
    #[error("The policy failed legacy parsing")]
    LegacyParsing,
    /// An identity policy statement without `Action`/`NotAction`.
    #[error("Policy statement must contain actions.")]
    MissingActions,
    /// A resource or trust policy statement without `Action`/`NotAction`.
    #[error("Missing required field Action")]
    MissingAction,
    /// An identity policy statement without `Resource`/`NotResource`.
    #[error("Policy statement must contain resources.")]
    MissingResources,
    /// A resource policy statement without `Resource`/`NotResource`.
    #[error("Missing required field Resource")]
    MissingResource,
    /// `Principal` or `NotPrincipal` in an identity policy.
    #[error("Policy document should not specify a principal.")]
    PrincipalNotAllowed,
    /// A resource or trust policy statement without a principal.
    #[error("Missing required field Principal")]
    MissingPrincipal,
    /// `NotPrincipal` with `Allow` in a trust policy.
    #[error("Allow with NotPrincipal is not allowed.")]
    AllowWithNotPrincipal,
    /// `NotPrincipal` with `Deny` in a trust policy.
    #[error("AssumeRole policy must not contain NotPrincipal field.")]
    TrustNotPrincipal,
    /// A trust policy action outside `sts:AssumeRole…`.
    #[error("AssumeRole policy may only specify STS AssumeRole actions.")]
    TrustAction,
    /// `Resource` in a trust policy.
    #[error("Has prohibited field Resource")]
    TrustResource,
    /// `NotResource` in a trust policy.
    #[error("AssumeRole policy must not contain resources.")]
    TrustNotResource,
    /// An action without its `vendor:` prefix.
    #[error("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")]
    MissingVendor,
    /// An action with more than one colon.
    #[error("Actions/Condition can contain only one colon.")]
    ActionColons,
    /// An action whose vendor has characters other than letters, digits,
    /// `-` and `.`.
    #[error("Vendor {0} is not valid")]
    InvalidVendor(String),
    /// A resource that is neither `*` nor an ARN.
    #[error("Resource {0} must be in ARN format or \"*\".")]
    ResourceNotArn(String),
    /// A resource ARN whose service is empty or a wildcard.
    #[error("Resource vendor must be fully qualified and cannot contain regexes.")]
    ResourceVendor,
    /// The `Principal` element was refused.
    #[error(transparent)]
    Principal(#[from] PrincipalError),
    /// The `Condition` element was refused.
    #[error(transparent)]
    Condition(#[from] ConditionError),
}

/// One compiled statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    /// The principal element and whether it is `NotPrincipal`.
    pub(crate) principal: Option<(Principals, bool)>,
    pub(crate) actions: Box<[ActionPattern]>,
    pub(crate) not_action: bool,
    /// `None`: no resource element (trust policies) — any resource.
    pub(crate) resources: Option<Box<[ArnPattern]>>,
    pub(crate) not_resource: bool,
    pub(crate) conditions: Conditions,
    raw_actions: Vec<String>,
    raw_resources: Vec<String>,
}

impl Statement {
    /// The statement's `Sid`, if it has one.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// `Allow` or `Deny`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The actions as written, and whether they are `NotAction`.
    pub fn actions(&self) -> (&[String], bool) {
        (&self.raw_actions, self.not_action)
    }

    /// The resources as written, and whether they are `NotResource`
    /// (empty for a trust policy).
    pub fn resources(&self) -> (&[String], bool) {
        (&self.raw_resources, self.not_resource)
    }

    /// The principal element, and whether it is `NotPrincipal`.
    pub fn principal(&self) -> Option<(&Principals, bool)> {
        self.principal.as_ref().map(|(p, not)| (p, *not))
    }

    /// The compiled `Condition` element.
    pub fn conditions(&self) -> &Conditions {
        &self.conditions
    }
}

/// A parsed, compiled policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    kind: PolicyKind,
    version: Version,
    id: Option<String>,
    pub(crate) statements: Vec<Statement>,
}

impl Policy {
    /// Parses and compiles `text` as a policy of `kind`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let syntax = || {
            if kind == PolicyKind::Trust {
                PolicyError::InvalidJson
            } else {
                PolicyError::Syntax
            }
        };
        let doc: Value = serde_json::from_str(text).map_err(|_| syntax())?;
        let Value::Object(doc) = doc else {
            return Err(syntax());
        };
        if doc
            .keys()
            .any(|k| !matches!(k.as_str(), "Version" | "Id" | "Statement"))
        {
            return Err(PolicyError::Syntax);
        }
        let version = match doc.get("Version") {
            None => Version::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => Version::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => Version::V2008_10_17,
            Some(_) if kind == PolicyKind::Trust => return Err(PolicyError::InvalidVersion),
            Some(_) => return Err(PolicyError::Syntax),
        };
        let id = match doc.get("Id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(PolicyError::Syntax),
        };
        let raw_statements: Vec<&Value> = match doc.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(PolicyError::Syntax),
        };
        if raw_statements.is_empty() {
            return Err(if kind == PolicyKind::Trust {
                PolicyError::EmptyStatement
            } else {
                PolicyError::Syntax
            });
        }
        let mut statements = Vec::with_capacity(raw_statements.len());
        let mut sids = HashSet::new();
        for raw in raw_statements {
            let Value::Object(st) = raw else {
                return Err(PolicyError::Syntax);
            };
            let statement = parse_statement(st, kind, version)?;
            if let Some(sid) = statement.sid.as_deref().filter(|s| !s.is_empty())
                && !sids.insert(sid.to_owned())
            {
                return Err(if kind == PolicyKind::Trust {
                    PolicyError::DuplicateSidTrust
                } else {
                    PolicyError::DuplicateSid
                });
            }
            statements.push(statement);
        }
        Ok(Policy {
            kind,
            version,
            id,
            statements,
        })
    }

    /// The kind the document was parsed as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The language version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The `Id` element.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// IAM's rule for managed policies (CreatePolicy,
    /// CreatePolicyVersion): the document must say `2012-10-17`.
    pub fn require_version_2012(&self) -> Result<(), PolicyError> {
        match self.version {
            Version::V2012_10_17 => Ok(()),
            Version::V2008_10_17 => Err(PolicyError::VersionTooOld),
        }
    }
}

const STATEMENT_KEYS: [&str; 9] = [
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
];

/// A string or a list of strings; `None` for any other JSON.
fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// Which of two exclusive elements is present: `(values, is_the_not_form)`.
fn one_of(
    st: &Map<String, Value>,
    name: &str,
    not_name: &str,
) -> Result<Option<(Vec<String>, bool)>, PolicyError> {
    match (st.get(name), st.get(not_name)) {
        (Some(_), Some(_)) => Err(PolicyError::Syntax),
        (Some(v), None) => Ok(Some((string_list(v).ok_or(PolicyError::Syntax)?, false))),
        (None, Some(v)) => Ok(Some((string_list(v).ok_or(PolicyError::Syntax)?, true))),
        (None, None) => Ok(None),
    }
}

fn parse_statement(
    st: &Map<String, Value>,
    kind: PolicyKind,
    version: Version,
) -> Result<Statement, PolicyError> {
    if st.keys().any(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
        return Err(PolicyError::Syntax);
    }
    let sid = match st.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(PolicyError::Syntax),
    };
    let effect = parse_effect(st.get("Effect"), kind)?;

    let principal = match (st.get("Principal"), st.get("NotPrincipal")) {
        (None, None) if kind == PolicyKind::Identity => None,
        (_, _) if kind == PolicyKind::Identity => return Err(PolicyError::PrincipalNotAllowed),
        (Some(_), Some(_)) => return Err(PolicyError::Syntax),
        (None, None) => return Err(PolicyError::MissingPrincipal),
        (_, Some(_)) if kind == PolicyKind::Trust => {
            return Err(match effect {
                Effect::Allow => PolicyError::AllowWithNotPrincipal,
                Effect::Deny => PolicyError::TrustNotPrincipal,
            });
        }
        (Some(p), None) => Some((Principals::parse(p, kind == PolicyKind::Trust)?, false)),
        (None, Some(p)) => Some((Principals::parse(p, false)?, true)),
    };

    let (raw_actions, not_action) = match one_of(st, "Action", "NotAction")? {
        Some((a, not)) if !a.is_empty() => (a, not),
        _ if kind == PolicyKind::Identity => return Err(PolicyError::MissingActions),
        _ => return Err(PolicyError::MissingAction),
    };
    for a in &raw_actions {
        check_action(a)?;
        if kind == PolicyKind::Trust && !is_trust_action(a) {
            return Err(PolicyError::TrustAction);
        }
    }

    let resource_element = one_of(st, "Resource", "NotResource")?;
    let (raw_resources, not_resource) = match (kind, resource_element) {
        (PolicyKind::Trust, Some((_, false))) => return Err(PolicyError::TrustResource),
        (PolicyKind::Trust, Some((_, true))) => return Err(PolicyError::TrustNotResource),
        (PolicyKind::Trust, None) => (Vec::new(), false),
        (_, Some((r, not))) if !r.is_empty() => (r, not),
        (PolicyKind::Identity, _) => return Err(PolicyError::MissingResources),
        (PolicyKind::Resource, _) => return Err(PolicyError::MissingResource),
    };
    for r in &raw_resources {
        check_resource(r)?;
    }

    let variables = version == Version::V2012_10_17;
    let conditions = match st.get("Condition") {
        None => Conditions::default(),
        Some(c) => Conditions::parse(c, variables)?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        actions: raw_actions
            .iter()
            .map(|a| ActionPattern::compile(a))
            .collect(),
        not_action,
        resources: (kind != PolicyKind::Trust).then(|| {
            raw_resources
                .iter()
                .map(|r| ArnPattern::compile(r, variables))
                .collect()
        }),
        not_resource,
        conditions,
        raw_actions,
        raw_resources,
    })
}

fn parse_effect(v: Option<&Value>, kind: PolicyKind) -> Result<Effect, PolicyError> {
    match v {
        Some(Value::String(s)) if s == "Allow" => Ok(Effect::Allow),
        Some(Value::String(s)) if s == "Deny" => Ok(Effect::Deny),
        Some(Value::String(s)) if kind != PolicyKind::Identity => {
            Err(PolicyError::InvalidEffect(s.clone()))
        }
        Some(Value::String(s))
            if s.eq_ignore_ascii_case("allow") || s.eq_ignore_ascii_case("deny") =>
        {
            Err(PolicyError::LegacyParsing)
        }
        None if kind != PolicyKind::Identity => Err(PolicyError::MissingEffect),
        Some(other) if kind != PolicyKind::Identity => {
            Err(PolicyError::InvalidEffect(other.to_string()))
        }
        _ => Err(PolicyError::Syntax),
    }
}

/// `*` or `vendor:Name` (the name may hold wildcards).
fn check_action(action: &str) -> Result<(), PolicyError> {
    if action == "*" {
        return Ok(());
    }
    let mut parts = action.split(':');
    let vendor = parts.next().unwrap_or_default();
    match (parts.next(), parts.next()) {
        (None, _) => Err(PolicyError::MissingVendor),
        (Some(_), Some(_)) => Err(PolicyError::ActionColons),
        (Some(_), None) => {
            if vendor.is_empty()
                || !vendor
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                Err(PolicyError::InvalidVendor(vendor.to_owned()))
            } else {
                Ok(())
            }
        }
    }
}

/// The actions a trust policy may name.
const TRUST_ACTIONS: [&str; 6] = [
    "sts:assumerole",
    "sts:assumerolewithsaml",
    "sts:assumerolewithwebidentity",
    "sts:tagsession",
    "sts:setsourceidentity",
    "sts:setcontext",
];

fn is_trust_action(action: &str) -> bool {
    let lower = action.to_ascii_lowercase();
    lower.starts_with("sts:") && {
        let p = ActionPattern::compile(&lower);
        let ctx = crate::context::Context::new();
        TRUST_ACTIONS.iter().any(|a| p.matches(a, &ctx))
    }
}

/// `*` or an ARN with a named service.
fn check_resource(resource: &str) -> Result<(), PolicyError> {
    if resource == "*" {
        return Ok(());
    }
    if !resource.contains(':') {
        return Err(PolicyError::ResourceNotArn(resource.to_owned()));
    }
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    if parts.len() < 6 && !parts.last().is_some_and(|p| p.ends_with('*')) {
        return Err(PolicyError::LegacyParsing);
    }
    match parts.get(2) {
        Some(service) if !service.is_empty() && !service.contains(['*', '?']) => Ok(()),
        _ => Err(PolicyError::ResourceVendor),
    }
}

/// The size quotas IAM puts on policy documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit<'a> {
    /// A managed policy version: 6,144 characters.
    Managed,
    /// All inline policies of the named user together: 2,048.
    UserInline(&'a str),
    /// All inline policies of the named group together: 5,120.
    GroupInline(&'a str),
    /// All inline policies of the named role together: 10,240.
    RoleInline(&'a str),
    /// A role's trust policy (quota `ACLSizePerRole`): 2,048.
    Trust,
}

impl SizeLimit<'_> {
    /// The limit in characters (white space not counted).
    pub fn max(&self) -> usize {
        match self {
            SizeLimit::Managed => 6144,
            SizeLimit::UserInline(_) | SizeLimit::Trust => 2048,
            SizeLimit::GroupInline(_) => 5120,
            SizeLimit::RoleInline(_) => 10240,
        }
    }
}

/// A document over its quota (IAM answers `LimitExceeded`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// A single document over a named quota.
    #[error("Cannot exceed quota for {quota}: {max}")]
    Quota {
        /// `PolicySize` or `ACLSizePerRole`.
        quota: &'static str,
        /// The limit.
        max: usize,
    },
    /// An entity's inline policies over their total.
    #[error("Maximum policy size of {max} bytes exceeded for {entity} {name}")]
    Inline {
        /// `user`, `group` or `role`.
        entity: &'static str,
        /// The entity's name.
        name: String,
        /// The limit.
        max: usize,
    },
}

/// A document's size as IAM counts it: characters other than white space.
pub fn policy_size(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// Checks `size` (from [`policy_size`], summed over an entity's inline
/// policies for the inline limits) against `limit`.
pub fn check_size(size: usize, limit: SizeLimit<'_>) -> Result<(), SizeError> {
    let max = limit.max();
    if size <= max {
        return Ok(());
    }
    Err(match limit {
        SizeLimit::Managed => SizeError::Quota {
            quota: "PolicySize",
            max,
        },
        SizeLimit::Trust => SizeError::Quota {
            quota: "ACLSizePerRole",
            max,
        },
        SizeLimit::UserInline(name) => SizeError::Inline {
            entity: "user",
            name: name.to_owned(),
            max,
        },
        SizeLimit::GroupInline(name) => SizeError::Inline {
            entity: "group",
            name: name.to_owned(),
            max,
        },
        SizeLimit::RoleInline(name) => SizeError::Inline {
            entity: "role",
            name: name.to_owned(),
            max,
        },
    })
}

#[cfg(test)]
#[path = "document_tests.rs"]
mod tests;
