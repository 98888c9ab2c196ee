//! EC2's encoded authorization failure message: the opaque string EC2 puts
//! after "Encoded authorization failure message:" in `UnauthorizedOperation`,
//! and its decoded form, the JSON document `sts:DecodeAuthorizationMessage`
//! returns (`allowed`, `explicitDeny`, `matchedStatements`, `failures`,
//! `context` with `principal`, `action`, `resource` and `conditions`, lists
//! wrapped in `{"items": […]}` as AWS writes them).
//!
//! [`AuthzMessage::encode`] is unpadded base64url of the JSON; the cloud
//! seals that (AES-256-GCM, `mallee_cloud::identity::authz_seal`) before it
//! leaves, as AWS encrypts the message, and only
//! `sts:DecodeAuthorizationMessage` opens it again.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::document::Effect;
use crate::evaluate::{Decision, Request, Verdict};

/// Why an encoded message could not be read (STS answers
/// `InvalidAuthorizationMessageException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzMessageError {
    /// Not base64url, or not the JSON document this module writes.
    #[error("The encoded authorization message is invalid.")]
    Invalid,
}

/// `{"items": […]}`, AWS's list wrapper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Items<T> {
    /// The list.
    pub items: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items { items: Vec::new() }
    }
}

impl<T> From<Vec<T>> for Items<T> {
    fn from(items: Vec<T>) -> Self {
        Items { items }
    }
}

/// `{"value": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// The text.
    pub value: String,
}

fn values<'a>(texts: impl IntoIterator<Item = &'a String>) -> Items<Value> {
    texts
        .into_iter()
        .map(|v| Value { value: v.clone() })
        .collect::<Vec<_>>()
        .into()
}

/// A statement that matched the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedStatement {
    /// The `Sid` (or `#N`), prefixed by the policy's label.
    pub statement_id: String,
    /// `ALLOW` or `DENY`.
    pub effect: String,
    /// Principals the statement names (resource policies).
    pub principals: Items<Value>,
    /// Always empty here (AWS lists group principals).
    pub principal_groups: Items<Value>,
    /// The statement's actions (`NotAction` ones prefixed `!`).
    pub actions: Items<Value>,
    /// The statement's resources (`NotResource` ones prefixed `!`).
    pub resources: Items<Value>,
    /// Always empty here: conditions are not rendered.
    pub conditions: Items<Value>,
}

/// The caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The unique id (`AIDA…`, or `AROA…:session`).
    pub id: String,
    /// The ARN.
    pub arn: String,
}

/// One context key and its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEntry {
    /// The key as the service gave it.
    pub key: String,
    /// Its values.
    pub values: Items<Value>,
}

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContext {
    /// Who asked.
    pub principal: Principal,
    /// The action (`ec2:RunInstances`).
    pub action: String,
    /// The resource ARN.
    pub resource: String,
    /// The request's condition keys.
    pub conditions: Items<ContextEntry>,
}

/// The decoded message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzMessage {
    /// Whether the request was allowed (false in every message EC2 sends).
    pub allowed: bool,
    /// Whether a statement denied it explicitly.
    pub explicit_deny: bool,
    /// The deciding statement, if any.
    pub matched_statements: Items<MatchedStatement>,
    /// Always empty here.
    pub failures: Items<Value>,
    /// The request.
    pub context: MessageContext,
}

impl AuthzMessage {
    /// The message for `decision` on `req`; `principal_id` is the caller's
    /// unique id and `principal_arn` its ARN.
    pub fn new(
        decision: &Decision<'_>,
        req: &Request<'_>,
        principal_id: &str,
        principal_arn: &str,
    ) -> Self {
        let matched = decision
            .matched
            .iter()
            .map(|m| {
                let st = m.statement;
                let (actions, not_action) = st.actions();
                let (resources, not_resource) = st.resources();
                let marked = |items: &[String], not: bool| {
                    items
                        .iter()
                        .map(|v| Value {
                            value: if not { format!("!{v}") } else { v.clone() },
                        })
                        .collect::<Vec<_>>()
                        .into()
                };
                MatchedStatement {
                    statement_id: format!("{}: {}", m.policy, m.statement_id()),
                    effect: match st.effect() {
                        Effect::Allow => "ALLOW",
                        Effect::Deny => "DENY",
                    }
                    .to_owned(),
                    principals: st
                        .principal()
                        .map(|(p, _)| values(p.values().iter().map(|(_, v)| v)))
                        .unwrap_or_default(),
                    principal_groups: Items::default(),
                    actions: marked(actions, not_action),
                    resources: marked(resources, not_resource),
                    conditions: Items::default(),
                }
            })
            .collect::<Vec<_>>();
        AuthzMessage {
            allowed: decision.verdict == Verdict::Allow,
            explicit_deny: decision.verdict == Verdict::ExplicitDeny,
            matched_statements: matched.into(),
            failures: Items::default(),
            context: MessageContext {
                principal: Principal {
                    id: principal_id.to_owned(),
                    arn: principal_arn.to_owned(),
                },
                action: req.action.to_owned(),
                resource: req.resource.to_owned(),
                conditions: req
                    .context
                    .entries()
                    .into_iter()
                    .map(|(key, vals)| ContextEntry {
                        key: key.to_owned(),
                        values: values(vals),
                    })
                    .collect::<Vec<_>>()
                    .into(),
            },
        }
    }

    /// The decoded form: the JSON `DecodeAuthorizationMessage` returns.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The opaque encoded form.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.to_json())
    }

    /// Reads an encoded message back.
    pub fn decode(encoded: &str) -> Result<Self, AuthzMessageError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded.trim())
            .map_err(|_| AuthzMessageError::Invalid)?;
        serde_json::from_slice(&bytes).map_err(|_| AuthzMessageError::Invalid)
    }
}

/// EC2's `UnauthorizedOperation` message carrying `encoded`.
pub fn unauthorized_operation_message(encoded: &str) -> String {
    format!(
        "You are not authorized to perform this operation. Encoded authorization failure message: {encoded}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::document::{Policy, PolicyKind};
    use crate::evaluate::evaluate_one;
    use crate::principal::Caller;

    fn request<'a>(ctx: &'a Context) -> Request<'a> {
        Request {
            action: "ec2:RunInstances",
            resource: "arn:aws:ec2:eu-1:111122223333:instance/*",
            caller: Caller::Aws {
                account: "111122223333",
                arn: "arn:aws:iam::111122223333:user/ci",
            },
            canonical_user: None,
            context: ctx,
        }
    }

    #[test]
    fn explicit_deny_round_trip() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoRun","Effect":"Deny","Action":"ec2:RunInstances","Resource":"*"}]}"#,
            PolicyKind::Identity,
        )
        .expect("parses");
        let ctx = Context::new()
            .with("ec2:InstanceType", "t2.micro")
            .with("aws:RequestedRegion", "eu-1");
        let req = request(&ctx);
        let d = evaluate_one(&req, "user inline policy P", &p);
        let m = AuthzMessage::new(&d, &req, "AIDAEXAMPLE", "arn:aws:iam::111122223333:user/ci");
        let encoded = m.encode();
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let text = unauthorized_operation_message(&encoded);
        assert!(text.starts_with(
            "You are not authorized to perform this operation. Encoded authorization failure message: "
        ));
        let back = AuthzMessage::decode(&encoded).expect("decodes");
        assert_eq!(back, m);
        let json: serde_json::Value = serde_json::from_str(&back.to_json()).expect("json");
        assert_eq!(json["allowed"], false);
        assert_eq!(json["explicitDeny"], true);
        let st = &json["matchedStatements"]["items"][0];
        assert_eq!(st["statementId"], "user inline policy P: NoRun");
        assert_eq!(st["effect"], "DENY");
        assert_eq!(st["actions"]["items"][0]["value"], "ec2:RunInstances");
        assert_eq!(st["resources"]["items"][0]["value"], "*");
        assert_eq!(st["principalGroups"]["items"], serde_json::json!([]));
        assert_eq!(json["failures"]["items"], serde_json::json!([]));
        assert_eq!(json["context"]["principal"]["id"], "AIDAEXAMPLE");
        assert_eq!(json["context"]["action"], "ec2:RunInstances");
        assert_eq!(
            json["context"]["resource"],
            "arn:aws:ec2:eu-1:111122223333:instance/*"
        );
        let conds = &json["context"]["conditions"]["items"];
        assert_eq!(conds[0]["key"], "aws:RequestedRegion");
        assert_eq!(conds[1]["key"], "ec2:InstanceType");
        assert_eq!(conds[1]["values"]["items"][0]["value"], "t2.micro");
    }

    #[test]
    fn implicit_deny_has_no_statement() {
        let p = Policy::parse(
            r#"{"Statement":{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}}"#,
            PolicyKind::Identity,
        )
        .expect("parses");
        let ctx = Context::new();
        let req = request(&ctx);
        let d = evaluate_one(&req, "P", &p);
        let m = AuthzMessage::new(&d, &req, "AIDA", "arn");
        assert!(!m.allowed && !m.explicit_deny);
        assert!(m.matched_statements.items.is_empty());
        assert_eq!(AuthzMessage::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(AuthzMessage::decode("!!!"), Err(AuthzMessageError::Invalid));
        let not_ours = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{\"a\":1}");
        assert_eq!(
            AuthzMessage::decode(&not_ours),
            Err(AuthzMessageError::Invalid)
        );
    }
}
