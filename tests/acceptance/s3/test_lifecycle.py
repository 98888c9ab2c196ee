"""Lifecycle rules with boto3 and awscli: the configuration round trip and
S3's checks, `x-amz-expiration` on GET and HEAD, and the background pass
judged by an injected clock (`mallee admin lifecycle-clock`): a rule
expires the current versions of a prefix one day on (at the midnight
after, as S3 counts), leaving delete markers and every old version
readable by id, and aborts week-old uploads; in a bucket that never kept
versions the objects go for good.

The clock is the shared session cloud's, so each test that moves it puts
it back; only buckets with lifecycle rules are affected by it.
"""

import email.utils
import json
import time

import pytest
from conftest import assert_s3_error, bucket_name, client_error

DAY = 86400


@pytest.fixture
def clock(server):
    """clock(seconds): judge lifecycle rules as if it were that much later."""

    def ahead(seconds):
        server.admin_cli("lifecycle-clock", "--ahead-seconds", str(int(max(seconds, 0))), check=True)

    yield ahead
    server.admin_cli("lifecycle-clock", "--reset", check=True)


def expiry_of(header):
    """(epoch seconds, rule id) of an x-amz-expiration value."""
    date = header.split('expiry-date="', 1)[1].split('"', 1)[0]
    rule = header.split('rule-id="', 1)[1].split('"', 1)[0]
    return email.utils.parsedate_to_datetime(date).timestamp(), rule


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "the lifecycle pass did not act in time"
        time.sleep(0.5)


def versions_of(s3, bucket):
    out = s3.list_object_versions(Bucket=bucket)
    rows = [(v["Key"], v["IsLatest"], False) for v in out.get("Versions", [])]
    rows += [(m["Key"], m["IsLatest"], True) for m in out.get("DeleteMarkers", [])]
    return sorted(rows)


def test_configuration_round_trip_and_checks(s3, s3_other, bucket, aws_cli, tmp_path):
    rules = [
        {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 30},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
        {"ID": "tagged", "Filter": {"Tag": {"Key": "tmp", "Value": "yes"}}, "Status": "Enabled",
         "Expiration": {"Days": 1}},
        {"ID": "and", "Filter": {"And": {"Prefix": "big/", "Tags": [{"Key": "a", "Value": "1"}],
                                          "ObjectSizeGreaterThan": 1024, "ObjectSizeLessThan": 4096}},
         "Status": "Disabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 3, "NewerNoncurrentVersions": 2}},
        {"ID": "markers", "Filter": {"ObjectSizeGreaterThan": 0}, "Status": "Enabled",
         "Expiration": {"ExpiredObjectDeleteMarker": True}},
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == rules
    # The legacy form without Filter, and a date at midnight, through awscli.
    doc = tmp_path / "lc.json"
    doc.write_text(json.dumps({"Rules": [
        {"ID": "old", "Prefix": "old/", "Status": "Enabled", "Expiration": {"Date": "2030-01-01T00:00:00Z"}},
    ]}))
    aws_cli.run("s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket,
                "--lifecycle-configuration", f"file://{doc}")
    out = aws_cli.json("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket)
    assert out["Rules"] == [{"ID": "old", "Prefix": "old/", "Status": "Enabled",
                             "Expiration": {"Date": "2030-01-01T00:00:00.000Z"}}]

    def refused(rule, status, code):
        err = client_error(s3.put_bucket_lifecycle_configuration, Bucket=bucket,
                           LifecycleConfiguration={"Rules": [rule]})
        assert_s3_error(err, status, code)

    base = {"ID": "r", "Filter": {"Prefix": "p/"}, "Status": "Enabled"}
    refused({**base, "Expiration": {"Days": 0}}, 400, "InvalidArgument")
    refused({**base}, 400, "InvalidArgument")
    refused({**base, "Expiration": {"Date": "2030-01-01T12:00:00Z"}}, 400, "InvalidArgument")
    refused({**base, "Filter": {"Tag": {"Key": "k", "Value": "v"}},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}, 400, "InvalidRequest")
    refused({**base, "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}, 501, "NotImplemented")
    err = client_error(s3.put_bucket_lifecycle_configuration, Bucket=bucket, LifecycleConfiguration={"Rules": [
        {**base, "Expiration": {"Days": 1}}, {**base, "Expiration": {"Days": 2}}]})
    assert_s3_error(err, 400, "InvalidArgument")
    # Refusals changed nothing; another account touches nothing.
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]["ID"] == "old"
    for fn, kw in [
        (s3_other.get_bucket_lifecycle_configuration, {}),
        (s3_other.delete_bucket_lifecycle, {}),
        (s3_other.put_bucket_lifecycle_configuration, {"LifecycleConfiguration": {"Rules": [
            {**base, "Expiration": {"Days": 1}}]}}),
    ]:
        assert_s3_error(client_error(fn, Bucket=bucket, **kw), 403, "AccessDenied")
    s3.delete_bucket_lifecycle(Bucket=bucket)
    assert_s3_error(client_error(s3.get_bucket_lifecycle_configuration, Bucket=bucket), 404,
                    "NoSuchLifecycleConfiguration")


def test_a_day_on_current_versions_expire_behind_markers_and_old_uploads_abort(s3, bucket, clock):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    written = {}
    for key in ["logs/a", "logs/b", "keep/c"]:
        written[key] = s3.put_object(Bucket=bucket, Key=key, Body=key.encode())["VersionId"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="logs/big")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="logs/big", UploadId=upload, PartNumber=1, Body=b"x" * 1024)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "expire-logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 1},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
    ]})

    head = s3.head_object(Bucket=bucket, Key="logs/a")
    expires_at, rule = expiry_of(head["Expiration"])
    get = s3.get_object(Bucket=bucket, Key="logs/b")
    assert get["Expiration"] == head["Expiration"]
    assert rule == "expire-logs"
    # Midnight UTC after one day.
    assert expires_at % DAY == 0 and DAY < expires_at - time.time() <= 2 * DAY
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="keep/c")
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="logs/a", VersionId=written["logs/a"])

    # An hour before the midnight nothing happens.
    clock(expires_at - time.time() - 3600)
    time.sleep(5)
    assert versions_of(s3, bucket) == [
        ("keep/c", True, False), ("logs/a", True, False), ("logs/b", True, False)]

    # Past it, each current version of logs/ is behind a delete marker.
    clock(expires_at - time.time() + 60)
    expected = [("keep/c", True, False), ("logs/a", False, False), ("logs/a", True, True),
                ("logs/b", False, False), ("logs/b", True, True)]
    wait_for(lambda: versions_of(s3, bucket) == expected)
    err = client_error(s3.get_object, Bucket=bucket, Key="logs/a")
    assert_s3_error(err, 404, "NoSuchKey")
    assert err.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    for key in ["logs/a", "logs/b"]:
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=written[key])["Body"].read()
        assert body == key.encode()
    assert s3.get_object(Bucket=bucket, Key="keep/c")["Body"].read() == b"keep/c"
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [upload], "a day-old upload stays"

    # A week on, the upload is aborted.
    clock(8 * DAY)
    wait_for(lambda: not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"))
    assert_s3_error(client_error(s3.list_parts, Bucket=bucket, Key="logs/big", UploadId=upload), 404,
                    "NoSuchUpload")


def test_unversioned_objects_expire_for_good(s3, clock, aws_cli, tmp_path):
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    try:
        s3.put_object(Bucket=name, Key="tmp/x", Body=b"x", Tagging="expire=yes")
        s3.put_object(Bucket=name, Key="tmp/y", Body=b"y")
        doc = tmp_path / "lc.json"
        doc.write_text(json.dumps({"Rules": [{"ID": "tagged", "Status": "Enabled", "Expiration": {"Days": 1},
                                              "Filter": {"Tag": {"Key": "expire", "Value": "yes"}}}]}))
        aws_cli.run("s3api", "put-bucket-lifecycle-configuration", "--bucket", name,
                    "--lifecycle-configuration", f"file://{doc}")
        head = aws_cli.json("s3api", "head-object", "--bucket", name, "--key", "tmp/x")
        expires_at, _ = expiry_of(head["Expiration"])
        clock(expires_at - time.time() + 60)
        wait_for(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])] == ["tmp/y"])
        assert "Versions" in s3.list_object_versions(Bucket=name)
        assert "DeleteMarkers" not in s3.list_object_versions(Bucket=name), "no marker where no versions are kept"
    finally:
        for o in s3.list_objects_v2(Bucket=name).get("Contents", []):
            s3.delete_object(Bucket=name, Key=o["Key"])
        s3.delete_bucket(Bucket=name)
