"""What bucket tools read and set besides objects, with boto3: the public
access block (honoured over ACLs and bucket policies), object ownership
controls (BucketOwnerEnforced disables ACLs), request payment, the
configurations mallee has no feature for (answered as not configured, and
NotImplemented in S3's error shape where they are set), another account
touching none of it, and a replay of the read sequence of Terraform's
`aws_s3_bucket`, whose every answer must be data or an error the provider
tolerates.

The tolerated codes are those terraform-provider-aws lists in
internal/service/s3/errors.go (hashicorp/terraform-provider-aws, read at
commit 0e4b256e435cf8eb0c81a77c577b92a92050b899); its bucket read ignores,
per call, the "not found" code of that configuration and NotImplemented.
"""

import json

import pytest
from conftest import assert_s3_error, bucket_name, client_error, s3_raw

PUBLIC_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": None}],
}

# From internal/service/s3/errors.go of terraform-provider-aws.
TERRAFORM_TOLERATED = {
    "AccessDenied", "BucketAlreadyExists", "BucketAlreadyOwnedByYou", "BucketNotEmpty",
    "IllegalLocationConstraintException", "InvalidArgument", "InvalidBucketState", "InvalidRequest",
    "MalformedPolicy", "MetadataConfigurationNotFound", "MethodNotAllowed", "NoSuchBucket",
    "NoSuchBucketPolicy", "NoSuchConfiguration", "NoSuchCORSConfiguration", "NoSuchLifecycleConfiguration",
    "NoSuchKey", "NoSuchPublicAccessBlockConfiguration", "NoSuchTagSet", "NoSuchTagSetError",
    "NoSuchWebsiteConfiguration", "NotImplemented", "ObjectLockConfigurationNotFound",
    "ObjectLockConfigurationNotFoundError", "OperationAborted", "OwnershipControlsNotFoundError",
    "ReplicationConfigurationNotFoundError", "ServerSideEncryptionConfigurationNotFoundError",
    "UnsupportedArgument", "XNotImplemented", "UnsupportedOperation",
}


def public_policy(bucket):
    doc = json.loads(json.dumps(PUBLIC_POLICY))
    doc["Statement"][0]["Resource"] = f"arn:aws:s3:::{bucket}/*"
    return json.dumps(doc)


def anonymous_get(server, bucket, key):
    return s3_raw(server, "GET", f"/{bucket}/{key}", auth=None).status


def test_public_access_block_over_acls_and_policies(server, s3, s3_other, bucket):
    assert_s3_error(client_error(s3.get_public_access_block, Bucket=bucket), 404, "NoSuchPublicAccessBlockConfiguration")
    s3.put_object(Bucket=bucket, Key="acl-public", Body=b"a", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="private", Body=b"p")
    assert anonymous_get(server, bucket, "acl-public") == 200

    # IgnorePublicAcls: public grants count for nothing.
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"IgnorePublicAcls": True})
    got = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == {
        "BlockPublicAcls": False,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    assert anonymous_get(server, bucket, "acl-public") == 403

    # BlockPublicAcls: public ACLs are refused, and nothing changes.
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"BlockPublicAcls": True})
    assert anonymous_get(server, bucket, "acl-public") == 200
    for fn, kw in [
        (s3.put_object, dict(Key="new", Body=b"n", ACL="public-read")),
        (s3.put_object_acl, dict(Key="private", ACL="public-read")),
        (s3.put_bucket_acl, dict(ACL="public-read")),
        (s3.put_object_acl, dict(Key="private", ACL="authenticated-read")),
    ]:
        assert_s3_error(client_error(fn, Bucket=bucket, **kw), 403, "AccessDenied")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="new")
    assert anonymous_get(server, bucket, "private") == 403
    s3.put_object_acl(Bucket=bucket, Key="private", ACL="private")

    # BlockPublicPolicy: a public bucket policy is refused.
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"BlockPublicPolicy": True})
    err = client_error(s3.put_bucket_policy, Bucket=bucket, Policy=public_policy(bucket))
    assert_s3_error(err, 403, "AccessDenied")
    assert_s3_error(client_error(s3.get_bucket_policy, Bucket=bucket), 404, "NoSuchBucketPolicy")

    # RestrictPublicBuckets: a public policy lets in only the bucket's account.
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=public_policy(bucket))
    assert anonymous_get(server, bucket, "private") == 200
    assert s3_other.get_object(Bucket=bucket, Key="private")["Body"].read() == b"p"
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True})
    assert anonymous_get(server, bucket, "private") == 403
    assert_s3_error(client_error(s3_other.get_object, Bucket=bucket, Key="private"), 403, "AccessDenied")
    assert s3.get_object(Bucket=bucket, Key="private")["Body"].read() == b"p"

    # Only the bucket's account reads or changes the block.
    for fn, kw in [
        (s3_other.get_public_access_block, {}),
        (s3_other.put_public_access_block, {"PublicAccessBlockConfiguration": {}}),
        (s3_other.delete_public_access_block, {}),
    ]:
        assert_s3_error(client_error(fn, Bucket=bucket, **kw), 403, "AccessDenied")
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"]
    resp = s3.delete_public_access_block(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert anonymous_get(server, bucket, "private") == 200


def test_bucket_owner_enforced_disables_acls(s3, s3_other, bucket):
    err = client_error(s3.get_bucket_ownership_controls, Bucket=bucket)
    assert_s3_error(err, 404, "OwnershipControlsNotFoundError")
    rules = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=rules)
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"] == rules
    for fn, kw in [
        (s3.put_object, dict(Key="k", Body=b"x", ACL="public-read")),
        (s3.put_bucket_acl, dict(ACL="public-read")),
        (s3.create_multipart_upload, dict(Key="mp", ACL="authenticated-read")),
    ]:
        err = client_error(fn, Bucket=bucket, **kw)
        assert_s3_error(err, 400, "AccessControlListNotSupported")
        assert err.response["Error"]["Message"] == "The bucket does not allow ACLs"
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="bucket-owner-full-control")
    s3.put_object(Bucket=bucket, Key="plain", Body=b"y")
    err = client_error(s3.put_object_acl, Bucket=bucket, Key="k", ACL="public-read")
    assert_s3_error(err, 400, "AccessControlListNotSupported")
    # Another account can neither read nor change the controls.
    for fn, kw in [
        (s3_other.get_bucket_ownership_controls, {}),
        (s3_other.put_bucket_ownership_controls, {"OwnershipControls": {"Rules": [{"ObjectOwnership": "ObjectWriter"}]}}),
        (s3_other.delete_bucket_ownership_controls, {}),
    ]:
        assert_s3_error(client_error(fn, Bucket=bucket, **kw), 403, "AccessDenied")
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    assert_s3_error(client_error(s3.get_bucket_ownership_controls, Bucket=bucket), 404, "OwnershipControlsNotFoundError")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")


def test_enforcing_ownership_needs_a_private_bucket_acl(s3, bucket):
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    err = client_error(
        s3.put_bucket_ownership_controls,
        Bucket=bucket,
        OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    )
    assert_s3_error(err, 400, "InvalidBucketAclWithObjectOwnership")
    assert_s3_error(client_error(s3.get_bucket_ownership_controls, Bucket=bucket), 404, "OwnershipControlsNotFoundError")


def test_request_payment_and_unconfigured_features(s3, s3_other, bucket):
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket=bucket)
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    for fn, status, code in [
        (s3.get_bucket_website, 404, "NoSuchWebsiteConfiguration"),
        (s3.get_bucket_replication, 404, "ReplicationConfigurationNotFoundError"),
        # 400, as AWS's list of error codes gives it (and s3s with it).
        (s3.get_bucket_encryption, 400, "ServerSideEncryptionConfigurationNotFoundError"),
        (s3.get_object_lock_configuration, 404, "ObjectLockConfigurationNotFoundError"),
        (s3.get_bucket_lifecycle_configuration, 404, "NoSuchLifecycleConfiguration"),
    ]:
        assert_s3_error(client_error(fn, Bucket=bucket), status, code)
        assert_s3_error(client_error(getattr(s3_other, fn.__name__), Bucket=bucket), 403, "AccessDenied")
        assert_s3_error(client_error(fn, Bucket=bucket_name()), 404, "NoSuchBucket")
    for fn in [s3_other.get_bucket_request_payment, s3_other.get_bucket_accelerate_configuration, s3_other.get_bucket_logging]:
        assert_s3_error(client_error(fn, Bucket=bucket), 403, "AccessDenied")


def test_what_stays_unimplemented_answers_in_s3s_error_shape(server, bucket):
    for params, body in [
        ("website", b"<WebsiteConfiguration><IndexDocument><Suffix>index.html</Suffix></IndexDocument></WebsiteConfiguration>"),
        ("accelerate", b"<AccelerateConfiguration><Status>Enabled</Status></AccelerateConfiguration>"),
        ("notification", b"<NotificationConfiguration/>"),
    ]:
        resp = s3_raw(server, "PUT", f"/{bucket}", params=[(params, None)], body=body)
        assert resp.status == 501, (params, resp.status, resp.body)
        text = resp.body.decode()
        assert "<Code>NotImplemented</Code>" in text
        assert "<Message>" in text and "<RequestId>" in text


def test_terraform_bucket_read_sequence(s3, bucket):
    """The calls resourceBucketRead makes, in its order, on a plain bucket
    and on one with versioning, CORS, tags and a policy."""

    def replay():
        answers = {}
        calls = [
            ("HeadBucket", s3.head_bucket),
            ("GetBucketPolicy", s3.get_bucket_policy),
            ("GetBucketAcl", s3.get_bucket_acl),
            ("GetBucketCors", s3.get_bucket_cors),
            ("GetBucketWebsite", s3.get_bucket_website),
            ("GetBucketVersioning", s3.get_bucket_versioning),
            ("GetBucketAccelerateConfiguration", s3.get_bucket_accelerate_configuration),
            ("GetBucketRequestPayment", s3.get_bucket_request_payment),
            ("GetBucketLogging", s3.get_bucket_logging),
            ("GetBucketLifecycleConfiguration", s3.get_bucket_lifecycle_configuration),
            ("GetBucketReplication", s3.get_bucket_replication),
            ("GetBucketEncryption", s3.get_bucket_encryption),
            ("GetObjectLockConfiguration", s3.get_object_lock_configuration),
            ("GetBucketLocation", s3.get_bucket_location),
            ("GetBucketTagging", s3.get_bucket_tagging),
        ]
        for name, fn in calls:
            try:
                fn(Bucket=bucket)
                answers[name] = "data"
            except s3.exceptions.ClientError as e:
                code = e.response["Error"]["Code"]
                assert code in TERRAFORM_TOLERATED, (name, code)
                answers[name] = code
        return answers

    plain = replay()
    assert plain == {
        "HeadBucket": "data",
        "GetBucketPolicy": "NoSuchBucketPolicy",
        "GetBucketAcl": "data",
        "GetBucketCors": "NoSuchCORSConfiguration",
        "GetBucketWebsite": "NoSuchWebsiteConfiguration",
        "GetBucketVersioning": "data",
        "GetBucketAccelerateConfiguration": "data",
        "GetBucketRequestPayment": "data",
        "GetBucketLogging": "data",
        "GetBucketLifecycleConfiguration": "NoSuchLifecycleConfiguration",
        "GetBucketReplication": "ReplicationConfigurationNotFoundError",
        "GetBucketEncryption": "ServerSideEncryptionConfigurationNotFoundError",
        "GetObjectLockConfiguration": "ObjectLockConfigurationNotFoundError",
        "GetBucketLocation": "data",
        "GetBucketTagging": "NoSuchTagSet",
    }
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "env", "Value": "test"}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=public_policy(bucket))
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 7}}]})
    configured = replay()
    for name in ["GetBucketPolicy", "GetBucketCors", "GetBucketTagging", "GetBucketVersioning",
                 "GetBucketLifecycleConfiguration"]:
        assert configured[name] == "data", name
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # The region lookup Terraform's SDK makes: HeadBucket's header.
    head = s3.head_bucket(Bucket=bucket)
    assert head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
