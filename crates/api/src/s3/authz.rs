//! S3 requests as IAM sees them: the IAM action of each S3 operation
//! (`GetObject` and `HeadObject` need `s3:GetObject`, the multipart steps
//! `s3:PutObject`, listing a bucket `s3:ListBucket`, …), the resource ARN
//! (`arn:aws:s3:::bucket`, `arn:aws:s3:::bucket/key`), the S3 condition
//! keys, and the identity-policy check every signed request passes before
//! the operation's own ACL checks.

use mallee_cloud::identity::authorize::{self, Access, Target, Verdict};
use mallee_cloud::{Cloud, Principal};
use mallee_policy::Context;
use s3s::access::S3AccessContext;
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use super::error::internal;

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
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "ListParts" => "ListMultipartUploadParts",
        "ListBuckets" => "ListAllMyBuckets",
        // The rest are named as their operations (GetBucketAcl,
        // PutObjectAcl, AbortMultipartUpload, GetBucketLocation, …).
        other => other,
    };
    format!("s3:{action}")
}

/// The resource ARN of a path.
pub fn resource_arn(path: &S3Path) -> String {
    match path {
        S3Path::Root => "*".into(),
        S3Path::Bucket { bucket } => format!("arn:aws:s3:::{bucket}"),
        S3Path::Object { bucket, key } => format!("arn:aws:s3:::{bucket}/{key}"),
    }
}

/// `s3:prefix`, `s3:delimiter`, `s3:max-keys` (listing) and `s3:x-amz-acl`.
fn s3_context(cx: &S3AccessContext<'_>) -> Context {
    let mut c = Context::new();
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

/// Refuses the request with `AccessDenied` unless the caller's identity
/// policies allow the operation on its resource.
pub async fn check(cloud: &Cloud, principal: &Principal, cx: &S3AccessContext<'_>) -> S3Result<()> {
    let action = iam_action(cx.s3_op().name());
    let mut context = s3_context(cx);
    context.insert("aws:RequestedRegion", cloud.config.region.clone());
    let access = Access {
        action: &action,
        resources: vec![Target {
            arn: resource_arn(cx.s3_path()),
            context: Context::new(),
        }],
        context,
    };
    match authorize::check(&*cloud.store, principal, access).await {
        Ok(Verdict::Allowed) => Ok(()),
        Ok(Verdict::Denied { .. })
        | Err(mallee_cloud::identity::IdentityError::AccessDenied(_)) => {
            Err(s3_error!(AccessDenied, "Access Denied"))
        }
        Err(e) => Err(internal(e)),
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
        assert_eq!(resource_arn(&S3Path::Root), "*");
        assert_eq!(
            resource_arn(&S3Path::Object {
                bucket: "b".into(),
                key: "k/x".into()
            }),
            "arn:aws:s3:::b/k/x"
        );
    }
}
