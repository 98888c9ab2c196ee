//! Tests of policy document parsing: accepted forms, and AWS's reasons for
//! refusals, per policy kind.

use super::*;

fn err(text: &str, kind: PolicyKind) -> String {
    match Policy::parse(text, kind) {
        Ok(_) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

fn identity(text: &str) -> String {
    err(text, PolicyKind::Identity)
}

fn trust(text: &str) -> String {
    err(text, PolicyKind::Trust)
}

fn resource(text: &str) -> String {
    err(text, PolicyKind::Resource)
}

#[test]
fn accepted_forms() {
    let p = Policy::parse(
        r#"{"Version":"2012-10-17","Id":"x","Statement":{"Sid":"A","Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}}"#,
        PolicyKind::Identity,
    )
    .expect("single statement object");
    assert_eq!(p.statements().len(), 1);
    assert_eq!(p.version(), Version::V2012_10_17);
    assert_eq!(p.id(), Some("x"));
    assert_eq!(p.kind(), PolicyKind::Identity);
    let st = &p.statements()[0];
    assert_eq!(st.sid(), Some("A"));
    assert_eq!(st.effect(), Effect::Allow);
    assert_eq!(st.actions(), (&["ec2:Describe*".to_string()][..], false));
    assert!(st.principal().is_none());
    assert!(st.conditions().is_empty());

    let p = Policy::parse(
        r#"{"Statement":[
            {"Effect":"Allow","NotAction":["iam:*","sts:*"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},
            {"Effect":"Deny","Action":["s3:DeleteObject"],"NotResource":"arn:aws:s3:::b/tmp/*",
             "Condition":{"Bool":{"aws:SecureTransport":"false"}}}
        ]}"#,
        PolicyKind::Identity,
    )
    .expect("arrays");
    assert_eq!(p.version(), Version::V2008_10_17);
    assert!(p.statements()[0].actions().1);
    assert!(p.statements()[1].resources().1);
    assert!(p.require_version_2012().is_err());
    assert_eq!(
        p.require_version_2012().map_err(|e| e.to_string()),
        Err("Policy document must be version 2012-10-17 or greater.".into())
    );

    Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"AWS":["123456789012","arn:aws:iam::123456789012:role/r"]},"Action":["sts:AssumeRole","sts:TagSession"],
             "Condition":{"StringEquals":{"sts:ExternalId":"x"}}}]}"#,
        PolicyKind::Trust,
    )
    .expect("trust policy");
    Policy::parse(
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Deny","NotPrincipal":{"AWS":"123456789012"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
        PolicyKind::Resource,
    )
    .expect("bucket policy");
    // Empty Sids do not clash.
    assert_eq!(
        identity(
            r#"{"Statement":[{"Sid":"","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"","Effect":"Allow","Action":"*","Resource":"*"}]}"#
        ),
        "accepted"
    );
}

#[test]
fn syntax_errors() {
    for text in [
        "{not json",
        "[]",
        r#"{"Statement":[]}"#,
        r#"{"Version":"2012-10-17"}"#,
        r#"{"Version":"2010-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        r#"{"Version":20121017,"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        r#"{"Id":1,"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        r#"{"Extra":1,"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        r#"{"Statement":"x"}"#,
        r#"{"Statement":["x"]}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Other":1}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":1,"Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":[1]}}"#,
        r#"{"Statement":{"Sid":1,"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Maybe","Action":"*","Resource":"*"}}"#,
        r#"{"Statement":{"Action":"*","Resource":"*"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualz":{"a:b":"c"}}}}"#,
    ] {
        assert_eq!(identity(text), "Syntax errors in policy.", "{text}");
    }
}

#[test]
fn identity_reasons() {
    assert_eq!(
        identity(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}}"#
        ),
        "Policy document should not specify a principal."
    );
    assert_eq!(
        identity(
            r#"{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"*"}}"#
        ),
        "Policy document should not specify a principal."
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#),
        "Policy statement must contain actions."
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#),
        "Policy statement must contain actions."
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#),
        "Policy statement must contain resources."
    );
    assert_eq!(
        identity(
            r#"{"Statement":[{"Sid":"a","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"a","Effect":"Deny","Action":"*","Resource":"*"}]}"#
        ),
        "Statement IDs (SID) in a single policy must be unique."
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Action":"GetObject","Resource":"*"}}"#),
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Action":"s3:Get:Object","Resource":"*"}}"#),
        "Actions/Condition can contain only one colon."
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Action":"s 3:Get","Resource":"*"}}"#),
        "Vendor s 3 is not valid"
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"bucket"}}"#),
        "Resource bucket must be in ARN format or \"*\"."
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:*:::x"}}"#),
        "Resource vendor must be fully qualified and cannot contain regexes."
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3::b"}}"#),
        "The policy failed legacy parsing"
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}"#),
        "The policy failed legacy parsing"
    );
    assert_eq!(
        identity(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}}"#
        ),
        "The policy failed legacy parsing"
    );
    assert_eq!(
        identity(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"username":"x"}}}}"#
        ),
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
    );
    assert_eq!(
        identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:ec2:*"}}"#),
        "accepted"
    );
}

#[test]
fn trust_reasons() {
    assert_eq!(trust("{bad"), "This policy contains invalid Json");
    assert_eq!(
        trust(r#"{"Version":"2012-10-17","Statement":[]}"#),
        "Could not parse the policy: Statement is empty!"
    );
    assert_eq!(
        trust(
            r#"{"Version":"2013-01-01","Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}}"#
        ),
        "The policy must contain a valid version string"
    );
    assert_eq!(
        trust(r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#),
        "Missing required field Principal"
    );
    assert_eq!(
        trust(r#"{"Statement":[{"Effect":"Allow","Principal":{},"Action":"sts:AssumeRole"}]}"#),
        "Missing required field Principal cannot be empty!"
    );
    assert_eq!(
        trust(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}]}"#),
        "Principal must be a JSON object."
    );
    assert_eq!(
        trust(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"*"}]}"#),
        "AssumeRole policy may only specify STS AssumeRole actions."
    );
    assert_eq!(
        trust(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:GetCallerIdentity"}]}"#
        ),
        "AssumeRole policy may only specify STS AssumeRole actions."
    );
    assert_eq!(
        trust(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:*"}]}"#),
        "accepted"
    );
    assert_eq!(
        trust(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Resource":"*"}]}"#
        ),
        "Has prohibited field Resource"
    );
    assert_eq!(
        trust(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","NotResource":"*"}]}"#
        ),
        "AssumeRole policy must not contain resources."
    );
    assert_eq!(
        trust(
            r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#
        ),
        "Allow with NotPrincipal is not allowed."
    );
    assert_eq!(
        trust(
            r#"{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#
        ),
        "AssumeRole policy must not contain NotPrincipal field."
    );
    assert_eq!(
        trust(r#"{"Statement":[{"Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#),
        "Missing required field Effect"
    );
    assert_eq!(
        trust(
            r#"{"Statement":[{"Effect":"Permit","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#
        ),
        "Invalid effect: Permit"
    );
    assert_eq!(
        trust(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"}}]}"#),
        "Missing required field Action"
    );
    assert_eq!(
        trust(
            r#"{"Statement":[{"Sid":"x","Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"},{"Sid":"x","Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#
        ),
        "The Statement Ids in the policy are not unique"
    );
    assert_eq!(
        trust(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Federated":"accounts.google.com"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#
        ),
        "Invalid principal in policy: \"Federated\":\"accounts.google.com\""
    );
}

#[test]
fn resource_reasons() {
    assert_eq!(
        resource(
            r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#
        ),
        "Missing required field Principal"
    );
    assert_eq!(
        resource(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}}"#),
        "Missing required field Resource"
    );
    assert_eq!(
        resource(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Resource":"arn:aws:s3:::b/*"}}"#
        ),
        "Missing required field Action"
    );
    assert_eq!(
        resource(
            r#"{"Statement":{"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#
        ),
        "Missing required field Effect"
    );
    assert_eq!(
        resource(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#
        ),
        "Invalid principal in policy: \"AWS\":\"bob\""
    );
    assert_eq!(
        resource(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#
        ),
        "Syntax errors in policy."
    );
}

#[test]
fn sizes() {
    let doc = "{ \"Statement\" :\n [ ] }";
    assert_eq!(policy_size(doc), 16);
    assert_eq!(check_size(6144, SizeLimit::Managed), Ok(()));
    assert_eq!(
        check_size(6145, SizeLimit::Managed).map_err(|e| e.to_string()),
        Err("Cannot exceed quota for PolicySize: 6144".into())
    );
    assert_eq!(
        check_size(2049, SizeLimit::Trust).map_err(|e| e.to_string()),
        Err("Cannot exceed quota for ACLSizePerRole: 2048".into())
    );
    assert_eq!(
        check_size(2049, SizeLimit::UserInline("alice")).map_err(|e| e.to_string()),
        Err("Maximum policy size of 2048 bytes exceeded for user alice".into())
    );
    assert_eq!(check_size(5120, SizeLimit::GroupInline("g")), Ok(()));
    assert!(check_size(5121, SizeLimit::GroupInline("g")).is_err());
    assert_eq!(check_size(10240, SizeLimit::RoleInline("r")), Ok(()));
    assert_eq!(
        check_size(10241, SizeLimit::RoleInline("r")).map_err(|e| e.to_string()),
        Err("Maximum policy size of 10240 bytes exceeded for role r".into())
    );
}
