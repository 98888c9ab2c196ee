//! The `Condition` element: operators (String*, Numeric*, Date*, Bool,
//! BinaryEquals, IpAddress, Arn*, Null), their `…IfExists` forms and the
//! `ForAnyValue:`/`ForAllValues:` set qualifiers, compiled once from the
//! policy's JSON and evaluated against a request [`Context`].
//!
//! The rules are AWS's: every operator in a block and every key under an
//! operator must hold (AND); a key's policy values are alternatives (OR);
//! a negated operator (`StringNotEquals`, `NotIpAddress`, …) holds when no
//! value matches. A key missing from the request fails a positive operator
//! and satisfies a negated one; `…IfExists` makes a missing key pass;
//! `ForAllValues:` holds for a missing key, `ForAnyValue:` does not.

use std::net::IpAddr;

use base64::Engine as _;
use serde_json::Value;

use crate::context::Context;
use crate::matching::{ArnPattern, Pattern, Syntax, eq_chars};

/// Why a `Condition` element was refused. Each message is the reason IAM
/// gives with `MalformedPolicyDocument`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The element, an operator's block or a value is not of the JSON type
    /// the grammar allows; the text is the operator or key at fault.
    #[error("Syntax errors in policy.")]
    Shape(String),
    /// An operator IAM does not know (the text is the operator).
    #[error("Syntax errors in policy.")]
    UnknownOperator(String),
    /// A condition key without its `vendor:` prefix.
    #[error("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")]
    MissingVendor(String),
    /// A Date, Numeric, IP address or binary value that cannot be read (the
    /// text is the value).
    #[error("The policy failed legacy parsing")]
    BadValue(String),
}

/// Comparison of the Numeric and Date families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// An operator family, in its positive sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

/// `ForAnyValue:`, `ForAllValues:` or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Single,
    AnyValue,
    AllValues,
}

/// A policy value, compiled for its operator.
#[derive(Debug, Clone, PartialEq)]
enum PolicyValue {
    Text(Pattern),
    Arn(ArnPattern),
    Number(f64),
    /// Unix time in nanoseconds.
    Date(i128),
    Bool(bool),
    Bytes(Vec<u8>),
    Cidr(Cidr),
    Null(bool),
}

/// One operator applied to one key, with the policy's values for it.
#[derive(Debug, Clone, PartialEq)]
struct Test {
    kind: Kind,
    negated: bool,
    qualifier: Qualifier,
    if_exists: bool,
    /// The key lowercased, for look-ups.
    key: Box<str>,
    values: Box<[PolicyValue]>,
}

/// A statement's compiled `Condition` element.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    tests: Box<[Test]>,
}

/// An IPv4 or IPv6 network (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses an operator name into its family, negation, qualifier and
/// `IfExists` flag.
fn parse_operator(name: &str) -> Option<(Kind, bool, Qualifier, bool)> {
    let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (Qualifier::AnyValue, r)
    } else if let Some(r) = name.strip_prefix("ForAllValues:") {
        (Qualifier::AllValues, r)
    } else {
        (Qualifier::Single, name)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (rest, false),
    };
    let (kind, negated) = match base {
        "StringEquals" => (Kind::StringEquals, false),
        "StringNotEquals" => (Kind::StringEquals, true),
        "StringEqualsIgnoreCase" => (Kind::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Kind::StringEqualsIgnoreCase, true),
        "StringLike" => (Kind::StringLike, false),
        "StringNotLike" => (Kind::StringLike, true),
        "NumericEquals" => (Kind::Numeric(Cmp::Eq), false),
        "NumericNotEquals" => (Kind::Numeric(Cmp::Eq), true),
        "NumericLessThan" => (Kind::Numeric(Cmp::Lt), false),
        "NumericLessThanEquals" => (Kind::Numeric(Cmp::Le), false),
        "NumericGreaterThan" => (Kind::Numeric(Cmp::Gt), false),
        "NumericGreaterThanEquals" => (Kind::Numeric(Cmp::Ge), false),
        "DateEquals" => (Kind::Date(Cmp::Eq), false),
        "DateNotEquals" => (Kind::Date(Cmp::Eq), true),
        "DateLessThan" => (Kind::Date(Cmp::Lt), false),
        "DateLessThanEquals" => (Kind::Date(Cmp::Le), false),
        "DateGreaterThan" => (Kind::Date(Cmp::Gt), false),
        "DateGreaterThanEquals" => (Kind::Date(Cmp::Ge), false),
        "Bool" => (Kind::Bool, false),
        "BinaryEquals" => (Kind::Binary, false),
        "IpAddress" => (Kind::Ip, false),
        "NotIpAddress" => (Kind::Ip, true),
        "ArnEquals" | "ArnLike" => (Kind::Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Kind::Arn, true),
        "Null" if !if_exists => (Kind::Null, false),
        _ => return None,
    };
    Some((kind, negated, qualifier, if_exists))
}

/// A condition value as text: JSON strings, numbers and booleans are all
/// accepted (`"Bool": {"aws:SecureTransport": false}`).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Conditions {
    /// Compiles a statement's `Condition` element. `variables` is whether
    /// the policy's version (2012-10-17) allows `${…}` in values.
    pub(crate) fn parse(element: &Value, variables: bool) -> Result<Self, ConditionError> {
        let Value::Object(ops) = element else {
            return Err(ConditionError::Shape("Condition".into()));
        };
        let mut tests = Vec::new();
        for (op_name, block) in ops {
            let Value::Object(keys) = block else {
                return Err(ConditionError::Shape(op_name.clone()));
            };
            let Some((kind, negated, qualifier, if_exists)) = parse_operator(op_name) else {
                return Err(ConditionError::UnknownOperator(op_name.clone()));
            };
            for (key, raw) in keys {
                if !key.contains(':') {
                    return Err(ConditionError::MissingVendor(key.clone()));
                }
                let texts: Vec<String> = match raw {
                    Value::Array(items) => items
                        .iter()
                        .map(scalar_text)
                        .collect::<Option<_>>()
                        .ok_or_else(|| ConditionError::Shape(key.clone()))?,
                    other => {
                        vec![scalar_text(other).ok_or_else(|| ConditionError::Shape(key.clone()))?]
                    }
                };
                let values = texts
                    .iter()
                    .map(|t| compile_value(kind, t, variables))
                    .collect::<Result<Vec<_>, _>>()?;
                tests.push(Test {
                    kind,
                    negated,
                    qualifier,
                    if_exists,
                    key: key.to_ascii_lowercase().into_boxed_str(),
                    values: values.into_boxed_slice(),
                });
            }
        }
        Ok(Conditions {
            tests: tests.into_boxed_slice(),
        })
    }

    /// Whether there is no condition at all.
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Whether every condition holds for `ctx`.
    pub fn holds(&self, ctx: &Context) -> bool {
        self.tests.iter().all(|t| t.holds(ctx))
    }
}

fn compile_value(kind: Kind, text: &str, variables: bool) -> Result<PolicyValue, ConditionError> {
    let bad = || ConditionError::BadValue(text.to_owned());
    Ok(match kind {
        Kind::StringEquals | Kind::StringEqualsIgnoreCase => PolicyValue::Text(Pattern::compile(
            text,
            Syntax {
                wildcards: false,
                variables,
            },
        )),
        Kind::StringLike => PolicyValue::Text(Pattern::compile(
            text,
            Syntax {
                wildcards: true,
                variables,
            },
        )),
        Kind::Arn => PolicyValue::Arn(ArnPattern::compile(text, variables)),
        Kind::Numeric(_) => PolicyValue::Number(parse_number(text).ok_or_else(bad)?),
        Kind::Date(_) => PolicyValue::Date(parse_date(text).ok_or_else(bad)?),
        Kind::Bool => PolicyValue::Bool(text.eq_ignore_ascii_case("true")),
        Kind::Null => PolicyValue::Null(text.eq_ignore_ascii_case("true")),
        Kind::Binary => PolicyValue::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| bad())?,
        ),
        Kind::Ip => PolicyValue::Cidr(Cidr::parse(text).ok_or_else(bad)?),
    })
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A date as AWS accepts it: epoch seconds, or ISO 8601 (`2024-01-31`,
/// `2024-01-31T12:00:00Z`, with fractions and offsets, or without a zone,
/// read as UTC). Returns Unix nanoseconds.
pub(crate) fn parse_date(text: &str) -> Option<i128> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{Date, OffsetDateTime, PrimitiveDateTime};

    let text = text.trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .map(|s| i128::from(s) * 1_000_000_000);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    let upper = text.to_ascii_uppercase();
    let no_zone = upper.strip_suffix('Z').unwrap_or(&upper);
    for fmt in [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ] {
        if let Ok(t) = PrimitiveDateTime::parse(no_zone, fmt) {
            return Some(t.assume_utc().unix_timestamp_nanos());
        }
    }
    Date::parse(no_zone, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp_nanos())
}

impl Test {
    fn holds(&self, ctx: &Context) -> bool {
        let present = ctx.get_lowercase(&self.key).filter(|v| !v.is_empty());
        if self.kind == Kind::Null {
            let absent = present.is_none();
            return self
                .values
                .iter()
                .any(|v| matches!(v, PolicyValue::Null(want) if *want == absent));
        }
        let any_policy = |rv: &str| {
            self.values
                .iter()
                .any(|pv| value_matches(self.kind, pv, rv, ctx))
        };
        match (self.qualifier, present) {
            (Qualifier::Single, None) => self.if_exists || self.negated,
            (Qualifier::Single, Some(vals)) => vals.iter().any(|rv| any_policy(rv)) != self.negated,
            (Qualifier::AnyValue, None) => self.if_exists,
            (Qualifier::AnyValue, Some(vals)) => {
                vals.iter().any(|rv| any_policy(rv) != self.negated)
            }
            (Qualifier::AllValues, None) => true,
            (Qualifier::AllValues, Some(vals)) => {
                vals.iter().all(|rv| any_policy(rv) != self.negated)
            }
        }
    }
}

/// Whether one request value matches one policy value, in the operator's
/// positive sense.
fn value_matches(kind: Kind, policy: &PolicyValue, request: &str, ctx: &Context) -> bool {
    match (kind, policy) {
        (Kind::StringEquals | Kind::StringLike, PolicyValue::Text(p)) => {
            p.matches(request, ctx, false)
        }
        (Kind::StringEqualsIgnoreCase, PolicyValue::Text(p)) => p.matches(request, ctx, true),
        (Kind::Arn, PolicyValue::Arn(p)) => p.matches(request, ctx),
        (Kind::Numeric(cmp), PolicyValue::Number(n)) => {
            parse_number(request).is_some_and(|r| cmp.holds(r, *n))
        }
        (Kind::Date(cmp), PolicyValue::Date(d)) => {
            parse_date(request).is_some_and(|r| cmp.holds(r, *d))
        }
        (Kind::Bool, PolicyValue::Bool(b)) => {
            eq_chars(request.trim(), if *b { "true" } else { "false" }, true)
        }
        (Kind::Binary, PolicyValue::Bytes(b)) => base64::engine::general_purpose::STANDARD
            .decode(request.trim())
            .is_ok_and(|r| r == *b),
        (Kind::Ip, PolicyValue::Cidr(c)) => request
            .trim()
            .parse::<IpAddr>()
            .is_ok_and(|ip| c.contains(ip)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(v: Value) -> Conditions {
        Conditions::parse(&v, true).expect("condition parses")
    }

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        let mut c = Context::new();
        for (k, v) in pairs {
            c.insert(k, *v);
        }
        c
    }

    #[test]
    fn strings() {
        let c = cond(json!({"StringEquals": {"ec2:InstanceType": ["t2.micro", "t2.small"]}}));
        assert!(c.holds(&ctx(&[("ec2:InstanceType", "t2.small")])));
        assert!(!c.holds(&ctx(&[("ec2:instancetype", "T2.small")])));
        assert!(!c.holds(&ctx(&[])));
        let c = cond(json!({"StringNotEquals": {"ec2:InstanceType": ["t2.micro", "t2.small"]}}));
        assert!(!c.holds(&ctx(&[("ec2:InstanceType", "t2.small")])));
        assert!(c.holds(&ctx(&[("ec2:InstanceType", "m5.large")])));
        assert!(
            c.holds(&ctx(&[])),
            "a negated operator holds for a missing key"
        );
        let c = cond(json!({"StringEqualsIgnoreCase": {"aws:username": "Alice"}}));
        assert!(c.holds(&ctx(&[("aws:username", "ALICE")])));
        let c = cond(json!({"StringNotEqualsIgnoreCase": {"aws:username": "Alice"}}));
        assert!(!c.holds(&ctx(&[("aws:username", "alice")])));
        let c = cond(json!({"StringLike": {"s3:prefix": ["home/${aws:username}/*", ""]}}));
        assert!(c.holds(&ctx(&[
            ("s3:prefix", "home/alice/x"),
            ("aws:username", "alice")
        ])));
        assert!(c.holds(&ctx(&[("s3:prefix", ""), ("aws:username", "alice")])));
        assert!(!c.holds(&ctx(&[
            ("s3:prefix", "home/bob/x"),
            ("aws:username", "alice")
        ])));
        // A variable without a value matches nothing.
        assert!(!c.holds(&ctx(&[("s3:prefix", "home//x")])));
        let c = cond(json!({"StringNotLike": {"s3:prefix": "home/${aws:username}/*"}}));
        assert!(c.holds(&ctx(&[("s3:prefix", "home/alice/x")])));
        // StringEquals takes `*` literally.
        let c = cond(json!({"StringEquals": {"s3:x-amz-acl": "public*"}}));
        assert!(!c.holds(&ctx(&[("s3:x-amz-acl", "public-read")])));
        assert!(c.holds(&ctx(&[("s3:x-amz-acl", "public*")])));
    }

    #[test]
    fn keys_and_blocks_are_anded() {
        let c = cond(json!({
            "StringEquals": {"aws:RequestedRegion": "eu-1", "ec2:InstanceType": "t2.micro"},
            "Bool": {"aws:SecureTransport": "true"}
        }));
        let full = ctx(&[
            ("aws:RequestedRegion", "eu-1"),
            ("ec2:InstanceType", "t2.micro"),
            ("aws:SecureTransport", "true"),
        ]);
        assert!(c.holds(&full));
        let mut partial = full.clone();
        partial.insert("aws:SecureTransport", "false");
        assert!(!c.holds(&partial));
        let mut other = full;
        other.insert("ec2:InstanceType", "m5.large");
        assert!(!c.holds(&other));
    }

    #[test]
    fn numbers() {
        let c = cond(json!({"NumericLessThanEquals": {"s3:max-keys": 10}}));
        assert!(c.holds(&ctx(&[("s3:max-keys", "10")])));
        assert!(!c.holds(&ctx(&[("s3:max-keys", "11")])));
        assert!(!c.holds(&ctx(&[("s3:max-keys", "ten")])));
        let c = cond(json!({"NumericNotEquals": {"k:n": ["1", "2.5"]}}));
        assert!(c.holds(&ctx(&[("k:n", "3")])));
        assert!(!c.holds(&ctx(&[("k:n", "2.50")])));
        for (op, req, want) in [
            ("NumericEquals", "5", true),
            ("NumericLessThan", "4", true),
            ("NumericLessThan", "5", false),
            ("NumericGreaterThan", "6", true),
            ("NumericGreaterThanEquals", "5", true),
            ("NumericGreaterThanEquals", "4.9", false),
        ] {
            let c = cond(json!({op: {"k:n": "5"}}));
            assert_eq!(c.holds(&ctx(&[("k:n", req)])), want, "{op} {req}");
        }
        assert!(matches!(
            Conditions::parse(&json!({"NumericEquals": {"k:n": "x"}}), true),
            Err(ConditionError::BadValue(_))
        ));
    }

    #[test]
    fn dates() {
        let c = cond(json!({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}));
        assert!(c.holds(&ctx(&[("aws:CurrentTime", "2029-12-31T23:59:59Z")])));
        assert!(!c.holds(&ctx(&[("aws:CurrentTime", "2030-01-01T00:00:00Z")])));
        assert!(
            c.holds(&ctx(&[("aws:CurrentTime", "1893455999")])),
            "epoch seconds"
        );
        let c = cond(json!({"DateGreaterThanEquals": {"aws:EpochTime": "2024-06-01"}}));
        assert!(c.holds(&ctx(&[("aws:EpochTime", "1717200000")])));
        assert!(!c.holds(&ctx(&[("aws:EpochTime", "1717199999")])));
        let c = cond(json!({"DateEquals": {"k:d": "2024-06-01T02:00:00+02:00"}}));
        assert!(c.holds(&ctx(&[("k:d", "2024-06-01T00:00:00.000Z")])));
        let c = cond(json!({"DateNotEquals": {"k:d": 0}}));
        assert!(c.holds(&ctx(&[("k:d", "1970-01-01T00:00:01Z")])));
        assert!(!c.holds(&ctx(&[("k:d", "1970-01-01T00:00:00")])));
        assert_eq!(parse_date("2024-06-01T00:00"), parse_date("1717200000"));
        assert!(matches!(
            Conditions::parse(&json!({"DateLessThan": {"aws:CurrentTime": "soon"}}), true),
            Err(ConditionError::BadValue(_))
        ));
    }

    #[test]
    fn bool_binary_null() {
        let c = cond(json!({"Bool": {"aws:SecureTransport": false}}));
        assert!(c.holds(&ctx(&[("aws:SecureTransport", "false")])));
        assert!(!c.holds(&ctx(&[("aws:SecureTransport", "true")])));
        assert!(!c.holds(&ctx(&[])));
        let c = cond(json!({"BinaryEquals": {"k:b": "aGVsbG8="}}));
        assert!(c.holds(&ctx(&[("k:b", "aGVsbG8=")])));
        assert!(!c.holds(&ctx(&[("k:b", "aGVsbG9v")])));
        let c = cond(json!({"Null": {"aws:TokenIssueTime": "true"}}));
        assert!(c.holds(&ctx(&[])));
        assert!(!c.holds(&ctx(&[("aws:TokenIssueTime", "x")])));
        let c = cond(json!({"Null": {"aws:TokenIssueTime": false}}));
        assert!(!c.holds(&ctx(&[])));
        assert!(c.holds(&ctx(&[("aws:TokenIssueTime", "x")])));
    }

    #[test]
    fn ip_addresses() {
        let c = cond(
            json!({"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32", "10.1.2.3"]}}),
        );
        assert!(c.holds(&ctx(&[("aws:SourceIp", "203.0.113.77")])));
        assert!(!c.holds(&ctx(&[("aws:SourceIp", "203.0.114.1")])));
        assert!(c.holds(&ctx(&[("aws:SourceIp", "2001:db8:1::5")])));
        assert!(!c.holds(&ctx(&[("aws:SourceIp", "2001:db9::5")])));
        assert!(c.holds(&ctx(&[("aws:SourceIp", "10.1.2.3")])));
        assert!(!c.holds(&ctx(&[("aws:SourceIp", "10.1.2.4")])));
        assert!(!c.holds(&ctx(&[("aws:SourceIp", "not-an-ip")])));
        let c = cond(json!({"NotIpAddress": {"aws:SourceIp": "0.0.0.0/0"}}));
        assert!(!c.holds(&ctx(&[("aws:SourceIp", "1.2.3.4")])));
        assert!(
            c.holds(&ctx(&[("aws:SourceIp", "::1")])),
            "v6 is outside a v4 network"
        );
        assert!(matches!(
            Conditions::parse(&json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}), true),
            Err(ConditionError::BadValue(_))
        ));
    }

    #[test]
    fn arns() {
        let c = cond(json!({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::bucket-*"}}));
        assert!(c.holds(&ctx(&[("aws:SourceArn", "arn:aws:s3:::bucket-1")])));
        assert!(!c.holds(&ctx(&[("aws:SourceArn", "arn:aws:s3:::other")])));
        let c =
            cond(json!({"ArnEquals": {"aws:SourceArn": "arn:aws:iam::*:role/${aws:username}"}}));
        assert!(c.holds(&ctx(&[
            ("aws:SourceArn", "arn:aws:iam::111122223333:role/alice"),
            ("aws:username", "alice")
        ])));
        let c = cond(json!({"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:*:topic"}}));
        assert!(c.holds(&ctx(&[("aws:SourceArn", "arn:aws:sns:r:1:other")])));
        assert!(!c.holds(&ctx(&[("aws:SourceArn", "arn:aws:sns:r:1:topic")])));
        assert!(c.holds(&ctx(&[])));
    }

    #[test]
    fn if_exists() {
        let c = cond(json!({"StringEqualsIfExists": {"ec2:InstanceType": "t2.micro"}}));
        assert!(c.holds(&ctx(&[])));
        assert!(c.holds(&ctx(&[("ec2:InstanceType", "t2.micro")])));
        assert!(!c.holds(&ctx(&[("ec2:InstanceType", "m5.large")])));
        let c = cond(json!({"NumericLessThanIfExists": {"k:n": 3}}));
        assert!(c.holds(&ctx(&[])));
        assert!(!c.holds(&ctx(&[("k:n", "4")])));
        assert!(matches!(
            Conditions::parse(&json!({"NullIfExists": {"k:n": "true"}}), true),
            Err(ConditionError::UnknownOperator(_))
        ));
    }

    #[test]
    fn set_qualifiers() {
        let mut two = Context::new();
        two.insert_many("aws:TagKeys", ["env", "team"]);
        let mut extra = Context::new();
        extra.insert_many("aws:TagKeys", ["env", "cost"]);
        let none = Context::new();

        let all = cond(json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]}}));
        assert!(all.holds(&two));
        assert!(!all.holds(&extra));
        assert!(all.holds(&none), "ForAllValues holds for a missing key");

        let any = cond(json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["cost"]}}));
        assert!(!any.holds(&two));
        assert!(any.holds(&extra));
        assert!(!any.holds(&none), "ForAnyValue fails for a missing key");
        let any_ie = cond(json!({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": ["cost"]}}));
        assert!(any_ie.holds(&none));

        let not_any =
            cond(json!({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["env", "team"]}}));
        assert!(!not_any.holds(&two));
        assert!(not_any.holds(&extra));
        let not_all = cond(json!({"ForAllValues:StringNotEquals": {"aws:TagKeys": ["cost"]}}));
        assert!(not_all.holds(&two));
        assert!(!not_all.holds(&extra));

        let like = cond(json!({"ForAllValues:StringLike": {"aws:TagKeys": ["e*", "t*"]}}));
        assert!(like.holds(&two));
        assert!(!like.holds(&extra));

        // Single-valued operators on a multivalued key: any value may match;
        // a negated one needs none to match.
        let single = cond(json!({"StringEquals": {"aws:TagKeys": "team"}}));
        assert!(single.holds(&two));
        let single_not = cond(json!({"StringNotEquals": {"aws:TagKeys": "team"}}));
        assert!(!single_not.holds(&two));
        assert!(single_not.holds(&extra));
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            Conditions::parse(&json!({"StringEqualz": {"a:b": "c"}}), true),
            Err(ConditionError::UnknownOperator(op)) if op == "StringEqualz"
        ));
        assert_eq!(
            Conditions::parse(&json!({"StringEqualz": {"a:b": "c"}}), true)
                .map_err(|e| e.to_string()),
            Err("Syntax errors in policy.".to_string())
        );
        assert!(matches!(
            Conditions::parse(&json!({"StringEquals": "x"}), true),
            Err(ConditionError::Shape(_))
        ));
        assert!(matches!(
            Conditions::parse(&json!({"StringEquals": {"a:b": {"c": 1}}}), true),
            Err(ConditionError::Shape(_))
        ));
        assert!(matches!(
            Conditions::parse(&json!({"StringEquals": {"nokey": "c"}}), true),
            Err(ConditionError::MissingVendor(_))
        ));
        assert!(matches!(
            Conditions::parse(&json!([]), true),
            Err(ConditionError::Shape(_))
        ));
        assert!(matches!(
            Conditions::parse(&json!({"BinaryEquals": {"a:b": "!!"}}), true),
            Err(ConditionError::BadValue(_))
        ));
    }

    #[test]
    fn variables_only_in_2012() {
        let c = Conditions::parse(&json!({"StringEquals": {"k:x": "${aws:username}"}}), false)
            .expect("parses");
        assert!(c.holds(&ctx(&[("k:x", "${aws:username}"), ("aws:username", "a")])));
        assert!(!c.holds(&ctx(&[("k:x", "a"), ("aws:username", "a")])));
    }
}
