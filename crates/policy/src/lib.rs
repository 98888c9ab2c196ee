//! mallee's IAM policy engine, knowing nothing of HTTP, XML or storage.
//!
//! Parse a document once with [`Policy::parse`] (identity, resource or
//! trust policy), keep the compiled [`Policy`], and evaluate each request
//! with [`evaluate`]: explicit deny beats allow, and the default is deny.
//! The [`Decision`] names the policy (by the label the caller gave) and the
//! statement that decided, for audit logs. [`combine`] applies the
//! cross-account rule between identity and resource policies, [`s3`] S3's
//! rule with ACLs and bucket ownership, and [`authz_message`] EC2's encoded
//! authorization failure message.

pub mod authz_message;
pub mod condition;
pub mod context;
pub mod document;
pub mod evaluate;
mod matching;
pub mod principal;
pub mod s3;

pub use authz_message::{AuthzMessage, AuthzMessageError, unauthorized_operation_message};
pub use condition::{ConditionError, Conditions};
pub use context::Context;
pub use document::{
    Effect, Policy, PolicyError, PolicyKind, SizeError, SizeLimit, Statement, Version, check_size,
    policy_size,
};
pub use evaluate::{
    Decision, Matched, Request, StatementId, Verdict, combine, evaluate, evaluate_one, trust_allows,
};
pub use principal::{Caller, PrincipalError, Principals};
