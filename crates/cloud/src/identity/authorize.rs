//! Whether a caller may run an action on some resources. The account's
//! `admin` user and the cloud's administrators are always allowed; every
//! other user is allowed exactly what its inline policies and its groups'
//! allow, with an explicit Deny beating any Allow and nothing allowed by
//! default (evaluated by `mallee_policy`). Each decision about a user is
//! logged with the statement that made it, for audit.

use std::collections::{BTreeMap, BTreeSet};

use mallee_policy::{Caller, Context, Decision, Policy, PolicyKind, Request};
use mallee_store::Store;

use super::{
    GROUP, GroupDetails, IdentityError, ROLE, Result, RoleDetails, UserDetails, arn, decode,
    is_account_admin, managed,
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

impl PolicySet {
    /// Adds inline policies under `label_prefix`, and the default versions
    /// of the attached managed policies.
    async fn add(
        &mut self,
        store: &dyn Store,
        account_id: &str,
        label_prefix: &str,
        inline: &BTreeMap<String, String>,
        attached: &BTreeSet<String>,
    ) -> Result<()> {
        for (name, document) in inline {
            self.labelled.push((
                format!("{label_prefix}inline policy {name}"),
                parse_identity_policy(document)?,
            ));
        }
        for (policy_arn, document) in managed::documents(store, account_id, attached).await? {
            self.labelled
                .push((policy_arn, parse_identity_policy(&document)?));
        }
        Ok(())
    }
}

/// A user's policies and its groups'.
async fn policies_of(
    store: &dyn Store,
    account_id: &str,
    details: &UserDetails,
) -> Result<PolicySet> {
    let mut set = PolicySet {
        labelled: Vec::new(),
    };
    set.add(
        store,
        account_id,
        "user ",
        &details.policies,
        &details.attached,
    )
    .await?;
    for group in &details.groups {
        // A group deleted after the user joined it grants nothing.
        let Some(entity) = store.entity(account_id, GROUP, group).await? else {
            continue;
        };
        let g: GroupDetails = decode("group", &entity.details)?;
        set.add(
            store,
            account_id,
            &format!("group {group} "),
            &g.policies,
            &g.attached,
        )
        .await?;
    }
    Ok(set)
}

/// A caller with everything needed to decide its requests: its ARN, its
/// condition keys and its policies, loaded once per request.
pub struct CallerIdentity {
    /// Always allowed in its account (the account's `admin` user).
    admin: bool,
    arn: String,
    user_id: String,
    account: String,
    context: Context,
    policies: PolicySet,
}

impl std::fmt::Debug for CallerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerIdentity")
            .field("arn", &self.arn)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// What a caller's identity policies say about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityDecision {
    /// Allow, explicit deny or implicit deny.
    pub verdict: mallee_policy::Verdict,
    /// EC2's encoded authorization message when not allowed.
    pub encoded: Option<String>,
}

impl CallerIdentity {
    /// Loads the caller's policies and condition keys: a user's own and
    /// its groups', or for a role session the role's.
    pub async fn load(store: &dyn Store, principal: &Principal) -> Result<Self> {
        if let (Some(role), Some(session)) = (principal.role(), &principal.session) {
            return Self::load_role_session(store, principal, role, &session.session_name).await;
        }
        let account = principal.account_id().to_owned();
        let Some(user) = store.user(&account, &principal.user_name).await? else {
            // The user was deleted after the request was authenticated.
            return Err(IdentityError::AccessDenied(format!(
                "The user {} no longer exists.",
                principal.user_name
            )));
        };
        let details: UserDetails = decode("user", &user.details)?;
        let caller_arn = arn(&account, "user", &details.path, &user.user_name);
        let mut context = base_context(&account, &caller_arn, "User", &user.user_id, &details.tags);
        context.insert("aws:username", user.user_name.clone());
        let admin = is_account_admin(principal);
        let policies = if admin {
            PolicySet {
                labelled: Vec::new(),
            }
        } else {
            policies_of(store, &account, &details).await?
        };
        Ok(Self {
            admin,
            arn: caller_arn,
            user_id: user.user_id,
            account,
            context,
            policies,
        })
    }

    async fn load_role_session(
        store: &dyn Store,
        principal: &Principal,
        role: &str,
        session_name: &str,
    ) -> Result<Self> {
        let account = principal.account_id().to_owned();
        // A deleted role's sessions stop working at once.
        let Some(entity) = store.entity(&account, ROLE, role).await? else {
            return Err(IdentityError::AccessDenied(format!(
                "The role {role} no longer exists."
            )));
        };
        let details: RoleDetails = decode(ROLE, &entity.details)?;
        let caller_arn = assumed_role_arn(&account, role, session_name);
        let user_id = format!("{}:{session_name}", entity.entity_id);
        let context = base_context(
            &account,
            &caller_arn,
            "AssumedRole",
            &user_id,
            &details.tags,
        );
        let mut policies = PolicySet {
            labelled: Vec::new(),
        };
        policies
            .add(
                store,
                &account,
                &format!("role {role} "),
                &details.policies,
                &details.attached,
            )
            .await?;
        Ok(Self {
            admin: false,
            arn: caller_arn,
            user_id,
            account,
            context,
            policies,
        })
    }

    /// The caller's own condition keys (`aws:username`, `aws:userid`,
    /// `aws:PrincipalAccount`, `aws:PrincipalArn`, `aws:PrincipalType`,
    /// `aws:PrincipalTag/…`, `aws:CurrentTime`, `aws:EpochTime`), for
    /// resource policies that judge the caller.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The caller's unique id (`AIDA…`, or `AROA…:SESSION`).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The caller's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Whether the caller is its account's `admin` user, allowed
    /// everything in its account without a policy.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// What the caller's identity policies say about `action` on `target`
    /// with the request's `context` (the caller's own keys are added).
    pub fn decide(&self, action: &str, target: &Target, context: &Context) -> IdentityDecision {
        if self.admin {
            return IdentityDecision {
                verdict: mallee_policy::Verdict::Allow,
                encoded: None,
            };
        }
        let mut merged = self.context.clone();
        let now = ids::now_millis();
        merged
            .insert("aws:CurrentTime", ids::iso8601(now).replace(".000Z", "Z"))
            .insert("aws:EpochTime", (now / 1000).to_string());
        for ctx in [context, &target.context] {
            for (key, values) in ctx.entries() {
                merged.insert_many(key, values.iter().cloned());
            }
        }
        let req = Request {
            action,
            resource: &target.arn,
            caller: Caller::Aws {
                account: &self.account,
                arn: &self.arn,
            },
            canonical_user: None,
            context: &merged,
        };
        let decision: Decision<'_> = mallee_policy::evaluate(
            &req,
            self.policies.labelled.iter().map(|(l, p)| (l.as_str(), p)),
        );
        tracing::info!(
            target: "mallee::authz",
            principal = %self.arn,
            action,
            resource = %target.arn,
            decision = %decision,
            "authorization"
        );
        let encoded = (!decision.is_allowed()).then(|| {
            mallee_policy::AuthzMessage::new(&decision, &req, &self.user_id, &self.arn).encode()
        });
        IdentityDecision {
            verdict: decision.verdict,
            encoded,
        }
    }
}

/// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
pub fn assumed_role_arn(account_id: &str, role: &str, session_name: &str) -> String {
    format!("arn:aws:sts::{account_id}:assumed-role/{role}/{session_name}")
}

/// The global condition keys every caller has.
fn base_context(
    account: &str,
    caller_arn: &str,
    kind: &str,
    user_id: &str,
    tags: &BTreeMap<String, String>,
) -> Context {
    let mut context = Context::new();
    context
        .insert("aws:userid", user_id)
        .insert("aws:PrincipalAccount", account)
        .insert("aws:PrincipalArn", caller_arn)
        .insert("aws:PrincipalType", kind);
    for (k, v) in tags {
        context.insert(&format!("aws:PrincipalTag/{k}"), v.clone());
    }
    context
}

/// Decides whether `principal` may make `access` by its identity policies
/// alone (every service but S3, whose resources carry their own).
pub async fn check(
    cloud: &crate::Cloud,
    principal: &Principal,
    access: Access<'_>,
) -> Result<Verdict> {
    if is_account_admin(principal) {
        return Ok(Verdict::Allowed);
    }
    let identity = cloud.identities.caller(&*cloud.store, principal).await?;
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
        let decision = identity.decide(access.action, target, &access.context);
        if decision.verdict != mallee_policy::Verdict::Allow {
            return Ok(Verdict::Denied {
                explicit: decision.verdict == mallee_policy::Verdict::ExplicitDeny,
                resource: target.arn.clone(),
                encoded: cloud.authz_seal.seal(&decision.encoded.unwrap_or_default()),
                caller_arn: identity.arn.clone(),
            });
        }
    }
    Ok(Verdict::Allowed)
}
