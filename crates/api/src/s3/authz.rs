//! S3 requests as IAM sees them, and the decision each passes before its
//! operation runs. The IAM action of each S3 operation (`GetObject` and
//! `HeadObject` need `s3:GetObject`, the multipart steps `s3:PutObject`,
//! listing a bucket `s3:ListBucket`, …), the resource ARN
//! (`arn:aws:s3:::bucket`, `arn:aws:s3:::bucket/key`) and the condition
//! keys (`s3:prefix`, `s3:x-amz-acl`, `aws:SourceIp`, …) are decided here
//! against the caller's identity policies and the bucket's policy by S3's
//! rule (`mallee_policy::s3::authorize`): an explicit deny in either
//! refuses; a bucket policy grant lets the request in (across accounts only
//! with the caller's own allow too) and reaches the operation as a
//! [`PolicyGrant`] its ACL check accepts; otherwise the caller's identity
//! policies must allow (anonymous callers have none to ask), and the
//! operation decides by ownership and ACL. A copy's source is decided as a
//! read in the source's bucket: its bucket policy may grant or deny it.

use std::net::IpAddr;

use mallee_cloud::Cloud;
use mallee_cloud::identity::IdentityError;
use mallee_cloud::identity::authorize::{CallerIdentity, Target};
use mallee_cloud::objects::acl::Permission;
use mallee_cloud::objects::{PolicyGrant, Requester, controls, policy};
use mallee_policy::s3::{S3Access, S3Grant, authorize};
use mallee_policy::{Caller, Context, Decision, Policy, Request, evaluate_one};
use mallee_store::Bucket;
use s3s::access::S3AccessContext;
use s3s::dto::CopySource;
use s3s::path::S3Path;
use s3s::{S3Error, S3Result, s3_error};

use super::acl::canonical_id;
use super::error::internal;
use crate::authorize::RequestFacts;

/// The IAM action an S3 operation naming a version (`versionId`) needs:
/// AWS asks the `…Version…` action of reads, deletes, ACLs and tags of
/// one version.
pub fn versioned_iam_action(operation: &str) -> String {
    let action = match operation {
        "HeadObject" | "GetObject" => "GetObjectVersion",
        "DeleteObject" | "DeleteObjects" => "DeleteObjectVersion",
        "GetObjectAcl" => "GetObjectVersionAcl",
        "PutObjectAcl" => "PutObjectVersionAcl",
        "GetObjectTagging" => "GetObjectVersionTagging",
        "PutObjectTagging" => "PutObjectVersionTagging",
        "DeleteObjectTagging" => "DeleteObjectVersionTagging",
        _ => return iam_action(operation),
    };
    format!("s3:{action}")
}

/// The IAM action an S3 operation needs.
pub fn iam_action(operation: &str) -> String {
    let action = match operation {
        "HeadObject" | "GetObject" | "GetObjectAttributes" => "GetObject",
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "PutObject",
        "DeleteObject" | "DeleteObjects" => "DeleteObject",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        // AWS's names for the bucket's configuration actions.
        "GetBucketCors" => "GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        "GetPublicAccessBlock" => "GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "PutBucketPublicAccessBlock",
        "DeleteBucketOwnershipControls" => "PutBucketOwnershipControls",
        "GetBucketLifecycleConfiguration" | "GetBucketLifecycle" => "GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "PutBucketLifecycle" | "DeleteBucketLifecycle" => {
            "PutLifecycleConfiguration"
        }
        "GetBucketEncryption" => "GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "PutEncryptionConfiguration",
        "GetBucketReplication" => "GetReplicationConfiguration",
        "GetBucketAccelerateConfiguration" => "GetAccelerateConfiguration",
        "GetObjectLockConfiguration" => "GetBucketObjectLockConfiguration",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "ListParts" => "ListMultipartUploadParts",
        "ListBuckets" => "ListAllMyBuckets",
        // AWS has no action of its own for removing a bucket's tags.
        "DeleteBucketTagging" => "PutBucketTagging",
        // The rest are named as their operations (GetBucketAcl,
        // PutObjectAcl, AbortMultipartUpload, GetBucketLocation,
        // PutBucketPolicy, GetBucketPolicyStatus, GetBucketTagging,
        // Put/Get/DeleteObjectTagging, …).
        other => other,
    };
    format!("s3:{action}")
}

/// The ACL permission an operation's own check asks for, and whether on
/// the object (else on the bucket): what a bucket policy grant stands in
/// for. `None` for operations only the bucket's account may make
/// (location, deletion, the bucket policy, the bucket's tags) or that name
/// no bucket.
fn acl_permission(operation: &str) -> Option<(Permission, bool)> {
    Some(match operation {
        "HeadObject" | "GetObject" | "GetObjectTagging" => (Permission::Read, true),
        "GetObjectAcl" => (Permission::ReadAcp, true),
        "PutObjectAcl" => (Permission::WriteAcp, true),
        "PutObject"
        | "CopyObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "ListParts"
        | "ListMultipartUploads"
        | "PutObjectTagging"
        | "DeleteObjectTagging" => (Permission::Write, false),
        "ListObjects" | "ListObjectsV2" | "ListObjectVersions" | "HeadBucket" => {
            (Permission::Read, false)
        }
        "GetBucketAcl" => (Permission::ReadAcp, false),
        "PutBucketAcl" => (Permission::WriteAcp, false),
        _ => return None,
    })
}

/// Operations the bucket's own account `admin` may always make, whatever
/// the bucket policy says, so that a policy cannot lock its owner out (as
/// AWS lets the owner account's root user).
fn manages_policy(operation: &str) -> bool {
    matches!(
        operation,
        "PutBucketPolicy" | "GetBucketPolicy" | "DeleteBucketPolicy" | "GetBucketPolicyStatus"
    )
}

/// The resource ARN of a bucket or object (`*` for none).
pub fn resource_arn(bucket: Option<&str>, key: Option<&str>) -> String {
    match (bucket, key) {
        (None, _) => "*".into(),
        (Some(bucket), None) => format!("arn:aws:s3:::{bucket}"),
        (Some(bucket), Some(key)) => format!("arn:aws:s3:::{bucket}/{key}"),
    }
}

/// `s3:prefix`, `s3:delimiter`, `s3:max-keys` (listing) and `s3:x-amz-acl`,
/// with the global keys of `facts`.
fn s3_context(cx: &S3AccessContext<'_>, facts: &RequestFacts) -> Context {
    let mut c = facts.context();
    if let Some(query) = cx.uri().query() {
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if matches!(k.as_ref(), "prefix" | "delimiter" | "max-keys") {
                c.insert(&format!("s3:{k}"), v.into_owned());
            }
        }
    }
    if let Some(acl) = cx.headers().get("x-amz-acl").and_then(|v| v.to_str().ok()) {
        c.insert("s3:x-amz-acl", acl);
    }
    c
}

/// One decision a request needs: `action` on `bucket` (and `key`).
#[derive(Debug, Clone)]
struct Check {
    action: String,
    bucket: Option<String>,
    key: Option<String>,
    /// What a bucket policy grant stands for in the operation's own check:
    /// the ACL permission, and whether on the object (else the bucket).
    grants: Option<(Permission, bool)>,
    /// What a refusal of this check does to the request.
    need: Need,
}

/// How much a check's refusal counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A refusal refuses the request.
    Required,
    /// Asked only to learn whether the bucket policy grants it (listing,
    /// which tells a missing key from a forbidden one); never refuses.
    Optional,
}

impl Check {
    fn arn(&self) -> String {
        resource_arn(self.bucket.as_deref(), self.key.as_deref())
    }

    /// Reading `bucket/key` (a copy's source): the caller needs
    /// `s3:GetObject` on it as well as `s3:PutObject` on the target, as
    /// AWS asks.
    fn read(bucket: &str, key: &str, versioned: bool) -> Self {
        Self {
            action: if versioned {
                "s3:GetObjectVersion"
            } else {
                "s3:GetObject"
            }
            .into(),
            bucket: Some(bucket.into()),
            key: Some(key.into()),
            grants: Some((Permission::Read, true)),
            need: Need::Required,
        }
    }

    /// Listing `bucket`, asked of reads so that a bucket policy allowing
    /// it lets a missing key be told apart.
    fn listing(bucket: &str) -> Self {
        Self {
            action: "s3:ListBucket".into(),
            bucket: Some(bucket.into()),
            key: None,
            grants: Some((Permission::Read, false)),
            need: Need::Optional,
        }
    }

    /// What a bucket policy's grant of this check gives the operation.
    fn grant(&self) -> Option<PolicyGrant> {
        let (permission, on_object) = self.grants?;
        Some(PolicyGrant {
            bucket: self.bucket.clone()?,
            key: if on_object { self.key.clone() } else { None },
            permission,
        })
    }
}

/// The decisions an operation on `path` needs: its own (of a version when
/// `versioned`), the read of a copy's source (`copy_source` is its
/// header), tagging the object a write that carries `x-amz-tagging`
/// (`tagged`) makes, as AWS asks, and the listings that let a read tell
/// NoSuchKey.
fn checks(
    operation: &str,
    path: &S3Path,
    copy_source: Option<&str>,
    tagged: bool,
    versioned: bool,
) -> Vec<Check> {
    let (bucket, key) = match path {
        S3Path::Root => (None, None),
        S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
        S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
    };
    let mut out = vec![Check {
        action: if versioned {
            versioned_iam_action(operation)
        } else {
            iam_action(operation)
        },
        bucket: bucket.clone(),
        key: key.clone(),
        grants: acl_permission(operation),
        need: Need::Required,
    }];
    if matches!(operation, "CopyObject" | "UploadPartCopy")
        // The operation refuses a source it cannot parse.
        && let Some(Ok(CopySource::Bucket {
            bucket,
            key,
            version_id,
        })) = copy_source.map(CopySource::parse)
    {
        out.push(Check::read(&bucket, &key, version_id.is_some()));
        out.push(Check::listing(&bucket));
    }
    if tagged && matches!(operation, "PutObject" | "CreateMultipartUpload") {
        out.push(Check {
            action: "s3:PutObjectTagging".into(),
            bucket: bucket.clone(),
            key: key.clone(),
            grants: acl_permission("PutObjectTagging"),
            need: Need::Required,
        });
    }
    if matches!(operation, "GetObject" | "HeadObject")
        && let (Some(bucket), Some(_)) = (&bucket, &key)
    {
        out.push(Check::listing(bucket));
    }
    out
}

/// The caller as policies see it: its identity (with its policies) when
/// signed.
#[derive(Clone)]
struct Asker {
    identity: Option<std::sync::Arc<CallerIdentity>>,
    account: Option<String>,
}

/// DeleteObjects names its keys in its body, which the access hook does
/// not read: the operation decides each key as an `s3:DeleteObject` of
/// `bucket/key` of its own, as AWS does, with what the hook gathered. So a
/// user allowed to delete under one prefix can delete there in bulk, and a
/// refused key fails alone.
#[derive(Clone)]
pub struct KeyDeletes {
    asker: Asker,
    context: Context,
    bucket: String,
    record: Option<Bucket>,
}

/// How one key of a DeleteObjects fares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDecision {
    /// Refused: the key is reported `AccessDenied` and kept.
    Refused,
    /// A bucket policy grants it: the deletion runs with this grant.
    Granted(PolicyGrant),
    /// The deletion decides by ownership and ACL.
    ToOperation,
}

impl KeyDeletes {
    /// Decides deleting `key` (one of its versions when `versioned`).
    pub fn decide(&self, key: &str, versioned: bool) -> S3Result<KeyDecision> {
        let check = Check {
            action: if versioned {
                "s3:DeleteObjectVersion"
            } else {
                "s3:DeleteObject"
            }
            .into(),
            bucket: Some(self.bucket.clone()),
            key: Some(key.into()),
            grants: acl_permission("DeleteObjects"),
            need: Need::Required,
        };
        let outcome = decide(
            "DeleteObjects",
            &check,
            self.record.as_ref(),
            &self.asker,
            &self.context,
        )?;
        Ok(match outcome {
            Outcome::Granted => check
                .grant()
                .map_or(KeyDecision::ToOperation, KeyDecision::Granted),
            Outcome::ToOperation => KeyDecision::ToOperation,
            Outcome::Refused { .. } => KeyDecision::Refused,
        })
    }
}

/// Decides the request in `cx` for `caller`, refusing it with
/// `AccessDenied` or recording on `caller` what bucket policies granted.
/// A DeleteObjects is left to decide per key: its [`KeyDeletes`] is
/// returned.
pub async fn check(
    cloud: &Cloud,
    caller: &mut Requester,
    cx: &S3AccessContext<'_>,
    source_ip: Option<IpAddr>,
) -> S3Result<Option<KeyDeletes>> {
    let operation = cx.s3_op().name();
    let facts = RequestFacts {
        source_ip,
        region: Some(cloud.config.region.clone()),
    };
    let context = s3_context(cx, &facts);
    let asker = match caller.as_principal() {
        Some(principal) => Asker {
            identity: Some(
                cloud
                    .identities
                    .caller(&*cloud.store, principal)
                    .await
                    .map_err(identity_error)?,
            ),
            account: Some(principal.account_id().to_owned()),
        },
        None => Asker {
            identity: None,
            account: None,
        },
    };
    if operation == "DeleteObjects"
        && let S3Path::Bucket { bucket } = cx.s3_path()
    {
        return Ok(Some(KeyDeletes {
            asker,
            context,
            bucket: bucket.to_string(),
            record: cloud.store.bucket(bucket).await.map_err(internal)?,
        }));
    }
    let copy_source = cx
        .headers()
        .get("x-amz-copy-source")
        .and_then(|v| v.to_str().ok());
    let tagged = cx.headers().contains_key("x-amz-tagging");
    let versioned = cx.uri().query().is_some_and(|query| {
        form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "versionId")
    });
    let mut buckets: Vec<(String, Option<Bucket>)> = Vec::new();
    for check in checks(operation, cx.s3_path(), copy_source, tagged, versioned) {
        let bucket = match &check.bucket {
            None => None,
            Some(name) => {
                if !buckets.iter().any(|(n, _)| n == name) {
                    let found = cloud.store.bucket(name).await.map_err(internal)?;
                    buckets.push((name.clone(), found));
                }
                buckets
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, b)| b.as_ref())
            }
        };
        let outcome = decide(operation, &check, bucket, &asker, &context)?;
        match outcome {
            Outcome::Granted => {
                if let Some(grant) = check.grant() {
                    caller.grant(grant);
                }
            }
            Outcome::ToOperation => {}
            Outcome::Refused { .. } => {
                let refuses = match check.need {
                    Need::Required => true,
                    Need::Optional => false,
                };
                if refuses {
                    return Err(s3_error!(AccessDenied, "Access Denied"));
                }
            }
        }
    }
    Ok(None)
}

/// What one decision comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A bucket policy lets the caller in.
    Granted,
    /// The operation decides by ownership and ACL.
    ToOperation,
    /// Refused; `explicit` when a statement denied.
    Refused {
        /// A Deny statement matched (rather than nothing allowing).
        explicit: bool,
    },
}

/// Decides `check` for `asker` against the bucket's policy (if the bucket
/// exists) and the caller's identity policies.
fn decide(
    operation: &str,
    check: &Check,
    bucket: Option<&Bucket>,
    asker: &Asker,
    context: &Context,
) -> S3Result<Outcome> {
    let arn = check.arn();
    let identity = match &asker.identity {
        Some(identity) => {
            let target = Target {
                arn: arn.clone(),
                context: Context::new(),
            };
            Decision {
                verdict: identity.decide(&check.action, &target, context).verdict,
                matched: None,
            }
        }
        None => Decision::IMPLICIT_DENY,
    };
    let caller_owns = bucket.is_some_and(|b| asker.account.as_deref() == Some(&b.account_id));
    let exempt = manages_policy(operation)
        && caller_owns
        && asker.identity.as_ref().is_some_and(|i| i.is_admin());
    let compiled: Option<Policy> = match bucket {
        Some(b) if !exempt => policy::compiled(b).map_err(internal)?,
        _ => None,
    };
    let label = bucket.map(|b| format!("bucket policy of {}", b.name));
    let mut policy_context;
    let bucket_policy = match (&compiled, &label) {
        (Some(p), Some(label)) => {
            policy_context = context.clone();
            let canonical = asker.account.as_deref().map(canonical_id);
            let caller = match (&asker.identity, &asker.account) {
                (Some(identity), Some(account)) => {
                    for (key, values) in identity.context().entries() {
                        policy_context.insert_many(key, values.iter().cloned());
                    }
                    Caller::Aws {
                        account,
                        arn: identity.arn(),
                    }
                }
                _ => Caller::Anonymous,
            };
            let request = Request {
                action: &check.action,
                resource: &arn,
                caller,
                canonical_user: canonical.as_deref(),
                context: &policy_context,
            };
            let decision = evaluate_one(&request, label, p);
            // RestrictPublicBuckets: a public policy lets in no one from
            // outside the bucket's account (its denies still apply).
            let restricted = bucket.is_some_and(|b| {
                !caller_owns
                    && controls::access_block(b).restrict_public_buckets
                    && b.policy
                        .as_deref()
                        .is_some_and(|text| policy::grants_public_access(p, text))
            });
            if restricted && decision.is_allowed() {
                Decision::IMPLICIT_DENY
            } else {
                decision
            }
        }
        _ => Decision::IMPLICIT_DENY,
    };
    let access = S3Access {
        identity,
        bucket_policy,
        acl_allows: false,
        caller_owns,
        anonymous: asker.identity.is_none(),
    };
    let decided = authorize(access);
    if compiled.is_some() {
        tracing::info!(
            target: "mallee::authz",
            principal = asker.identity.as_ref().map_or("anonymous", |i| i.arn()),
            action = %check.action,
            resource = %arn,
            decision = %decided.decision,
            grant = ?decided.grant,
            "s3 authorization"
        );
    }
    Ok(if decided.is_allowed() {
        if decided.grant == Some(S3Grant::BucketPolicy) {
            Outcome::Granted
        } else {
            Outcome::ToOperation
        }
    } else if decided.decision.is_explicit_deny() {
        Outcome::Refused { explicit: true }
    } else if authorize(S3Access {
        acl_allows: true,
        ..access
    })
    .is_allowed()
    {
        Outcome::ToOperation
    } else {
        Outcome::Refused { explicit: false }
    })
}

/// A caller whose identity cannot be loaded: gone since it signed, or a
/// store failure.
fn identity_error(e: IdentityError) -> S3Error {
    match e {
        IdentityError::AccessDenied(_) => s3_error!(AccessDenied, "Access Denied"),
        other => internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_arns() {
        assert_eq!(iam_action("HeadObject"), "s3:GetObject");
        assert_eq!(iam_action("UploadPart"), "s3:PutObject");
        assert_eq!(iam_action("ListObjectsV2"), "s3:ListBucket");
        assert_eq!(iam_action("GetBucketAcl"), "s3:GetBucketAcl");
        assert_eq!(iam_action("GetBucketPolicy"), "s3:GetBucketPolicy");
        assert_eq!(iam_action("GetObjectTagging"), "s3:GetObjectTagging");
        assert_eq!(iam_action("DeleteObjectTagging"), "s3:DeleteObjectTagging");
        assert_eq!(iam_action("GetBucketTagging"), "s3:GetBucketTagging");
        assert_eq!(iam_action("DeleteBucketTagging"), "s3:PutBucketTagging");
        assert_eq!(resource_arn(None, None), "*");
        assert_eq!(resource_arn(Some("b"), Some("k/x")), "arn:aws:s3:::b/k/x");
    }

    #[test]
    fn copies_read_their_source_and_reads_ask_to_list() {
        let object = S3Path::Object {
            bucket: "dst".into(),
            key: "d/k".into(),
        };
        let copy = checks(
            "CopyObject",
            &object,
            Some("/src/s%20k?versionId=1"),
            false,
            false,
        );
        let asked: Vec<(String, String, Need)> = copy
            .iter()
            .map(|c| (c.action.clone(), c.arn(), c.need))
            .collect();
        assert_eq!(
            asked,
            [
                (
                    "s3:PutObject".into(),
                    "arn:aws:s3:::dst/d/k".into(),
                    Need::Required
                ),
                (
                    "s3:GetObjectVersion".into(),
                    "arn:aws:s3:::src/s k".into(),
                    Need::Required
                ),
                (
                    "s3:ListBucket".into(),
                    "arn:aws:s3:::src".into(),
                    Need::Optional
                ),
            ]
        );
        // Writing an object is its bucket's WRITE; reading it the object's
        // READ.
        assert_eq!(
            copy[0].grant(),
            Some(PolicyGrant {
                bucket: "dst".into(),
                key: None,
                permission: Permission::Write
            })
        );
        assert_eq!(copy[1].grant().and_then(|g| g.key), Some("s k".to_string()));
        let get = checks("GetObject", &object, None, false, false);
        assert_eq!(get.len(), 2);
        assert_eq!(get[1].need, Need::Optional);
        // Operations of the bucket's account alone get no grant.
        let bucket = S3Path::Bucket {
            bucket: "dst".into(),
        };
        assert_eq!(
            checks("DeleteBucket", &bucket, None, false, false)[0].grant(),
            None
        );
        assert_eq!(
            checks("ListBuckets", &S3Path::Root, None, false, false)[0].arn(),
            "*"
        );
        // A write that tags its object needs the tagging action too.
        let tagged: Vec<String> = checks("PutObject", &object, None, true, false)
            .into_iter()
            .map(|c| c.action)
            .collect();
        assert_eq!(tagged, ["s3:PutObject", "s3:PutObjectTagging"]);
        assert_eq!(checks("PutObject", &object, None, false, false).len(), 1);
        // Naming a version asks the version's action.
        let actions = |op: &str| -> Vec<String> {
            checks(op, &object, None, false, true)
                .into_iter()
                .map(|c| c.action)
                .collect()
        };
        assert_eq!(
            actions("GetObject"),
            ["s3:GetObjectVersion", "s3:ListBucket"]
        );
        assert_eq!(actions("DeleteObject"), ["s3:DeleteObjectVersion"]);
        assert_eq!(actions("PutObjectAcl"), ["s3:PutObjectVersionAcl"]);
        assert_eq!(actions("GetObjectTagging"), ["s3:GetObjectVersionTagging"]);
        assert_eq!(actions("PutObject"), ["s3:PutObject"]);
    }
}
