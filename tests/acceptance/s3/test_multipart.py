"""Multipart uploads: Create/UploadPart/UploadPartCopy/Complete/Abort/ListParts/ListMultipartUploads."""

import os

import pytest

from conftest import MiB, assert_s3_error, client_error, etag_of, list_keys, multipart_etag

PART = 5 * MiB


@pytest.fixture(scope="module")
def big_part():
    return os.urandom(PART)


def _upload(s3, bucket, key, parts, **create_kw):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **create_kw)
    uid = up["UploadId"]
    done = []
    for i, data in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i, Body=data)
        assert r["ETag"] == etag_of(data)
        done.append({"PartNumber": i, "ETag": r["ETag"]})
    return uid, done


def test_multipart_roundtrip(s3, bucket, big_part):
    parts = [big_part, b"tail" * 300]
    uid, done = _upload(s3, bucket, "mp/obj", parts, ContentType="video/mp4", Metadata={"k": "v"})
    assert uid
    # not visible before completion
    assert list_keys(s3, bucket) == []
    resp = s3.complete_multipart_upload(Bucket=bucket, Key="mp/obj", UploadId=uid, MultipartUpload={"Parts": done})
    assert resp["ETag"] == multipart_etag(parts)
    assert resp["Key"] == "mp/obj"
    assert resp["Bucket"] == bucket
    got = s3.get_object(Bucket=bucket, Key="mp/obj")
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == multipart_etag(parts)
    assert got["ContentType"] == "video/mp4"
    assert got["Metadata"] == {"k": "v"}
    head = s3.head_object(Bucket=bucket, Key="mp/obj")
    assert head["ContentLength"] == sum(map(len, parts))
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [("mp/obj", multipart_etag(parts), head["ContentLength"])]
    # upload is gone
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # range across the part boundary
    r = s3.get_object(Bucket=bucket, Key="mp/obj", Range=f"bytes={PART - 3}-{PART + 2}")
    assert r["Body"].read() == b"".join(parts)[PART - 3 : PART + 3]


def test_single_small_part_ok(s3, bucket):
    uid, done = _upload(s3, bucket, "one", [b"only part"])
    resp = s3.complete_multipart_upload(Bucket=bucket, Key="one", UploadId=uid, MultipartUpload={"Parts": done})
    assert resp["ETag"] == multipart_etag([b"only part"])
    assert s3.get_object(Bucket=bucket, Key="one")["Body"].read() == b"only part"


def test_part_overwrite_last_wins(s3, bucket, big_part):
    up = s3.create_multipart_upload(Bucket=bucket, Key="ow")
    uid = up["UploadId"]
    s3.upload_part(Bucket=bucket, Key="ow", UploadId=uid, PartNumber=1, Body=b"x" * PART)
    e1 = s3.upload_part(Bucket=bucket, Key="ow", UploadId=uid, PartNumber=1, Body=big_part)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="ow", UploadId=uid, PartNumber=2, Body=b"end")["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="ow", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, e1, PART), (2, e2, 3)]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="ow", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert s3.get_object(Bucket=bucket, Key="ow")["Body"].read() == big_part + b"end"


def test_complete_subset_of_parts(s3, bucket, big_part):
    # parts need not be contiguous; unlisted parts are dropped
    up = s3.create_multipart_upload(Bucket=bucket, Key="subset")
    uid = up["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="subset", UploadId=uid, PartNumber=1, Body=big_part)["ETag"]
    s3.upload_part(Bucket=bucket, Key="subset", UploadId=uid, PartNumber=2, Body=b"dropped")
    e5 = s3.upload_part(Bucket=bucket, Key="subset", UploadId=uid, PartNumber=5, Body=b"five")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="subset", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 5, "ETag": e5}]},
    )
    assert s3.get_object(Bucket=bucket, Key="subset")["Body"].read() == big_part + b"five"


def test_invalid_part_order(s3, bucket, big_part):
    uid, done = _upload(s3, bucket, "order", [big_part, big_part])  # both >= 5 MiB: only the order is wrong
    err = client_error(
        s3.complete_multipart_upload, Bucket=bucket, Key="order", UploadId=uid,
        MultipartUpload={"Parts": list(reversed(done))},
    )
    assert_s3_error(err, 400, "InvalidPartOrder")
    assert list_keys(s3, bucket) == []
    # upload still usable
    assert len(s3.list_parts(Bucket=bucket, Key="order", UploadId=uid)["Parts"]) == 2
    s3.complete_multipart_upload(Bucket=bucket, Key="order", UploadId=uid, MultipartUpload={"Parts": done})
    assert s3.get_object(Bucket=bucket, Key="order")["Body"].read() == big_part + big_part


def test_invalid_part(s3, bucket, big_part):
    uid, done = _upload(s3, bucket, "ip", [big_part, b"b"])
    bad_etag = [done[0], {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'}]
    err = client_error(
        s3.complete_multipart_upload, Bucket=bucket, Key="ip", UploadId=uid, MultipartUpload={"Parts": bad_etag}
    )
    assert_s3_error(err, 400, "InvalidPart")
    unknown = [done[0], {"PartNumber": 3, "ETag": done[1]["ETag"]}]
    err = client_error(
        s3.complete_multipart_upload, Bucket=bucket, Key="ip", UploadId=uid, MultipartUpload={"Parts": unknown}
    )
    assert_s3_error(err, 400, "InvalidPart")
    assert list_keys(s3, bucket) == []


def test_entity_too_small(s3, bucket):
    uid, done = _upload(s3, bucket, "small", [b"a" * 1024, b"b" * 1024])
    err = client_error(
        s3.complete_multipart_upload, Bucket=bucket, Key="small", UploadId=uid, MultipartUpload={"Parts": done}
    )
    assert_s3_error(err, 400, "EntityTooSmall")
    assert list_keys(s3, bucket) == []


def test_abort_then_no_such_upload(s3, bucket):
    uid, done = _upload(s3, bucket, "ab", [b"part"])
    r = s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=uid)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_s3_error(client_error(s3.list_parts, Bucket=bucket, Key="ab", UploadId=uid), 404, "NoSuchUpload")
    assert_s3_error(
        client_error(s3.upload_part, Bucket=bucket, Key="ab", UploadId=uid, PartNumber=2, Body=b"x"),
        404, "NoSuchUpload",
    )
    assert_s3_error(
        client_error(
            s3.complete_multipart_upload, Bucket=bucket, Key="ab", UploadId=uid, MultipartUpload={"Parts": done}
        ),
        404, "NoSuchUpload",
    )
    assert_s3_error(client_error(s3.abort_multipart_upload, Bucket=bucket, Key="ab", UploadId=uid), 404, "NoSuchUpload")
    assert list_keys(s3, bucket) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_unknown_upload_id(s3, bucket):
    assert_s3_error(
        client_error(s3.upload_part, Bucket=bucket, Key="k", UploadId="no-such-upload-id", PartNumber=1, Body=b"x"),
        404, "NoSuchUpload",
    )


def test_upload_id_bound_to_key(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="right")
    err = client_error(
        s3.upload_part, Bucket=bucket, Key="wrong", UploadId=up["UploadId"], PartNumber=1, Body=b"x"
    )
    assert_s3_error(err, 404, "NoSuchUpload")


@pytest.mark.parametrize("pn", [0, 10001])
def test_invalid_part_number(s3req, s3, bucket, pn):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="pn")["UploadId"]
    r = s3req("PUT", f"/{bucket}/pn", params=[("partNumber", str(pn)), ("uploadId", uid)], body=b"x")
    assert_s3_error(r, 400, "InvalidArgument")


def test_list_parts_pagination(s3, bucket):
    uid, done = _upload(s3, bucket, "lp", [b"1", b"22", b"333"])
    r = s3.list_parts(Bucket=bucket, Key="lp", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in r["Parts"]] == [1, 2]
    assert [p["Size"] for p in r["Parts"]] == [1, 2]
    assert r["IsTruncated"] is True
    assert r["NextPartNumberMarker"] == 2
    assert r["UploadId"] == uid
    assert r["Key"] == "lp"
    r2 = s3.list_parts(Bucket=bucket, Key="lp", UploadId=uid, PartNumberMarker=2)
    assert [(p["PartNumber"], p["ETag"]) for p in r2["Parts"]] == [(3, done[2]["ETag"])]
    assert r2["IsTruncated"] is False


def test_list_multipart_uploads(s3, bucket):
    u1 = s3.create_multipart_upload(Bucket=bucket, Key="dir/a")["UploadId"]
    u2 = s3.create_multipart_upload(Bucket=bucket, Key="dir/b")["UploadId"]
    u3 = s3.create_multipart_upload(Bucket=bucket, Key="other")["UploadId"]
    r = s3.list_multipart_uploads(Bucket=bucket)
    got = sorted((u["Key"], u["UploadId"]) for u in r["Uploads"])
    assert got == sorted([("dir/a", u1), ("dir/b", u2), ("other", u3)])
    assert all(u.get("Initiated") for u in r["Uploads"])
    r = s3.list_multipart_uploads(Bucket=bucket, Prefix="dir/")
    assert sorted(u["Key"] for u in r["Uploads"]) == ["dir/a", "dir/b"]
    r = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["dir/"]
    assert [u["Key"] for u in r["Uploads"]] == ["other"]
    r = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=1)
    assert len(r["Uploads"]) == 1 and r["IsTruncated"] is True


def test_upload_part_copy(s3, bucket, big_part):
    src = b"0123456789" + big_part + b"tail!"
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    r1 = s3.upload_part_copy(
        Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=10-{PART + 9}",
    )
    assert r1["CopyPartResult"]["ETag"] == etag_of(big_part)
    # whole-object copy (no range) as the last part
    s3.put_object(Bucket=bucket, Key="small", Body=b"whole small object")
    r2 = s3.upload_part_copy(
        Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2, CopySource={"Bucket": bucket, "Key": "small"},
    )
    assert r2["CopyPartResult"]["ETag"] == etag_of(b"whole small object")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="dst", UploadId=uid,
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
            {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]},
        ]},
    )
    got = s3.get_object(Bucket=bucket, Key="dst")["Body"].read()
    assert got == big_part + b"whole small object"


def test_upload_part_copy_bad_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"short")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    err = client_error(
        s3.upload_part_copy, Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange="bytes=0-100",
    )
    assert_s3_error(err, (400, 416), None)
    assert err.response["Error"]["Code"] in ("InvalidArgument", "InvalidRange")


def test_complete_overwrites_existing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    uid, done = _upload(s3, bucket, "k", [b"new"])
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": done})
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"new"


def test_malformed_complete_body(s3req, s3, bucket):
    uid, done = _upload(s3, bucket, "mx", [b"x"])
    r = s3req("POST", f"/{bucket}/mx", params=[("uploadId", uid)], body=b"<CompleteMultipartUpload><Part>")
    assert_s3_error(r, 400, "MalformedXML")
    r = s3req("POST", f"/{bucket}/mx", params=[("uploadId", uid)],
              body=b"<CompleteMultipartUpload></CompleteMultipartUpload>")
    assert_s3_error(r, 400, "MalformedXML")
    assert list_keys(s3, bucket) == []


def test_upload_part_bad_content_md5(s3req, s3, bucket):
    import base64
    import hashlib

    uid = s3.create_multipart_upload(Bucket=bucket, Key="md5")["UploadId"]
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    r = s3req("PUT", f"/{bucket}/md5", params=[("partNumber", "1"), ("uploadId", uid)], body=b"part",
              headers={"Content-MD5": wrong})
    assert_s3_error(r, 400, "BadDigest")
    assert s3.list_parts(Bucket=bucket, Key="md5", UploadId=uid).get("Parts", []) == []


def _blob_files(server) -> int:
    """Blob files on disk (`objects/data/<2 hex>/<id>`)."""
    root = server.data_dir / "objects" / "data"
    return sum(len(list(fan.iterdir())) for fan in root.iterdir()) if root.exists() else 0


def test_delete_bucket_with_only_abandoned_uploads(server, s3):
    """AWS deletes a bucket whose only contents are uploads never completed,
    and drops the uploads (Scality CloudServer PR #1591 changed to match);
    their parts' files are deleted, not leaked."""
    name = f"mp-{os.urandom(8).hex()}"
    s3.create_bucket(Bucket=name)
    before = _blob_files(server)
    uploads = []
    for key in ["a", "a", "dir/b"]:
        uid = s3.create_multipart_upload(Bucket=name, Key=key)["UploadId"]
        for n in (1, 2):
            s3.upload_part(Bucket=name, Key=key, UploadId=uid, PartNumber=n, Body=b"part %d" % n)
        uploads.append((key, uid))
    assert _blob_files(server) == before + 6
    resp = s3.delete_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_s3_error(client_error(s3.head_bucket, Bucket=name), 404, None)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert _blob_files(server) == before, "the uploads' part files were leaked"
    # The uploads are gone with the bucket: a recreated bucket has none.
    s3.create_bucket(Bucket=name)
    try:
        assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
        key, uid = uploads[0]
        err = client_error(s3.upload_part, Bucket=name, Key=key, UploadId=uid, PartNumber=3, Body=b"late")
        assert_s3_error(err, 404, "NoSuchUpload")
    finally:
        s3.delete_bucket(Bucket=name)


def test_delete_bucket_with_object_and_upload_is_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"data")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"part")
    assert_s3_error(client_error(s3.delete_bucket, Bucket=bucket), 409, "BucketNotEmpty")
    # Nothing was dropped: the object and the upload are both still there.
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"data"
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1]
