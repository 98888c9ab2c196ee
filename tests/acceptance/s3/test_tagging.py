"""S3 tagging with boto3: Put/Get/DeleteBucketTagging and
Put/Get/DeleteObjectTagging, `x-amz-tagging` on PutObject and
CreateMultipartUpload (the tags applied when the upload completes),
`x-amz-tagging-directive` on CopyObject, `x-amz-tagging-count` on GET and
HEAD; S3's limits and errors (each refused request leaves the old tags);
tags surviving a restart; and IAM deciding the tagging actions."""

import json
import uuid

import pytest
from conftest import assert_s3_error, bucket_name, client_error, s3_client


def tag_set(pairs: dict) -> list:
    return [{"Key": k, "Value": v} for k, v in pairs.items()]


def as_dict(tag_list: list) -> dict:
    return {t["Key"]: t["Value"] for t in tag_list}


def object_tags(s3, bucket, key) -> dict:
    return as_dict(s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"])


def error_message(err) -> str:
    return err.response["Error"]["Message"]


# ------------------------------------------------------------------ buckets


def test_bucket_tagging_round_trip(s3, bucket):
    err = client_error(s3.get_bucket_tagging, Bucket=bucket)
    assert_s3_error(err, 404, "NoSuchTagSet")
    tags = {"team": "storage", "cost-centre": "42", "empty": "", "Ключ": "значение"}
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set(tags)})
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert as_dict(got) == tags
    # Key order, as S3 returns a set.
    assert [t["Key"] for t in got] == sorted(tags)
    # A put replaces the whole set.
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set({"only": "this"})})
    assert as_dict(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == {"only": "this"}
    resp = s3.delete_bucket_tagging(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_s3_error(client_error(s3.get_bucket_tagging, Bucket=bucket), 404, "NoSuchTagSet")
    # Deleting what is not there is no error.
    s3.delete_bucket_tagging(Bucket=bucket)


def test_bucket_tagging_limits(s3, bucket):
    fifty = {f"k{i}": f"v{i}" for i in range(50)}
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set(fifty)})
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50

    too_many = {f"k{i}": "v" for i in range(51)}
    err = client_error(s3.put_bucket_tagging, Bucket=bucket, Tagging={"TagSet": tag_set(too_many)})
    assert_s3_error(err, 400, "BadRequest")
    assert error_message(err) == "Bucket tag count cannot be greater than 50"

    bad = [
        ([{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}], "Cannot provide multiple Tags with the same key"),
        (tag_set({"aws:createdBy": "me"}), "System tags cannot be added/updated by requester"),
        (tag_set({"k" * 129: "v"}), "The TagKey you have provided is too long, max 128"),
        (tag_set({"k": "v" * 257}), "The TagValue you have provided is too long, max 256"),
        (tag_set({"a&b": "v"}), "The TagKey you have provided is invalid"),
    ]
    for tags, message in bad:
        err = client_error(s3.put_bucket_tagging, Bucket=bucket, Tagging={"TagSet": tags})
        assert_s3_error(err, 400, "InvalidTag")
        assert error_message(err) == message
    # None of the refused sets changed the stored one.
    assert as_dict(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == fifty


def test_bucket_tagging_is_the_owners(s3, s3_other, bucket):
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set({"a": "1"})})
    assert_s3_error(client_error(s3_other.get_bucket_tagging, Bucket=bucket), 403, "AccessDenied")
    err = client_error(s3_other.put_bucket_tagging, Bucket=bucket, Tagging={"TagSet": tag_set({"b": "2"})})
    assert_s3_error(err, 403, "AccessDenied")
    assert_s3_error(client_error(s3_other.delete_bucket_tagging, Bucket=bucket), 403, "AccessDenied")
    assert as_dict(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == {"a": "1"}
    missing = bucket_name("nope")
    assert_s3_error(client_error(s3.get_bucket_tagging, Bucket=missing), 404, "NoSuchBucket")


def test_deleted_bucket_takes_its_tags(s3):
    name = bucket_name("tg")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_set({"a": "1"})})
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    try:
        assert_s3_error(client_error(s3.get_bucket_tagging, Bucket=name), 404, "NoSuchTagSet")
    finally:
        s3.delete_bucket(Bucket=name)


# ------------------------------------------------------------------ objects


def test_object_tagging_round_trip(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    head = s3.head_object(Bucket=bucket, Key="k")
    assert "x-amz-tagging-count" not in head["ResponseMetadata"]["HTTPHeaders"]
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")

    tags = {"project": "mallee", "tier": "gold", "path": "a/b:c=d+e@f_g.h-i j"}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tag_set(tags)})
    assert object_tags(s3, bucket, "k") == tags
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 3
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    # Tagging leaves the data and its ETag alone.
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"data"

    resp = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert object_tags(s3, bucket, "k") == {}
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")

    err = client_error(s3.get_object_tagging, Bucket=bucket, Key="missing")
    assert_s3_error(err, 404, "NoSuchKey")
    err = client_error(s3.put_object_tagging, Bucket=bucket, Key="missing", Tagging={"TagSet": tag_set({"a": "1"})})
    assert_s3_error(err, 404, "NoSuchKey")
    assert_s3_error(client_error(s3.delete_object_tagging, Bucket=bucket, Key="missing"), 404, "NoSuchKey")
    # Tagging a missing key made no object.
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 1


def test_object_tagging_limits_change_nothing(s3, bucket):
    before = {f"k{i}": f"v{i}" for i in range(10)}
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tag_set(before)})
    at_limits = {"k" * 128: "v" * 256}
    s3.put_object(Bucket=bucket, Key="long", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="long", Tagging={"TagSet": tag_set(at_limits)})
    assert object_tags(s3, bucket, "long") == at_limits

    eleven = {f"k{i}": "v" for i in range(11)}
    err = client_error(s3.put_object_tagging, Bucket=bucket, Key="k", Tagging={"TagSet": tag_set(eleven)})
    assert_s3_error(err, 400, "BadRequest")
    assert error_message(err) == "Object tags cannot be greater than 10"
    bad = [
        ([{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}], "Cannot provide multiple Tags with the same key"),
        (tag_set({"aws:x": "1"}), "Your TagKey cannot be prefixed with aws:"),
        (tag_set({"k" * 129: "v"}), "The TagKey you have provided is too long, max 128"),
        (tag_set({"k": "v" * 257}), "The TagValue you have provided is too long, max 256"),
        (tag_set({"k": "{v}"}), "The TagValue you have provided is invalid"),
    ]
    for tags, message in bad:
        err = client_error(s3.put_object_tagging, Bucket=bucket, Key="k", Tagging={"TagSet": tags})
        assert_s3_error(err, 400, "InvalidTag")
        assert error_message(err) == message
    assert object_tags(s3, bucket, "k") == before


def test_put_object_with_tagging_header(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1&b=two%20words&c=&d")
    assert object_tags(s3, bucket, "k") == {"a": "1", "b": "two words", "c": "", "d": ""}
    # An overwrite replaces the tags with its own (none here).
    s3.put_object(Bucket=bucket, Key="k", Body=b"y")
    assert object_tags(s3, bucket, "k") == {}
    # Deleting the object deletes its tags.
    s3.put_object(Bucket=bucket, Key="k", Body=b"z", Tagging="a=1")
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"z")
    assert object_tags(s3, bucket, "k") == {}


def test_put_object_bad_tagging_header_stores_nothing(s3, bucket):
    eleven = "&".join(f"k{i}=v" for i in range(11))
    err = client_error(s3.put_object, Bucket=bucket, Key="new", Body=b"x", Tagging=eleven)
    assert_s3_error(err, 400, "BadRequest")
    assert error_message(err) == "Object tags cannot be greater than 10"
    err = client_error(s3.put_object, Bucket=bucket, Key="new", Body=b"x", Tagging="a=1&a=2")
    assert_s3_error(err, 400, "InvalidArgument")
    assert error_message(err) == (
        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters "
        "without tag name duplicates."
    )
    err = client_error(s3.put_object, Bucket=bucket, Key="new", Body=b"x", Tagging="aws%3Ax=1")
    assert_s3_error(err, 400, "InvalidTag")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    # An existing object is not replaced by a refused write.
    s3.put_object(Bucket=bucket, Key="old", Body=b"old", Tagging="keep=me")
    err = client_error(s3.put_object, Bucket=bucket, Key="old", Body=b"new", Tagging="k=" + "v" * 257)
    assert_s3_error(err, 400, "InvalidTag")
    assert s3.get_object(Bucket=bucket, Key="old")["Body"].read() == b"old"
    assert object_tags(s3, bucket, "old") == {"keep": "me"}


def test_multipart_upload_tags_apply_at_completion(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="from=mpu&n=1")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"part")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert object_tags(s3, bucket, "mp") == {"from": "mpu", "n": "1"}
    assert s3.head_object(Bucket=bucket, Key="mp")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"

    err = client_error(s3.create_multipart_upload, Bucket=bucket, Key="mp2", Tagging="aws%3Aa=1")
    assert_s3_error(err, 400, "InvalidTag")
    assert error_message(err) == "Your TagKey cannot be prefixed with aws:"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_copy_object_tagging_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"data", Tagging="a=1&b=2")
    src = {"Bucket": bucket, "Key": "src"}
    s3.copy_object(Bucket=bucket, Key="copied", CopySource=src)
    assert object_tags(s3, bucket, "copied") == {"a": "1", "b": "2"}
    # COPY is the default and ignores the header.
    s3.copy_object(Bucket=bucket, Key="copy-dir", CopySource=src, TaggingDirective="COPY", Tagging="x=9")
    assert object_tags(s3, bucket, "copy-dir") == {"a": "1", "b": "2"}
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=src, TaggingDirective="REPLACE", Tagging="c=3")
    assert object_tags(s3, bucket, "replaced") == {"c": "3"}
    s3.copy_object(Bucket=bucket, Key="untagged", CopySource=src, TaggingDirective="REPLACE")
    assert object_tags(s3, bucket, "untagged") == {}
    err = client_error(
        s3.copy_object, Bucket=bucket, Key="refused", CopySource=src, TaggingDirective="REPLACE",
        Tagging="&".join(f"k{i}=v" for i in range(11)),
    )
    assert_s3_error(err, 400, "BadRequest")
    assert "refused" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert object_tags(s3, bucket, "src") == {"a": "1", "b": "2"}


def test_other_account_cannot_tag_private_objects(s3, s3_other, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1")
    assert_s3_error(client_error(s3_other.get_object_tagging, Bucket=bucket, Key="k"), 403, "AccessDenied")
    err = client_error(s3_other.put_object_tagging, Bucket=bucket, Key="k", Tagging={"TagSet": []})
    assert_s3_error(err, 403, "AccessDenied")
    assert_s3_error(client_error(s3_other.delete_object_tagging, Bucket=bucket, Key="k"), 403, "AccessDenied")
    assert object_tags(s3, bucket, "k") == {"a": "1"}


# ------------------------------------------------------------------ IAM


def test_iam_user_without_put_object_tagging_is_refused(server, s3, bucket):
    iam = server.client("iam")
    name = f"tg-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:GetObjectTagging", "s3:GetBucketTagging"],
            "Resource": "*",
        }],
    }
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    try:
        user = s3_client(server, {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]})
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1")
        assert object_tags(user, bucket, "k") == {"a": "1"}
        err = client_error(user.put_object_tagging, Bucket=bucket, Key="k", Tagging={"TagSet": tag_set({"b": "2"})})
        assert_s3_error(err, 403, "AccessDenied")
        assert_s3_error(client_error(user.delete_object_tagging, Bucket=bucket, Key="k"), 403, "AccessDenied")
        # A write that tags its object needs s3:PutObjectTagging too, as in AWS.
        err = client_error(user.put_object, Bucket=bucket, Key="k", Body=b"new", Tagging="b=2")
        assert_s3_error(err, 403, "AccessDenied")
        err = client_error(user.create_multipart_upload, Bucket=bucket, Key="mp", Tagging="b=2")
        assert_s3_error(err, 403, "AccessDenied")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
        user.put_object(Bucket=bucket, Key="plain", Body=b"untagged write is allowed")
        err = client_error(user.put_bucket_tagging, Bucket=bucket, Tagging={"TagSet": tag_set({"b": "2"})})
        assert_s3_error(err, 403, "AccessDenied")
        # DeleteBucketTagging is s3:PutBucketTagging, which the user lacks.
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set({"keep": "1"})})
        assert_s3_error(client_error(user.delete_bucket_tagging, Bucket=bucket), 403, "AccessDenied")
        assert as_dict(user.get_bucket_tagging(Bucket=bucket)["TagSet"]) == {"keep": "1"}
        assert object_tags(s3, bucket, "k") == {"a": "1"}
    finally:
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        iam.delete_user_policy(UserName=name, PolicyName="p")
        iam.delete_user(UserName=name)


# ------------------------------------------------------------------ durability


def test_tags_survive_a_restart(mallee_factory):
    srv = mallee_factory("tags")
    c = s3_client(srv)
    name = bucket_name("tg")
    c.create_bucket(Bucket=name)
    c.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_set({"env": "prod"})})
    c.put_object(Bucket=name, Key="k", Body=b"x", Tagging="a=1&b=2")
    up = c.create_multipart_upload(Bucket=name, Key="mp", Tagging="from=mpu")
    srv.restart()
    c = s3_client(srv)
    assert as_dict(c.get_bucket_tagging(Bucket=name)["TagSet"]) == {"env": "prod"}
    assert object_tags(c, name, "k") == {"a": "1", "b": "2"}
    part = c.upload_part(Bucket=name, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
    c.complete_multipart_upload(
        Bucket=name, Key="mp", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert object_tags(c, name, "mp") == {"from": "mpu"}
