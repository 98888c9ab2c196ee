//! Bucket policies: putting one (checked as S3 checks it: a resource
//! policy of at most 20 KB whose actions are S3's and whose resources lie
//! in the bucket), reading it back exactly as it was put, deleting it,
//! whether it makes the bucket public, and the compiled policy S3 requests
//! are decided against. Only the bucket's account manages its policy.
//! What a policy grants one request reaches the operations as
//! [`PolicyGrant`]s on the [`Requester`].

use mallee_policy::s3::check_bucket_policy;
use mallee_policy::{Effect, Policy, PolicyKind};
use mallee_store::Bucket;
use serde_json::Value;

use super::acl::Permission;
use super::error::{ObjectError, Result};
use super::{Requester, owned_bucket};
use crate::Cloud;

/// S3's limit on a bucket policy's size, in bytes.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// A permission a bucket policy gave one request (decided with the
/// caller's identity policies before the operation ran), which the
/// operation's ACL checks accept as if the ACL granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyGrant {
    /// The bucket.
    pub bucket: String,
    /// The object, for a permission on an object; `None` for one on the
    /// bucket (listing it, writing into it, its ACL).
    pub key: Option<String>,
    /// The ACL permission the grant stands for.
    pub permission: Permission,
}

/// Parses and checks a bucket policy for `bucket` as S3 does on
/// PutBucketPolicy.
pub fn parse(bucket: &str, text: &str) -> Result<Policy> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(ObjectError::MalformedPolicy(
            "Policy exceeds the maximum allowed document size.".into(),
        ));
    }
    let policy = Policy::parse(text, PolicyKind::Resource)
        .map_err(|e| ObjectError::MalformedPolicy(e.to_string()))?;
    check_bucket_policy(&policy, bucket)
        .map_err(|e| ObjectError::MalformedPolicy(e.to_string()))?;
    Ok(policy)
}

/// The bucket's policy, compiled, if it has one.
pub fn compiled(bucket: &Bucket) -> Result<Option<Policy>> {
    let Some(text) = &bucket.policy else {
        return Ok(None);
    };
    // Stored policies were checked when put; one that no longer parses
    // (a stricter engine) must not silently open or close the bucket.
    Policy::parse(text, PolicyKind::Resource)
        .map(Some)
        .map_err(|e| ObjectError::internal(format!("bucket policy of {}: {e}", bucket.name)))
}

/// Sets the bucket's policy, replacing any; nothing changes when the
/// policy is refused.
pub async fn put(cloud: &Cloud, requester: &Requester, bucket: &str, text: &str) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    let policy = parse(&bucket.name, text)?;
    // A public access block that blocks public policies refuses one.
    if super::controls::access_block(&bucket).block_public_policy
        && grants_public_access(&policy, text)
    {
        return Err(ObjectError::AccessDenied);
    }
    cloud
        .store
        .set_bucket_policy(&bucket.name, Some(text))
        .await
        .map_err(ObjectError::from_write)
}

/// The bucket's policy as it was put.
pub async fn get(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<String> {
    owned_bucket(cloud, requester, bucket)
        .await?
        .policy
        .ok_or(ObjectError::NoSuchBucketPolicy)
}

/// Removes the bucket's policy (no error when it has none, as in S3).
pub async fn delete(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    cloud
        .store
        .set_bucket_policy(&bucket.name, None)
        .await
        .map_err(ObjectError::from_write)
}

/// Whether the bucket's policy makes it public (GetBucketPolicyStatus).
pub async fn is_public(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<bool> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    let text = bucket
        .policy
        .as_deref()
        .ok_or(ObjectError::NoSuchBucketPolicy)?;
    let policy = parse(&bucket.name, text)?;
    Ok(grants_public_access(&policy, text))
}

/// Condition keys that, given a fixed value, confine a statement to known
/// callers or networks, so that `"Principal":"*"` does not make it public
/// (S3's rule for `IsPublic`).
const CONFINING_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalorgid",
    "aws:userid",
];

/// Whether an Allow statement lets in everyone: its principal is `*` (or
/// it uses `NotPrincipal`) and no condition confines it with a fixed value
/// of a [`CONFINING_KEYS`] key. `text` is the document `policy` was
/// parsed from (the compiled conditions do not expose their keys).
pub fn grants_public_access(policy: &Policy, text: &str) -> bool {
    let raw: Vec<Value> = match serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("Statement").cloned())
    {
        Some(Value::Array(statements)) => statements,
        Some(one) => vec![one],
        None => Vec::new(),
    };
    policy.statements().iter().enumerate().any(|(i, st)| {
        if st.effect() != Effect::Allow {
            return false;
        }
        match st.principal() {
            Some((_, true)) => true,
            Some((principals, false)) if principals.is_public() => {
                st.conditions().is_empty()
                    || !raw
                        .get(i)
                        .and_then(|s| s.get("Condition"))
                        .is_some_and(confines)
            }
            _ => false,
        }
    })
}

/// Whether a `Condition` element fixes a confining key.
fn confines(condition: &Value) -> bool {
    let Value::Object(operators) = condition else {
        return false;
    };
    operators.iter().any(|(operator, block)| {
        let op = operator.to_ascii_lowercase();
        if op.contains("not") || op.ends_with("ifexists") || op.starts_with("null") {
            return false;
        }
        let Value::Object(keys) = block else {
            return false;
        };
        keys.iter().any(|(key, values)| {
            let fixed = |v: &Value| {
                v.as_str()
                    .is_some_and(|s| !s.contains('*') && !s.ends_with("/0"))
            };
            CONFINING_KEYS.contains(&key.to_ascii_lowercase().as_str())
                && match values {
                    Value::Array(items) => !items.is_empty() && items.iter().all(fixed),
                    one => fixed(one),
                }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing::with_bucket;

    const PUBLIC_READ: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [{"Sid": "Public", "Effect": "Allow", "Principal": "*",
                 "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]
}"#;

    #[tokio::test]
    async fn only_the_owner_manages_the_policy_and_it_comes_back_as_put() {
        let (cloud, alice, bob) = with_bucket().await;
        assert_eq!(
            get(&cloud, &alice, "b").await,
            Err(ObjectError::NoSuchBucketPolicy)
        );
        assert_eq!(
            is_public(&cloud, &alice, "b").await,
            Err(ObjectError::NoSuchBucketPolicy)
        );
        put(&cloud, &alice, "b", PUBLIC_READ).await.expect("put");
        assert_eq!(get(&cloud, &alice, "b").await.as_deref(), Ok(PUBLIC_READ));
        assert_eq!(is_public(&cloud, &alice, "b").await, Ok(true));
        for refused in [&bob, &Requester::anonymous()] {
            assert_eq!(
                get(&cloud, refused, "b").await,
                Err(ObjectError::AccessDenied)
            );
            assert_eq!(
                put(&cloud, refused, "b", PUBLIC_READ).await,
                Err(ObjectError::AccessDenied)
            );
            assert_eq!(
                delete(&cloud, refused, "b").await,
                Err(ObjectError::AccessDenied)
            );
        }
        assert_eq!(
            get(&cloud, &alice, "nope").await,
            Err(ObjectError::NoSuchBucket)
        );
        delete(&cloud, &alice, "b").await.expect("delete");
        delete(&cloud, &alice, "b")
            .await
            .expect("deleting none is no error");
        assert_eq!(
            get(&cloud, &alice, "b").await,
            Err(ObjectError::NoSuchBucketPolicy)
        );
    }

    #[tokio::test]
    async fn a_refused_policy_changes_nothing() {
        let (cloud, alice, _) = with_bucket().await;
        put(&cloud, &alice, "b", PUBLIC_READ).await.expect("put");
        let refused = [
            "{not json",
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ec2:RunInstances","Resource":"arn:aws:s3:::b/*"}]}"#,
        ];
        for text in refused {
            let outcome = put(&cloud, &alice, "b", text).await;
            assert!(
                matches!(&outcome, Err(ObjectError::MalformedPolicy(reason)) if !reason.is_empty()),
                "{text}: {outcome:?}"
            );
        }
        let huge = format!(
            r#"{{"Statement":[{{"Sid":"{}","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}]}}"#,
            "x".repeat(MAX_POLICY_BYTES)
        );
        assert_eq!(
            put(&cloud, &alice, "b", &huge).await,
            Err(ObjectError::MalformedPolicy(
                "Policy exceeds the maximum allowed document size.".into()
            ))
        );
        assert_eq!(get(&cloud, &alice, "b").await.as_deref(), Ok(PUBLIC_READ));
    }

    fn public(text: &str) -> bool {
        let policy = parse("b", text).expect("parses");
        grants_public_access(&policy, text)
    }

    #[test]
    fn what_makes_a_policy_public() {
        assert!(public(PUBLIC_READ));
        let statement = |principal: &str, effect: &str, condition: &str| {
            format!(
                r#"{{"Statement":{{"Effect":"{effect}","Principal":{principal},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"{condition}}}}}"#
            )
        };
        assert!(!public(&statement(
            r#"{"AWS":"111122223333"}"#,
            "Allow",
            ""
        )));
        assert!(!public(&statement("\"*\"", "Deny", "")));
        assert!(public(&statement(r#"{"AWS":"*"}"#, "Allow", "")));
        let ip = r#","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/24"}}"#;
        assert!(!public(&statement("\"*\"", "Allow", ip)));
        let anywhere = r#","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#;
        assert!(public(&statement("\"*\"", "Allow", anywhere)));
        let not_ip = r#","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/24"}}"#;
        assert!(public(&statement("\"*\"", "Allow", not_ip)));
        let tls = r#","Condition":{"Bool":{"aws:SecureTransport":"true"}}"#;
        assert!(public(&statement("\"*\"", "Allow", tls)));
        let account = r#","Condition":{"StringEquals":{"aws:PrincipalAccount":["111122223333"]}}"#;
        assert!(!public(&statement("\"*\"", "Allow", account)));
    }
}
