//! Every S3 operation goes through IAM (see `policy_coverage.rs` for the
//! Query APIs): signed with the `aws-sigv4` signer for `s3`, each
//! operation on the account's bucket `fixture` is refused with
//! `AccessDenied` to a user whose policy allows everything but the IAM
//! action the operation needs, with no row of the database and no object
//! file changed, and let through for a user allowed exactly that action.
//! The IAM action of each operation is this file's own table (S3's
//! mapping is private to the S3 module): the allowed pass proves each
//! entry right, as a user allowed the wrong action would be refused. The
//! table must name exactly the operations `impl S3 for S3Api` serves (read
//! from its source, as s3s dispatches them): a new operation without an
//! entry fails here.

mod iam_harness;

use iam_harness::{Controller, Key, Reply, account, digest, policies_for, send, start};

/// One S3 operation: the IAM action it needs, and its request against the
/// fixture bucket `fixture` (holding `k`, with the upload `{upload}` of
/// `mp` in progress).
struct S3Op {
    operation: &'static str,
    iam_action: &'static str,
    /// Further actions the operation needs, which the allowed user gets
    /// and the refused user keeps (a copy also reads its source).
    also: &'static [&'static str],
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
}

const DELETE_BODY: &str = "<Delete><Object><Key>k</Key></Object><Quiet>true</Quiet></Delete>";
/// A bucket policy for PutBucketPolicy.
const BUCKET_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::fixture/*"}]}"#;
/// Base64 of the MD5 of [`DELETE_BODY`], which DeleteObjects requires.
const DELETE_MD5: &str = "sha/ftQZeVZnCOBHT4gO6A==";
/// DeleteObjects naming a version, and the base64 MD5 of it.
const DELETE_VERSION_BODY: &str =
    "<Delete><Object><Key>k</Key><VersionId>null</VersionId></Object><Quiet>true</Quiet></Delete>";
const DELETE_VERSION_MD5: &str = "NVDI5MqAMijxBsrHs5fPZA==";
/// A versioning configuration for PutBucketVersioning (suspending keeps
/// the fixture's later deletes plain deletes of the null version).
const VERSIONING_BODY: &str =
    "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>";
/// A CORS configuration for PutBucketCors, and the base64 MD5 of it.
const CORS_BODY: &str = "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>";
const CORS_MD5: &str = "8alqrbXMPQqTnk2/Sr7qJw==";
/// A public access block for PutPublicAccessBlock, and its base64 MD5.
const PAB_BODY: &str = "<PublicAccessBlockConfiguration><BlockPublicAcls>false</BlockPublicAcls><IgnorePublicAcls>false</IgnorePublicAcls><BlockPublicPolicy>false</BlockPublicPolicy><RestrictPublicBuckets>false</RestrictPublicBuckets></PublicAccessBlockConfiguration>";
const PAB_MD5: &str = "1KLWhLdFw1OY6VJ4KDW02A==";
/// Ownership controls for PutBucketOwnershipControls, and their base64
/// MD5 (ObjectWriter keeps ACLs on for the operations after it).
const OWNERSHIP_BODY: &str = "<OwnershipControls><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule></OwnershipControls>";
const OWNERSHIP_MD5: &str = "rPxKjlC13UdxAqEZH2wA6g==";
/// Lifecycle rules for PutBucketLifecycleConfiguration, and their base64
/// MD5.
const LIFECYCLE_BODY: &str = "<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>";
const LIFECYCLE_MD5: &str = "3cFRneBsGL8aVy0VDAOgEA==";
/// Default encryption for PutBucketEncryption, and its base64 MD5.
const ENCRYPTION_BODY: &str = "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>";
const ENCRYPTION_MD5: &str = "6vzSAkrj6gUU1ZdQlOJRWQ==";
const COMPLETE_BODY: &str = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"0\"</ETag></Part></CompleteMultipartUpload>";

/// A tag set for Put*Tagging.
const TAGGING_BODY: &str =
    "<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>";
/// Base64 of the MD5 of [`TAGGING_BODY`] (S3 asks a checksum of tagging puts).
const TAGGING_MD5: &str = "ygxpoiUw4ExsUsHRCTjifw==";

const S3_OPS: &[S3Op] = &[
    S3Op {
        operation: "ListBuckets",
        iam_action: "s3:ListAllMyBuckets",
        also: &[],
        method: "GET",
        path: "/",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "CreateBucket",
        iam_action: "s3:CreateBucket",
        also: &[],
        method: "PUT",
        path: "/created",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "HeadBucket",
        iam_action: "s3:ListBucket",
        also: &[],
        method: "HEAD",
        path: "/fixture",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "ListObjects",
        iam_action: "s3:ListBucket",
        also: &[],
        method: "GET",
        path: "/fixture",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "ListObjectsV2",
        iam_action: "s3:ListBucket",
        also: &[],
        method: "GET",
        path: "/fixture?list-type=2",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketLocation",
        iam_action: "s3:GetBucketLocation",
        also: &[],
        method: "GET",
        path: "/fixture?location",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketAcl",
        iam_action: "s3:GetBucketAcl",
        also: &[],
        method: "GET",
        path: "/fixture?acl",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutBucketAcl",
        iam_action: "s3:PutBucketAcl",
        also: &[],
        method: "PUT",
        path: "/fixture?acl",
        headers: &[("x-amz-acl", "public-read")],
        body: "",
    },
    S3Op {
        operation: "GetObject",
        iam_action: "s3:GetObject",
        also: &[],
        method: "GET",
        path: "/fixture/k",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "HeadObject",
        iam_action: "s3:GetObject",
        also: &[],
        method: "HEAD",
        path: "/fixture/k",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutObject",
        iam_action: "s3:PutObject",
        also: &[],
        method: "PUT",
        path: "/fixture/k",
        headers: &[],
        body: "replaced",
    },
    S3Op {
        operation: "CopyObject",
        iam_action: "s3:PutObject",
        also: &["s3:GetObject"],
        method: "PUT",
        path: "/fixture/copy",
        headers: &[("x-amz-copy-source", "/fixture/k")],
        body: "",
    },
    S3Op {
        operation: "CopyObject (reading the source)",
        iam_action: "s3:GetObject",
        also: &["s3:PutObject"],
        method: "PUT",
        path: "/fixture/copy2",
        headers: &[("x-amz-copy-source", "/fixture/k")],
        body: "",
    },
    S3Op {
        operation: "GetObjectAcl",
        iam_action: "s3:GetObjectAcl",
        also: &[],
        method: "GET",
        path: "/fixture/k?acl",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutObjectAcl",
        iam_action: "s3:PutObjectAcl",
        also: &[],
        method: "PUT",
        path: "/fixture/k?acl",
        headers: &[("x-amz-acl", "public-read")],
        body: "",
    },
    S3Op {
        operation: "CreateMultipartUpload",
        iam_action: "s3:PutObject",
        also: &[],
        method: "POST",
        path: "/fixture/mp2?uploads",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "UploadPart",
        iam_action: "s3:PutObject",
        also: &[],
        method: "PUT",
        path: "/fixture/mp?partNumber=1&uploadId={upload}",
        headers: &[],
        body: "part",
    },
    S3Op {
        operation: "UploadPartCopy",
        iam_action: "s3:PutObject",
        also: &["s3:GetObject"],
        method: "PUT",
        path: "/fixture/mp?partNumber=2&uploadId={upload}",
        headers: &[("x-amz-copy-source", "/fixture/k")],
        body: "",
    },
    S3Op {
        operation: "UploadPartCopy (reading the source)",
        iam_action: "s3:GetObject",
        also: &["s3:PutObject"],
        method: "PUT",
        path: "/fixture/mp?partNumber=3&uploadId={upload}",
        headers: &[("x-amz-copy-source", "/fixture/k")],
        body: "",
    },
    S3Op {
        operation: "ListParts",
        iam_action: "s3:ListMultipartUploadParts",
        also: &[],
        method: "GET",
        path: "/fixture/mp?uploadId={upload}",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "ListMultipartUploads",
        iam_action: "s3:ListBucketMultipartUploads",
        also: &[],
        method: "GET",
        path: "/fixture?uploads",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "CompleteMultipartUpload",
        iam_action: "s3:PutObject",
        also: &[],
        method: "POST",
        path: "/fixture/mp?uploadId={upload}",
        headers: &[],
        body: COMPLETE_BODY,
    },
    S3Op {
        operation: "AbortMultipartUpload",
        iam_action: "s3:AbortMultipartUpload",
        also: &[],
        method: "DELETE",
        path: "/fixture/mp?uploadId={upload}",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketPolicy",
        iam_action: "s3:GetBucketPolicy",
        also: &[],
        method: "GET",
        path: "/fixture?policy",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketPolicyStatus",
        iam_action: "s3:GetBucketPolicyStatus",
        also: &[],
        method: "GET",
        path: "/fixture?policyStatus",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutBucketPolicy",
        iam_action: "s3:PutBucketPolicy",
        also: &[],
        method: "PUT",
        path: "/fixture?policy",
        headers: &[],
        body: BUCKET_POLICY,
    },
    S3Op {
        operation: "DeleteBucketPolicy",
        iam_action: "s3:DeleteBucketPolicy",
        also: &[],
        method: "DELETE",
        path: "/fixture?policy",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutBucketTagging",
        iam_action: "s3:PutBucketTagging",
        also: &[],
        method: "PUT",
        path: "/fixture?tagging",
        headers: &[("content-md5", TAGGING_MD5)],
        body: TAGGING_BODY,
    },
    S3Op {
        operation: "GetBucketTagging",
        iam_action: "s3:GetBucketTagging",
        also: &[],
        method: "GET",
        path: "/fixture?tagging",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "DeleteBucketTagging",
        iam_action: "s3:PutBucketTagging",
        also: &[],
        method: "DELETE",
        path: "/fixture?tagging",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutObjectTagging",
        iam_action: "s3:PutObjectTagging",
        also: &[],
        method: "PUT",
        path: "/fixture/k?tagging",
        headers: &[("content-md5", TAGGING_MD5)],
        body: TAGGING_BODY,
    },
    S3Op {
        operation: "GetObjectTagging",
        iam_action: "s3:GetObjectTagging",
        also: &[],
        method: "GET",
        path: "/fixture/k?tagging",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "DeleteObjectTagging",
        iam_action: "s3:DeleteObjectTagging",
        also: &[],
        method: "DELETE",
        path: "/fixture/k?tagging",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetObject (a version)",
        iam_action: "s3:GetObjectVersion",
        also: &[],
        method: "GET",
        path: "/fixture/k?versionId=null",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "HeadObject (a version)",
        iam_action: "s3:GetObjectVersion",
        also: &[],
        method: "HEAD",
        path: "/fixture/k?versionId=null",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "CopyObject (reading a version)",
        iam_action: "s3:GetObjectVersion",
        also: &["s3:PutObject"],
        method: "PUT",
        path: "/fixture/copy3",
        headers: &[("x-amz-copy-source", "/fixture/k?versionId=null")],
        body: "",
    },
    S3Op {
        operation: "GetObjectAcl (a version)",
        iam_action: "s3:GetObjectVersionAcl",
        also: &[],
        method: "GET",
        path: "/fixture/k?acl&versionId=null",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutObjectAcl (a version)",
        iam_action: "s3:PutObjectVersionAcl",
        also: &[],
        method: "PUT",
        path: "/fixture/k?acl&versionId=null",
        headers: &[("x-amz-acl", "public-read")],
        body: "",
    },
    S3Op {
        operation: "GetObjectTagging (a version)",
        iam_action: "s3:GetObjectVersionTagging",
        also: &[],
        method: "GET",
        path: "/fixture/k?tagging&versionId=null",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutObjectTagging (a version)",
        iam_action: "s3:PutObjectVersionTagging",
        also: &[],
        method: "PUT",
        path: "/fixture/k?tagging&versionId=null",
        headers: &[("content-md5", TAGGING_MD5)],
        body: TAGGING_BODY,
    },
    S3Op {
        operation: "DeleteObjectTagging (a version)",
        iam_action: "s3:DeleteObjectVersionTagging",
        also: &[],
        method: "DELETE",
        path: "/fixture/k?tagging&versionId=null",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketVersioning",
        iam_action: "s3:GetBucketVersioning",
        also: &[],
        method: "GET",
        path: "/fixture?versioning",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutBucketVersioning",
        iam_action: "s3:PutBucketVersioning",
        also: &[],
        method: "PUT",
        path: "/fixture?versioning",
        headers: &[],
        body: VERSIONING_BODY,
    },
    S3Op {
        operation: "ListObjectVersions",
        iam_action: "s3:ListBucketVersions",
        also: &[],
        method: "GET",
        path: "/fixture?versions",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketCors",
        iam_action: "s3:GetBucketCORS",
        also: &[],
        method: "GET",
        path: "/fixture?cors",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutBucketCors",
        iam_action: "s3:PutBucketCORS",
        also: &[],
        method: "PUT",
        path: "/fixture?cors",
        headers: &[("content-md5", CORS_MD5)],
        body: CORS_BODY,
    },
    S3Op {
        operation: "DeleteBucketCors",
        iam_action: "s3:PutBucketCORS",
        also: &[],
        method: "DELETE",
        path: "/fixture?cors",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetPublicAccessBlock",
        iam_action: "s3:GetBucketPublicAccessBlock",
        also: &[],
        method: "GET",
        path: "/fixture?publicAccessBlock",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutPublicAccessBlock",
        iam_action: "s3:PutBucketPublicAccessBlock",
        also: &[],
        method: "PUT",
        path: "/fixture?publicAccessBlock",
        headers: &[("content-md5", PAB_MD5)],
        body: PAB_BODY,
    },
    S3Op {
        operation: "DeletePublicAccessBlock",
        iam_action: "s3:PutBucketPublicAccessBlock",
        also: &[],
        method: "DELETE",
        path: "/fixture?publicAccessBlock",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketOwnershipControls",
        iam_action: "s3:GetBucketOwnershipControls",
        also: &[],
        method: "GET",
        path: "/fixture?ownershipControls",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutBucketOwnershipControls",
        iam_action: "s3:PutBucketOwnershipControls",
        also: &[],
        method: "PUT",
        path: "/fixture?ownershipControls",
        headers: &[("content-md5", OWNERSHIP_MD5)],
        body: OWNERSHIP_BODY,
    },
    S3Op {
        operation: "DeleteBucketOwnershipControls",
        iam_action: "s3:PutBucketOwnershipControls",
        also: &[],
        method: "DELETE",
        path: "/fixture?ownershipControls",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketRequestPayment",
        iam_action: "s3:GetBucketRequestPayment",
        also: &[],
        method: "GET",
        path: "/fixture?requestPayment",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketAccelerateConfiguration",
        iam_action: "s3:GetAccelerateConfiguration",
        also: &[],
        method: "GET",
        path: "/fixture?accelerate",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketLogging",
        iam_action: "s3:GetBucketLogging",
        also: &[],
        method: "GET",
        path: "/fixture?logging",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketWebsite",
        iam_action: "s3:GetBucketWebsite",
        also: &[],
        method: "GET",
        path: "/fixture?website",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketReplication",
        iam_action: "s3:GetReplicationConfiguration",
        also: &[],
        method: "GET",
        path: "/fixture?replication",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutBucketEncryption",
        iam_action: "s3:PutEncryptionConfiguration",
        also: &[],
        method: "PUT",
        path: "/fixture?encryption",
        headers: &[("content-md5", ENCRYPTION_MD5)],
        body: ENCRYPTION_BODY,
    },
    S3Op {
        operation: "DeleteBucketEncryption",
        iam_action: "s3:PutEncryptionConfiguration",
        also: &[],
        method: "DELETE",
        path: "/fixture?encryption",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketEncryption",
        iam_action: "s3:GetEncryptionConfiguration",
        also: &[],
        method: "GET",
        path: "/fixture?encryption",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetObjectLockConfiguration",
        iam_action: "s3:GetBucketObjectLockConfiguration",
        also: &[],
        method: "GET",
        path: "/fixture?object-lock",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutBucketLifecycleConfiguration",
        iam_action: "s3:PutLifecycleConfiguration",
        also: &[],
        method: "PUT",
        path: "/fixture?lifecycle",
        headers: &[("content-md5", LIFECYCLE_MD5)],
        body: LIFECYCLE_BODY,
    },
    S3Op {
        operation: "DeleteBucketLifecycle",
        iam_action: "s3:PutLifecycleConfiguration",
        also: &[],
        method: "DELETE",
        path: "/fixture?lifecycle",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "GetBucketLifecycleConfiguration",
        iam_action: "s3:GetLifecycleConfiguration",
        also: &[],
        method: "GET",
        path: "/fixture?lifecycle",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "PutObject (tagging its object)",
        iam_action: "s3:PutObjectTagging",
        also: &["s3:PutObject"],
        method: "PUT",
        path: "/fixture/tagged",
        headers: &[("x-amz-tagging", "a=1")],
        body: "tagged",
    },
    S3Op {
        operation: "CreateMultipartUpload (tagging its object)",
        iam_action: "s3:PutObjectTagging",
        also: &["s3:PutObject"],
        method: "POST",
        path: "/fixture/mp3?uploads",
        headers: &[("x-amz-tagging", "a=1")],
        body: "",
    },
    S3Op {
        operation: "DeleteObjects",
        iam_action: "s3:DeleteObject",
        also: &[],
        method: "POST",
        path: "/fixture?delete",
        headers: &[("content-md5", DELETE_MD5)],
        body: DELETE_BODY,
    },
    S3Op {
        operation: "DeleteObjects (a version)",
        iam_action: "s3:DeleteObjectVersion",
        also: &[],
        method: "POST",
        path: "/fixture?delete",
        headers: &[("content-md5", DELETE_VERSION_MD5)],
        body: DELETE_VERSION_BODY,
    },
    S3Op {
        operation: "DeleteObject",
        iam_action: "s3:DeleteObject",
        also: &[],
        method: "DELETE",
        path: "/fixture/k",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "DeleteObject (a version)",
        iam_action: "s3:DeleteObjectVersion",
        also: &[],
        method: "DELETE",
        path: "/fixture/copy?versionId=null",
        headers: &[],
        body: "",
    },
    S3Op {
        operation: "DeleteBucket",
        iam_action: "s3:DeleteBucket",
        also: &[],
        method: "DELETE",
        path: "/fixture",
        headers: &[],
        body: "",
    },
];

/// Sends `op` signed by `key`, `{upload}` being the fixture upload's id.
async fn s3(c: &Controller, key: &Key, op: &S3Op, upload: &str) -> Reply {
    let path = op.path.replace("{upload}", upload);
    send(
        c.addr,
        key,
        "s3",
        op.method,
        &path,
        op.headers,
        op.body.as_bytes(),
    )
    .await
}

/// Whether `reply` is S3's refusal (a HEAD answer has no body to say so;
/// DeleteObjects refuses each key in its answer, as AWS does).
fn s3_refused(op: &S3Op, reply: &Reply) -> bool {
    if op.operation.starts_with("DeleteObjects") {
        return reply.status == 200 && reply.body.contains("<Code>AccessDenied</Code>");
    }
    reply.status == 403 && (op.method == "HEAD" || reply.code() == Some("AccessDenied"))
}

/// The operations `impl S3 for S3Api` in `src/s3/mod.rs` serves, in S3's
/// names (`list_objects_v2` is `ListObjectsV2`).
fn served_operations() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/s3/mod.rs");
    let source = std::fs::read_to_string(path).expect("read src/s3/mod.rs");
    let start = source
        .find("impl S3 for S3Api")
        .expect("src/s3/mod.rs implements S3 for S3Api");
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
    body.split("async fn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .map(|snake| {
            snake
                .split('_')
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map_or_else(String::new, |first| {
                        first.to_ascii_uppercase().to_string() + chars.as_str()
                    })
                })
                .collect::<String>()
        })
        .collect()
}

#[test]
fn every_served_s3_operation_has_an_entry() {
    let mut served = served_operations();
    served.sort();
    assert!(served.len() > 30, "read too few operations: {served:?}");
    // "CopyObject (reading the source)" is a second case of CopyObject.
    let mut table: Vec<String> = S3_OPS
        .iter()
        .map(|op| {
            op.operation
                .split(" (")
                .next()
                .unwrap_or(op.operation)
                .to_owned()
        })
        .collect();
    table.sort();
    table.dedup();
    let missing: Vec<&String> = served.iter().filter(|op| !table.contains(op)).collect();
    let unknown: Vec<&String> = table.iter().filter(|op| !served.contains(op)).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "S3_OPS does not match what impl S3 serves: no entry for {missing:?}; not served: {unknown:?}"
    );
}

#[tokio::test]
async fn every_s3_operation_is_refused_without_permission_and_allowed_with_it() {
    let c = start().await;
    let a = account(&c).await;
    let admin = |method: &'static str, path: &'static str, body: &'static str| S3Op {
        operation: "fixture",
        iam_action: "",
        also: &[],
        method,
        path,
        headers: &[],
        body,
    };
    for (method, path, body) in [("PUT", "/fixture", ""), ("PUT", "/fixture/k", "fixture")] {
        let reply = s3(&c, &a.admin, &admin(method, path, body), "").await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
    }
    let started = s3(&c, &a.admin, &admin("POST", "/fixture/mp?uploads", ""), "").await;
    assert_eq!(started.status, 200, "{}", started.body);
    let upload = started.element("UploadId").expect("UploadId").to_owned();

    for op in S3_OPS {
        policies_for(&c, &a, op.iam_action, op.also).await;
        let before = digest(&c.data).await;
        let reply = s3(&c, &a.denied, op, &upload).await;
        let after = digest(&c.data).await;
        assert!(
            s3_refused(op, &reply),
            "{} was not refused to a user without {}: {} {}",
            op.operation,
            op.iam_action,
            reply.status,
            reply.body
        );
        assert_eq!(
            before, after,
            "{} changed data although refused",
            op.operation
        );
    }
    let before_allowed = digest(&c.data).await;
    for op in S3_OPS {
        policies_for(&c, &a, op.iam_action, op.also).await;
        let reply = s3(&c, &a.allowed, op, &upload).await;
        assert!(
            !s3_refused(op, &reply),
            "{} was refused to a user allowed {}: {} {}",
            op.operation,
            op.iam_action,
            reply.status,
            reply.body
        );
    }
    // The digest sees what the allowed operations change.
    assert_ne!(before_allowed, digest(&c.data).await);
}
