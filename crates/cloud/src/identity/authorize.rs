//! Whether a caller may run an action on some resources. The account's
//! `admin` user and the cloud's administrators are always allowed; every
//! other user is allowed exactly what its inline policies and its groups'
//! allow, with an explicit Deny beating any Allow and nothing allowed by
//! default (evaluated by `mallee_policy`). Each decision about a user is
//! logged with the statement that made it, for audit.

use mallee_policy::{Caller, Context, Decision, Policy, PolicyKind, Request};
use mallee_store::Store;

use super::{
    GROUP, GroupDetails, IdentityError, Result, UserDetails, arn, decode, is_account_admin,
};
use crate::Principal;
use crate::ids;

/// Parses an identity policy (inline or managed); a document IAM would
/// refuse is `MalformedPolicyDocument` with IAM's reason.
pub fn parse_identity_policy(document: &str) -> Result<Policy> {
    Policy::parse(document, PolicyKind::Identity)
        .map_err(|e| IdentityError::MalformedPolicyDocument(e.to_string()))
}

/// One request to authorise.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    /// `service:Action` (`ec2:RunInstances`).
    pub action: &'a str,
    /// The resources; none means the action has no resource (`*`).
    pub resources: Vec<Target>,
    /// Condition keys the protocol layer knows (`aws:SourceIp`,
    /// `aws:RequestedRegion`, `ec2:ResourceTag/…`, `s3:prefix`, …); the
    /// caller's own keys are added here.
    pub context: Context,
}

/// One resource a request acts on.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Its ARN.
    pub arn: String,
    /// Condition keys of this resource alone (`ec2:ResourceTag/…`).
    pub context: Context,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Refused on `resource`; `explicit` when a Deny statement matched.
    /// `encoded` is EC2's encoded authorization message for it.
    Denied {
        /// A statement denied (rather than none allowing).
        explicit: bool,
        /// The resource that was refused.
        resource: String,
        /// EC2's opaque message (base64 of the decoded JSON).
        encoded: String,
        /// The caller's ARN, for messages.
        caller_arn: String,
    },
}

/// The user's and its groups' policies, parsed, with their labels.
struct PolicySet {
    labelled: Vec<(String, Policy)>,
}

async fn policies_of(
    store: &dyn Store,
    account_id: &str,
    details: &UserDetails,
) -> Result<PolicySet> {
    let mut labelled = Vec::new();
    for (name, document) in &details.policies {
        labelled.push((
            format!("user inline policy {name}"),
            parse_identity_policy(document)?,
        ));
    }
    for group in &details.groups {
        // A group deleted after the user joined it grants nothing.
        let Some(entity) = store.entity(account_id, GROUP, group).await? else {
            continue;
        };
        let g: GroupDetails = decode("group", &entity.details)?;
        for (name, document) in &g.policies {
            labelled.push((
                format!("group {group} inline policy {name}"),
                parse_identity_policy(document)?,
            ));
        }
    }
    Ok(PolicySet { labelled })
}

/// Decides whether `principal` may make `access`.
pub async fn check(
    store: &dyn Store,
    principal: &Principal,
    access: Access<'_>,
) -> Result<Verdict> {
    if is_account_admin(principal) {
        return Ok(Verdict::Allowed);
    }
    let account = principal.account_id();
    let Some(user) = store.user(account, &principal.user_name).await? else {
        // The user was deleted after the request was authenticated.
        return Err(IdentityError::AccessDenied(format!(
            "The user {} no longer exists.",
            principal.user_name
        )));
    };
    let details: UserDetails = decode("user", &user.details)?;
    let caller_arn = arn(account, "user", &details.path, &user.user_name);
    let mut context = access.context;
    let now = ids::now_millis();
    context
        .insert("aws:username", user.user_name.clone())
        .insert("aws:userid", user.user_id.clone())
        .insert("aws:PrincipalAccount", account)
        .insert("aws:PrincipalArn", caller_arn.clone())
        .insert("aws:PrincipalType", "User")
        .insert("aws:CurrentTime", ids::iso8601(now).replace(".000Z", "Z"))
        .insert("aws:EpochTime", (now / 1000).to_string());
    for (k, v) in &details.tags {
        context.insert(&format!("aws:PrincipalTag/{k}"), v.clone());
    }
    let set = policies_of(store, account, &details).await?;
    let star = [Target {
        arn: "*".into(),
        context: Context::new(),
    }];
    let targets: &[Target] = if access.resources.is_empty() {
        &star
    } else {
        &access.resources
    };
    for target in targets {
        let resource = &target.arn;
        let mut context = context.clone();
        for (key, values) in target.context.entries() {
            context.insert_many(key, values.iter().cloned());
        }
        let req = Request {
            action: access.action,
            resource,
            caller: Caller::Aws {
                account,
                arn: &caller_arn,
            },
            canonical_user: None,
            context: &context,
        };
        let decision: Decision<'_> =
            mallee_policy::evaluate(&req, set.labelled.iter().map(|(l, p)| (l.as_str(), p)));
        tracing::info!(
            target: "mallee::authz",
            principal = %caller_arn,
            action = access.action,
            resource = %resource,
            decision = %decision,
            "authorization"
        );
        if !decision.is_allowed() {
            let message =
                mallee_policy::AuthzMessage::new(&decision, &req, &user.user_id, &caller_arn);
            return Ok(Verdict::Denied {
                explicit: decision.is_explicit_deny(),
                resource: resource.clone(),
                encoded: message.encode(),
                caller_arn,
            });
        }
    }
    Ok(Verdict::Allowed)
}
