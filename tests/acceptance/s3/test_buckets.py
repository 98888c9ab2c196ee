"""S3 buckets: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation, names."""

import pytest

from conftest import (
    REGION,
    assert_s3_error,
    bucket_name,
    canonical_id,
    client_error,
    delete_bucket_quietly,
    local,
)


def test_create_list_head_delete(s3):
    name = bucket_name()
    resp = s3.create_bucket(Bucket=name)
    try:
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert name in (resp.get("Location") or name), resp.get("Location")
        listed = s3.list_buckets()
        names = [b["Name"] for b in listed["Buckets"]]
        assert name in names
        entry = next(b for b in listed["Buckets"] if b["Name"] == name)
        assert entry["CreationDate"] is not None
        assert listed["Owner"]["ID"], listed["Owner"]
        head = s3.head_bucket(Bucket=name)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
        s3.delete_bucket(Bucket=name)
    finally:
        delete_bucket_quietly(s3, name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    err = client_error(s3.head_bucket, Bucket=name)
    assert_s3_error(err, 404, None)


def test_delete_bucket_status_204(s3, s3req):
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    r = s3req("DELETE", f"/{name}")
    assert r.status == 204, r.describe()
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_with_location_constraint(s3):
    name = bucket_name()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    try:
        loc = s3.get_bucket_location(Bucket=name)["LocationConstraint"]
        assert loc in (REGION, None, ""), loc
        s3.head_bucket(Bucket=name)
    finally:
        delete_bucket_quietly(s3, name)


def test_get_bucket_location_default(s3, bucket, s3req):
    loc = s3.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert loc in (REGION, None, ""), loc
    r = s3req("GET", f"/{bucket}", params=[("location", None)])
    assert r.status == 200, r.describe()
    assert local(r.xml.tag) == "LocationConstraint", r.describe()


def test_list_buckets_xml_shape(s3req, bucket):
    r = s3req("GET", "/")
    assert r.status == 200, r.describe()
    assert local(r.xml.tag) == "ListAllMyBucketsResult", r.describe()
    assert r.findtext("ID"), r.describe()
    names = [e.text for e in r.findall("Name")]
    assert bucket in names


def test_list_buckets_only_own(s3, s3_other, bucket):
    assert bucket not in [b["Name"] for b in s3_other.list_buckets()["Buckets"]]
    assert canonical_id(s3) != canonical_id(s3_other)


def test_bucket_not_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep/me", Body=b"data")
    err = client_error(s3.delete_bucket, Bucket=bucket)
    assert_s3_error(err, 409, "BucketNotEmpty")
    s3.head_bucket(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="keep/me")["Body"].read() == b"data"


def test_delete_missing_bucket(s3):
    err = client_error(s3.delete_bucket, Bucket=bucket_name("missing"))
    assert_s3_error(err, 404, "NoSuchBucket")


def test_no_such_bucket_errors(s3, s3req):
    name = bucket_name("missing")
    assert_s3_error(client_error(s3.list_objects_v2, Bucket=name), 404, "NoSuchBucket")
    assert_s3_error(client_error(s3.put_object, Bucket=name, Key="k", Body=b"x"), 404, "NoSuchBucket")
    assert_s3_error(client_error(s3.get_object, Bucket=name, Key="k"), 404, "NoSuchBucket")
    assert_s3_error(client_error(s3.get_bucket_location, Bucket=name), 404, "NoSuchBucket")
    r = s3req("GET", f"/{name}")
    assert_s3_error(r, 404, "NoSuchBucket")
    r = s3req("HEAD", f"/{name}")
    assert r.status == 404 and r.body == b"", r.describe()


def test_bucket_already_owned_by_you(s3, bucket):
    err = client_error(s3.create_bucket, Bucket=bucket)
    assert_s3_error(err, 409, "BucketAlreadyOwnedByYou")
    err = client_error(s3.create_bucket, Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    assert_s3_error(err, 409, "BucketAlreadyOwnedByYou")


def test_bucket_already_exists_other_account(s3, s3_other, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"mine")
    err = client_error(s3_other.create_bucket, Bucket=bucket)
    assert_s3_error(err, 409, "BucketAlreadyExists")
    # still ours, untouched
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket not in [b["Name"] for b in s3_other.list_buckets()["Buckets"]]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"mine"


def test_other_account_head_and_delete_denied(s3, s3_other, bucket):
    err = client_error(s3_other.head_bucket, Bucket=bucket)
    assert_s3_error(err, 403, None)
    err = client_error(s3_other.delete_bucket, Bucket=bucket)
    assert_s3_error(err, 403, "AccessDenied")
    s3.head_bucket(Bucket=bucket)


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "a" * 64,  # too long
        "UpperCase-bucket",
        "under_score-bucket",
        "-leading-hyphen",
        "trailing-hyphen-",
        ".leading-dot",
        "double..dots",
        "192.168.10.20",  # IP address form
    ],
)
def test_invalid_bucket_name(s3, s3req, name):
    # raw request: botocore validates some names client-side
    r = s3req("PUT", f"/{name}")
    assert_s3_error(r, 400, "InvalidBucketName")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_valid_edge_names(s3):
    names = ["abc" + bucket_name()[3:6], ("b" * 3), "x" * 63, "a.b-c.d" + bucket_name()[-8:]]
    names = [n for n in names if 3 <= len(n) <= 63]
    for n in names:
        try:
            s3.create_bucket(Bucket=n)
        except Exception as e:  # name may be taken by an earlier run on the shared server
            code = getattr(e, "response", {}).get("Error", {}).get("Code")
            if code != "BucketAlreadyOwnedByYou":
                raise
        try:
            s3.head_bucket(Bucket=n)
        finally:
            delete_bucket_quietly(s3, n)
