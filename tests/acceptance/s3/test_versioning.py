"""S3 versioning with boto3, the AWS CLI and rclone: Put/GetBucketVersioning
(Enabled, Suspended; MFA delete refused), a version id on every write to a
versioned bucket, reads, copies, ACLs and tags by version id, delete
markers (404 with x-amz-delete-marker for the key, 405 for the marker by
id), null versions (from before versioning and while suspended),
ListObjectVersions with markers, prefixes, delimiters and pages,
multipart completion making a version, DeleteObjects by version, buckets
that keep versions refusing deletion, and another account neither seeing
nor touching any of it."""

import json
import shutil
import subprocess

import pytest
from conftest import assert_s3_error, bucket_name, client_error, delete_bucket_quietly, s3_raw

MiB = 1024 * 1024


def enable(s3, bucket, status="Enabled"):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def headers_of(err) -> dict:
    return err.response["ResponseMetadata"]["HTTPHeaders"]


@pytest.fixture
def vbucket(s3):
    """A versioned bucket, emptied of every version afterwards."""
    name = bucket_name("ver")
    s3.create_bucket(Bucket=name)
    enable(s3, name)
    yield name
    delete_bucket_quietly(s3, name)


def test_versioning_configuration(s3, s3_other, bucket):
    got = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in got and "MFADelete" not in got
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    # MFA delete is not supported: refused as AWS refuses what it does not
    # implement, and the state is unchanged.
    err = client_error(
        s3.put_bucket_versioning,
        Bucket=bucket,
        VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
        MFA="serial 123456",
    )
    assert_s3_error(err, 501, "NotImplemented")
    err = client_error(s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Off"})
    assert_s3_error(err, 400, "IllegalVersioningConfigurationException")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    # Another account neither reads nor changes it.
    assert_s3_error(client_error(s3_other.get_bucket_versioning, Bucket=bucket), 403, "AccessDenied")
    err = client_error(
        s3_other.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    assert_s3_error(err, 403, "AccessDenied")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    assert_s3_error(client_error(s3.get_bucket_versioning, Bucket=bucket_name()), 404, "NoSuchBucket")


def test_overwrite_and_delete_keep_every_version(s3, bucket):
    # Written before versioning: the null version.
    first = s3.put_object(Bucket=bucket, Key="doc", Body=b"v0")
    assert "VersionId" not in first
    assert "VersionId" not in s3.head_object(Bucket=bucket, Key="doc")
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=b"v1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="doc", Body=b"v2")["VersionId"]
    assert len({v1, v2, "null"}) == 3

    got = s3.get_object(Bucket=bucket, Key="doc")
    assert (got["Body"].read(), got["VersionId"]) == (b"v2", v2)
    for vid, body in [("null", b"v0"), (v1, b"v1"), (v2, b"v2")]:
        got = s3.get_object(Bucket=bucket, Key="doc", VersionId=vid)
        assert (got["Body"].read(), got["VersionId"]) == (body, vid)
        assert s3.head_object(Bucket=bucket, Key="doc", VersionId=vid)["ContentLength"] == 2
    assert_s3_error(client_error(s3.get_object, Bucket=bucket, Key="doc", VersionId="A" * 32), 404, "NoSuchVersion")
    assert_s3_error(client_error(s3.get_object, Bucket=bucket, Key="doc", VersionId="bad id"), 400, "InvalidArgument")

    # A delete leaves a delete marker on top.
    deleted = s3.delete_object(Bucket=bucket, Key="doc")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    err = client_error(s3.get_object, Bucket=bucket, Key="doc")
    assert_s3_error(err, 404, "NoSuchKey")
    assert headers_of(err)["x-amz-delete-marker"] == "true"
    assert headers_of(err)["x-amz-version-id"] == marker
    head = client_error(s3.head_object, Bucket=bucket, Key="doc")
    assert head.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert headers_of(head)["x-amz-delete-marker"] == "true"
    err = client_error(s3.get_object, Bucket=bucket, Key="doc", VersionId=marker)
    assert_s3_error(err, 405, "MethodNotAllowed")
    assert headers_of(err)["x-amz-delete-marker"] == "true"
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    resp = s3.list_object_versions(Bucket=bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in resp["Versions"]] == [(v2, False), (v1, False), ("null", False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in resp["DeleteMarkers"]] == [(marker, True)]
    assert [v["Size"] for v in resp["Versions"]] == [2, 2, 2]
    assert resp["DeleteMarkers"][0]["Owner"]["ID"] == resp["Versions"][0]["Owner"]["ID"]

    # A bucket that keeps versions or markers cannot be deleted.
    assert_s3_error(client_error(s3.delete_bucket, Bucket=bucket), 409, "BucketNotEmpty")

    # Removing the marker by id brings v2 back; removing v2 for good makes
    # v1 the latest.
    gone = s3.delete_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert (gone["DeleteMarker"], gone["VersionId"]) == (True, marker)
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"v2"
    gone = s3.delete_object(Bucket=bucket, Key="doc", VersionId=v2)
    assert gone["VersionId"] == v2 and "DeleteMarker" not in gone
    assert s3.get_object(Bucket=bucket, Key="doc")["VersionId"] == v1
    assert_s3_error(client_error(s3.get_object, Bucket=bucket, Key="doc", VersionId=v2), 404, "NoSuchVersion")

    # Copying the null version onto the key restores it as a new version.
    copied = s3.copy_object(Bucket=bucket, Key="doc", CopySource={"Bucket": bucket, "Key": "doc", "VersionId": "null"})
    assert copied["CopySourceVersionId"] == "null"
    restored = copied["VersionId"]
    got = s3.get_object(Bucket=bucket, Key="doc")
    assert (got["Body"].read(), got["VersionId"]) == (b"v0", restored)
    ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]]
    assert ids == [restored, v1, "null"]


def test_suspended_versioning_writes_null_versions(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"kept")["VersionId"]
    enable(s3, vbucket, "Suspended")
    resp = s3.put_object(Bucket=vbucket, Key="k", Body=b"null 1")
    assert "VersionId" not in resp
    s3.put_object(Bucket=vbucket, Key="k", Body=b"null 2")
    got = s3.get_object(Bucket=vbucket, Key="k")
    assert (got["Body"].read(), got["VersionId"]) == (b"null 2", "null")
    # The second null write replaced the first; the enabled-era version stays.
    assert [(v["VersionId"], v["IsLatest"]) for v in s3.list_object_versions(Bucket=vbucket)["Versions"]] == [
        ("null", True),
        (v1, False),
    ]
    # A delete while suspended is a null delete marker, replacing the null
    # version.
    deleted = s3.delete_object(Bucket=vbucket, Key="k")
    assert (deleted["DeleteMarker"], deleted["VersionId"]) == (True, "null")
    resp = s3.list_object_versions(Bucket=vbucket)
    assert [v["VersionId"] for v in resp["Versions"]] == [v1]
    assert [(m["VersionId"], m["IsLatest"]) for m in resp["DeleteMarkers"]] == [("null", True)]
    assert s3.get_object(Bucket=vbucket, Key="k", VersionId=v1)["Body"].read() == b"kept"


def test_list_object_versions_pages_prefixes_and_markers(s3, vbucket):
    keys = ["a", "dir/1", "dir/2", "dir/sub/3", "z", "é"]
    made = {}
    for key in keys:
        made[key] = [s3.put_object(Bucket=vbucket, Key=key, Body=key.encode() * n)["VersionId"] for n in (1, 2)]
    expected = []
    for key in sorted(keys, key=lambda k: k.encode()):
        expected += [(key, made[key][1]), (key, made[key][0])]

    # Pages of three with the paginator, resuming by key and version markers.
    seen = []
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=vbucket, PaginationConfig={"PageSize": 3})
    for page in pages:
        assert page["MaxKeys"] == 3
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    assert seen == expected

    first = s3.list_object_versions(Bucket=vbucket, MaxKeys=3)
    assert first["IsTruncated"] is True
    assert (first["NextKeyMarker"], first["NextVersionIdMarker"]) == ("dir/1", made["dir/1"][1])
    second = s3.list_object_versions(
        Bucket=vbucket, MaxKeys=3, KeyMarker=first["NextKeyMarker"], VersionIdMarker=first["NextVersionIdMarker"]
    )
    assert [(v["Key"], v["VersionId"]) for v in second["Versions"]] == expected[3:6]
    # A key marker alone skips every version of that key.
    after = s3.list_object_versions(Bucket=vbucket, KeyMarker="dir/2")
    assert [v["Key"] for v in after["Versions"]][:2] == ["dir/sub/3", "dir/sub/3"]

    rolled = s3.list_object_versions(Bucket=vbucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["dir/"]
    assert sorted({v["Key"] for v in rolled["Versions"]}) == ["a", "z", "é"]
    nested = s3.list_object_versions(Bucket=vbucket, Prefix="dir/", Delimiter="/")
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["dir/sub/"]
    assert [v["Key"] for v in nested["Versions"]] == ["dir/1", "dir/1", "dir/2", "dir/2"]
    encoded = s3.list_object_versions(Bucket=vbucket, Prefix="é", EncodingType="url")
    # Asked for explicitly, the encoding reaches the caller as sent.
    assert [v["Key"] for v in encoded["Versions"]] == ["%C3%A9", "%C3%A9"]

    err = client_error(s3.list_object_versions, Bucket=vbucket, VersionIdMarker="null")
    assert_s3_error(err, 400, "InvalidArgument")


def test_multipart_completion_creates_a_version(s3, vbucket):
    before = s3.put_object(Bucket=vbucket, Key="big", Body=b"small")["VersionId"]
    upload = s3.create_multipart_upload(Bucket=vbucket, Key="big")["UploadId"]
    parts = [b"a" * (5 * MiB), b"tail"]
    done = []
    for n, data in enumerate(parts, 1):
        etag = s3.upload_part(Bucket=vbucket, Key="big", UploadId=upload, PartNumber=n, Body=data)["ETag"]
        done.append({"PartNumber": n, "ETag": etag})
    completed = s3.complete_multipart_upload(
        Bucket=vbucket, Key="big", UploadId=upload, MultipartUpload={"Parts": done}
    )
    assert completed["VersionId"] not in (before, "null")
    assert s3.head_object(Bucket=vbucket, Key="big")["VersionId"] == completed["VersionId"]
    assert s3.get_object(Bucket=vbucket, Key="big", VersionId=before)["Body"].read() == b"small"
    ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=vbucket)["Versions"]]
    assert ids == [completed["VersionId"], before]


def test_delete_objects_by_version(s3, vbucket):
    a1 = s3.put_object(Bucket=vbucket, Key="a", Body=b"1")["VersionId"]
    a2 = s3.put_object(Bucket=vbucket, Key="a", Body=b"2")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="b", Body=b"b")
    resp = s3.delete_objects(
        Bucket=vbucket,
        Delete={"Objects": [{"Key": "a", "VersionId": a1}, {"Key": "b"}, {"Key": "a", "VersionId": "bad id"}]},
    )
    deleted = {(d["Key"], d.get("VersionId")): d for d in resp["Deleted"]}
    assert deleted[("a", a1)].get("DeleteMarker") is None
    marker = deleted[("b", None)]
    assert marker["DeleteMarker"] is True and marker["DeleteMarkerVersionId"]
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in resp["Errors"]] == [("a", "bad id", "InvalidArgument")]
    assert [v["VersionId"] for v in s3.list_object_versions(Bucket=vbucket, Prefix="a")["Versions"]] == [a2]
    # Removing the marker by id in bulk brings "b" back.
    resp = s3.delete_objects(
        Bucket=vbucket, Delete={"Objects": [{"Key": "b", "VersionId": marker["DeleteMarkerVersionId"]}]}
    )
    assert resp["Deleted"][0]["DeleteMarker"] is True
    assert s3.get_object(Bucket=vbucket, Key="b")["Body"].read() == b"b"


def test_acl_and_tags_by_version(server, s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"old")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"new")["VersionId"]
    put = s3.put_object_tagging(Bucket=vbucket, Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "v", "Value": "1"}]})
    assert put["VersionId"] == v1
    got = s3.get_object_tagging(Bucket=vbucket, Key="k", VersionId=v1)
    assert (got["TagSet"], got["VersionId"]) == ([{"Key": "v", "Value": "1"}], v1)
    assert s3.get_object_tagging(Bucket=vbucket, Key="k")["TagSet"] == []
    assert s3.get_object_tagging(Bucket=vbucket, Key="k")["VersionId"] == v2
    s3.delete_object_tagging(Bucket=vbucket, Key="k", VersionId=v1)
    assert s3.get_object_tagging(Bucket=vbucket, Key="k", VersionId=v1)["TagSet"] == []

    s3.put_object_acl(Bucket=vbucket, Key="k", VersionId=v1, ACL="public-read")
    grants = s3.get_object_acl(Bucket=vbucket, Key="k", VersionId=v1)["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants)
    assert len(s3.get_object_acl(Bucket=vbucket, Key="k")["Grants"]) == 1
    anon = s3_raw(server, "GET", f"/{vbucket}/k", params={"versionId": v1}, auth=None)
    assert (anon.status, anon.body) == (200, b"old")
    anon = s3_raw(server, "GET", f"/{vbucket}/k", auth=None)
    assert anon.status == 403

    marker = s3.delete_object(Bucket=vbucket, Key="k")["VersionId"]
    err = client_error(s3.get_object_acl, Bucket=vbucket, Key="k", VersionId=marker)
    assert_s3_error(err, 405, "MethodNotAllowed")
    err = client_error(
        s3.put_object_tagging, Bucket=vbucket, Key="k", VersionId=marker, Tagging={"TagSet": []}
    )
    assert_s3_error(err, 405, "MethodNotAllowed")


def test_another_account_sees_and_touches_no_version(s3, s3_other, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"one")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="k", Body=b"two")
    before = s3.list_object_versions(Bucket=vbucket)["Versions"]
    checks = [
        (s3_other.list_object_versions, dict(Bucket=vbucket)),
        (s3_other.get_object, dict(Bucket=vbucket, Key="k", VersionId=v1)),
        (s3_other.head_object, dict(Bucket=vbucket, Key="k", VersionId=v1)),
        (s3_other.delete_object, dict(Bucket=vbucket, Key="k", VersionId=v1)),
        (s3_other.delete_object, dict(Bucket=vbucket, Key="k")),
        (s3_other.get_object_acl, dict(Bucket=vbucket, Key="k", VersionId=v1)),
        (s3_other.put_object_acl, dict(Bucket=vbucket, Key="k", VersionId=v1, ACL="public-read")),
        (s3_other.get_object_tagging, dict(Bucket=vbucket, Key="k", VersionId=v1)),
        (s3_other.put_object_tagging, dict(Bucket=vbucket, Key="k", VersionId=v1, Tagging={"TagSet": []})),
        (s3_other.delete_object_tagging, dict(Bucket=vbucket, Key="k", VersionId=v1)),
        (s3_other.get_bucket_versioning, dict(Bucket=vbucket)),
        (s3_other.put_bucket_versioning, dict(Bucket=vbucket, VersioningConfiguration={"Status": "Suspended"})),
    ]
    for fn, kw in checks:
        err = client_error(fn, **kw)
        assert_s3_error(err, 403, None if fn.__name__ == "head_object" else "AccessDenied")
    theirs = bucket_name("theirs")
    s3_other.create_bucket(Bucket=theirs)
    try:
        err = client_error(
            s3_other.copy_object, Bucket=theirs, Key="stolen", CopySource={"Bucket": vbucket, "Key": "k", "VersionId": v1}
        )
        assert_s3_error(err, 403, "AccessDenied")
        resp = s3_other.delete_objects(Bucket=vbucket, Delete={"Objects": [{"Key": "k", "VersionId": v1}]})
        assert [(e["Key"], e["Code"]) for e in resp.get("Errors", [])] == [("k", "AccessDenied")]
    finally:
        delete_bucket_quietly(s3_other, theirs)
    assert s3.list_object_versions(Bucket=vbucket)["Versions"] == before
    assert s3.get_bucket_versioning(Bucket=vbucket)["Status"] == "Enabled"


def test_aws_cli_versions(aws_cli, s3, vbucket, tmp_path):
    src = tmp_path / "f.txt"
    src.write_bytes(b"first")
    out = json.loads(aws_cli.run("s3api", "put-object", "--bucket", vbucket, "--key", "f", "--body", src).stdout)
    first = out["VersionId"]
    src.write_bytes(b"second")
    aws_cli.run("s3", "cp", src, f"s3://{vbucket}/f")
    status = json.loads(aws_cli.run("s3api", "get-bucket-versioning", "--bucket", vbucket).stdout)
    assert status["Status"] == "Enabled"
    listed = json.loads(aws_cli.run("s3api", "list-object-versions", "--bucket", vbucket).stdout)
    assert [v["VersionId"] for v in listed["Versions"]][1:] == [first]
    dst = tmp_path / "out.txt"
    aws_cli.run("s3api", "get-object", "--bucket", vbucket, "--key", "f", "--version-id", first, dst)
    assert dst.read_bytes() == b"first"
    aws_cli.run("s3", "rm", f"s3://{vbucket}/f")
    listed = json.loads(aws_cli.run("s3api", "list-object-versions", "--bucket", vbucket).stdout)
    assert [m["IsLatest"] for m in listed["DeleteMarkers"]] == [True]
    assert len(listed["Versions"]) == 2


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone (Debian package) not installed")
def test_rclone_lists_versions(server, s3, vbucket, tmp_path):
    s3.put_object(Bucket=vbucket, Key="notes.txt", Body=b"draft")
    s3.put_object(Bucket=vbucket, Key="notes.txt", Body=b"final text")
    creds = server.admin
    # A remote configured from the environment only (no config file).
    env = {
        "RCLONE_CONFIG": str(tmp_path / "none.conf"),
        "RCLONE_CONFIG_MALLEE_TYPE": "s3",
        "RCLONE_CONFIG_MALLEE_PROVIDER": "Other",
        "RCLONE_CONFIG_MALLEE_ACCESS_KEY_ID": creds["access_key_id"],
        "RCLONE_CONFIG_MALLEE_SECRET_ACCESS_KEY": creds["secret_access_key"],
        "RCLONE_CONFIG_MALLEE_ENDPOINT": server.endpoint,
        "RCLONE_CONFIG_MALLEE_REGION": "us-east-1",
        "RCLONE_CONFIG_MALLEE_FORCE_PATH_STYLE": "true",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    remote = "mallee:"

    def rclone(*args):
        done = subprocess.run(["rclone", *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    plain = rclone("lsf", remote + vbucket).stdout.split()
    assert plain == ["notes.txt"]
    listed = rclone("lsl", "--s3-versions", remote + vbucket).stdout.splitlines()
    names = sorted(line.split()[-1] for line in listed)
    assert len(names) == 2 and "notes.txt" in names
    old = next(n for n in names if n != "notes.txt")
    assert old.startswith("notes-v") and old.endswith(".txt")
    sizes = sorted(int(line.split()[0]) for line in listed)
    assert sizes == [5, 10]
    # The old version reads back through its versioned name.
    got = rclone("cat", "--s3-versions", remote + f"{vbucket}/{old}").stdout
    assert got == "draft"
