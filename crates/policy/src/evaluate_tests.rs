//! Tests of evaluation: deny beats allow, default deny, NotAction and
//! NotResource, variables, principals, conditions in statements, the
//! cross-account rule, and the cost of a 20-statement policy.

use std::time::Instant;

use super::*;
use crate::context::Context;
use crate::document::PolicyKind;

const A: &str = "111122223333";
const B: &str = "444455556666";

fn identity(text: &str) -> Policy {
    Policy::parse(text, PolicyKind::Identity).expect("identity policy parses")
}

fn req<'a>(action: &'a str, resource: &'a str, context: &'a Context) -> Request<'a> {
    Request {
        action,
        resource,
        caller: Caller::Aws {
            account: A,
            arn: "arn:aws:iam::111122223333:user/alice",
        },
        canonical_user: None,
        context,
    }
}

#[test]
fn describe_only_user() {
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":{"Sid":"Read","Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}}"#,
    );
    let ctx = Context::new();
    let d = evaluate(
        &req("ec2:DescribeInstances", "*", &ctx),
        [("user inline policy read", &p)],
    );
    assert!(d.is_allowed());
    assert_eq!(
        d.to_string(),
        "allowed by user inline policy read statement Read"
    );
    let d = evaluate(
        &req("ec2:RunInstances", "arn:aws:ec2:r:1:instance/*", &ctx),
        [("p", &p)],
    );
    assert_eq!(d, Decision::IMPLICIT_DENY);
    assert_eq!(d.to_string(), "implicitly denied");
    let d = evaluate(&req("s3:GetObject", "arn:aws:s3:::b/k", &ctx), [("p", &p)]);
    assert_eq!(d.verdict, Verdict::ImplicitDeny);
    // No policies at all: implicit deny.
    let none: [(&str, &Policy); 0] = [];
    assert_eq!(
        evaluate(&req("ec2:DescribeInstances", "*", &ctx), none),
        Decision::IMPLICIT_DENY
    );
}

#[test]
fn deny_beats_allow_across_policies() {
    let allow = identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
    let deny = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},
            {"Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*",
             "Condition":{"StringEquals":{"ec2:ResourceTag/env":"prod"}}}]}"#,
    );
    let prod = Context::new().with("ec2:ResourceTag/env", "prod");
    let dev = Context::new().with("ec2:ResourceTag/env", "dev");
    let resource = "arn:aws:ec2:r:111122223333:instance/i-1";
    let d = evaluate(
        &req("ec2:TerminateInstances", resource, &prod),
        [("admin", &allow), ("guard", &deny)],
    );
    assert!(d.is_explicit_deny());
    assert_eq!(d.to_string(), "denied by guard statement #2");
    let m = d.matched.expect("a statement decided");
    assert_eq!((m.policy, m.index), ("guard", 1));
    let d = evaluate(
        &req("ec2:TerminateInstances", resource, &dev),
        [("admin", &allow), ("guard", &deny)],
    );
    assert!(d.is_allowed());
    assert_eq!(d.matched.map(|m| m.policy), Some("admin"));
}

#[test]
fn not_action_and_not_resource() {
    let p = identity(
        r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"},
            {"Effect":"Deny","Action":"s3:*","NotResource":["arn:aws:s3:::hr","arn:aws:s3:::hr/*"]}]}"#,
    );
    let ctx = Context::new();
    assert!(evaluate(&req("ec2:RunInstances", "*", &ctx), [("p", &p)]).is_allowed());
    assert_eq!(
        evaluate(&req("iam:CreateUser", "*", &ctx), [("p", &p)]).verdict,
        Verdict::ImplicitDeny
    );
    assert!(
        evaluate(
            &req("s3:GetObject", "arn:aws:s3:::hr/pay", &ctx),
            [("p", &p)]
        )
        .is_allowed()
    );
    assert!(
        evaluate(
            &req("s3:GetObject", "arn:aws:s3:::other/x", &ctx),
            [("p", &p)]
        )
        .is_explicit_deny()
    );
}

#[test]
fn variables_in_resources() {
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}}"#,
    );
    let alice = Context::new().with("aws:username", "alice");
    assert!(
        evaluate(
            &req("s3:PutObject", "arn:aws:s3:::home/alice/f", &alice),
            [("p", &p)]
        )
        .is_allowed()
    );
    assert!(
        !evaluate(
            &req("s3:PutObject", "arn:aws:s3:::home/bob/f", &alice),
            [("p", &p)]
        )
        .is_allowed()
    );
    // No username (a role session): the resource matches nothing.
    let nobody = Context::new();
    assert!(
        !evaluate(
            &req("s3:PutObject", "arn:aws:s3:::home//f", &nobody),
            [("p", &p)]
        )
        .is_allowed()
    );
    // 2008-10-17 takes the text literally.
    let old = identity(
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}}"#,
    );
    assert!(
        !evaluate(
            &req("s3:PutObject", "arn:aws:s3:::home/alice/f", &alice),
            [("p", &old)]
        )
        .is_allowed()
    );
    assert!(
        evaluate(
            &req(
                "s3:PutObject",
                "arn:aws:s3:::home/${aws:username}/f",
                &alice
            ),
            [("p", &old)]
        )
        .is_allowed()
    );
}

#[test]
fn resource_policy_principals() {
    let p = Policy::parse(
        r#"{"Statement":[{"Sid":"B","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/in/*"}]}"#,
        PolicyKind::Resource,
    )
    .expect("parses");
    let ctx = Context::new();
    let mut r = req("s3:PutObject", "arn:aws:s3:::b/in/x", &ctx);
    assert!(
        !evaluate_one(&r, "bp", &p).is_allowed(),
        "account A is not named"
    );
    r.caller = Caller::Aws {
        account: B,
        arn: "arn:aws:iam::444455556666:user/u",
    };
    assert!(evaluate_one(&r, "bp", &p).is_allowed());
    r.caller = Caller::Anonymous;
    assert!(!evaluate_one(&r, "bp", &p).is_allowed());
    let not = Policy::parse(
        r#"{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
        PolicyKind::Resource,
    )
    .expect("parses");
    assert!(
        evaluate_one(&r, "bp", &not).is_explicit_deny(),
        "anonymous is not account A"
    );
    r.caller = Caller::Aws {
        account: A,
        arn: "arn:aws:iam::111122223333:user/alice",
    };
    assert_eq!(evaluate_one(&r, "bp", &not).verdict, Verdict::ImplicitDeny);
}

#[test]
fn trust_policies() {
    let trust = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole",
            "Condition":{"StringEquals":{"sts:ExternalId":"xyz"}}},
            {"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        PolicyKind::Trust,
    )
    .expect("parses");
    let with_id = Context::new().with("sts:ExternalId", "xyz");
    let without = Context::new();
    let role = "arn:aws:iam::111122223333:role/reader";
    let mut r = req("sts:AssumeRole", role, &with_id);
    r.caller = Caller::Aws {
        account: B,
        arn: "arn:aws:iam::444455556666:user/u",
    };
    assert!(trust_allows(&r, &trust));
    r.context = &without;
    assert!(!trust_allows(&r, &trust));
    r.caller = Caller::Service("ec2.amazonaws.com");
    assert!(trust_allows(&r, &trust));
    r.action = "sts:GetCallerIdentity";
    assert!(!trust_allows(&r, &trust));
    // An identity policy is never a trust policy.
    let idp = identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
    assert!(!trust_allows(&req("sts:AssumeRole", role, &without), &idp));
}

#[test]
fn cross_account_rule() {
    let p = identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
    let d = identity(r#"{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#);
    let ctx = Context::new();
    let r = req("s3:GetObject", "arn:aws:s3:::b/k", &ctx);
    let allow = evaluate_one(&r, "allow", &p);
    let deny = evaluate_one(&r, "deny", &d);
    let none = Decision::IMPLICIT_DENY;
    assert!(combine(allow, none, true).is_allowed());
    assert!(combine(none, allow, true).is_allowed());
    assert!(!combine(allow, none, false).is_allowed());
    assert!(!combine(none, allow, false).is_allowed());
    assert!(combine(allow, allow, false).is_allowed());
    assert!(combine(allow, deny, true).is_explicit_deny());
    assert!(combine(deny, allow, false).is_explicit_deny());
    assert_eq!(combine(none, none, true), Decision::IMPLICIT_DENY);
}

#[test]
fn statement_ids() {
    let p = identity(
        r#"{"Statement":[{"Sid":"","Effect":"Deny","Action":"a:b","Resource":"*"},{"Sid":"S","Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
    );
    let ctx = Context::new();
    let d = evaluate(&req("a:b", "*", &ctx), [("p", &p)]);
    assert_eq!(d.to_string(), "denied by p statement #1");
    assert_eq!(Decision::allow_without_statement().to_string(), "allowed");
}

/// A user with a 20-statement policy (wildcards, ARNs, conditions) must
/// be evaluated in microseconds.
#[test]
fn twenty_statements_are_fast() {
    let mut statements = Vec::new();
    for i in 0..19 {
        statements.push(format!(
            r#"{{"Sid":"S{i}","Effect":"Allow","Action":["ec2:Create{i}*","s3:Get{i}*"],
                "Resource":["arn:aws:ec2:*:111122223333:instance/*","arn:aws:s3:::bucket-{i}/${{aws:username}}/*"],
                "Condition":{{"StringEquals":{{"aws:RequestedRegion":"eu-{i}"}},"IpAddress":{{"aws:SourceIp":"10.{i}.0.0/16"}}}}}}"#
        ));
    }
    statements.push(
        r#"{"Sid":"Describe","Effect":"Allow","Action":"ec2:Describe*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#.into(),
    );
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    );
    let p = identity(&text);
    let ctx = Context::new()
        .with("aws:username", "alice")
        .with("aws:RequestedRegion", "eu-1")
        .with("aws:SourceIp", "10.1.2.3")
        .with("aws:SecureTransport", "true");
    let r = req("ec2:DescribeInstances", "*", &ctx);
    assert!(evaluate_one(&r, "p", &p).is_allowed());
    let denied = req(
        "ec2:RunInstances",
        "arn:aws:ec2:eu-1:111122223333:instance/*",
        &ctx,
    );
    assert!(!evaluate_one(&denied, "p", &p).is_allowed());
    let n = 2000u32;
    let start = Instant::now();
    for _ in 0..n {
        assert!(evaluate_one(&r, "p", &p).is_allowed());
        assert!(!evaluate_one(&denied, "p", &p).is_allowed());
    }
    let each = start.elapsed() / (2 * n);
    eprintln!("one evaluation of a 20-statement policy: {each:?}");
    // Generous for an unoptimised test build on a shared machine; an
    // optimised build takes well under a microsecond or two.
    assert!(each.as_micros() < 200, "one evaluation took {each:?}");
}
